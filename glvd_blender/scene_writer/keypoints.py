"""The descent's keypoints as empties parented to the face, keyed along their trajectories."""

from __future__ import annotations

import bpy
import numpy as np

from .frames import to_world
from .shape_keys import linear_keys


def add_keypoints(col: bpy.types.Collection, face: bpy.types.Object, keypoints: np.ndarray, keypoint_indices: np.ndarray,
                  M: np.ndarray, origin: np.ndarray, start: int, frames_per_step: int, keyframe: bool,
                  created: dict) -> None:
    """One sphere empty per keypoint ("GLVD Keypoint jj"), parented to ``face``, at the last of
    its (T + 1, K, 3) result-frame positions ``keypoints``; ``keyframe``: keyed at every step
    (linear), on the same frames as the step shape keys. Each records its template vertex."""
    T = keypoints.shape[0] - 1
    for j in range(keypoints.shape[1]):
        e = bpy.data.objects.new(f"GLVD Keypoint {j:02d}", None)
        created["objects"].append(e)
        e.empty_display_type = "SPHERE"
        e.empty_display_size = 0.003
        col.objects.link(e)
        e.parent = face
        e["template_vertex"] = int(keypoint_indices[j])
        traj = np.stack([to_world(M, keypoints[s, j:j + 1])[0] - origin for s in range(T + 1)])  # parent-local
        if keyframe and T > 0:
            for s in range(T + 1):
                e.location = traj[s].tolist()
                e.keyframe_insert("location", frame=start + s * frames_per_step)
            created["actions"].append(e.animation_data.action)
            linear_keys(e)
        e.location = traj[-1].tolist()
