"""The outline term: the mesh's outer occluding contour in a view against the head's outline in
that photo (a mask's boundary), as signed distances in pixels."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ..cameras import Camera
from ..template import Template


class MaskOutline:
    """Signed distance to a mask's boundary (pixels; negative inside) and its gradient, sampled
    bilinearly at sub-pixel positions."""

    def __init__(self, mask: np.ndarray):
        m = np.asarray(mask)
        if m.ndim == 3:
            m = m[..., 0]
        inside = (m > (127 if m.max() > 1 else 0)).astype(np.uint8)
        if inside.min() == inside.max():
            raise ValueError("the mask is empty or covers the whole photo: it has no outline")
        d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
        d_in = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
        self.sdf = (d_out - d_in).astype(np.float32)
        self.gx = cv2.Sobel(self.sdf, cv2.CV_32F, 1, 0, ksize=3) / 8
        self.gy = cv2.Sobel(self.sdf, cv2.CV_32F, 0, 1, ksize=3) / 8
        self.shape = inside.shape

    def sample(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) pixel positions -> signed distances (N,) and gradients (N, 2)."""
        H, W = self.shape
        x = np.clip(uv[:, 0], 0, W - 1.001)
        y = np.clip(uv[:, 1], 0, H - 1.001)
        x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
        fx, fy = x - x0, y - y0

        def bil(a):
            return ((1 - fx) * (1 - fy) * a[y0, x0] + fx * (1 - fy) * a[y0, x0 + 1]
                    + (1 - fx) * fy * a[y0 + 1, x0] + fx * fy * a[y0 + 1, x0 + 1])

        return bil(self.sdf).astype(np.float64), np.stack([bil(self.gx), bil(self.gy)], 1).astype(np.float64)


@lru_cache(maxsize=2)
def mesh_edges(template: Template) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interior edges (E, 2) vertex ids with their two faces (E, 2), and the (V,) bool of vertices
    within two rings of the open boundary (the neck cut, eye and mouth openings), whose contour
    is a cut, not an outline."""
    f = template.faces.astype(np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    fid = np.tile(np.arange(len(f)), 3)
    key = np.sort(e, 1)
    order = np.lexsort((key[:, 1], key[:, 0]))
    key, fid = key[order], fid[order]
    same = (key[1:] == key[:-1]).all(1)
    pairs = np.where(same)[0]
    edges, faces2 = key[pairs], np.stack([fid[pairs], fid[pairs + 1]], 1)
    counts = np.ones(len(key), int)
    counts[pairs] += 1
    counts[pairs + 1] += 1
    boundary = key[counts == 1]
    near = np.zeros(template.num_vertices, bool)
    near[boundary.ravel()] = True
    return edges, faces2, grow_rings(near, edges, 2)


def grow_rings(region: np.ndarray, edges: np.ndarray, rings: int) -> np.ndarray:
    """(V,) bool ``region`` grown by ``rings`` rings of neighbours along ``edges`` (E, 2); a copy."""
    region = region.copy()
    for _ in range(rings):
        region[edges[region[edges].any(1)].ravel()] = True
    return region


@lru_cache(maxsize=2)
def face_outline_region(template: Template, rings: int = 10) -> np.ndarray:
    """(V,) bool: where a photo's outline is the face's own: the narrow face grown by ``rings``
    rings (cheeks, jaw, the sides of the face), between 1 cm below the chin and the eyebrows. Above
    the brows a photo's outline is hair, below the chin it is the neck or clothes."""
    edges = mesh_edges(template)[0]
    region = grow_rings(np.asarray(template.narrow_face_mask, bool), edges, rings)
    y = template.vertices_m[:, 1]
    lm = template.vertices_m[template.landmarks68]
    brow, chin = lm[17:27, 1].mean(), lm[8, 1]
    return region & (y <= brow) & (y >= chin - 0.01)


def contour_vertices(V: np.ndarray, template: Template, camera: Camera, tol_px: float = 1.5,
                     region: np.ndarray | None = None) -> np.ndarray:
    """Vertex ids on the outer occluding contour of ``V`` (output frame) seen by ``camera``:
    on an edge between a face turned toward the camera and one turned away, on the boundary of
    the mesh's projected silhouette (not an inner contour such as the nose's side), not near the
    open boundary, and inside ``region`` ((V,) bool) when given."""
    edges, faces2, near = mesh_edges(template)
    f = template.faces
    c = -camera.R.T @ camera.t
    P = V[f]
    n = np.cross(P[:, 1] - P[:, 0], P[:, 2] - P[:, 0])
    front = (n * (c - P.mean(1))).sum(1) > 0
    on = front[faces2[:, 0]] != front[faces2[:, 1]]
    cand = np.unique(edges[on].ravel())
    cand = cand[~near[cand]]
    if region is not None:
        cand = cand[region[cand]]
    if len(cand) == 0:
        return cand
    uv = camera.project(V)
    H, W = camera.height, camera.width
    sil = np.zeros((H, W), np.uint8)
    tri = np.round(uv[f[front]] * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    for t3 in tri:  # one by one: fillPoly would cancel overlapping triangles (even-odd)
        cv2.fillConvexPoly(sil, t3, 1, lineType=cv2.LINE_8, shift=4)
    edge = sil - cv2.erode(sil, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    if not edge.any():
        return cand[:0]
    dist = cv2.distanceTransform(1 - edge, cv2.DIST_L2, 3)
    q = np.clip(np.round(uv[cand]).astype(int), 0, [W - 1, H - 1])
    return cand[dist[q[:, 1], q[:, 0]] <= tol_px]
