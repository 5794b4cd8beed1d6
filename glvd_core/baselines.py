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
                              prior: float = 1.0, world: bool = False, noise_px: float = 4.5):
    """MAP fit of identity weights + pose to (68, 2) landmarks of each view: Gaussian landmark
    noise of ``noise_px`` at 256 px, weights ~ N(0, 1), ``modes_m`` (M, N, 3) the identity modes
    on the template (metres per unit weight).

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
    x0 = np.concatenate([cv2.Rodrigues(R0)[0].ravel(), t0, np.zeros(n_modes)])
    sigma = [noise_px * max(c.width, c.height) / 256 for c in cameras]  # landmark noise, pixels

    def residual(x):
        R = cv2.Rodrigues(x[:3])[0]
        X = Xm + np.tensordot(x[6:], Bl, axes=1)
        Y = X @ R.T + x[3:6]
        res = []
        for cam, o, sg in zip(cameras, obs, sigma):
            Z = cam.world_to_camera(Y) if world else Y
            uv = Z @ cam.K.T
            res.append(((uv[:, :2] / uv[:, 2:3]) - o).ravel() / sg)
        res.append(np.sqrt(prior) * x[6:])  # MAP: weights ~ N(0, 1)
        return np.concatenate(res)

    x = least_squares(residual, x0, method="trf", x_scale="jac", max_nfev=200).x
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
