"""Operators. ``glvd.reconstruct`` runs the descent off the UI thread (progress, Esc cancels)
and synchronously in background mode; the scene is written in one undo step on success only."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import bpy
import numpy as np
from bpy.props import CollectionProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import core, exporters, scene_writer
from .props import settings

if TYPE_CHECKING:  # glvd_core is imported lazily (core.glvd_core)
    from glvd_core.pipeline import Inputs, PipelineResult
    from glvd_core.reconstruct import Reconstructor


_MODELS: dict = {}
_MODELS_LOCK = threading.Lock()  # a preload and a click share one load
_PRELOADING: set = set()


def _model_key(model_path: str, device: str) -> tuple:
    return model_path or "<bundled>", device


def get_reconstructor(model_path: str, device: str, _resolved: str | None = None) -> Reconstructor:
    """Cached Reconstructor for (model, device); waits for a preload of it that is under way."""
    key = _model_key(model_path, device)
    path = _resolved if _resolved is not None else (core.bpy_abspath(model_path) if model_path else "")
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS.clear()
            Reconstructor = core.import_core("reconstruct").Reconstructor
            _MODELS[key] = Reconstructor.from_pretrained(path or None, device=device)
        return _MODELS[key]


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
            core.import_core("preprocess").MediaPipeFaces.warm_up_in_background()
            get_reconstructor(model_path, device, _resolved=path)
        except Exception:  # noqa: BLE001 - reported by the click that needs it
            pass
        finally:
            _PRELOADING.discard(key)

    t = threading.Thread(target=load, name="glvd-preload", daemon=True)
    t.start()
    return t


@dataclass
class Job:
    """One reconstruction: inputs gathered on the main thread, run anywhere (no bpy in ``run``)."""

    inputs: object                # glvd_core.pipeline.Inputs
    to_blender_kind: str          # "camera", "head", "identity"
    options: object               # glvd_core.pipeline.PipelineOptions
    model_path: str
    device: str
    prepared: tuple | None = None  # Reconstructor.prepare's output, made ahead (batch read-ahead)
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
    options = pipeline.PipelineOptions(pipeline.ReconstructOptions(iterations=s.iterations or None, clip=s.clip, seed=s.seed),
                                       fit=pipeline.FitOptions(iterations=s.fit_iterations) if s.fit_to_photos else None,
                                       texture_size=int(s.texture_size) if s.bake_texture else 0,
                                       neutral=s.neutral, arkit=s.arkit_shapes)
    return Job(inputs, kind, options, s.model_path, s.device, started=clicked)


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
    M = {"camera": lambda: scene_writer.camera_frame_to_blender(r.final_vertices),
         "head": lambda: scene_writer.HEAD_FRAME_TO_BLENDER,
         "identity": lambda: np.eye(4)}[job.to_blender_kind]()
    out = scene_writer.write_reconstruction(
        context.scene, r, job.photos, M, add_keypoints=s.add_keypoints, keyframe_descent=s.keyframe_descent,
        frames_per_step=s.frames_per_step, add_cameras=s.add_cameras, smooth_shading=s.smooth_shading,
        extras=extras_of(job.result))
    for o in context.view_layer.objects:
        o.select_set(False)
    out["face"].select_set(True)
    context.view_layer.objects.active = out["face"]
    return out


class GLVD_OT_reconstruct(bpy.types.Operator):
    """Reconstruct a 3D face from the reference photos (Esc cancels)"""

    bl_idname = "glvd.reconstruct"
    bl_label = "Reconstruct Face"
    bl_options = {"REGISTER", "UNDO"}

    _timer = None
    _job: Job | None = None
    _thread: threading.Thread | None = None

    def _start(self, context):
        try:
            return gather(context)
        except Exception as e:  # noqa: BLE001
            self.report({"ERROR"}, str(e))
            settings(context).status = f"Failed: {e}"
            return None

    def _finish(self, context, job: Job):
        s = settings(context)
        if job.error:
            msg = "Cancelled: nothing was created" if job.error == "cancelled" else f"Failed: {job.error}"
            s.status = msg
            self.report({"WARNING" if job.error == "cancelled" else "ERROR"}, msg)
            return {"CANCELLED"}
        try:
            write(context, job)
        except Exception as e:  # noqa: BLE001
            s.status = f"Failed: {e}"
            self.report({"ERROR"}, f"could not write the scene: {e}")
            return {"CANCELLED"}
        r = job.result.reconstruction
        notes = "; ".join(job.result.notes)
        # the artist's wait, from the click to the finished scene (photos, model, texture, scene)
        s.status = f"Done in {time.time() - job.started:.1f} s on {r.info.get('device')}" + (f" ({notes})" if notes else "")
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
        self._thread = threading.Thread(target=job.run, daemon=True)
        self._thread.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.progress_begin(0, 100)
        wm.modal_handler_add(self)
        settings(context).status = "Reconstructing… (Esc to cancel)"
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        job = self._job
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel = True
            settings(context).status = "Cancelling…"
        if event.type == "TIMER":
            frac = job.step / job.total if job.total else 0.0
            context.window_manager.progress_update(int(100 * frac))
            if context.workspace:
                what = f"step {job.step}/{job.total or '?'}" if job.stage in ("", "descent") else job.stage
                context.workspace.status_text_set(
                    f"GLVD: {what} ({time.time() - job.started:.0f} s) — Esc to cancel")
            if context.area:
                context.area.tag_redraw()
            if job.done:
                self._cleanup(context)
                return self._finish(context, job)
        return {"PASS_THROUGH"}

    def _cleanup(self, context):
        wm = context.window_manager
        if self._timer:
            wm.event_timer_remove(self._timer)
        wm.progress_end()
        if context.workspace:
            context.workspace.status_text_set(None)


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
