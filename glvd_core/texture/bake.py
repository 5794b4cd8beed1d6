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

Two scales. The template's UVs are one seamless chart, so everything above except the photo
lookups (visibility, weights, exposure, mirror, fill, padding) is a smooth function of UV: it is
solved on a grid of at most :data:`ANALYSIS_SIDE` texels, as per-view blend weights and image
coordinates. At the full size only the photo lookups run: per view, the image coordinates are
upsampled (bilinear, exact inside a triangle), the photo is sampled there and added with its
upsampled weight, all in OpenCV. A 2K bake costs a few hundred milliseconds instead of seconds;
``research/fast_bake`` measures it against the single-scale bake.

Image convention: ``(S, S, 3)`` uint8 sRGB, row 0 is the top (v = 1), as PNG files and
Blender's image loader expect.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..render.raster import rasterize, vertex_normals

if TYPE_CHECKING:
    from ..template import Template


SEEN, MIRRORED, FILLED = 1, 2, 3
DEPTH_TOLERANCE_M = 0.004
DEPTH_SIDE = 512  # px, longer side of the visibility depth buffers
ANALYSIS_SIDE = 512  # texels: the side of the grid the smooth part of a bake is solved on
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

    def png_bytes(self) -> bytes:
        """The texture as PNG file bytes."""
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(self.image[..., ::-1]))
        if not ok:
            raise OSError("could not encode the texture as PNG")
        return buf.tobytes()

    def save_png(self, path: str | Path) -> None:
        from ..io import atomic_write_bytes

        atomic_write_bytes(path, self.png_bytes())


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
        """(colour (n, 3), weight (n,), image xy (n, 2)) of surface points P with normals N (output frame)."""
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
        return _sample(self.image, xy), w, xy


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


_LAYOUTS: dict = {}


@dataclass
class _Layout:
    """The template's UV rasterisation at one side: what every bake at that side shares.

    Attributes:
        inside: (S, S) bool, texels on the chart.
        tri: (n,) the triangle under each chart texel (row-major order of ``inside``).
        bary: (n, 3) float64 its barycentrics.
        nearest: (S, S) int flat index of the nearest chart texel (chessboard metric), for padding.
        rings: (S, S) float32 that distance in texels (0 on the chart).
    """

    inside: np.ndarray
    tri: np.ndarray
    bary: np.ndarray
    nearest: np.ndarray
    rings: np.ndarray

    def pad(self, grid: np.ndarray, rings: float) -> np.ndarray:
        """``grid`` (S, S, ...) valid on the chart, with the texels up to ``rings`` away copied from
        their nearest chart texel (gutter padding against filtering bleed), zero beyond."""
        out = grid.copy()
        flat = out.reshape(out.shape[0] * out.shape[1], -1)
        grow = np.flatnonzero((self.rings.ravel() > 0) & (self.rings.ravel() <= rings))
        flat[np.flatnonzero(self.rings.ravel() > rings)] = 0
        flat[grow] = flat[self.nearest.ravel()[grow]]
        return out


def _uv_layout(template: Template, size: int) -> _Layout:
    """The template's :class:`_Layout` at side ``size``, one per template and side for the life of
    the process (it depends on nothing else, and rasterising it is most of a small bake)."""
    uvs, faces = np.ascontiguousarray(template.uvs, np.float64), np.ascontiguousarray(template.faces)
    key = (hashlib.sha1(uvs.tobytes() + faces.tobytes()).hexdigest(), size)
    if key not in _LAYOUTS:
        txy = uv_to_texel(uvs, size)
        r = rasterize(np.concatenate([txy, np.ones((len(txy), 1))], 1), faces, np.eye(3), size, size)
        inside = r.tri >= 0
        rings, label = cv2.distanceTransformWithLabels((~inside).astype(np.uint8), cv2.DIST_C, 3,
                                                       labelType=cv2.DIST_LABEL_PIXEL)
        chart = np.flatnonzero(inside.ravel())  # label k is the k-th chart texel in row-major order
        nearest = chart[np.clip(label - 1, 0, len(chart) - 1)]
        if len(_LAYOUTS) >= 4:
            _LAYOUTS.clear()
        _LAYOUTS[key] = _Layout(inside, r.tri[inside], r.bary[inside].astype(np.float64), nearest, rings)
    return _LAYOUTS[key]


def _uv_inside(template: Template, size: int) -> np.ndarray:
    """(S, S) bool: texels whose centre lies in a UV triangle, drawn by OpenCV (the full-size
    layout is not rasterised; its texels only need to know whether they are on the chart)."""
    if size <= ANALYSIS_SIDE:
        return _uv_layout(template, size).inside
    key = ("inside", hashlib.sha1(np.ascontiguousarray(template.uvs, np.float64).tobytes()).hexdigest(), size)
    if key not in _LAYOUTS:
        shift = 8
        tri_xy = np.rint(uv_to_texel(template.uvs, size)[np.asarray(template.faces)] * (1 << shift)).astype(np.int32)
        m = np.zeros((size, size), np.uint8)
        cv2.fillPoly(m, list(tri_xy), 1, lineType=cv2.LINE_8, shift=shift)
        _LAYOUTS[key] = m.astype(bool)
    return _LAYOUTS[key]


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
        size: texture side in texels (64..8192).
        feather_px: blur of the visibility maps in texels of ``size`` (default size / 128).
    """
    check_texture_size(size)
    if len(images) != len(cameras) or not images:
        raise ValueError(f"need one camera per image (got {len(images)} images, {len(cameras)} cameras)")
    for i, (img, cam) in enumerate(zip(images, cameras)):
        if img.shape[:2] != (cam.height, cam.width):
            raise ValueError(f"view {i}: image is {img.shape[1]}x{img.shape[0]} but its camera expects "
                             f"{cam.width}x{cam.height}")
    V = np.asarray(vertices_m, np.float64)
    if V.shape != template.vertices_m.shape:
        raise ValueError(f"expected vertices of shape {template.vertices_m.shape}, got {V.shape}")
    a = min(size, ANALYSIS_SIDE)  # side of the analysis grid; all sigmas below are in its texels
    feather = (feather_px or size / 128) * a / size
    gutter = max(4, size // 128) * a / size  # as wide in UV at every size
    plan = _blend_plan(V, images, cameras, template, masks, a, feather, pad=gutter)
    photos = [np.asarray(img, np.float32) * g.astype(np.float32) for img, g in zip(images, plan.gains)]
    inside = _uv_inside(template, size)
    image = _compose(plan, photos, inside, size)
    src = plan.source if size == a else cv2.resize(plan.source, (size, size), interpolation=cv2.INTER_NEAREST)
    src = (src * inside).astype(np.uint8)
    n = max(int(inside.sum()), 1)
    return Texture(image=image, source=src, view_gains=plan.gains, skin_rgb=plan.skin.astype(np.float32),
                   stats=dict(seen=float((src == SEEN).sum() / n), mirrored=float((src == MIRRORED).sum() / n),
                              filled=float((src == FILLED).sum() / n)))


@dataclass
class _BlendPlan:
    """What the full-size pass needs, on the (a, a) analysis grid: the final texel is
    ``sum_i alpha_i * photo_i(xy_i) + sum_i beta_i * photo_i(xy_mirror_i) + rest`` inside the
    chart and ``outside`` (the padded low-resolution result) in the gutter."""

    xy: list  # per view (a, a, 2) float32 image coordinates of the texel's surface point
    alpha: list  # per view (a, a) float32 blend weight of that lookup (0 = not used)
    xy_mirror: list  # per view (a, a, 2) float32 image coordinates of the mirrored point, or None
    beta: list  # per view (a, a) float32 blend weight of the mirrored lookup, or None
    rest: np.ndarray  # (a, a, 3) float32 the fill's share of the texel colour
    outside: np.ndarray  # (a, a, 3) float32 the whole bake at this side, padded into the gutter
    source: np.ndarray  # (a, a) uint8 SEEN / MIRRORED / FILLED, 0 outside the chart
    gains: np.ndarray  # (n_views, 3) exposure gains
    skin: np.ndarray  # (3,) skin tone, sRGB 0..255


def _blend_plan(V, images, cameras, template, masks, a, feather, pad) -> _BlendPlan:
    faces = np.asarray(template.faces)
    normals = vertex_normals(V, faces).astype(np.float64)
    layout = _uv_layout(template, a)
    inside, tri, bary = layout.inside, layout.tri, layout.bary
    P, N = _surface_points(V, normals, faces, tri, bary)
    views = [_View(np.asarray(img), cam, None if masks is None or masks[i] is None else np.asarray(masks[i]), V, faces)
             for i, (img, cam) in enumerate(zip(images, cameras))]

    def gather(P_, N_):  # weights faded out before occlusion edges (visibility blurred in UV space)
        cols, ws, xys = [], [], []
        for v in views:
            c, w, xy = v.look(P_, N_)
            vis = np.zeros((a, a), np.float32)
            vis[inside] = w > 0
            cols.append(c)
            ws.append(w * np.clip(2 * cv2.GaussianBlur(vis, (0, 0), feather)[inside] - 1, 0, 1))
            xys.append(np.clip(xy, -1e4, 1e4))  # finite lookups even behind the camera
        return cols, ws, xys

    cols, ws, xys = gather(P, N)
    gains = _exposure_gains(cols, ws)
    den = sum(ws)
    colour = sum(w[:, None] * c * g for c, w, g in zip(cols, ws, gains)) / np.maximum(den, 1e-12)[:, None]
    # the mirrored point, for every texel not fully covered by its own side
    a_seen = _soft(den, inside, a, feather)
    mirror = a_seen < 1
    a_mirror = np.zeros(len(P))
    mcolour = np.zeros((len(P), 3))
    mws, mxys, mden = [None] * len(views), [None] * len(views), None
    if mirror.any():
        f = faces[tri[mirror]]
        sym = np.asarray(template.symmetry)
        Pm = np.einsum("nk,nkc->nc", bary[mirror], V[sym[f]])
        Nm = np.einsum("nk,nkc->nc", bary[mirror], normals[sym[f]])
        Nm /= np.linalg.norm(Nm, axis=1, keepdims=True) + 1e-12
        # cos² weights as they are: the mirror's opacity is feathered as a whole (_soft below)
        mcols, mws, mxys = zip(*[[_on(mirror, x) for x in v.look(Pm, Nm)] for v in views])
        mxys = [np.clip(xy, -1e4, 1e4) for xy in mxys]
        mden = sum(mws)
        mcolour = sum(w[:, None] * c * g for c, w, g in zip(mcols, mws, gains)) / np.maximum(mden, 1e-12)[:, None]
        a_mirror = _soft(mden, inside, a, feather)
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
    img = np.zeros((a, a, 3), np.float32)
    kn = np.zeros((a, a), np.float32)
    img[inside] = colour
    kn[inside] = known
    num_b, den_b = _normalized_blur(img, kn, a / 24)
    cont = num_b / np.maximum(den_b, 1e-6)[..., None]
    beta = np.clip(den_b / 0.3, 0, 1)[..., None]
    fill = beta * cont + (1 - beta) * skin
    rest = np.where(inside[..., None], (1 - kn[..., None]) * fill, 0).astype(np.float32)
    img = np.where(inside[..., None], kn[..., None] * img + (1 - kn[..., None]) * fill, 0).astype(np.float32)
    src = np.zeros((a, a), np.uint8)
    src[inside] = source
    # per-lookup weights: the seen views share a_seen, the mirrored lookups the mirror's share
    alpha = [a_seen * w / np.maximum(den, 1e-12) for w in ws]
    betas = [None if mw is None else (1 - a_seen) * a_mirror * mw / np.maximum(mden, 1e-12) for mw in mws]
    margin = 2  # texels into the gutter: the bilinear upsampling at the chart's edge reads them

    def grid(values):
        if values is None:
            return None
        out = np.zeros((a, a) + values.shape[1:], np.float32)
        out[inside] = values
        return layout.pad(out, margin)

    return _BlendPlan(xy=[grid(xy) for xy in xys], alpha=[grid(w) for w in alpha],
                      xy_mirror=[grid(m) for m in mxys], beta=[grid(b) for b in betas],
                      rest=layout.pad(rest, margin), outside=layout.pad(img, pad), source=layout.pad(src, margin),
                      gains=gains, skin=skin)


def _on(where: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values (m, ...) of the texels where ``where`` (n,) is set -> (n, ...), zero elsewhere."""
    out = np.zeros((len(where),) + values.shape[1:])
    out[where] = values
    return out


def _compose(plan: _BlendPlan, photos: list, inside: np.ndarray, size: int) -> np.ndarray:
    """The (size, size, 3) uint8 texture from the plan: the photo lookups at full size."""
    a = plan.rest.shape[0]

    def up(x):
        return x if a == size else cv2.resize(x, (size, size), interpolation=cv2.INTER_LINEAR)

    acc = up(plan.rest).copy()
    for photo, xy, w in [*zip(photos, plan.xy, plan.alpha), *zip(photos, plan.xy_mirror, plan.beta)]:
        if xy is None or not w.any():
            continue
        # the (x, y) map as one two-channel array: OpenCV reads it in place
        c = cv2.remap(photo, up(xy), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        cv2.accumulateProduct(c, cv2.merge([up(w)] * 3), acc)
    out = up(plan.outside)
    cv2.copyTo(acc, inside.view(np.uint8), out)
    return cv2.convertScaleAbs(out)  # rounded and saturated to uint8 (all terms are >= 0)


def _soft(weight_sum, inside, size, feather):
    """Per-texel opacity in [0, 1] of a summed view weight, smoothed in UV space (no speckle or
    hard edges where coverage flickers)."""
    a = np.zeros((size, size), np.float32)
    a[inside] = np.clip(weight_sum / (2 * MIN_WEIGHT), 0, 1) ** 2
    return np.clip(cv2.GaussianBlur(a, (0, 0), feather / 2)[inside], 0, 1).astype(np.float64)


def textured_obj_files(path: str | Path, vertices_m: np.ndarray, template: Template, texture: Texture,
                       header: str = "") -> dict[Path, bytes]:
    """The files of a textured OBJ, by path: ``path`` (.obj, metres, with UVs), ``path.mtl`` and
    ``path.png`` (the texture), for :func:`glvd_core.io.write_together`."""
    from ..io import obj_text

    path = Path(path)
    png, mtl = path.with_suffix(".png"), path.with_suffix(".mtl")
    body = obj_text(vertices_m, template.faces, template.uvs, header=header)
    return {path: (f"mtllib {mtl.name}\nusemtl glvd_face\n" + body).encode(),
            mtl: (f"# GLVD photo texture\nnewmtl glvd_face\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
                  f"map_Kd {png.name}\n").encode(),
            png: texture.png_bytes()}


def write_textured_obj(path: str | Path, vertices_m: np.ndarray, template: Template, texture: Texture,
                       header: str = "") -> tuple:
    """Write ``path`` (.obj, metres, with UVs), ``path.mtl`` and ``path.png`` (the texture), all or
    nothing. Returns the three paths."""
    from ..io import write_together

    files = textured_obj_files(path, vertices_m, template, texture, header)
    write_together(files)
    return tuple(files)
