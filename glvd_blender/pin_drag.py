"""Dragging a pin in the viewport, as artists pin in FaceBuilder: look through a GLVD Camera (its
photo behind the face), press **Drag Pin**, click a point of the face and drag it to where that
point is in the photo; on release the pin is stored on the face and Refit runs, so the face
follows in about a second. Esc or right-click cancels.

The viewport shows the camera's frame scaled and shifted, so region pixels and photo pixels are
related by a 2D affine map; it is fitted once per drag from the face's own vertices (their
projections in both), which keeps this module free of Blender's view-frame arithmetic.
"""

from __future__ import annotations

import numpy as np

PICK_RADIUS_PX = 20.0  # how near the click a vertex must be (region pixels)


def region_coords(points_world: np.ndarray, perspective_matrix: np.ndarray, region_size: tuple) -> tuple:
    """Points (N, 3) in Blender's world -> ((N, 2) region pixels, (N,) in front of the view), with
    the viewport's ``perspective_matrix`` (4, 4) and region (width, height) in pixels."""
    p = np.asarray(points_world, np.float64)
    h = np.concatenate([p, np.ones((len(p), 1))], 1) @ np.asarray(perspective_matrix, np.float64).T
    front = h[:, 3] > 1e-9
    w = np.where(front, h[:, 3], 1.0)
    xy = (h[:, :2] / w[:, None] + 1) / 2 * np.asarray(region_size, np.float64)
    return xy, front


def fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares affine map taking 2D points src (N, 2) onto dst (N, 2), N >= 3."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if len(src) < 3:
        raise ValueError("at least 3 points are needed to relate the viewport to the photo")
    A = np.concatenate([src, np.ones((len(src), 1))], 1)
    return np.linalg.lstsq(A, dst, rcond=None)[0].T


def apply_affine(M: np.ndarray, xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(xy, np.float64)
    return xy @ M[:, :2].T + M[:, 2]


def pick_vertex(region_xy: np.ndarray, usable: np.ndarray, mouse: tuple, radius_px: float = PICK_RADIUS_PX) -> int | None:
    """The usable vertex (facing the camera, in front of it) nearest the mouse in region pixels,
    within ``radius_px``; None when there is none."""
    d = np.linalg.norm(np.asarray(region_xy, np.float64) - np.asarray(mouse, np.float64), axis=1)
    d = np.where(usable, d, np.inf)
    i = int(np.argmin(d))
    return i if d[i] <= radius_px else None


def facing(vertices_world: np.ndarray, normals_world: np.ndarray, eye_world: np.ndarray) -> np.ndarray:
    """(N,) whether each vertex's normal faces the eye (the side of the face the camera sees)."""
    return ((np.asarray(eye_world) - vertices_world) * normals_world).sum(1) > 0


def photo_pixel(M_region_to_photo: np.ndarray, mouse: tuple, photo_size: tuple) -> tuple[float, float] | None:
    """The photo pixel under the mouse (region pixels), or None outside the photo."""
    x, y = apply_affine(M_region_to_photo, np.asarray(mouse, np.float64)[None])[0]
    w, h = photo_size
    return (float(x), float(y)) if 0 <= x <= w - 1 and 0 <= y <= h - 1 else None
