"""Turn a glvd_core ``Reconstruction`` into Blender data — the only place that knows both.

Frames: glvd_core speaks OpenCV (x right, y down, z forward). ``to_blender`` (4x4) maps the
reconstruction's output frame into Blender world coordinates:
- ``camera_frame_to_blender(result)``: one uncalibrated photo. Blender Z up, the photo's camera
  looks along +Y, the head's centroid at the origin (so the face looks toward -Y: Front view).
- ``HEAD_FRAME_TO_BLENDER``: cameras estimated from landmarks (head frame, ICT axes, y up).
- identity: cameras taken from Blender cameras or a cameras.json in the user's own world.
Cameras are placed with the same matrix, so looking through one overlays the mesh on its photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

CV_TO_BLENDER_AXES = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])   # x, z, -y
HEAD_FRAME_TO_BLENDER = np.array([[1.0, 0, 0, 0], [0, 0, -1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])  # x, -z, y
CV_CAM_TO_BLENDER_CAM = np.diag([1.0, -1.0, -1.0])


def camera_frame_to_blender(final_vertices: np.ndarray) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = CV_TO_BLENDER_AXES
    M[:3, 3] = -CV_TO_BLENDER_AXES @ final_vertices.mean(0)
    return M


def _apply(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return (np.asarray(pts, np.float64) @ M[:3, :3].T + M[:3, 3]).astype(np.float32)


def evaluated_coordinates(obj) -> np.ndarray:
    """(V, 3) float32 vertex positions of ``obj`` as evaluated now (shape keys, current frame)."""
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    m = ev.to_mesh()
    co = np.empty(3 * len(m.vertices), np.float32)
    m.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    return co.reshape(-1, 3)


def camera_matrix_world(cam, M: np.ndarray) -> np.ndarray:
    """Blender matrix_world of a glvd_core (OpenCV) camera after the frame map M."""
    C = np.eye(4)
    C[:3, :3] = (CV_CAM_TO_BLENDER_CAM @ cam.R).T  # Blender camera axes in the output frame
    C[:3, 3] = cam.center_world
    return M @ C


def blender_camera_to_cv(obj, width: int, height: int):
    """glvd_core Camera (OpenCV, Blender world) from a Blender camera object and image size."""
    from .core import glvd_core

    Camera = glvd_core().cameras.Camera
    mw = np.array(obj.matrix_world, np.float64)
    Rbw = mw[:3, :3] / np.linalg.norm(mw[:3, :3], axis=0)  # camera->world rotation (no scale)
    R = CV_CAM_TO_BLENDER_CAM @ Rbw.T
    t = -R @ mw[:3, 3]
    d = obj.data
    if d.type != "PERSP":
        raise ValueError(f"camera {obj.name}: only perspective cameras are supported")
    if d.sensor_fit == "VERTICAL":
        side, sensor = height, d.sensor_height
    elif d.sensor_fit == "HORIZONTAL":
        side, sensor = width, d.sensor_width
    else:  # AUTO: the sensor width spans the longer image side
        side, sensor = max(width, height), d.sensor_width
    f = d.lens / sensor * side
    cx = (width - 1) / 2 - d.shift_x * side
    cy = (height - 1) / 2 + d.shift_y * side
    return Camera(R, t, [[f, 0, cx], [0, f, cy], [0, 0, 1]], width, height)


def _setup_camera_data(cd, cam):
    side = max(cam.width, cam.height)
    cd.sensor_fit = "AUTO"
    cd.sensor_width = 36.0
    cd.lens = float(cam.K[0, 0] / side * 36.0)
    cd.shift_x = float(-(cam.K[0, 2] - (cam.width - 1) / 2) / side)
    cd.shift_y = float((cam.K[1, 2] - (cam.height - 1) / 2) / side)
    cd.clip_start = 0.01
    cd.clip_end = 100.0


def _linear(id_data):
    ad = id_data.animation_data
    if ad is None or ad.action is None:
        return
    act = ad.action
    curves = []
    if hasattr(act, "fcurves"):  # Blender < 5.0 (classic / layered with legacy accessor)
        curves = list(act.fcurves)
    else:  # Blender 5.0: slotted actions
        from bpy_extras.anim_utils import action_ensure_channelbag_for_slot

        curves = list(action_ensure_channelbag_for_slot(act, ad.action_slot).fcurves)
    for fc in curves:
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"


@dataclass
class Extras:
    """Optional products of a reconstruction, computed off the UI thread (see ``ops.Job``).

    Attributes:
        final_vertices: (V, 3) the face's rest shape in the result's frame (the reconstruction,
            or its neutralised version); None: the last descent step.
        texture: (S, S, 3) uint8 sRGB baked photo texture (row 0 = top), or None.
        arkit: ARKit name -> (V, 3) offsets in the result's frame, or None.
        expression: ICT name -> weight removed by the neutral option, or None.
    """

    final_vertices: np.ndarray | None = None
    texture: np.ndarray | None = None
    arkit: dict | None = None
    expression: dict | None = None


def write_reconstruction(scene, result, photos: list, to_blender: np.ndarray, *, name: str = "GLVD Face",
                         add_keypoints=True, keyframe_descent=True, frames_per_step=5, add_cameras=True,
                         smooth_shading=True, extras: Extras | None = None) -> dict:
    """Create the face mesh (with its material, ARKit shape keys and descent shape keys),
    keypoint empties and photo cameras.

    Everything goes into a new collection; on any error all of it is removed again and the
    error re-raised, so the scene is left as it was."""
    created = {"objects": [], "meshes": [], "cameras": [], "images": [], "collections": [], "actions": [],
               "materials": []}
    try:
        return _write(scene, result, photos, to_blender, name, add_keypoints, keyframe_descent, frames_per_step,
                      add_cameras, smooth_shading, extras or Extras(), created)
    except BaseException:
        _remove(created)
        raise


def _remove(created):
    """Delete everything ``_write`` made; ``created`` maps a bpy.data collection name to its new
    datablocks, objects first (so nothing still uses the data removed after them)."""
    for kind, blocks in created.items():
        collection = getattr(bpy.data, kind)
        for block in blocks:
            collection.remove(block, do_unlink=True)


def grid_origin_and_step(points_world: np.ndarray) -> tuple:
    """(origin (3,), q): the object origin (the head's centroid, on the grid) and a power-of-two
    grid step q such that every coordinate relative to the origin, and every difference of two,
    is exact in float32 (|x| < 2^e, q = 2^(e - 23)). Shape keys stored on this grid replay
    bit for bit: Blender evaluates a relative key at value 1 as ``basis - (basis - key)``."""
    c = np.asarray(points_world, np.float64).reshape(-1, 3).mean(0)
    e = int(np.ceil(np.log2(np.abs(np.asarray(points_world, np.float64).reshape(-1, 3) - c).max() + 1e-3)))
    q = 2.0 ** (e - 23)
    return np.round(c / q) * q, q


def on_grid(points_world: np.ndarray, origin: np.ndarray, q: float) -> np.ndarray:
    """World points -> float32 object-local coordinates on the grid (see grid_origin_and_step)."""
    return (np.round((np.asarray(points_world, np.float64) - origin) / q) * q).astype(np.float32)


def local_coordinates(face, to_blender: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Result-frame points -> what the face object stores for them (object-local, on its grid)."""
    g = face["glvd_grid"]
    return on_grid(_apply(to_blender, points), np.array(g["origin"]), float(g["step"]))


def _key_frames(key, name, frames_values):
    kb = key.key_blocks[name]
    for f, v in frames_values:
        kb.value = v
        kb.keyframe_insert("value", frame=f)


def _write(scene, result, photos, M, name, add_keypoints, keyframe_descent, fps, add_cameras, smooth, extras,
           created):
    V = result.vertices
    T = V.shape[0] - 1
    rest = V[-1] if extras.final_vertices is None else extras.final_vertices
    faces = np.asarray(result.faces, np.int32)
    col = bpy.data.collections.new("GLVD Reconstruction")
    created["collections"].append(col)
    scene.collection.children.link(col)

    world_steps = [_apply(M, V[s]) for s in range(T + 1)] + [_apply(M, rest)]
    origin, q = grid_origin_and_step(np.stack(world_steps))
    me = bpy.data.meshes.new(name)
    created["meshes"].append(me)
    final = on_grid(world_steps[-1], origin, q)
    me.vertices.add(len(final))
    me.vertices.foreach_set("co", final.ravel())
    me.loops.add(faces.size)
    me.loops.foreach_set("vertex_index", faces.ravel())
    me.polygons.add(len(faces))
    me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    uv = me.uv_layers.new(name="UVMap")
    uv.data.foreach_set("uv", np.asarray(result.uvs, np.float32)[faces.ravel()].ravel())
    me.polygons.foreach_set("use_smooth", np.full(len(faces), bool(smooth)))
    me.update(calc_edges=True)
    face = bpy.data.objects.new(name, me)
    created["objects"].append(face)
    col.objects.link(face)
    face.location = origin.tolist()
    face["glvd"] = dict(frame=result.frame, iterations=T, model=str(result.info.get("model", "")),
                        seed=int(result.info.get("seed", 0)), neutral=extras.final_vertices is not None)
    face["glvd_grid"] = dict(origin=origin.tolist(), step=q)
    if extras.expression:
        face["glvd_removed_expression"] = {k: round(float(v), 4) for k, v in extras.expression.items() if v > 1e-3}
    if extras.texture is not None:
        _add_texture_material(face, extras.texture, name, created)

    start = scene.frame_start
    if extras.arkit or (keyframe_descent and T > 0):
        face.shape_key_add(name="Basis", from_mix=False)
        me.shape_keys.use_relative = True
    if extras.arkit:  # relative to the rest shape, at 0: drive them (Live Link, Faceit, ...)
        R = M[:3, :3]
        for n, d in extras.arkit.items():
            kb = face.shape_key_add(name=n, from_mix=False)
            kb.data.foreach_set("co", (final + (np.asarray(d, np.float64) @ R.T)).astype(np.float32).ravel())
            kb.slider_min, kb.slider_max = 0.0, 1.0
            kb.value = 0.0  # keys added from Python start at 1
    if keyframe_descent and T > 0:
        # step_00 ... step_T, each relative to the rest shape and keyed 1 on its own frame, 0 on its
        # neighbours': frame start + s * fps shows step s exactly, linear blends in between; with the
        # neutral option the rest shape follows one step after the last
        key = me.shape_keys
        for s in range(T + 1):
            kb = face.shape_key_add(name=f"step_{s:02d}", from_mix=False)
            kb.data.foreach_set("co", on_grid(world_steps[s], origin, q).ravel())
        for s in range(T + 1):
            fv = [(start + s * fps, 1.0)]
            if s > 0:
                fv.append((start + (s - 1) * fps, 0.0))
            if s < T or extras.final_vertices is not None:
                fv.append((start + (s + 1) * fps, 0.0))
            _key_frames(key, f"step_{s:02d}", fv)
        created["actions"].append(key.animation_data.action)
        _linear(key)
        end = start + (T + (extras.final_vertices is not None)) * fps
        scene.frame_end = max(scene.frame_end, end)

    if add_keypoints:
        K = result.keypoints
        for j in range(K.shape[1]):
            e = bpy.data.objects.new(f"GLVD Keypoint {j:02d}", None)
            created["objects"].append(e)
            e.empty_display_type = "SPHERE"
            e.empty_display_size = 0.003
            col.objects.link(e)
            e.parent = face
            e["template_vertex"] = int(result.keypoint_indices[j])
            traj = np.stack([_apply(M, K[s, j:j + 1])[0] - origin for s in range(T + 1)])  # parent-local
            if keyframe_descent and T > 0:
                for s in range(T + 1):
                    e.location = traj[s].tolist()
                    e.keyframe_insert("location", frame=start + s * fps)
                created["actions"].append(e.animation_data.action)
                _linear(e)
            e.location = traj[-1].tolist()

    if add_cameras:
        for i, cam in enumerate(result.cameras):
            cd = bpy.data.cameras.new(f"GLVD Camera {i}")
            created["cameras"].append(cd)
            _setup_camera_data(cd, cam)
            co = bpy.data.objects.new(f"GLVD Camera {i}", cd)
            created["objects"].append(co)
            col.objects.link(co)
            from mathutils import Matrix

            co.matrix_world = Matrix(camera_matrix_world(cam, M).tolist())
            if i < len(photos) and photos[i]:
                img = bpy.data.images.load(str(photos[i]), check_existing=True)
                created["images"].append(img)
                bg = cd.background_images.new()
                bg.image = img
                bg.alpha = 0.6
                cd.show_background_images = True
            if i == 0:
                scene.render.resolution_x, scene.render.resolution_y = int(cam.width), int(cam.height)
                scene.render.resolution_percentage = 100
                if scene.camera is None:
                    scene.camera = co
    if keyframe_descent and T > 0:
        scene.frame_set(end)
    return {"face": face, "collection": col, "objects": list(created["objects"])}



def _add_texture_material(face, texture: np.ndarray, name: str, created: dict):
    """A packed image of the baked photo texture and a Principled BSDF material showing it
    (Material Preview, EEVEE and Cycles)."""
    h, w = texture.shape[:2]
    img = bpy.data.images.new(f"{name} Texture", width=w, height=h, alpha=False)
    created["images"].append(img)
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = texture[::-1].astype(np.float32) / 255.0  # Blender's rows run bottom-up
    img.pixels.foreach_set(rgba.ravel())
    img.pack()
    mat = bpy.data.materials.new(f"{name} Material")
    created["materials"].append(mat)
    if bpy.app.version < (5, 0, 0):  # always node-based from 5.0 (use_nodes deprecated)
        mat.use_nodes = True
    nt = mat.node_tree
    bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = 0.55
    tex = nt.nodes.new("ShaderNodeTexImage")
    tex.image = img
    tex.location = (-400, 300)
    nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    face.data.materials.append(mat)
