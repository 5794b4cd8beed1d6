"""Baselines for the evaluation table.

- mean template: the template where the descent starts (no image at all beyond the crop).
- linear 3DMM landmark fit: the classic approach — fit the 100 ICT identity weights and a
  rigid pose per view to the 2D landmarks by regularised least squares (Tikhonov prior
  ``lambda * |beta|^2`` on weights ~ N(0, 1)), then output the template-topology shape.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from scipy.optimize import least_squares

from .ict import ICTModel
from .preprocess.framing import PNP_LANDMARKS, solve_pnp
from .template import Template


@lru_cache(maxsize=2)
def template_identity_basis(template: Template, ict: ICTModel) -> np.ndarray:
    """(100, 7225, 3) ICT identity modes on the template, metres."""
    return template.from_ict(ict.identity_modes_m)


def fit_identity_to_landmarks(landmarks: list, cameras: list, template: Template, modes_m: np.ndarray,
                              prior: float = 1.0, world: bool = False, noise_px: float = 4.5,
                              prior_mean: np.ndarray | None = None) -> np.ndarray:
    """MAP fit of identity weights + pose to (68, 2) landmarks of each view: Gaussian landmark
    noise of ``noise_px`` at 256 px, weights ~ N(prior_mean, I / prior) (default N(0, 1)),
    ``modes_m`` (M, N, 3) the identity modes on the template (metres per unit weight).
    ``prior_mean`` (M,) is also where the weights start (e.g. another reading of the same face,
    such as the identity CNN's: the fit then moves it only as far as the landmarks ask).

    ``world=False`` (one view): pose is the head-to-camera transform and the result is in that
    camera's frame. ``world=True``: cameras are known (world->camera), one shared head pose in
    the world is fitted. Returns the weights w (M,) and the pose (R (3, 3), t (3,)) taking the
    centred shape ``mean - mean.mean(0) + w·modes`` to the output frame."""
    B = np.asarray(modes_m)
    n_modes = len(B)
    mean = template.vertices_m.astype(np.float64)
    c0 = mean.mean(0)
    lm_idx = PNP_LANDMARKS + list(range(0, 17))
    idx = template.landmarks68[lm_idx]
    Xm = mean[idx] - c0
    Bl = B[:, idx].astype(np.float64)
    obs = [np.asarray(l, np.float64)[lm_idx] for l in landmarks]
    # initial pose from PnP on the first view (head frame = template frame centred at c0)
    p0 = solve_pnp(landmarks[0], cameras[0], template)
    R0, t0 = p0.R, p0.t
    if world:  # head pose in the world: X_w = Rh X + th with camera 0 fixed
        R0 = cameras[0].R.T @ p0.R
        t0 = cameras[0].R.T @ (p0.t - cameras[0].t)
    w0 = np.zeros(n_modes) if prior_mean is None else np.asarray(prior_mean, np.float64).reshape(-1)
    if len(w0) != n_modes or not np.isfinite(w0).all():
        raise ValueError(f"prior_mean must be {n_modes} finite weights, got shape {np.shape(prior_mean)}")
    if not prior > 0:
        raise ValueError(f"prior (the weights' precision) must be > 0, not {prior}")
    x0 = np.concatenate([cv2.Rodrigues(R0)[0].ravel(), t0, w0])
    sigma = [noise_px * max(c.width, c.height) / 256 for c in cameras]  # landmark noise, pixels
    to_cam = [(c.R, c.t) if world else (np.eye(3), np.zeros(3)) for c in cameras]
    d_prior = np.concatenate([np.zeros((n_modes, 6)), np.sqrt(prior) * np.eye(n_modes)], 1)  # constant rows

    def shape(x):
        R, dR = cv2.Rodrigues(x[:3])  # dR (3, 9): d vec(R) / d x[:3]
        X = Xm + np.tensordot(x[6:], Bl, axes=1)
        return R, dR, X, X @ R.T + x[3:6]

    def residual(x):
        Y = shape(x)[3]
        res = []
        for cam, (Rc, tc), o, sg in zip(cameras, to_cam, obs, sigma):
            P = (Y @ Rc.T + tc) @ cam.K.T
            res.append(((P[:, :2] / P[:, 2:3]) - o).ravel() / sg)
        res.append(np.sqrt(prior) * (x[6:] - w0))  # MAP: weights ~ N(w0, I / prior)
        return np.concatenate(res)

    def jacobian(x):  # analytic: 4-7x faster than scipy's finite differences over 106 unknowns
        R, dR, X, Y = shape(x)
        dY = np.concatenate([np.einsum("kij,lj->lik", dR.reshape(3, 3, 3), X),  # d Y / d rotation
                             np.broadcast_to(np.eye(3), (len(X), 3, 3)),  # d Y / d translation
                             np.einsum("ij,mlj->lim", R, Bl)], 2)  # d Y / d weights: (L, 3, 6 + M)
        rows = []
        for cam, (Rc, tc), sg in zip(cameras, to_cam, sigma):
            P = (Y @ Rc.T + tc) @ cam.K.T
            uv = P[:, :2] / P[:, 2:3]
            d_uv = ((cam.K[None, :2] - uv[:, :, None] * cam.K[None, 2:3]) / P[:, 2, None, None]) @ Rc  # (L, 2, 3)
            rows.append((d_uv @ dY).reshape(-1, 6 + n_modes) / sg)
        return np.concatenate(rows + [d_prior])

    x = least_squares(residual, x0, jac=jacobian, method="trf", x_scale="jac", max_nfev=200).x
    return x[6:], cv2.Rodrigues(x[:3])[0], x[3:6]


def fit_3dmm_to_landmarks(landmarks: list, cameras: list, template: Template, ict: ICTModel,
                          n_modes: int = 100, prior: float = 1.0, world: bool = False,
                          noise_px: float = 4.5) -> np.ndarray:
    """The baseline: :func:`fit_identity_to_landmarks` with the first ``n_modes`` ICT identity
    modes; returns the fitted face (7225, 3) in metres, in the frame described there."""
    B = template_identity_basis(template, ict)[:n_modes]
    w, R, t = fit_identity_to_landmarks(landmarks, cameras, template, B, prior, world, noise_px)
    mean = template.vertices_m.astype(np.float64)
    shape = mean - mean.mean(0) + np.tensordot(w, B, axes=1)
    return (shape @ R.T + t).astype(np.float32)


def fit_identity_to_points(points_m: np.ndarray, landmarks68_m: np.ndarray, template: Template,
                           modes_m: np.ndarray, noise_m: float, iters: int = 30) -> tuple[np.ndarray, np.ndarray, tuple[float, np.ndarray, np.ndarray]]:
    """The shape-space oracle: MAP fit of identity weights (weights ~ N(0, 1)) + a similarity to a
    surface's sample points — non-rigid ICP on the scan metric's direction: each point is paired
    with its closest point on the mesh (barycentric weights of the face's corners) and the
    weights and a small similarity step are solved together, point-to-plane (linearised).

    ``points_m`` (P, 3) surface samples and ``landmarks68_m`` (68, 3) their landmarks (only to
    start the similarity), in any frame and scale; ``modes_m`` (M, N, 3) the modes on the
    template (M may be 0: the similarity alone); ``noise_m`` the points' noise along the surface
    normal, in the points' units. Uses no image: it bounds what any method that moves the
    template inside these modes can reach. Returns the weights (M,), the shape (N, 3) in the
    template frame and the similarity (s, R, t) taking the points' frame onto it."""
    from .geometry import closest_on_mesh, face_normals, similarity_from_step, similarity_step_columns, umeyama

    mean = template.vertices_m.astype(np.float64)
    B = np.asarray(modes_m, np.float64)
    M = len(B)
    pts = np.asarray(points_m, np.float64)
    faces = template.faces
    w, X = np.zeros(M), mean.copy()
    s, R, t = umeyama(np.asarray(landmarks68_m, np.float64), X[template.landmarks68])
    for _ in range(iters):
        g = s * pts @ R.T + t  # the points in the template frame
        _, q, f = closest_on_mesh(g, X, faces)
        corner = faces[f]  # (P, 3)
        bary = _barycentric(q, X[corner])
        n = face_normals(X, faces)[f]
        # n·(q + Bq dw + sigma q + omega x q + tau - g) = 0: linear in the step (dw, sigma, omega, tau)
        Bq = (bary[None, :, :, None] * B[:, corner]).sum(2)  # (M, P, 3): d q / d w
        A = np.concatenate([(Bq * n).sum(2).T, similarity_step_columns(q, n)], 1)
        rhs = ((g - q) * n).sum(1)
        lam = np.zeros(M + 7)
        lam[:M] = (noise_m * s) ** 2  # the prior on w + dw, the noise in the template frame's units
        x = np.linalg.solve(A.T @ A + np.diag(lam), A.T @ rhs - lam * np.concatenate([w, np.zeros(7)]))
        w = w + x[:M]
        # the model-side step Y = (1 + sigma) R_d X + tau, applied to the points as its inverse
        s_d, R_d, t_d = similarity_from_step(x[M:])
        s, R, t = s / s_d, R_d.T @ R, R_d.T @ (t - t_d) / s_d
        X = mean + np.tensordot(w, B, axes=1)
    return w, X, (s, R, t)


def _barycentric(q: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (P, 3) of points q (P, 3) in triangles tri (P, 3 corners, 3)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, q - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    den = np.maximum(d00 * d11 - d01 * d01, 1e-30)
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    return np.stack([1 - v - w, v, w], 1)
