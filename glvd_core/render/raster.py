"""A vectorised z-buffer triangle rasteriser (numpy) with perspective-correct barycentrics.

Camera convention (used everywhere in glvd_core; see ``glvd_core.cameras``): OpenCV — x right,
y down, z forward; a pixel's centre has integer coordinates (pixel (row i, col j) is the point
x = j, y = i), so ``u = fx * X / Z + cx``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEAR_M = 1e-3


@dataclass
class Raster:
    """Per-pixel visibility.

    Attributes:
        tri: (H, W) int32 index of the visible triangle, -1 where nothing is drawn.
        bary: (H, W, 3) float32 perspective-correct barycentrics of the visible triangle.
        depth: (H, W) float32 camera-space z in metres (inf where nothing is drawn).
    """

    tri: np.ndarray
    bary: np.ndarray
    depth: np.ndarray

    @property
    def coverage(self) -> np.ndarray:
        return self.tri >= 0


def project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points -> (N, 2) pixel coordinates."""
    z = points_cam[:, 2]
    return np.stack([K[0, 0] * points_cam[:, 0] / z + K[0, 1] * points_cam[:, 1] / z + K[0, 2],
                     K[1, 1] * points_cam[:, 1] / z + K[1, 2]], 1)


def rasterize(points_cam: np.ndarray, tris: np.ndarray, K: np.ndarray, height: int, width: int) -> Raster:
    """Rasterise triangles given in the camera frame (metres) into an (height, width) image."""
    tris = np.asarray(tris)
    z = points_cam[:, 2].astype(np.float64)
    uv = project(points_cam.astype(np.float64), K)
    tz = z[tris]
    tx, ty = uv[tris, 0], uv[tris, 1]
    ok = (tz > NEAR_M).all(1)
    xmin = np.ceil(tx.min(1)).clip(0, width - 1)
    xmax = np.floor(tx.max(1)).clip(-1, width - 1)
    ymin = np.ceil(ty.min(1)).clip(0, height - 1)
    ymax = np.floor(ty.max(1)).clip(-1, height - 1)
    area = (tx[:, 1] - tx[:, 0]) * (ty[:, 2] - ty[:, 0]) - (tx[:, 2] - tx[:, 0]) * (ty[:, 1] - ty[:, 0])
    ok &= (xmax >= xmin) & (ymax >= ymin) & (np.abs(area) > 1e-12)
    size = np.maximum(xmax - xmin, ymax - ymin) + 1
    bucket = np.ceil(np.log2(np.maximum(size, 1))).astype(int)
    frag_pix, frag_z, frag_tri, frag_w = [], [], [], []
    for b in np.unique(bucket[ok]):
        idx = np.nonzero(ok & (bucket == b))[0]
        s = 1 << int(b)
        dy, dx = np.divmod(np.arange(s * s), s)
        px = xmin[idx, None] + dx[None]
        py = ymin[idx, None] + dy[None]
        x0, x1, x2 = (tx[idx, k, None] for k in range(3))
        y0, y1, y2 = (ty[idx, k, None] for k in range(3))
        a = area[idx, None]
        w0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / a
        w1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / a
        w2 = 1.0 - w0 - w1
        eps = -1e-9
        inside = (w0 >= eps) & (w1 >= eps) & (w2 >= eps) & (px <= xmax[idx, None]) & (py <= ymax[idx, None])
        r, c = np.nonzero(inside)
        if not len(r):
            continue
        ti = idx[r]
        w = np.stack([w0[r, c], w1[r, c], w2[r, c]], 1)
        inv_z = (w / tz[ti]).sum(1)
        frag_pix.append((py[r, c] * width + px[r, c]).astype(np.int64))
        frag_z.append(1.0 / inv_z)
        frag_tri.append(ti)
        frag_w.append(w / tz[ti] / inv_z[:, None])  # perspective-correct
    tri_img = np.full(height * width, -1, np.int32)
    bary = np.zeros((height * width, 3), np.float32)
    depth = np.full(height * width, np.inf, np.float32)
    if frag_pix:
        pix = np.concatenate(frag_pix)
        fz = np.concatenate(frag_z)
        order = np.lexsort((fz, pix))
        ps = pix[order]
        first = np.ones(len(ps), bool)
        first[1:] = ps[1:] != ps[:-1]
        win = order[first]
        tri_img[pix[win]] = np.concatenate(frag_tri)[win]
        bary[pix[win]] = np.concatenate(frag_w)[win]
        depth[pix[win]] = fz[win]
    return Raster(tri_img.reshape(height, width), bary.reshape(height, width, 3), depth.reshape(height, width))


def vertex_normals(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (N, 3)."""
    p = points.astype(np.float64)
    fn = np.cross(p[tris[:, 1]] - p[tris[:, 0]], p[tris[:, 2]] - p[tris[:, 0]])
    n = np.zeros_like(p)
    for k in range(3):
        np.add.at(n, tris[:, k], fn)
    return (n / (np.linalg.norm(n, axis=1, keepdims=True) + 1e-20)).astype(np.float32)
