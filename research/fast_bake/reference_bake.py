"""Bake the reference photos into a texture on the template's UV layout.

Every texel of the UV layout is a point on the reconstructed surface (barycentric lookup of
the UV-space rasterisation). Each photo sees it if it projects inside the photo (and its
mask) and passes a depth test against the mesh rendered from that camera; its weight is
cos²(view angle) times a visibility map blurred in UV space, so contributions fade out before
occlusion edges and silhouettes and the blend has no seams. Exposure is equalised between
photos by per-channel gains fitted on the texels they share. What no photo sees is taken from
the mirrored point (the template's symmetry map) where the other side was seen, else filled by
a smooth continuation of the seen colours that relaxes to a skin tone estimated from the seen
skin. Texels outside the UV islands are padded so filtering does not bleed in the background.

Image convention: ``(S, S, 3)`` uint8 sRGB, row 0 is the top (v = 1), as PNG files and
Blender's image loader expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from glvd_core.render.raster import rasterize, vertex_normals

if TYPE_CHECKING:
    from ..template import Template


SEEN, MIRRORED, FILLED = 1, 2, 3
DEPTH_TOLERANCE_M = 0.004
DEPTH_SIDE = 512  # px, longer side of the visibility depth buffers
MIN_WEIGHT = 0.06  # summed cos²: fully trusted from 2x this, faded out below (one view: 76° off the line of sight)


@dataclass
class Texture:
    """A baked texture.

    Attributes:
        image: (S, S, 3) uint8 sRGB, row 0 = top (v = 1).
        source: (S, S) uint8 per texel: 0 outside the UV islands, 1 seen by a photo, 2 taken from
            the mirrored side, 3 filled (continuation of the seen colours / skin tone).
        view_gains: (n_views, 3) per-channel exposure gains applied to each photo.
        skin_rgb: (3,) the estimated skin tone (sRGB 0..255).
    """

    image: np.ndarray
    source: np.ndarray
    view_gains: np.ndarray
    skin_rgb: np.ndarray
    stats: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.image.shape[0]

    def save_png(self, path: str | Path) -> None:
        from glvd_core.io import atomic_write_bytes

        ok, buf = cv2.imencode(".png", np.ascontiguousarray(self.image[..., ::-1]))
        if not ok:
            raise OSError(f"could not encode {path}")
        atomic_write_bytes(path, buf.tobytes())


def uv_to_texel(uvs: np.ndarray, size: int) -> np.ndarray:
    """(N, 2) UVs -> (N, 2) texel coordinates (x = column, y = row; texel centres are integers)."""
    uvs = np.asarray(uvs, np.float64)
    return np.stack([uvs[:, 0] * size - 0.5, (1.0 - uvs[:, 1]) * size - 0.5], 1)


def _surface_points(vertices, normals, faces, tri, bary):
    f = faces[tri]
    P = np.einsum("nk,nkc->nc", bary, vertices[f])
    N = np.einsum("nk,nkc->nc", bary, normals[f])
    return P, N / (np.linalg.norm(N, axis=1, keepdims=True) + 1e-12)


def _sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear colours (N, 3) float32 at pixel coordinates (N, 2)."""
    n = len(xy)
    cols = 1024
    m = np.zeros((-(-n // cols) * cols, 2), np.float32)
    m[:n] = xy
    m = m.reshape(-1, cols, 2)  # remap maps must stay under 32767 on each side
    out = cv2.remap(image.astype(np.float32), m[..., 0], m[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:n]


class _View:
    """One photo: depth buffer of the mesh and per-point visibility/weights."""

    def __init__(self, image, camera, mask, vertices, faces):
        self.image, self.cam, self.mask = image, camera, mask
        H, W = image.shape[:2]
        # the depth buffer only decides visibility: at most DEPTH_SIDE px, and triangles larger than
        # a quarter of it (none on a face at a sane distance; a broken mesh has thousands) are not
        # drawn, so work and memory stay bounded whatever the mesh
        self.s = s = min(1.0, DEPTH_SIDE / max(H, W))
        K = camera.K.astype(np.float64).copy()
        K[:2] *= s
        K[:2, 2] += 0.5 * s - 0.5  # pixel centres stay at integer coordinates
        self.dh, self.dw = max(1, int(round(H * s))), max(1, int(round(W * s)))
        Pc = camera.world_to_camera(vertices)
        z = np.maximum(Pc[:, 2:3], 1e-6)
        xy = (Pc[:, :2] / z) * [K[0, 0], K[1, 1]] + K[:2, 2]
        ext = xy[faces].max(1) - xy[faces].min(1)
        keep = (ext.max(1) <= 0.25 * max(self.dh, self.dw)) & (Pc[faces, 2] > 0).all(1)
        self.depth = rasterize(Pc, faces[keep], K, self.dh, self.dw).depth

    def look(self, P, N):
        """(colour (n, 3), weight (n,)) of surface points P with normals N (output frame)."""
        cam = self.cam
        H, W = self.image.shape[:2]
        Pc = cam.world_to_camera(P)
        xy = cam.project(P)
        inside = (Pc[:, 2] > 0) & (xy[:, 0] >= 0) & (xy[:, 0] <= W - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= H - 1)
        xs, ys = (xy[:, 0] + 0.5) * self.s - 0.5, (xy[:, 1] + 0.5) * self.s - 0.5
        xi = np.clip(np.rint(xs), 0, self.dw - 1).astype(int)
        yi = np.clip(np.rint(ys), 0, self.dh - 1).astype(int)
        d = self.depth[yi, xi]
        vis = inside & (Pc[:, 2] <= d + DEPTH_TOLERANCE_M)
        if self.mask is not None:
            mi = np.clip(np.rint(xy[:, 0]), 0, W - 1).astype(int)
            mj = np.clip(np.rint(xy[:, 1]), 0, H - 1).astype(int)
            vis &= self.mask[mj, mi] > 0.5
        to_cam = cam.center_world[None] - P
        cos = (N * to_cam).sum(1) / (np.linalg.norm(to_cam, axis=1) + 1e-12)
        w = np.where(vis, np.clip(cos, 0, 1) ** 2, 0.0)
        return _sample(self.image, xy), w


def _normalized_blur(img, weight, sigma):
    k = (0, 0)
    num = cv2.GaussianBlur(img * weight[..., None], k, sigma)
    den = cv2.GaussianBlur(weight, k, sigma)
    return num, den


def _exposure_gains(colours, weights, min_weight=0.2, min_shared=200):
    """Per-view per-channel gains (n, 3) that make overlapping views agree (geometric mean 1)."""
    n = len(colours)
    rows, rhs = [], []
    for i in range(n):
        for j in range(i + 1, n):
            both = (weights[i] > min_weight) & (weights[j] > min_weight)
            if both.sum() < min_shared:
                continue
            r = np.log(np.median(colours[i][both], 0) + 1.0) - np.log(np.median(colours[j][both], 0) + 1.0)
            row = np.zeros(n)
            row[i], row[j] = 1.0, -1.0
            rows.append(row)
            rhs.append(-r)  # log g_i - log g_j = -(log c_i - log c_j)
    if not rows:
        return np.ones((n, 3))
    A = np.concatenate([np.array(rows), np.ones((1, n))])  # + sum(log g) = 0
    b = np.concatenate([np.array(rhs), np.zeros((1, 3))])
    return np.exp(np.linalg.lstsq(A, b, rcond=None)[0])


def check_texture_size(size: int) -> None:
    """Raise ValueError unless ``size`` is a texture side :func:`bake_texture` accepts (64..8192)."""
    if size < 64 or size > 8192:
        raise ValueError(f"texture size must be within 64..8192, got {size}")


def bake_texture(vertices_m: np.ndarray, images: list, cameras: list, template: Template, masks: list | None = None,
                 size: int = 1024, feather_px: float | None = None) -> Texture:
    """Bake photos onto the template UVs of a reconstructed mesh.

    Args:
        vertices_m: (7225, 3) the reconstruction, metres, in the frame of ``cameras``
            (``Reconstruction.final_vertices`` with ``Reconstruction.cameras``).
        images: per view (H, W, 3) uint8 RGB, the size each camera expects.
        cameras: per view :class:`glvd_core.cameras.Camera` (OpenCV), in the frame of the vertices.
        template: the :class:`Template` (faces, UVs, symmetry, regions).
        masks: optional per view (H, W) head masks in [0, 1] (texels outside are not taken).
        size: texture side in texels (power of two, 256..8192).
        feather_px: blur of the visibility maps in texels (default size / 128).
    """
    check_texture_size(size)
    if len(images) != len(cameras) or not images:
        raise ValueError(f"need one camera per image (got {len(images)} images, {len(cameras)} cameras)")
    for i, (img, cam) in enumerate(zip(images, cameras)):
        if img.shape[:2] != (cam.height, cam.width):
            raise ValueError(f"view {i}: image is {img.shape[1]}x{img.shape[0]} but its camera expects "
                             f"{cam.width}x{cam.height}")
    V = np.asarray(vertices_m, np.float64)
    faces = np.asarray(template.faces)
    if V.shape != template.vertices_m.shape:
        raise ValueError(f"expected vertices of shape {template.vertices_m.shape}, got {V.shape}")
    normals = vertex_normals(V, faces).astype(np.float64)
    txy = uv_to_texel(template.uvs, size)
    uvr = rasterize(np.concatenate([txy, np.ones((len(txy), 1))], 1), faces, np.eye(3), size, size)
    inside = uvr.tri >= 0
    tri, bary = uvr.tri[inside], uvr.bary[inside].astype(np.float64)
    P, N = _surface_points(V, normals, faces, tri, bary)
    views = [_View(np.asarray(img), cam, None if masks is None or masks[i] is None else np.asarray(masks[i]), V, faces)
             for i, (img, cam) in enumerate(zip(images, cameras))]

    feather = feather_px or size / 128

    def gather(P_, N_):  # weights faded out before occlusion edges (visibility blurred in UV space)
        cols, ws = gather_points(views, P_, N_)
        for i, w in enumerate(ws):
            vis = np.zeros((size, size), np.float32)
            vis[inside] = w > 0
            ws[i] = w * np.clip(2 * cv2.GaussianBlur(vis, (0, 0), feather)[inside] - 1, 0, 1)
        return cols, ws

    cols, ws = gather(P, N)
    gains = _exposure_gains(cols, ws)
    num = sum(w[:, None] * c * g for c, w, g in zip(cols, ws, gains))
    den = sum(ws)
    colour = num / np.maximum(den, 1e-12)[:, None]
    # the mirrored point, for every texel not fully covered by its own side
    a_seen = _soft(den, inside, size, feather)
    mirror = a_seen < 1
    a_mirror = np.zeros(len(P))
    mcolour = np.zeros((len(P), 3))
    if mirror.any():
        f = faces[tri[mirror]]
        sym = np.asarray(template.symmetry)
        Pm = np.einsum("nk,nkc->nc", bary[mirror], V[sym[f]])
        Nm = np.einsum("nk,nkc->nc", bary[mirror], normals[sym[f]])
        Nm /= np.linalg.norm(Nm, axis=1, keepdims=True) + 1e-12
        mcols, mws = gather_points(views, Pm, Nm)
        mden = sum(mws)
        mcolour[mirror] = sum(w[:, None] * c * g for c, w, g in zip(mcols, mws, gains)) / np.maximum(mden, 1e-12)[:, None]
        full = np.zeros(len(P))
        full[mirror] = mden
        a_mirror = _soft(full, inside, size, feather)
    known = a_seen + (1 - a_seen) * a_mirror
    colour = (a_seen[:, None] * colour + ((1 - a_seen) * a_mirror)[:, None] * mcolour) / np.maximum(known, 1e-12)[:, None]
    source = np.where(a_seen >= 0.5, SEEN, np.where(known >= 0.5, MIRRORED, FILLED)).astype(np.uint8)
    # skin tone from the seen skin; a smooth continuation of the known colours relaxing to it
    region = np.asarray(template.vertex_region)[faces[tri, 0]]
    skin_id = list(template.region_names).index("skin")
    skin_px = colour[(known > 0.9) & (region == skin_id)]
    if len(skin_px) > 100:
        lum = skin_px.mean(1)
        keep = (lum > np.percentile(lum, 20)) & (lum < np.percentile(lum, 90))
        skin = np.median(skin_px[keep] if keep.any() else skin_px, 0)
    else:
        skin = np.array([196.0, 150.0, 125.0])  # no skin seen at all: a neutral mid skin tone
    img = np.zeros((size, size, 3), np.float32)
    kn = np.zeros((size, size), np.float32)
    img[inside] = colour
    kn[inside] = known
    num_b, den_b = _normalized_blur(img, kn, size / 24)
    cont = num_b / np.maximum(den_b, 1e-6)[..., None]
    beta = np.clip(den_b / 0.3, 0, 1)[..., None]
    fill = beta * cont + (1 - beta) * skin
    img = np.where(inside[..., None], kn[..., None] * img + (1 - kn[..., None]) * fill, 0).astype(np.float32)
    src = np.zeros((size, size), np.uint8)
    src[inside] = source
    img = _pad_islands(img, inside, iterations=max(4, size // 128))
    return Texture(image=np.clip(np.rint(img), 0, 255).astype(np.uint8), source=src, view_gains=gains,
                   skin_rgb=skin.astype(np.float32),
                   stats=dict(seen=float((src == SEEN).sum() / inside.sum()),
                              mirrored=float((src == MIRRORED).sum() / inside.sum()),
                              filled=float((src == FILLED).sum() / inside.sum())))


def _soft(weight_sum, inside, size, feather):
    """Per-texel opacity in [0, 1] of a summed view weight, smoothed in UV space (no speckle or
    hard edges where coverage flickers)."""
    a = np.zeros((size, size), np.float32)
    a[inside] = np.clip(weight_sum / (2 * MIN_WEIGHT), 0, 1) ** 2
    return np.clip(cv2.GaussianBlur(a, (0, 0), feather / 2)[inside], 0, 1).astype(np.float64)


def gather_points(views: list, P: np.ndarray, N: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Colours and cos² weights of surface points in every view (no UV-space feathering)."""
    out = [v.look(P, N) for v in views]
    return [c for c, _ in out], [w for _, w in out]


def _pad_islands(img, inside, iterations):
    """Grow the colours outward from the UV islands (gutter padding against filtering bleed)."""
    m = inside.astype(np.float32)
    img = img * m[..., None]
    for _ in range(iterations):
        num = cv2.blur(img * m[..., None], (3, 3))
        den = cv2.blur(m, (3, 3))
        grow = (m == 0) & (den > 0)
        img[grow] = num[grow] / den[grow, None]
        m = np.maximum(m, grow.astype(np.float32))
    return img


def write_textured_obj(path: str | Path, vertices_m: np.ndarray, template: Template, texture: Texture,
                       header: str = "") -> tuple:
    """Write ``path`` (.obj, metres, with UVs), ``path.mtl`` and ``path.png`` (the texture).
    Returns the three paths."""
    from glvd_core.io import atomic_write_bytes, obj_text

    path = Path(path)
    png, mtl = path.with_suffix(".png"), path.with_suffix(".mtl")
    texture.save_png(png)
    atomic_write_bytes(mtl, (f"# GLVD photo texture\nnewmtl glvd_face\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
                             f"map_Kd {png.name}\n").encode())
    body = obj_text(vertices_m, template.faces, template.uvs, header=header)
    atomic_write_bytes(path, (f"mtllib {mtl.name}\nusemtl glvd_face\n" + body).encode())
    return path, mtl, png
