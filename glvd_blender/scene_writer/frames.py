"""Frames and coordinates: glvd_core speaks OpenCV (x right, y down, z forward, metres);
``to_blender`` (4x4) maps a reconstruction's output frame into Blender world coordinates:

- :func:`camera_frame_to_blender` (one uncalibrated photo): Blender Z up, the photo's camera
  looks along +Y, the head's centroid at the origin (so the face looks toward -Y: Front view).
- :data:`HEAD_FRAME_TO_BLENDER`: cameras estimated from landmarks (head frame, ICT axes, y up).
- identity: cameras taken from Blender cameras or a cameras.json in the user's own world.

The face object stores its coordinates on a power-of-two grid about its origin, so that shape
keys replay bit for bit (:func:`grid_origin_and_step`).
"""

from __future__ import annotations

import bpy
import numpy as np

CV_TO_BLENDER_AXES = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])   # x, z, -y
HEAD_FRAME_TO_BLENDER = np.array([[1.0, 0, 0, 0], [0, 0, -1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])  # x, -z, y
CV_CAM_TO_BLENDER_CAM = np.diag([1.0, -1.0, -1.0])


def camera_frame_to_blender(final_vertices: np.ndarray) -> np.ndarray:
    """(V, 3) result vertices in one photo's camera frame -> the 4x4 map of that frame into
    Blender world coordinates (Z up, head centroid at the origin)."""
    M = np.eye(4)
    M[:3, :3] = CV_TO_BLENDER_AXES
    M[:3, 3] = -CV_TO_BLENDER_AXES @ final_vertices.mean(0)
    return M


def to_world(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(..., 3) result-frame points -> (..., 3) float32 Blender world points under the 4x4 ``M``."""
    return (np.asarray(points, np.float64) @ M[:3, :3].T + M[:3, 3]).astype(np.float32)


def grid_origin_and_step(points_world: np.ndarray) -> tuple[np.ndarray, float]:
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


def local_coordinates(face: bpy.types.Object, to_blender: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Result-frame points -> what the face object stores for them (object-local, on its grid)."""
    g = face["glvd_grid"]
    return on_grid(to_world(to_blender, points), np.array(g["origin"]), float(g["step"]))


def evaluated_coordinates(obj: bpy.types.Object) -> np.ndarray:
    """(V, 3) float32 vertex positions of ``obj`` as evaluated now (shape keys, current frame)."""
    dg = bpy.context.evaluated_depsgraph_get()
    ev = obj.evaluated_get(dg)
    m = ev.to_mesh()
    co = np.empty(3 * len(m.vertices), np.float32)
    m.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    return co.reshape(-1, 3)
