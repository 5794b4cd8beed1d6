"""The fitting stage: after the descent, fit the face to the evidence in the user's own photos.

numpy only (no torch): it runs wherever the extension runs. What moves (all in the result's
output frame, ``X = s R S + t``):

- the head's similarity (s, R, t), its scale held near the descent's with one view;
- 100 ICT identity weights and, optionally, 57 expression weights (bounded to [0, 1]), both
  added to the descent's shape and held near zero by their priors;
- each view's camera when the cameras were estimated from landmarks (never when given).

``S = mean + D0 + Bi wi + Be we``: ``D0`` is the descent's shape beyond the mean template (kept,
so the fit starts exactly at the descent's result, weights 0). The evidence, per view:

- points: MediaPipe's 478 points, each tied to its calibrated surface place
  (:mod:`.dense_points`), weighted by its measured spread and by how squarely its surface faces
  the camera (near the contour the detector's points slide along the outline);
- outline: where a head mask is given, the signed distance of the mesh's outer occluding
  contour to the mask's boundary (:mod:`.outline`).

Cauchy-robust; a view whose points disagree with the others' is down-weighted and named.
Gauss-Newton with Levenberg damping and analytic Jacobians; every iteration is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..cameras import Camera
from ..expression.shape_space import identity_modes
from ..geometry import umeyama
from ..render.raster import vertex_normals
from ..template import Template
from .dense_points import face_size_px, load_dense_points
from .outline import MaskOutline, contour_vertices, face_outline_region
from .pins import pin_arrays

if TYPE_CHECKING:  # the fit runs without torch; a Reconstruction is only read here
    from ..reconstruct import Reconstruction
from .options import FitOptions


@dataclass
class ViewEvidence:
    """What one photo offers the fit.

    Attributes:
        camera: the photo's camera in the result's output frame (original image pixels).
        points478: (478, >=2) MediaPipe points in the photo's pixels, or None (no detection).
        mask: (H, W) head mask in the photo's pixels (0 outside, >0 inside), or None: its
            outline is the outline term's evidence.
        pins: the artist's pins on this photo (:mod:`.pins`), pulled to their pixels as far as
            the shape space allows.
    """

    camera: Camera
    points478: np.ndarray | None = None
    mask: np.ndarray | None = None
    pins: list = field(default_factory=list)


@dataclass
class FitResult:
    """Attributes:
        steps: (F, V, 3) float32 metres, the shape after each fit iteration (F may be 0).
        identity: (100,) identity weights; expression: ICT name -> weight (empty when not fitted).
        cameras: the views' cameras after the fit (refined when they were estimated).
        view_residuals: per view, the median point residual in spreads (None: no points).
        pin_errors_px: per view, each pin's remaining distance to its pixel after the fit.
        notes: what the fit did that a user should know (outlier views, fallback).
        seconds: wall time.
    """

    steps: np.ndarray
    identity: np.ndarray
    expression: dict
    cameras: list
    view_residuals: list
    pin_errors_px: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def fell_back(self) -> bool:
        return len(self.steps) == 0


def _skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices: _skew(a) @ b = a x b."""
    z = np.zeros(v.shape[:-1])
    return np.stack([np.stack([z, -v[..., 2], v[..., 1]], -1), np.stack([v[..., 2], z, -v[..., 0]], -1),
                     np.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def fit_to_photos(template: Template, vertices_m: np.ndarray, views: list[ViewEvidence],
                  options: FitOptions | None = None, cameras_estimated: bool = False) -> FitResult:
    """Fit the descent's result ``vertices_m`` (V, 3, output frame, metres) to ``views``.

    ``cameras_estimated``: the cameras came from landmarks (several photos without cameras), so
    each view's camera is refined too (view 0's stays: it fixes the frame). Never raises on
    bad evidence: with no usable view, or a fit that fails or diverges, the result has no steps
    and a note says why (the caller keeps the descent's result)."""
    o = options or FitOptions()
    t0 = time.perf_counter()
    X0 = np.asarray(vertices_m, np.float64)
    cams = [v.camera for v in views]
    usable = [i for i, v in enumerate(views)
              if (o.points and v.points478 is not None) or (o.outline and v.mask is not None) or v.pins]
    empty = FitResult(np.zeros((0,) + X0.shape, np.float32), np.zeros(0), {}, cams, [None] * len(views))
    if o.iterations == 0:
        return empty
    if not usable:
        empty.notes.append("fit to photos: no view has MediaPipe points or a mask; the descent's result is kept")
        return empty
    try:
        res = _fit(template, X0, views, usable, o, cameras_estimated)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError) as e:
        empty.notes.append(f"fit to photos failed ({type(e).__name__}: {e}); the descent's result is kept")
        empty.seconds = time.perf_counter() - t0
        return empty
    res.seconds = time.perf_counter() - t0
    return res


def fit_reconstruction(template: Template, reconstruction: Reconstruction, options: FitOptions | None = None,
                       masks: list | None = None, pins: list | None = None) -> FitResult:
    """:func:`fit_to_photos` on a :class:`~glvd_core.reconstruct.Reconstruction`: its last descent
    step, its cameras and MediaPipe points, with per-view head ``masks`` and ``pins`` (lists, None
    for none)."""
    r = reconstruction
    n = len(r.cameras)
    masks = masks or [None] * n
    pins = pins or [[]] * n
    evidence = [ViewEvidence(c, p, m, list(q)) for c, p, m, q in zip(r.cameras, r.landmarks478, masks, pins)]
    return fit_to_photos(template, r.final_vertices, evidence, options, r.cameras_estimated)


class _Points:
    """MediaPipe's points in one view: residuals (uv - observed) / spread, 2 per point."""

    kind = "points"

    def __init__(self, obs: np.ndarray, sig: np.ndarray, dense):
        self.obs, self.sig, self.dense = obs, sig, dense
        self.weight = np.ones(len(obs))

    def locations(self, V: np.ndarray, camera: Camera, template: Template, o: FitOptions):
        return self.dense.vertices, self.dense.bary

    def residual(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 2) projections -> residuals (n, 2) and d residual / d uv (n, 2, 2)."""
        r = (uv - self.obs) / self.sig[:, None]
        return r, np.eye(2)[None] / self.sig[:, None, None]


class _Pins:
    """The artist's pins in one view: residuals (uv - pixel) / ``pin_sigma_px``, 2 per pin, never
    discounted as outliers (a pin is the artist's word)."""

    kind = "pins"

    def __init__(self, pins: list, sigma_px: float):
        self.idx, self.bary, self.target = pin_arrays(pins)
        self.sig = sigma_px
        self.weight = np.ones(len(self.idx))

    def locations(self, V: np.ndarray, camera: Camera, template: Template, o: FitOptions):
        return self.idx, self.bary

    def residual(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (uv - self.target) / self.sig, np.broadcast_to(np.eye(2) / self.sig, (len(uv), 2, 2))


class _Outline:
    """A mask's outline in one view: the signed distance of each outer-contour vertex to it, in
    spreads, 1 per vertex."""

    kind = "outline"

    def __init__(self, outline: MaskOutline, sig_px: float, weight: float):
        self.outline, self.sig, self.w = outline, sig_px, weight
        self.weight = np.ones(0)

    def locations(self, V: np.ndarray, camera: Camera, template: Template, o: FitOptions):
        region = face_outline_region(template) if o.outline_region == "face" else None
        ids = contour_vertices(V, template, camera, region=region)
        self.weight = np.full(len(ids), self.w)
        return ids[:, None].repeat(3, 1), np.tile([1.0, 0.0, 0.0], (len(ids), 1))

    def residual(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d, g = self.outline.sample(uv)
        return d[:, None] / self.sig, g[:, None, :] / self.sig


def _fit(template: Template, X0: np.ndarray, views: list, usable: list, o: FitOptions,
         cameras_estimated: bool) -> FitResult:
    dense = load_dense_points(template)
    mean = template.vertices_m.astype(np.float64)
    Bi = identity_modes(template).astype(np.float64)  # (100, V, 3)
    Be = template.expression_modes_m.astype(np.float64)  # (57, V, 3)
    ni, ne = len(Bi), len(Be) if o.expression else 0
    sel = np.asarray(template.narrow_face_mask, bool)
    s, R, t = umeyama(mean[sel], X0[sel])  # the descent's pose; its shape beyond the mean is D0
    base = ((X0 - t) @ R) / s  # the descent's shape in the template frame: mean + D0
    Bl = np.concatenate([Bi, Be]) if o.expression else Bi  # (M, V, 3) the fitted linear modes
    nl = ni + ne
    multi = len(views) > 1
    cams = [v.camera for v in views]
    Rc = [c.R.copy() for c in cams]
    tc = [c.t.copy() for c in cams]
    terms = {i: [] for i in usable}
    for i in usable:
        v = views[i]
        if o.points and v.points478 is not None:
            p = np.asarray(v.points478, np.float64)
            if p.ndim != 2 or p.shape[0] != 478 or p.shape[1] < 2 or not np.isfinite(p[:, :2]).all():
                raise ValueError(f"view {i}: expected (478, 2+) finite MediaPipe points, got shape {p.shape}")
            terms[i].append(_Points(p[:, :2], o.noise_scale * dense.sigma * face_size_px(p), dense))
        if v.pins:
            terms[i].append(_Pins(v.pins, o.pin_sigma_px))
        if o.outline and v.mask is not None:
            ol = MaskOutline(v.mask)
            size = np.sqrt(max(float((ol.sdf < 0).sum()), 1.0))  # the head's size in pixels
            terms[i].append(_Outline(ol, o.outline_sigma * size, o.outline_weight))
    refine = [i for i in usable if cameras_estimated and i != 0]
    view_w = {i: 1.0 for i in usable}
    n_pose = 7
    n_par = n_pose + nl + 6 * len(refine)
    col_cam = {i: n_pose + nl + 6 * k for k, i in enumerate(refine)}
    prior_prec = np.concatenate([np.full(ni, o.identity_prior), np.full(ne, o.expression_prior)])
    log_s0 = np.log(s)
    scale_prec = o.scale_prior if not multi else o.scale_prior * 1e-4

    at_fixed = {}  # (view, term) -> the shape and modes at locations that never move (points, pins)

    def setup(V, Rc, tc):
        """Per view and term: where its evidence sits on the surface (fixed until the next
        accepted step) and each location's weight (frontality for the points)."""
        geo = {}
        n = None  # V's vertex normals, once per call, for every view's frontality
        for i in usable:
            cam = Camera(Rc[i], tc[i], cams[i].K, cams[i].width, cams[i].height)
            for k, term in enumerate(terms[i]):
                idx, bary = term.locations(V, cam, template, o)
                w = term.weight.copy()
                if term.kind == "points" and o.grazing:
                    if n is None:
                        n = vertex_normals(V, template.faces).astype(np.float64)
                    nb = np.einsum("jkc,jk->jc", n[idx], bary)
                    nb /= np.linalg.norm(nb, axis=1, keepdims=True) + 1e-12
                    P = np.einsum("jkc,jk->jc", V[idx], bary)
                    d = cam.center_world - P
                    w = w * np.clip((nb * d).sum(1) / (np.linalg.norm(d, axis=1) + 1e-12) / 0.5, 0.0, 1.0)
                if term.kind == "outline" or (i, k) not in at_fixed:
                    at = (np.einsum("jkc,jk->jc", base[idx], bary), np.einsum("mjkc,jk->mjc", Bl[:, idx], bary))
                    if term.kind != "outline":
                        at_fixed[i, k] = at
                else:
                    at = at_fixed[i, k]
                geo[i, k] = at + (w,)
        return geo

    def evaluate(s, R, t, w, Rc, tc, geo, jac=False):
        """Residuals {(view, term): (n, d)}; with ``jac``, also the Gauss-Newton system."""
        out = {}
        H = np.zeros((n_par, n_par)) if jac else None
        g = np.zeros(n_par) if jac else None
        for (i, k), (Sb, SB, lw) in geo.items():
            if len(lw) == 0:
                continue
            S = Sb + np.tensordot(w, SB, 1)
            X = s * S @ R.T + t
            y = X @ Rc[i].T + tc[i]
            if (y[:, 2] <= 1e-6).any():
                raise ValueError(f"view {i}: the face went behind the camera")
            P = y @ cams[i].K.T
            uv = P[:, :2] / P[:, 2:3]
            r, dr_duv = terms[i][k].residual(uv)
            out[i, k] = r
            if not jac:
                continue
            sRS = s * S @ R.T
            dX = np.zeros((len(S), 3, n_pose + nl))
            dX[:, :, 0:3] = -_skew(sRS)  # small rotation applied after R
            dX[:, :, 3] = sRS  # d log s
            dX[:, :, 4:7] = np.eye(3)
            dX[:, :, 7:] = s * np.einsum("ij,mpj->pim", R, SB)
            d_uv = (cams[i].K[None, :2] - uv[:, :, None] * cams[i].K[None, 2:3]) / P[:, 2, None, None]  # (n, 2, 3)
            d_r = np.einsum("pru,puj->prj", dr_duv, d_uv)  # (n, d, 3) d residual / d y
            J = np.zeros(r.shape + (n_par,))
            J[..., :n_pose + nl] = np.einsum("prj,jk,pkn->prn", d_r, Rc[i], dX)
            if i in col_cam:
                c = col_cam[i]
                J[..., c:c + 3] = d_r @ -_skew(X @ Rc[i].T)
                J[..., c + 3:c + 6] = d_r
            rw = (1.0 if terms[i][k].kind == "pins" else robust_w(r) * view_w[i]) * lw
            Jf = J.reshape(-1, n_par)
            wf = np.repeat(rw, r.shape[1])
            H += Jf.T @ (Jf * wf[:, None])
            g += Jf.T @ (wf * r.ravel())
        return out, H, g

    def robust_w(r):
        if o.robust == "l2":
            return np.ones(r.shape[0])
        return 1 / (1 + (r ** 2).sum(1) / o.cauchy_scale ** 2)

    def cost(res, geo, s, w):
        c = 0.0
        for (i, k), r in res.items():
            e2 = (r ** 2).sum(1)
            if terms[i][k].kind == "pins":
                c += 0.5 * (geo[i, k][2] * e2).sum()
                continue
            rho = (o.cauchy_scale ** 2 * np.log1p(e2 / o.cauchy_scale ** 2)) if o.robust == "cauchy" else e2
            c += 0.5 * view_w[i] * (geo[i, k][2] * rho).sum()
        return c + 0.5 * (prior_prec * w ** 2).sum() + 0.5 * scale_prec * (np.log(s) - log_s0) ** 2

    def shape_out(s, R, t, w):
        return s * (base + np.tensordot(w, Bl, 1)) @ R.T + t

    w = np.zeros(nl)
    lam = 1e-3
    geo = setup(X0, Rc, tc)
    res, H, g = evaluate(s, R, t, w, Rc, tc, geo, jac=True)
    c_now = cost(res, geo, s, w)
    steps, notes = [], []
    for it in range(o.iterations):
        H[7:7 + nl, 7:7 + nl] += np.diag(prior_prec)
        g[7:7 + nl] += prior_prec * w
        H[3, 3] += scale_prec
        g[3] += scale_prec * (np.log(s) - log_s0)
        for c in col_cam.values():  # cameras stay near their estimates unless the evidence disagrees
            H[c:c + 6, c:c + 6] += np.eye(6) * 1e-2
        accepted = False
        for _ in range(8):  # Levenberg: raise the damping until the robust cost goes down
            d = -np.linalg.solve(H + lam * np.diag(np.diag(H) + 1e-9), g)
            if not np.isfinite(d).all():
                raise FloatingPointError("non-finite step")
            R_n = cv2.Rodrigues(d[0:3])[0] @ R
            s_n = s * np.exp(np.clip(d[3], -0.5, 0.5))
            t_n = t + d[4:7]
            w_n = w + d[7:7 + nl]
            if ne:
                w_n[ni:] = np.clip(w_n[ni:], 0.0, 1.0)
            Rc_n, tc_n = list(Rc), list(tc)
            for i, c in col_cam.items():
                Rc_n[i], tc_n[i] = cv2.Rodrigues(d[c:c + 3])[0] @ Rc[i], tc[i] + d[c + 3:c + 6]
            try:
                res_n = evaluate(s_n, R_n, t_n, w_n, Rc_n, tc_n, geo)[0]
                c_n = cost(res_n, geo, s_n, w_n)
            except ValueError:
                c_n = np.inf
            if np.isfinite(c_n) and c_n <= c_now:
                s, R, t, w, Rc, tc = s_n, R_n, t_n, w_n, Rc_n, tc_n
                lam = max(lam / 3, 1e-7)
                accepted = True
                break
            lam *= 10
        if not accepted:
            break  # converged: no damping makes it better
        V = shape_out(s, R, t, w)
        steps.append(V.astype(np.float32))
        geo = setup(V, Rc, tc)  # the contour and the frontality follow the new shape
        res, H, g = evaluate(s, R, t, w, Rc, tc, geo, jac=True)
        if multi and it == 1:  # once the fit has settled a little, find views that disagree
            med = {}
            for (i, k), r in res.items():
                if terms[i][k].kind == "points":
                    med[i] = float(np.median(np.linalg.norm(r, axis=1)))
            changed = False
            for i, m in med.items():
                others = [med[j] for j in med if j != i]
                if others and m > o.view_outlier_ratio * np.median(others):
                    view_w[i] = (np.median(others) / m) ** 2
                    changed = True
                    notes.append(f"fit to photos: photo {i + 1} disagrees with the others (median point residual "
                                 f"{m:.1f} against {np.median(others):.1f} spreads); it counts "
                                 f"{view_w[i]:.0%} as much (wrong camera, another face, or a bad detection?)")
            if changed:  # a view's weight changed: the system changes with it
                res, H, g = evaluate(s, R, t, w, Rc, tc, geo, jac=True)
        c_now = cost(res, geo, s, w)
    if steps:
        V = steps[-1].astype(np.float64)
        if not np.isfinite(V).all():
            raise FloatingPointError("the fit produced non-finite vertices")
        a, Ra, ta = umeyama(V[sel], X0[sel])  # shape change, not placement: one photo fixes no depth
        move = np.linalg.norm(a * V[sel] @ Ra.T + ta - X0[sel], axis=1).max()
        if move > o.max_move_m:
            raise FloatingPointError(f"the fit changed the face's shape by {move * 1e3:.0f} mm somewhere, "
                                     f"beyond {o.max_move_m * 1e3:.0f} mm")
    out_cams = [Camera(Rc[i], tc[i], cams[i].K, cams[i].width, cams[i].height) if i in col_cam else cams[i]
                for i in range(len(views))]
    view_res = [None] * len(views)
    for (i, k), r in res.items():
        if terms[i][k].kind == "points":
            view_res[i] = float(np.median(np.linalg.norm(r, axis=1)))
    pin_err = [[] for _ in views]
    for (i, k), r in res.items():
        if terms[i][k].kind == "pins":
            pin_err[i] = (np.linalg.norm(r, axis=1) * terms[i][k].sig).tolist()
    expr = dict(zip(template.expression_names, w[ni:].tolist())) if ne else {}
    return FitResult(np.array(steps, np.float32).reshape((-1,) + X0.shape), w[:ni].copy(), expr, out_cams, view_res,
                     pin_err, notes)
