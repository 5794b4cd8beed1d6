"""Turn a glvd_core ``Reconstruction`` into Blender data — the only place that knows both,
split by concept as glTF-Blender-IO splits its importer: ``frames`` (axes, the object grid),
``mesh``, ``shape_keys`` (ARKit keys, the descent's keyed steps), ``keypoints`` (empties),
``cameras`` (photo cameras, both directions) and ``material`` (the baked texture).

Cameras are placed with the same frame map as the mesh, so looking through one overlays the mesh
on its photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import bpy
import numpy as np

from .cameras import (add_cameras, blender_camera_to_cv, camera_matrix_world, fit_background, render_size,
                      setup_camera_data)
from .frames import (HEAD_FRAME_TO_BLENDER, camera_frame_to_blender, evaluated_coordinates, grid_origin_and_step,
                     local_coordinates, on_grid, to_world)
from .keypoints import add_keypoints
from .material import add_texture_material
from .mesh import add_face_mesh
from .shape_keys import add_arkit_keys, add_basis, add_step_keys

if TYPE_CHECKING:  # glvd_core is imported lazily (core.glvd_core)
    from glvd_core.reconstruct import Reconstruction


__all__ = ["Extras", "write_reconstruction", "camera_frame_to_blender", "HEAD_FRAME_TO_BLENDER", "to_world",
           "local_coordinates", "evaluated_coordinates", "blender_camera_to_cv", "camera_matrix_world",
           "setup_camera_data", "fit_background", "render_size"]


@dataclass
class Extras:
    """Optional products of a reconstruction, computed off the UI thread (see ``ops.Job``).

    Attributes:
        final_vertices: (V, 3) the face's rest shape in the result's frame when it is not the
            last step (the neutralised face); None: the last step.
        fit_steps: (F, V, 3) the fitting stage's steps after the descent's, in the result's
            frame (keyed after them as ``fit_01`` …), or None.
        texture: (S, S, 3) uint8 sRGB baked photo texture (row 0 = top), or None.
        arkit: ARKit name -> (V, 3) offsets in the result's frame, or None.
        expression: ICT name -> weight removed by the neutral option, or None.
    """

    final_vertices: np.ndarray | None = None
    fit_steps: np.ndarray | None = None
    texture: np.ndarray | None = None
    arkit: dict | None = None
    expression: dict | None = None


def write_reconstruction(scene: bpy.types.Scene, result: Reconstruction, photos: list, to_blender: np.ndarray, *,
                         name: str = "GLVD Face", add_keypoints: bool = True, keyframe_descent: bool = True,
                         frames_per_step: int = 5, add_cameras: bool = True, smooth_shading: bool = True,
                         extras: Extras | None = None, set_scene: bool = False) -> dict:
    """Create the face mesh (with its material, ARKit shape keys and descent shape keys),
    keypoint empties and photo cameras, in a new collection "GLVD Reconstruction".

    ``result``: a glvd_core ``Reconstruction``; ``photos``: the photo paths for the cameras'
    backgrounds (may be shorter or empty); ``to_blender``: the 4x4 map of the result's frame
    into Blender world (:mod:`.frames`). ``set_scene``: also make the first photo's camera the
    scene camera with its render size and extend the frame range over the keyed steps (off: the
    scene's own settings are kept). Returns {"face", "collection", "objects"}.
    On any error everything made so far is removed again and the error re-raised, so the scene
    is left as it was."""
    created = {"objects": [], "meshes": [], "cameras": [], "images": [], "collections": [], "actions": [],
               "materials": []}
    try:
        return _write(scene, result, photos, to_blender, name, add_keypoints, keyframe_descent, frames_per_step,
                      add_cameras, smooth_shading, extras or Extras(), created, set_scene)
    except BaseException:
        _remove(created)
        raise


def _remove(created: dict) -> None:
    """Delete everything ``_write`` made; ``created`` maps a bpy.data collection name to its new
    datablocks, objects first (so nothing still uses the data removed after them)."""
    for kind, blocks in created.items():
        collection = getattr(bpy.data, kind)
        for block in blocks:
            collection.remove(block, do_unlink=True)


def _write(scene, result, photos, M, name, with_keypoints, keyframe_descent, fps, with_cameras, smooth, extras,
           created, set_scene):
    fit = [] if extras.fit_steps is None else list(extras.fit_steps)
    shapes = [(f"step_{s:02d}", v) for s, v in enumerate(result.vertices)] + [
        (f"fit_{k + 1:02d}", v) for k, v in enumerate(fit)]  # every keyed shape, in timeline order
    T = result.vertices.shape[0] - 1
    rest = shapes[-1][1] if extras.final_vertices is None else extras.final_vertices
    col = bpy.data.collections.new("GLVD Reconstruction")
    created["collections"].append(col)
    scene.collection.children.link(col)

    world_steps = [to_world(M, v) for _, v in shapes] + [to_world(M, rest)]
    origin, q = grid_origin_and_step(np.stack(world_steps))
    final = on_grid(world_steps[-1], origin, q)
    face = add_face_mesh(col, name, final, result.faces, result.uvs, origin, smooth, created)
    face["glvd"] = dict(frame=result.frame, iterations=T, fit_iterations=len(fit), model=str(result.info.get("model", "")),
                        seed=int(result.info.get("seed", 0)), neutral=extras.final_vertices is not None)
    face["glvd_grid"] = dict(origin=origin.tolist(), step=q)
    if extras.expression:
        face["glvd_removed_expression"] = {k: round(float(v), 4) for k, v in extras.expression.items() if v > 1e-3}
    if extras.texture is not None:
        add_texture_material(face, extras.texture, name, created)

    start = scene.frame_start
    keyed = keyframe_descent and T > 0
    if extras.arkit or keyed:
        add_basis(face)
    if extras.arkit:
        add_arkit_keys(face, final, extras.arkit, M[:3, :3])
    if keyed:
        end = add_step_keys(scene, face, [(n, on_grid(world_steps[k], origin, q)) for k, (n, _) in enumerate(shapes)],
                            start, fps, extras.final_vertices is not None, created, set_scene)
    if with_keypoints:
        add_keypoints(col, face, result.keypoints, result.keypoint_indices, M, origin, start, fps, keyframe_descent,
                      created)
    if with_cameras:
        add_cameras(scene, col, result.cameras, photos, M, created, set_scene)
    if keyed:
        scene.frame_set(end)
    return {"face": face, "collection": col, "objects": list(created["objects"])}
