"""Operators. ``glvd.reconstruct`` runs the descent off the UI thread (progress, Esc cancels)
and synchronously in background mode; the scene is written in one undo step on success only."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import bpy
import numpy as np
from bpy.props import CollectionProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import core, exporters, pin_drag, scene_writer
from .props import settings

if TYPE_CHECKING:  # glvd_core is imported lazily (core.glvd_core)
    from glvd_core.pipeline import Inputs, PipelineOptions, PipelineResult
    from glvd_core.reconstruct import Reconstructor


_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()  # a preload and a click share one load
_PRELOADING: set = set()
_LOADERS: list = []  # preload threads, joined on unregister
_ACTIVE: list = []   # the Job running off the UI thread, if any (one at a time: the panel shows its progress)


def _model_key(model_path: str, device: str) -> tuple:
    return model_path or "<bundled>", device


def runtime_for(device: str) -> str:
    """The runtime the panel's device runs: "cpu" the numpy runtime (the same mesh, and no
    PyTorch import: seconds sooner); "auto" and "cuda" PyTorch where it is installed."""
    return "numpy" if device == "cpu" else "auto"


def get_reconstructor(model_path: str, device: str, _resolved: str | None = None) -> Reconstructor:
    """Cached Reconstructor for (model, device), in :func:`runtime_for` the device; waits for a
    preload of it that is under way."""
    key = _model_key(model_path, device)
    path = _resolved if _resolved is not None else (core.bpy_abspath(model_path) if model_path else "")
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS.clear()
            Reconstructor = core.import_core("reconstruct").Reconstructor
            _MODELS[key] = Reconstructor.from_pretrained(path or None, device=device, runtime=runtime_for(device))
        return _MODELS[key]


def default_iterations(model_path: str, device: str) -> int | None:
    """The descent steps the (model, device) runs when Iterations is 0, once that model is
    loaded; None before (the panel does not wait for a load to draw)."""
    rec = _MODELS.get(_model_key(model_path, device))
    return None if rec is None else int(rec.cfg.inference.iterations)


def preload(model_path: str, device: str) -> threading.Thread | None:
    """Load the model and build the face detector on a background thread, so that the artist's
    click does not wait for them (the panel calls this as it first draws, and adding a photo does).
    Returns the thread, or None when that model is loaded or loading already. A failure is not
    reported here: the click loads again and reports it."""
    key = _model_key(model_path, device)
    if key in _MODELS or key in _PRELOADING:
        return None
    _PRELOADING.add(key)
    path = core.bpy_abspath(model_path) if model_path else ""  # bpy only on the main thread

    def load():
        try:
            get_reconstructor(model_path, device, _resolved=path)
            core.import_core("preprocess").MediaPipeFaces.warm_up()
        except Exception:  # noqa: BLE001 - reported by the click that needs it
            pass
        finally:
            _PRELOADING.discard(key)

    # not a daemon: quitting waits for the load (seconds) instead of killing it inside torch or
    # MediaPipe, which aborts the process ("terminate called without an active exception")
    t = threading.Thread(target=load, name="glvd-preload")
    _LOADERS[:] = [x for x in _LOADERS if x.is_alive()] + [t]
    t.start()
    return t


def wait_for_preload(timeout_s: float = 60.0) -> None:
    """Join the model loads under way (unregister: no load outlives the add-on)."""
    for t in list(_LOADERS):
        t.join(timeout_s)
    _LOADERS[:] = [t for t in _LOADERS if t.is_alive()]


@dataclass
class Job:
    """One reconstruction: inputs gathered on the main thread, run anywhere (no bpy in ``run``)."""

    inputs: object                # glvd_core.pipeline.Inputs
    to_blender_kind: str          # "camera", "head", "identity"
    options: object               # glvd_core.pipeline.PipelineOptions
    model_path: str
    device: str
    prepared: tuple | None = None  # Reconstructor.prepare's output, made ahead (batch read-ahead, refit cache)
    to_blender: np.ndarray | None = None  # 4x4 frame map to keep (a refit lands where the face was)
    stage: str = ""
    step: int = 0
    total: int = 0
    cancel: bool = False
    result: object = None         # glvd_core.pipeline.PipelineResult
    error: str | None = None
    done: bool = False
    started: float = field(default_factory=time.time)

    @property
    def photos(self) -> list:
        return self.inputs.paths

    @property
    def fraction(self) -> float:
        """How far the descent is, 0..1 (the steps done of the steps to run)."""
        return min(1.0, self.step / self.total) if self.total else 0.0

    def run(self) -> None:
        pipeline = core.import_core("pipeline")
        try:
            rec = get_reconstructor(self.model_path, self.device)
            self.total = self.options.reconstruct.iterations or rec.cfg.inference.iterations

            def on_step(step, v, k):
                self.step = step
                return not self.cancel

            def on_stage(name):
                self.stage = name
                return not self.cancel

            self.result = pipeline.run(rec, self.inputs, self.options, callback=on_step, stage=on_stage,
                                       prepared=self.prepared)
            if self.cancel:
                raise pipeline.Cancelled()
        except pipeline.Cancelled:
            self.error = "cancelled"
        except Exception as e:  # noqa: BLE001 - shown to the artist, never a traceback
            self.error = str(e) or type(e).__name__
        finally:
            self.done = True


def active_job() -> Job | None:
    """The reconstruction or refit running in the background now, or None."""
    return _ACTIVE[0] if _ACTIVE else None


def progress_text(job: Job) -> str:
    """What a running job is doing, for the panel's progress bar and the status bar."""
    what = f"step {job.step}/{job.total or '?'}" if job.stage in ("", "descent") else job.stage
    return f"{'Cancelling' if job.cancel else what} ({time.time() - job.started:.0f} s)"


def no_job_running(op: type) -> bool:
    """An operator's poll: no job is running (one at a time: a second press would race the first
    for the scene); otherwise the greyed button's tooltip says why."""
    if active_job() is None:
        return True
    op.poll_message_set("a reconstruction is running: wait for it or press Esc")
    return False


def gather(context: bpy.types.Context, loaded: Inputs | None = None) -> Job:
    """Read the panel settings and load the photos; raises ValueError with an artist-facing message.
    ``loaded``: the :class:`glvd_core.pipeline.Inputs` of these photos, read ahead by a batch."""
    clicked = time.time()
    pipeline = core.import_core("pipeline")
    s = settings(context)
    photos, masks, cameras = [], [], None
    if s.use_camera_backgrounds:
        cams = [o for o in context.selected_objects if o.type == "CAMERA"]
        cams = [o for o in cams if o.data.background_images and o.data.background_images[0].image]
        if not cams:
            raise ValueError("select cameras that have a background image")
        cameras = []
        for o in sorted(cams, key=lambda o: o.name):
            img = o.data.background_images[0].image
            photos.append(bpy.path.abspath(img.filepath))
            cameras.append((o, int(img.size[0]), int(img.size[1])))
        masks = [None] * len(photos)
    else:
        for p in s.photos:
            if not p.filepath:
                continue
            photos.append(bpy.path.abspath(p.filepath))
            masks.append(bpy.path.abspath(p.mask) if p.mask else None)
        if not photos:
            raise ValueError("add a reference photo first")
    inputs = loaded or pipeline.load_inputs(photos, masks, default_fov_deg=s.fov)
    if cameras is not None:
        for i in range(len(photos)):
            o, w, h = cameras[i]
            cam = scene_writer.blender_camera_to_cv(o, w, h)
            if inputs.scales[i] != 1:
                cam = cam.crop_resize(0, 0, inputs.scales[i], inputs.images[i].shape[1], inputs.images[i].shape[0])
            cameras[i] = cam
        inputs.cameras = cameras
    kind = "identity" if cameras is not None else ("camera" if len(photos) == 1 else "head")
    return Job(inputs, kind, pipeline_options(s), s.model_path, s.device, started=clicked)


def pipeline_options(s: bpy.types.PropertyGroup, keypoints: dict | None = None) -> PipelineOptions:
    """What the panel's settings ``s`` ask the pipeline for; ``keypoints``: held ones (Refit)."""
    pipeline = core.import_core("pipeline")
    return pipeline.PipelineOptions(
        pipeline.ReconstructOptions(iterations=s.iterations or None, clip=s.clip, seed=s.seed, keypoints=keypoints or None),
        fit=pipeline.FitOptions(iterations=s.fit_iterations, expression=s.fit_expression) if s.fit_to_photos else None,
        texture_size=int(s.texture_size) if s.bake_texture else 0, neutral=s.neutral, arkit=s.arkit_shapes)


def extras_of(result: PipelineResult) -> scene_writer.Extras:
    """What the scene writer adds beyond the descent, from a pipeline result."""
    neutral = result.expression is not None
    fitted = result.fit is not None and len(result.fit.steps) > 0
    return scene_writer.Extras(final_vertices=result.final_vertices_m if neutral else None,
                               fit_steps=result.fit.steps if fitted else None,
                               texture=None if result.texture is None else result.texture.image,
                               arkit=result.arkit, expression=result.expression)


def write(context: bpy.types.Context, job: Job) -> dict:
    s = settings(context)
    r = job.result.reconstruction
    M = job.to_blender if job.to_blender is not None else {
        "camera": lambda: scene_writer.camera_frame_to_blender(r.final_vertices),
        "head": lambda: scene_writer.HEAD_FRAME_TO_BLENDER,
        "identity": lambda: np.eye(4)}[job.to_blender_kind]()
    out = scene_writer.write_reconstruction(
        context.scene, r, job.photos, M, add_keypoints=s.add_keypoints, keyframe_descent=s.keyframe_descent,
        frames_per_step=s.frames_per_step, add_cameras=s.add_cameras, smooth_shading=s.smooth_shading,
        extras=extras_of(job.result), set_scene=s.set_scene)
    held = job.options.reconstruct.keypoints or {}
    # what Refit needs to run this reconstruction again from the same photos, in the same place
    out["face"]["glvd_source"] = dict(
        photos=list(job.photos), kind=job.to_blender_kind, to_blender=np.asarray(M, float).ravel().tolist(),
        cameras=[c.to_dict() for c in job.inputs.cameras] if job.inputs.cameras else [],
        keypoints_m=np.asarray(r.keypoints[-1], float).ravel().tolist(),
        held={str(j): [float(x) for x in v] for j, v in held.items()})
    for o in context.view_layer.objects:
        o.select_set(False)
    out["face"].select_set(True)
    context.view_layer.objects.active = out["face"]
    return out


class _RunsAJob:
    """An operator that runs a :class:`Job` off the UI thread (progress, Esc cancels) and
    synchronously in background mode, then writes the scene in one undo step on success only.
    Subclasses give ``_start`` (the job, or None after reporting why), ``_write`` (the scene, on
    the main thread), ``_done`` (the status line) and ``_verb`` (for messages)."""

    _verb = "Reconstructing"
    _timer = None
    _job: Job | None = None
    _thread: threading.Thread | None = None

    @classmethod
    def _idle(cls) -> bool:
        return no_job_running(cls)

    def _fail(self, context, message: str) -> None:
        settings(context).status = f"Failed: {message}"
        self.report({"ERROR"}, settings(context).status)

    def _finish(self, context, job: Job):
        s = settings(context)
        if job.error:
            msg = "Cancelled: nothing was changed" if job.error == "cancelled" else f"Failed: {job.error}"
            s.status = msg
            self.report({"WARNING" if job.error == "cancelled" else "ERROR"}, msg)
            return {"CANCELLED"}
        try:
            self._write(context, job)
        except Exception as e:  # noqa: BLE001
            self._fail(context, f"could not write the scene: {e}")
            return {"CANCELLED"}
        s.status = self._done(job)
        self.report({"INFO"}, s.status)
        return {"FINISHED"}

    def execute(self, context: bpy.types.Context) -> set[str]:  # synchronous (background mode, scripts, redo)
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        job.run()
        return self._finish(context, job)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background:
            return self.execute(context)
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        self._job = job
        _ACTIVE[:] = [job]
        self._thread = threading.Thread(target=job.run, name="glvd-job")  # not a daemon: see preload()
        self._thread.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.progress_begin(0, 100)
        wm.modal_handler_add(self)
        settings(context).status = f"{self._verb}… (Esc to cancel)"
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        job = self._job
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel = True
            settings(context).status = "Cancelling…"
        if event.type == "TIMER":
            context.window_manager.progress_update(int(100 * job.fraction))
            if context.workspace:
                context.workspace.status_text_set(f"GLVD: {progress_text(job)} — Esc to cancel")
            for window in context.window_manager.windows:  # the sidebar's progress bar, wherever it is
                for area in window.screen.areas:
                    if area.type == "VIEW_3D":
                        area.tag_redraw()
            if job.done:
                self._cleanup(context)
                return self._finish(context, job)
        return {"PASS_THROUGH"}

    def _cleanup(self, context):
        _ACTIVE.clear()
        wm = context.window_manager
        if self._timer:
            wm.event_timer_remove(self._timer)
        wm.progress_end()
        if context.workspace:
            context.workspace.status_text_set(None)


class GLVD_OT_reconstruct(_RunsAJob, bpy.types.Operator):
    """Reconstruct a 3D face from the reference photos (Esc cancels)"""

    bl_idname = "glvd.reconstruct"
    bl_label = "Reconstruct Face"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return cls._idle()

    def _start(self, context):
        try:
            return gather(context)
        except Exception as e:  # noqa: BLE001
            self._fail(context, str(e))
            return None

    def _write(self, context, job: Job) -> None:
        write(context, job)

    def _done(self, job: Job) -> str:
        r = job.result.reconstruction
        notes = "; ".join(job.result.notes)
        # the artist's wait, from the click to the finished scene (photos, model, texture, scene)
        stages = ", ".join(f"{k} {v:.1f}" for k, v in job.result.timings.items() if k != "total" and v >= 0.05)
        return (f"Done in {time.time() - job.started:.1f} s ({stages}) on {r.info.get('device')}"
                + (f"; {notes}" if notes else ""))


_PREPARED: dict = {}  # Refit's cache: the photos read and prepared for the network, one entry


def _prepared_inputs(source: dict, fov: float, model_path: str, device: str) -> tuple:
    """(Inputs, prepared) for a face's photos, from the cache while the photo files, the cameras
    and the model are unchanged; otherwise read and prepared again."""
    import os

    pipeline, cameras_mod = core.import_core("pipeline"), core.import_core("cameras")
    photos = [str(p) for p in source["photos"]]
    key = (tuple(photos), tuple(os.stat(p).st_mtime_ns for p in photos), fov, str(source.get("cameras")),
           _model_key(model_path, device))
    if key not in _PREPARED:
        inputs = pipeline.load_inputs(photos, default_fov_deg=fov)
        if source.get("cameras"):
            inputs.cameras = [cameras_mod.Camera.from_dict(dict(d)) for d in source["cameras"]]
        rec = get_reconstructor(model_path, device)
        prepared = rec.prepare(inputs.images, inputs.masks, inputs.cameras, intrinsics=inputs.intrinsics, names=photos)
        _PREPARED.clear()
        _PREPARED[key] = (inputs, prepared)
    return _PREPARED[key]


def keypoint_empties(face: bpy.types.Object) -> dict:
    """Keypoint index -> the face's "GLVD Keypoint NN" empty."""
    return {int(o.name.split()[-1].split(".")[0]): o for o in face.children
            if o.type == "EMPTY" and o.name.startswith("GLVD Keypoint ")}


def moved_keypoints(face: bpy.types.Object) -> dict:
    """Keypoint index -> (3,) output-frame metres, for every empty the artist has moved away from
    the descent's result (or held in an earlier refit): what Refit holds."""
    src = face["glvd_source"].to_dict()
    M = np.array(src["to_blender"]).reshape(4, 4)
    final = np.array(src["keypoints_m"]).reshape(-1, 3)
    held = {int(j): np.array(v) for j, v in src.get("held", {}).items()}
    for j, e in keypoint_empties(face).items():
        p_world = np.array(e.matrix_world.translation, float)
        p = np.linalg.solve(M[:3, :3], p_world - M[:3, 3])  # Blender world -> the result's frame
        if np.linalg.norm(p - final[j]) > 1e-4:  # 0.1 mm: a move, not float round-off
            held[j] = p
    return {j: tuple(float(x) for x in v) for j, v in held.items()}


def gather_refit(context: bpy.types.Context, face: bpy.types.Object) -> Job:
    """The Job that runs ``face``'s reconstruction again with its moved keypoints held, from the same
    photos and cameras, with the panel's current settings; raises ValueError for the artist."""
    clicked = time.time()
    pipeline = core.import_core("pipeline")
    s = settings(context)
    if "glvd_source" not in face:
        raise ValueError(f"{face.name} was not made by this version of GLVD: reconstruct it again to refit")
    src = face["glvd_source"].to_dict()
    missing = [p for p in src["photos"] if not Path(p).is_file()]
    if missing:
        raise ValueError(f"photo not found: {missing[0]}")
    held = moved_keypoints(face)
    inputs, prepared = _prepared_inputs(src, s.fov, s.model_path, s.device)
    inputs = replace(inputs, pins=None)  # the cached inputs stay without this face's pins
    pins = face_pins(face)
    if pins:
        pipeline.attach_pins(inputs, {"pins": pins})  # pins turn the fit on
    job = Job(inputs, src["kind"], pipeline_options(s, held), s.model_path, s.device, prepared=prepared,
              started=clicked)
    job.to_blender = np.array(src["to_blender"]).reshape(4, 4)
    return job


def _data_of(objects: list) -> list:
    """(bpy.data collection name, datablock) pairs the objects use."""
    out = []
    for o in objects:
        if o.animation_data and o.animation_data.action:
            out.append(("actions", o.animation_data.action))
        if o.type == "MESH":
            keys = o.data.shape_keys
            if keys is not None and keys.animation_data and keys.animation_data.action:
                out.append(("actions", keys.animation_data.action))
            out.append(("meshes", o.data))
            for m in o.data.materials:
                if m is not None:
                    out.append(("materials", m))
                    out += [("images", n.image) for n in (m.node_tree.nodes if m.node_tree else [])
                            if n.type == "TEX_IMAGE" and n.image is not None]
        elif o.type == "CAMERA":
            out.append(("cameras", o.data))
    return out


def replace_face(context: bpy.types.Context, old_face: bpy.types.Object, job: Job) -> bpy.types.Object:
    """Write ``job``'s result and remove ``old_face`` with what was made with it (keypoint empties,
    photo cameras, its collection and now unused data); the new objects take the old names. The
    new result is written first: if that fails, the old face is untouched."""
    old_col = next((c for c in old_face.users_collection if c.name.startswith("GLVD Reconstruction")), None)
    old_objects = list(old_col.objects) if old_col is not None else [old_face, *old_face.children]
    names = {o.name for o in old_objects}
    col_name = old_col.name if old_col is not None else None
    pins = face_pins(old_face)
    out = write(context, job)
    used = _data_of(old_objects)
    for o in old_objects:
        bpy.data.objects.remove(o, do_unlink=True)
    order = ("meshes", "cameras", "actions", "materials", "images")  # users first: a mesh holds its key's action
    for kind, name in sorted(dict.fromkeys((k, b.name) for k, b in used), key=lambda kb: order.index(kb[0])):
        block = getattr(bpy.data, kind).get(name)
        if block is not None and block.users == 0:
            getattr(bpy.data, kind).remove(block)
    if old_col is not None:
        bpy.data.collections.remove(old_col)
        out["collection"].name = col_name
    for o in out["objects"]:
        base = o.name.rsplit(".", 1)[0] if o.name.rsplit(".", 1)[-1].isdigit() else o.name
        if base in names:
            o.name = base
    if pins:  # the artist's pins stay on the face, with how far each ended from its pixel
        out["face"]["glvd_pins"] = json.dumps(pins)
        fit = job.result.fit
        out["face"]["glvd_pin_errors"] = json.dumps(pin_errors(pins, fit.pin_errors_px if fit is not None else []))
    return out["face"]


def refittable(ob: bpy.types.Object | None) -> bool:
    """Whether ``ob`` is a GLVD face that records how it was made (Refit and pins need that)."""
    return ob is not None and ob.type == "MESH" and "glvd_source" in ob


def face_pins(face: bpy.types.Object) -> list:
    """The artist's pins on ``face``: [{"view", "vertex", "pixel": [x, y]}] in the photo files'
    pixels, the pins.json schema (glvd_core/fitting/pins.py); saved with the .blend."""
    return json.loads(face.get("glvd_pins") or "[]")


def face_pin_errors(face: bpy.types.Object) -> list:
    """Per pin of ``face`` (same order) the pixels it ended from its spot after the last refit, or None."""
    return json.loads(face.get("glvd_pin_errors") or "[]")


def pin_errors(pins: list, per_view: list) -> list:
    """The fit's remaining pixel error of each pin, in the order of ``pins`` (None when unknown)."""
    seen: dict = {}
    out = []
    for p in pins:
        k = seen.get(p["view"], 0)
        seen[p["view"]] = k + 1
        errs = per_view[p["view"]] if p["view"] < len(per_view) else []
        out.append(round(float(errs[k]), 2) if k < len(errs) else None)
    return out


def photo_camera(scene: bpy.types.Scene, face: bpy.types.Object) -> tuple:
    """(camera object, photo index, width, height) of the scene camera when it is one of the
    face's photo cameras with its photo behind it; raises ValueError saying what to do otherwise."""
    cam = scene.camera
    photos = face["glvd_source"]["photos"]
    if (cam is None or "glvd_view" not in cam or int(cam["glvd_view"]) >= len(photos)
            or not cam.data.background_images or cam.data.background_images[0].image is None):
        raise ValueError("look through one of the face's photo cameras (make a GLVD Camera the scene camera)")
    img = cam.data.background_images[0].image
    w, h = int(img.size[0]), int(img.size[1])
    # the photo drawn where the camera projects it at the render size of now (it may have changed
    # since the camera was made): what the artist aims at is what the pin's pixel means
    scene_writer.fit_background(cam.data, (w, h), scene_writer.render_size(scene))
    return cam, int(cam["glvd_view"]), w, h


def append_pin(context: bpy.types.Context, face: bpy.types.Object, view: int, vertex: int, pixel: tuple) -> None:
    """Store one pin on ``face`` (saved with the .blend) and say so in the status line."""
    pins = face_pins(face)
    pins.append(dict(view=view, vertex=int(vertex), pixel=[round(float(pixel[0]), 2), round(float(pixel[1]), 2)]))
    face["glvd_pins"] = json.dumps(pins)
    settings(context).status = f"Pinned vertex {vertex} to ({pixel[0]:.0f}, {pixel[1]:.0f}) in photo {view + 1}"


class GLVD_OT_add_pin(bpy.types.Operator):
    """Pin the selected vertex of the face to where the 3D cursor is in the photo of the scene
    camera (look through a GLVD Camera, select one vertex in Edit Mode, Shift+right-click where it
    belongs in the photo); Refit applies the pins"""

    bl_idname = "glvd.add_pin"
    bl_label = "Pin Vertex to Cursor"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refittable(context.active_object)

    def execute(self, context: bpy.types.Context) -> set[str]:
        face, scene = context.active_object, context.scene
        if face.mode == "EDIT":
            face.update_from_editmode()
        selected = [v.index for v in face.data.vertices if v.select]
        if len(selected) != 1:
            self.report({"ERROR"}, "select exactly one vertex of the face (Edit Mode)")
            return {"CANCELLED"}
        try:
            cam, view, w, h = photo_camera(scene, face)
        except ValueError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        cv = scene_writer.blender_camera_to_cv(cam, w, h)
        x, y = cv.project(np.array(scene.cursor.location, np.float64)[None])[0]
        if not (0 <= x <= w - 1 and 0 <= y <= h - 1) or cv.world_to_camera(np.array(scene.cursor.location)[None])[0, 2] <= 0:
            self.report({"ERROR"}, "the 3D cursor is not inside that camera's photo")
            return {"CANCELLED"}
        append_pin(context, face, view, selected[0], (x, y))
        settings(context).status += ": Refit applies it"
        return {"FINISHED"}


class GLVD_OT_drag_pin(bpy.types.Operator):
    """Drag a point of the face to where it is in the photo (look through a GLVD Camera): on
    release the pin is stored and Refit runs. Esc or right-click cancels"""

    bl_idname = "glvd.drag_pin"
    bl_label = "Drag Pin"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return (refittable(context.active_object) and context.area is not None and context.area.type == "VIEW_3D"
                and context.region_data is not None and no_job_running(cls))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        face, scene, rv3d = context.active_object, context.scene, context.region_data
        try:
            if rv3d.view_perspective != "CAMERA":
                raise ValueError("look through the camera (Numpad 0) to drag a pin onto its photo")
            cam, self.view, w, h = photo_camera(scene, face)
        except ValueError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        mesh = face.evaluated_get(context.evaluated_depsgraph_get()).data  # the shape on screen
        co = np.empty(len(mesh.vertices) * 3)
        no = np.empty(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
        mesh.vertices.foreach_get("normal", no)
        mw = np.array(face.matrix_world, np.float64)
        V = co.reshape(-1, 3) @ mw[:3, :3].T + mw[:3, 3]
        N = no.reshape(-1, 3) @ np.linalg.inv(mw[:3, :3])
        region = context.region
        self.region_xy, front = pin_drag.region_coords(V, np.array(rv3d.perspective_matrix), (region.width, region.height))
        self.usable = front & pin_drag.facing(V, N, np.array(cam.matrix_world.translation))
        photo_xy = scene_writer.blender_camera_to_cv(cam, w, h).project(V)
        self.to_photo = pin_drag.fit_affine(self.region_xy[self.usable], photo_xy[self.usable])
        self.photo_size, self.vertex, self.mouse = (w, h), None, (event.mouse_region_x, event.mouse_region_y)
        self._draw = bpy.types.SpaceView3D.draw_handler_add(self._draw_line, (), "WINDOW", "POST_PIXEL")
        context.area.header_text_set("Drag Pin: click a point of the face and drag it to where it is in the photo "
                                     "(Esc cancels)")
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        self.mouse = (event.mouse_region_x, event.mouse_region_y)
        if event.type in {"ESC", "RIGHTMOUSE"}:
            return self._end(context, {"CANCELLED"})
        if event.type == "LEFTMOUSE" and event.value == "PRESS":
            self.vertex = pin_drag.pick_vertex(self.region_xy, self.usable, self.mouse)
            if self.vertex is None:
                self.report({"WARNING"}, "no point of the face there: click on the face")
        elif event.type == "LEFTMOUSE" and event.value == "RELEASE" and self.vertex is not None:
            pixel = pin_drag.photo_pixel(self.to_photo, self.mouse, self.photo_size)
            if pixel is None:
                self.report({"ERROR"}, "released outside the photo: no pin")
                return self._end(context, {"CANCELLED"})
            append_pin(context, context.active_object, self.view, self.vertex, pixel)
            self._end(context, {"FINISHED"})
            bpy.ops.glvd.refit("INVOKE_DEFAULT")
            return {"FINISHED"}
        elif event.type == "MOUSEMOVE" and self.vertex is not None:
            pixel = pin_drag.photo_pixel(self.to_photo, self.mouse, self.photo_size)
            where = f"({pixel[0]:.0f}, {pixel[1]:.0f}) in photo {self.view + 1}" if pixel else "outside the photo"
            context.area.header_text_set(f"Drag Pin: vertex {self.vertex} → {where} (release to pin, Esc cancels)")
        context.area.tag_redraw()
        return {"RUNNING_MODAL"}

    def _draw_line(self) -> None:
        if self.vertex is None:
            return
        import gpu
        from gpu_extras.batch import batch_for_shader

        a, b = self.region_xy[self.vertex], self.mouse
        shader = gpu.shader.from_builtin("UNIFORM_COLOR")
        shader.uniform_float("color", (1.0, 0.55, 0.1, 1.0))
        gpu.state.line_width_set(2.0)
        batch_for_shader(shader, "LINES", {"pos": [(a[0], a[1], 0.0), (b[0], b[1], 0.0)]}).draw(shader)
        gpu.state.point_size_set(8.0)
        batch_for_shader(shader, "POINTS", {"pos": [(b[0], b[1], 0.0)]}).draw(shader)
        gpu.state.line_width_set(1.0)
        gpu.state.point_size_set(1.0)

    def _end(self, context: bpy.types.Context, result: set[str]) -> set[str]:
        bpy.types.SpaceView3D.draw_handler_remove(self._draw, "WINDOW")
        context.area.header_text_set(None)
        context.area.tag_redraw()
        return result


class GLVD_OT_remove_pin(bpy.types.Operator):
    """Remove a pin from the active face (index -1: all of them)"""

    bl_idname = "glvd.remove_pin"
    bl_label = "Remove Pin"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(default=-1, options={"HIDDEN"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        ob = context.active_object
        return ob is not None and bool(face_pins(ob))

    def execute(self, context: bpy.types.Context) -> set[str]:
        face = context.active_object
        pins, errors = face_pins(face), face_pin_errors(face)
        if self.index < 0:
            pins, errors = [], []
        elif self.index < len(pins):
            del pins[self.index]
            errors = errors[:self.index] + errors[self.index + 1:]
        face["glvd_pins"], face["glvd_pin_errors"] = json.dumps(pins), json.dumps(errors)
        return {"FINISHED"}


class GLVD_OT_refit(_RunsAJob, bpy.types.Operator):
    """Reconstruct the active face again from its photos, holding the keypoint empties you moved
    where you put them and pulling its pins to their pixels (one undo step; Esc cancels)"""

    bl_idname = "glvd.refit"
    bl_label = "Refit to Keypoints & Pins"
    bl_options = {"REGISTER", "UNDO"}
    _verb = "Refitting"
    _face_name = ""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return refittable(context.active_object) and cls._idle()

    def _start(self, context):
        face = context.active_object
        try:
            job = gather_refit(context, face)  # the photos are prepared already (cached)
        except Exception as e:  # noqa: BLE001 - shown to the artist
            self._fail(context, f"refit: {e}")
            return None
        self._face_name = face.name
        return job

    def _write(self, context, job: Job) -> None:
        face = bpy.data.objects.get(self._face_name)
        if face is None:
            raise ValueError(f"{self._face_name} was deleted during the refit")
        context.view_layer.objects.active = replace_face(context, face, job)  # write() selected it

    def _done(self, job: Job) -> str:
        n, m = len(job.options.reconstruct.keypoints or {}), len(face_pins(bpy.context.view_layer.objects.active))
        return (f"Refit in {time.time() - job.started:.1f} s, {n} keypoint{'s' * (n != 1)} held"
                + (f", {m} pin{'s' * (m != 1)}" if m else ""))


class GLVD_OT_add_photo(bpy.types.Operator, ImportHelper):
    """Add reference photos"""

    bl_idname = "glvd.add_photo"
    bl_label = "Add Photos"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.jpg;*.jpeg;*.png;*.tif;*.tiff;*.bmp;*.webp;*.gif", options={"HIDDEN"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        import os

        s = settings(context)
        names = [f.name for f in self.files if f.name] or [os.path.basename(self.filepath)]
        folder = self.directory or os.path.dirname(self.filepath)
        for n in names:
            s.photos.add().filepath = os.path.join(folder, n)
        s.active_photo = len(s.photos) - 1
        preload(s.model_path, s.device)
        return {"FINISHED"}


class GLVD_OT_remove_photo(bpy.types.Operator):
    """Remove the selected photo from the list"""

    bl_idname = "glvd.remove_photo"
    bl_label = "Remove Photo"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return len(settings(context).photos) > 0

    def execute(self, context: bpy.types.Context) -> set[str]:
        s = settings(context)
        s.photos.remove(s.active_photo)
        s.active_photo = max(0, min(s.active_photo, len(s.photos) - 1))
        return {"FINISHED"}


class GLVD_OT_export_face(bpy.types.Operator, ExportHelper):
    """Export the active GLVD face (shape keys, texture) with Blender's glTF, FBX or OBJ exporter"""

    bl_idname = "glvd.export_face"
    bl_label = "Export GLVD Face"
    bl_options = {"REGISTER"}

    filename_ext = ".glb"
    filter_glob: StringProperty(default="*.glb;*.gltf;*.fbx;*.obj", options={"HIDDEN"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        ob = context.active_object
        return ob is not None and ob.type == "MESH" and "glvd" in ob

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        self.filename_ext = exporters.FORMATS[settings(context).export_format]
        return ExportHelper.invoke(self, context, event)

    def execute(self, context: bpy.types.Context) -> set[str]:
        from pathlib import Path

        fmt = settings(context).export_format
        path = Path(bpy.path.ensure_ext(self.filepath, exporters.FORMATS[fmt]))
        face = context.active_object
        try:
            exporters.export(fmt, path, [face])
        except Exception as e:  # noqa: BLE001 - shown to the artist
            self.report({"ERROR"}, f"export failed: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"exported {face.name} to {path}")
        return {"FINISHED"}
