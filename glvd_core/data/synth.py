"""Synthetic scenes: ICT shapes, procedural appearance, random cameras, rendered with
:mod:`glvd_core.render.raster`. Everything is a pure function of (seed, scene index)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..cameras import Camera, look_at_rotation
from ..ict import ICTModel
from ..render.raster import rasterize, vertex_normals


@dataclass
class SceneConfig:
    """Sampling ranges of the synthetic data engine (degrees, metres, probabilities)."""

    size: int = 256                      # rendered image side, pixels
    yaw_deg: float = 60.0                # head yaw sampled in [-yaw, yaw]
    pitch_deg: float = 25.0              # head pitch in [-pitch, pitch]
    roll_deg: float = 15.0               # head roll in [-roll, roll]
    fov_deg: tuple = (10.0, 50.0)        # camera field of view range
    fill: tuple = (0.8, 1.05)            # face-region height x 1.25 / image height
    offset: float = 0.08                 # head-centre offset, fraction of the image side
    p_neutral: float = 0.35              # probability of a neutral expression
    max_expressions: int = 4             # active expression modes otherwise (1..max)
    identity_scale: float = 1.0          # std of the identity weights
    p_eyelashes: float = 0.7
    p_plain: float = 0.0                 # probability of a plain appearance: one uniform albedo on
                                         # every material (no lips, brows, irises, lashes, pores),
                                         # like an untextured scan; 0 leaves the random stream, and
                                         # so every earlier dataset, byte-identical
    p_closed_eyes: float = 0.0           # probability that a plain scene closes both eyes
                                         # (eyeBlink_L/R = 1, as a scan subject often does)


# ------------------------------------------------------------------------ static per-model data
SKIN_TONES = np.array([  # sRGB albedo across the human range (light -> dark)
    [0.96, 0.82, 0.72], [0.90, 0.72, 0.60], [0.82, 0.62, 0.49], [0.70, 0.50, 0.37],
    [0.56, 0.38, 0.27], [0.42, 0.28, 0.19], [0.30, 0.20, 0.14]])
SKIP_MATERIALS = ("M_EyeBlend", "M_EyeOcclusion", "M_LacrimalFluid")


@dataclass
class RenderModel:
    tris: np.ndarray            # (F, 3) triangles rendered
    tri_material: np.ndarray    # (F,) material names index
    tri_uv: np.ndarray          # (F, 3, 2) per-corner UV
    lash_tri: np.ndarray        # (F,) bool
    lips: np.ndarray            # (N,) per-vertex masks in [0, 1]
    brows: np.ndarray
    beard: np.ndarray
    cheeks: np.ndarray
    eye_center: np.ndarray      # (2, 3) eyeball centres, neutral
    eye_axis: np.ndarray        # (2, 3)
    material_names: tuple
    head_center: np.ndarray     # (3,) pivot, metres
    head_height: float


def _poly_mask(xy: np.ndarray, polys, thickness_m: float = 0.0, blur_m: float = 0.002, filled=True):
    """Rasterise polygons/polylines given in frontal (x, y) metres and sample at vertices."""
    res = 0.0005
    lo = xy.min(0) - 0.01
    shape = (np.ceil((xy.max(0) - lo + 0.01) / res).astype(int))[::-1]
    img = np.zeros(shape, np.float32)
    for p in polys:
        pts = np.round((p - lo) / res).astype(np.int32)[:, None, :]
        if filled:
            cv2.fillPoly(img, [pts], 1.0)
        else:
            cv2.polylines(img, [pts], False, 1.0, thickness=max(1, int(thickness_m / res)))
    s = blur_m / res
    img = cv2.GaussianBlur(img, (0, 0), s)
    ij = np.round((xy - lo) / res).astype(int)
    return img[np.clip(ij[:, 1], 0, shape[0] - 1), np.clip(ij[:, 0], 0, shape[1] - 1)]


@lru_cache(maxsize=2)
def render_model(ict: ICTModel) -> RenderModel:
    names = ict.material_names
    keep = ~np.isin(np.array(names)[ict.triangle_material], SKIP_MATERIALS)
    tris = ict.triangles[keep]
    mat = ict.triangle_material[keep]
    tri_uv = ict.uvs[ict.triangle_uvs[keep]]
    V = ict.neutral_m
    lm = V[ict.landmarks68]
    xy = V[:, :2]
    front = (V[:, 2] > lm[:, 2].min() - 0.04) & (np.arange(len(V)) < ict.regions["face"][1])
    lips = _poly_mask(xy, [lm[48:60, :2]], blur_m=0.0012) * front
    brow_r = lm[17:22, :2] + [0, 0.004]
    brow_l = lm[22:27, :2] + [0, 0.004]
    brows = _poly_mask(xy, [brow_r, brow_l], thickness_m=0.009, blur_m=0.002, filled=False) * front
    jaw = np.concatenate([lm[2:15, :2], lm[[35, 33, 31], :2] - [0, 0.004]])
    beard = _poly_mask(xy, [jaw], blur_m=0.006) * front * (1 - lips)
    cheek_pts = [0.5 * (lm[2] + lm[31]), 0.5 * (lm[14] + lm[35]), lm[30]]
    cheeks = sum(np.exp(-0.5 * (np.linalg.norm(V - c, axis=1) / 0.02) ** 2) for c in cheek_pts) * front
    eyes_c, eyes_a = [], []
    for reg in ("eyeball_right", "eyeball_left"):
        a, b = ict.regions.get(reg, ict.regions["eyeball_left"])
        P = V[a:b]
        c = P.mean(0)
        eyes_c.append(c)
        eyes_a.append(np.array([0.0, 0.0, 1.0]))
    face = V[: ict.regions["face"][1]]
    head = V[: ict.regions["head_and_neck"][1]]
    return RenderModel(tris=tris, tri_material=mat, tri_uv=tri_uv,
                       lash_tri=np.array(names)[mat] == "M_EyeLashes",
                       lips=lips.astype(np.float32), brows=brows.astype(np.float32),
                       beard=beard.astype(np.float32), cheeks=np.clip(cheeks, 0, 1).astype(np.float32),
                       eye_center=np.array(eyes_c), eye_axis=np.array(eyes_a), material_names=names,
                       head_center=np.array([0.0, face[:, 1].mean(), head[:, 2].mean()]),
                       head_height=float(face[:, 1].max() - face[:, 1].min()) * 1.25)


# ------------------------------------------------------------------------ scene sampling
@dataclass
class Scene:
    identity: np.ndarray      # (100,)
    expression: np.ndarray    # (57,)
    vertices_ict_m: np.ndarray  # (26719, 3) world (= ICT canonical frame)
    cameras: list
    appearance: dict


def sample_expression(rng: np.random.Generator, ict: ICTModel, cfg: SceneConfig) -> np.ndarray:
    e = np.zeros(len(ict.expression_names), np.float32)
    if rng.random() < cfg.p_neutral:
        return e
    names = ict.expression_names
    usable = [i for i, n in enumerate(names) if not n.startswith("Pupil")]
    for i in rng.choice(usable, size=rng.integers(1, cfg.max_expressions + 1), replace=False):
        w = rng.uniform(0.0, 1.0)
        e[i] = w
        n = names[i]
        if n[-2:] in ("_L", "_R") and rng.random() < 0.6:  # often symmetric
            twin = n[:-1] + ("R" if n[-1] == "L" else "L")
            e[names.index(twin)] = w
    return e


def sample_camera(rng: np.random.Generator, rm: RenderModel, cfg: SceneConfig, center: np.ndarray) -> Camera:
    R = look_at_rotation(rng.uniform(-cfg.yaw_deg, cfg.yaw_deg), rng.uniform(-cfg.pitch_deg, cfg.pitch_deg),
                         rng.uniform(-cfg.roll_deg, cfg.roll_deg))
    fov = rng.uniform(*cfg.fov_deg)
    s = cfg.size
    f = 0.5 * s / math.tan(math.radians(fov) / 2)
    dist = f * rm.head_height / (rng.uniform(*cfg.fill) * s)
    off = rng.uniform(-cfg.offset, cfg.offset, 2) * s / f * dist
    t = np.array([off[0], off[1], dist]) - R @ center
    K = np.array([[f, 0, (s - 1) / 2], [0, f, (s - 1) / 2], [0, 0, 1]])
    return Camera(R, t, K, s, s)


def sample_appearance(rng: np.random.Generator, p_plain: float = 0.0) -> dict:
    """Procedural appearance; with probability ``p_plain`` (``plain=True``) the renderer uses only
    the skin ``tone`` (uniform on every material, no painted features, lashes or pores)."""
    pos = rng.uniform(0, len(SKIN_TONES) - 1)
    tone = np.array([np.interp(pos, np.arange(len(SKIN_TONES)), SKIN_TONES[:, c]) for c in range(3)])
    tone *= rng.uniform(0.93, 1.07, 3)
    iris = [np.array([0.25, 0.15, 0.08]), np.array([0.35, 0.22, 0.1]), np.array([0.2, 0.35, 0.55]),
            np.array([0.3, 0.4, 0.25]), np.array([0.45, 0.4, 0.3])][rng.integers(5)]
    return dict(
        tone=tone,
        waves=(rng.normal(0, 1, (6, 3)) / rng.uniform(0.03, 0.09, (6, 1)), rng.uniform(0, 2 * np.pi, 6),
               rng.uniform(0.01, 0.05, 6)),
        lip=rng.uniform(0.3, 0.8), brow=rng.uniform(0.3, 0.9), brow_color=rng.uniform(0.05, 0.35) * np.array([1, 0.8, 0.6]),
        beard=rng.uniform(0.2, 0.7) if rng.random() < 0.25 else 0.0, blush=rng.uniform(0.0, 0.25),
        iris=iris * rng.uniform(0.7, 1.3), pore=rng.uniform(0.02, 0.07), pore_seed=int(rng.integers(1 << 30)),
        lashes=rng.random() < 0.7, spec=rng.uniform(0.02, 0.15), shininess=rng.uniform(8, 40),
        plain=bool(p_plain > 0 and rng.random() < p_plain),
    )


def sample_lighting(rng: np.random.Generator) -> dict:
    d = rng.normal(0, 1, 3)
    d[2] = -abs(d[2]) - 0.3  # light mostly from the camera's side (camera looks along +z)
    d /= np.linalg.norm(d)
    color = np.clip(rng.normal(1.0, 0.08, 3), 0.8, 1.2)
    return dict(direction=d, intensity=rng.uniform(0.5, 1.1) * color, ambient=rng.uniform(0.15, 0.55) * color,
                wrap=rng.uniform(0.0, 0.5), fill_dir=-d * [1, 1, -1], fill=rng.uniform(0.0, 0.3))


def vertex_albedo(ict: ICTModel, rm: RenderModel, app: dict) -> np.ndarray:
    """(N, 3) linear-RGB albedo per ICT vertex."""
    V = ict.neutral_m
    W, ph, amp = app["waves"]
    low = 1 + (amp[:, None] * np.sin(W @ V.T + ph[:, None])).sum(0)[:, None]
    skin = app["tone"][None] * low
    skin = skin * (1 - app["blush"] * rm.cheeks[:, None] * np.array([0.0, 0.35, 0.3]))
    lipc = app["tone"] * np.array([0.85, 0.45, 0.45])
    skin = skin * (1 - app["lip"] * rm.lips[:, None]) + lipc * app["lip"] * rm.lips[:, None]
    skin = skin * (1 - app["brow"] * rm.brows[:, None]) + app["brow_color"] * app["brow"] * rm.brows[:, None]
    skin = skin * (1 - 0.55 * app["beard"] * rm.beard[:, None])
    return np.clip(skin, 0, 1) ** 2.2


def _noise_texture(seed: int, size: int = 512) -> np.ndarray:
    r = np.random.default_rng(seed)
    n = cv2.GaussianBlur(r.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 0.8)
    return n / (n.std() + 1e-6)


def random_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float sRGB background: gradient, noise, random shapes, blur."""
    c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    a = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / size
    g = (np.cos(a) * xx + np.sin(a) * yy)
    g = (g - g.min()) / (np.ptp(g) + 1e-6)
    img = c0 * (1 - g[..., None]) + c1 * g[..., None]
    for _ in range(rng.integers(0, 8)):
        col = tuple(float(x) for x in rng.uniform(0, 1, 3))
        kind = rng.integers(3)
        p = tuple(int(x) for x in rng.integers(0, size, 2))
        if kind == 0:
            cv2.circle(img, p, int(rng.integers(4, size // 3)), col, -1)
        elif kind == 1:
            q = tuple(int(x) for x in rng.integers(0, size, 2))
            cv2.rectangle(img, p, q, col, -1)
        else:
            q = tuple(int(x) for x in rng.integers(0, size, 2))
            cv2.line(img, p, q, col, int(rng.integers(1, 10)))
    blur = rng.uniform(0, 4)
    if blur > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    img = img + rng.uniform(0, 0.06) * rng.normal(0, 1, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def render_view(ict: ICTModel, rm: RenderModel, vertices_m: np.ndarray, cam: Camera, app: dict, light: dict,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render one view -> (uint8 RGB (H, W, 3), uint8 mask (H, W) in {0, 255})."""
    if app.get("plain"):
        return render_mesh(vertices_m, rm.tris[~rm.lash_tri], np.clip(app["tone"], 0, 1), cam, light, rng,
                           spec=app["spec"], shininess=app["shininess"])[0]
    tris = rm.tris if app["lashes"] else rm.tris[~rm.lash_tri]
    tmat = rm.tri_material if app["lashes"] else rm.tri_material[~rm.lash_tri]
    tuv = rm.tri_uv if app["lashes"] else rm.tri_uv[~rm.lash_tri]
    pc = cam.world_to_camera(vertices_m).astype(np.float32)
    r = rasterize(pc, tris, cam.K, cam.height, cam.width)
    cov = r.coverage
    t = r.tri[cov]
    b = r.bary[cov]
    vt = tris[t]
    albedo_v = vertex_albedo(ict, rm, app)
    nrm_v = vertex_normals(pc, rm.tris)
    n = (nrm_v[vt] * b[..., None]).sum(1)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-9
    p = (pc[vt] * b[..., None]).sum(1)
    view = -p / (np.linalg.norm(p, axis=1, keepdims=True) + 1e-9)
    n = np.where(((n * view).sum(1) < 0)[:, None], -n, n)  # two-sided
    alb = (albedo_v[vt] * b[..., None]).sum(1)
    uv = (tuv[t] * b[..., None]).sum(1)
    names = np.array(rm.material_names)[tmat[t]]
    noise = _noise_texture(app["pore_seed"])
    ij = (np.clip(uv, 0, 0.9999) * noise.shape[0]).astype(int)
    skin = np.isin(names, ("M_Face", "M_BackHead"))
    alb[skin] *= (1 + app["pore"] * noise[ij[skin, 1], ij[skin, 0]])[:, None]
    if app["beard"] > 0:
        stub = (noise[(ij[:, 1] * 3) % noise.shape[0], (ij[:, 0] * 3) % noise.shape[1]] > 1.0)
        beard_w = (rm.beard[vt] * b).sum(1) * app["beard"]
        alb = np.where((skin & stub)[:, None], alb * (1 - 0.8 * beard_w[:, None]), alb)
    # eyes: sclera, iris and pupil from the angle to the eyeball axis (view-independent)
    pw = (vertices_m[vt] * b[..., None]).sum(1)
    eye = np.isin(names, ("M_IrisLeft", "M_IrisRight", "M_ScleraLeft", "M_ScleraRight"))
    if eye.any():
        ec = rm.eye_center[np.where(np.char.find(names[eye], "Left") >= 0, 1, 0)]
        d = pw[eye] - ec
        cosang = d[:, 2] / (np.linalg.norm(d, axis=1) + 1e-9)
        col = np.where((cosang > 0.965)[:, None], np.array([0.02, 0.02, 0.02]),
                       np.where((cosang > 0.86)[:, None], app["iris"] ** 2.2, np.array([0.8, 0.75, 0.72])))
        alb[eye] = col
    alb[names == "M_Teeth"] = np.array([0.8, 0.77, 0.68])
    alb[names == "M_GumsTongue"] = np.array([0.45, 0.12, 0.12])
    alb[names == "M_EyeLashes"] = np.array([0.02, 0.015, 0.01])
    color = shade(n, view, alb, light, np.where(eye, 0.6, app["spec"]), np.where(eye, 200.0, app["shininess"]))
    return composite(rng, cam, cov, color)


def shade(n: np.ndarray, view: np.ndarray, albedo: np.ndarray, light: dict, ks: float, shininess: float) -> np.ndarray:
    """Wrapped key light + fill + ambient, Blinn-Phong highlights; linear albedo -> sRGB colour."""
    ld = light["direction"]
    ndl = n @ (-ld)
    diff = np.clip((ndl + light["wrap"]) / (1 + light["wrap"]), 0, None)[:, None] * light["intensity"]
    diff = diff + light["ambient"] + light["fill"] * np.clip(n @ (-light["fill_dir"]), 0, None)[:, None]
    h = (-ld + view)
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    spec = (ks * np.clip((n * h).sum(1), 0, None) ** shininess * (ndl > 0))[:, None] * light["intensity"]
    return np.clip(albedo * diff + spec, 0, 1) ** (1 / 2.2)


def composite(rng: np.random.Generator, cam: Camera, cov: np.ndarray, color: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colours of the covered pixels over a random background, slight blur and dither."""
    img = random_background(rng, cam.width)
    img = img.reshape(-1, 3)
    img[cov.ravel()] = color
    img = img.reshape(cam.height, cam.width, 3)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.7))
    rgb = (np.clip(img, 0, 1) * 255 + rng.uniform(0, 1, img.shape)).astype(np.uint8)
    return rgb, (cov * 255).astype(np.uint8)


def render_mesh(vertices_m: np.ndarray, tris: np.ndarray, albedo_srgb: np.ndarray, cam: Camera, light: dict,
                rng: np.random.Generator, spec: float = 0.05,
                shininess: float = 20.0) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """Render any mesh (world metres) with one sRGB albedo -> (RGB uint8, mask uint8)."""
    pc = cam.world_to_camera(vertices_m).astype(np.float32)
    r = rasterize(pc, tris, cam.K, cam.height, cam.width)
    cov = r.coverage
    vt = tris[r.tri[cov]]
    b = r.bary[cov]
    nrm = vertex_normals(pc, tris)
    n = (nrm[vt] * b[..., None]).sum(1)
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-9
    p = (pc[vt] * b[..., None]).sum(1)
    view = -p / (np.linalg.norm(p, axis=1, keepdims=True) + 1e-9)
    n = np.where(((n * view).sum(1) < 0)[:, None], -n, n)
    alb = np.broadcast_to(np.asarray(albedo_srgb, np.float64) ** 2.2, (len(n), 3))
    return composite(rng, cam, cov, shade(n, view, alb, light, spec, shininess)), r


def sample_scene(ict: ICTModel, rng: np.random.Generator, n_views: int, cfg: SceneConfig) -> Scene:
    rm = render_model(ict)
    identity = (rng.normal(0, 1, ict.identity_modes_m.shape[0]) * cfg.identity_scale).astype(np.float32)
    expression = sample_expression(rng, ict, cfg)
    cams = [sample_camera(rng, rm, cfg, rm.head_center) for _ in range(n_views)]
    app = sample_appearance(rng, cfg.p_plain)
    if app["plain"] and cfg.p_closed_eyes > 0 and rng.random() < cfg.p_closed_eyes:
        for n in ("eyeBlink_L", "eyeBlink_R"):
            expression[ict.expression_names.index(n)] = 1.0
    return Scene(identity, expression, ict.shape(identity, expression), cams, app)

