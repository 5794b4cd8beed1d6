"""Estimate and remove the expression of a reconstructed face (the panel's "Neutral" option)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..template import Template
from .shape_space import identity_modes


@dataclass
class ExpressionFit:
    """A reconstruction explained in the ICT shape space.

    Attributes:
        expression: ICT expression name -> weight in [0, 1] (the template's 57 modes).
        identity: (100,) identity weights (prior N(0, 1)).
        scale, rotation, translation: the similarity ``vertices ≈ s R shape + t`` (shape in the
            template frame, metres).
        expression_offsets_m: (V, 3) the fitted expression's displacement in the frame of the
            fitted vertices (what :func:`neutralize` subtracts).
        residual_rms_mm: RMS distance over the fitted region between the vertices and the fit.
    """

    expression: dict
    identity: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    expression_offsets_m: np.ndarray
    residual_rms_mm: float


def fit_expression(template: Template, vertices: np.ndarray, noise_mm: float = 1.5,
                   iterations: int = 10) -> ExpressionFit:
    """Fit identity (100 modes, N(0, 1) prior) and expression (57 modes, weights bounded to
    [0, 1], weak ridge) jointly, with a similarity, to ``vertices`` (V, 3) over the narrow face.

    Jointly, because the identity modes explain a wide mouth or low brows that an expression-
    only fit would call a smile or a frown. ``noise_mm`` is the per-coordinate noise assumed
    on the reconstruction (it sets the weight of the priors)."""
    from ..geometry import umeyama
    from ..geometry.lsq import bounded_least_squares

    X = np.asarray(vertices, np.float64)
    if X.shape != template.vertices_m.shape or not np.isfinite(X).all():
        raise ValueError(f"expected finite vertices of shape {template.vertices_m.shape}, got {X.shape}")
    sel = np.asarray(template.narrow_face_mask, bool)
    mean = template.vertices_m.astype(np.float64)
    Bi = identity_modes(template).astype(np.float64)
    Be = template.expression_modes_m.astype(np.float64)
    ni, ne = len(Bi), len(Be)
    A = np.concatenate([Bi[:, sel], Be[:, sel]]).reshape(ni + ne, -1).T  # (3n, 157)
    sigma = noise_mm * 1e-3
    prior = np.concatenate([np.ones(ni), np.full(ne, 0.1)])  # N(0, 1) identity; weak ridge on expression
    lo = np.concatenate([np.full(ni, -np.inf), np.zeros(ne)])
    hi = np.concatenate([np.full(ni, np.inf), np.ones(ne)])
    w = np.zeros(ni + ne)
    s, R, t = umeyama(mean[sel], X[sel])
    for _ in range(iterations):  # Gauss-Newton on (similarity, weights), bounded linear steps
        S = mean[sel] + np.tensordot(w[:ni], Bi[:, sel], 1) + np.tensordot(w[ni:], Be[:, sel], 1)
        Y = ((X[sel] - t) @ R) / s  # the vertices in the template frame
        rot = np.stack([np.cross(np.eye(3)[k], S) for k in range(3)])  # d(Y)/d(small rotation)
        pose = np.concatenate([rot, S[None], np.broadcast_to(np.eye(3)[:, None], (3,) + S.shape)])  # (7, n, 3)
        J = np.concatenate([A, pose.reshape(7, -1).T], 1) / sigma
        J_aug = np.concatenate([J, np.concatenate([np.diag(prior), np.zeros((ni + ne, 7))], 1)])
        b = np.concatenate([(Y - S).ravel() / sigma, -prior * w])
        step = bounded_least_squares(J_aug, b, np.concatenate([lo - w, np.full(7, -np.inf)]),
                                     np.concatenate([hi - w, np.full(7, np.inf)]))
        w = np.clip(w + step[:ni + ne], lo, hi)
        dth, ds, dt = step[ni + ne:ni + ne + 3], step[ni + ne + 3], step[ni + ne + 4:]
        t = t + s * R @ dt
        R = R @ cv2.Rodrigues(dth)[0]
        s = s * (1 + ds)
        if np.abs(step).max() < 1e-6:
            break
    shape = mean + np.tensordot(w[:ni], Bi, 1) + np.tensordot(w[ni:], Be, 1)
    fitted = s * shape @ R.T + t
    offsets = s * np.tensordot(w[ni:], Be, 1) @ R.T
    rms = float(np.sqrt(((fitted[sel] - X[sel]) ** 2).sum(1).mean()) * 1e3)
    return ExpressionFit(expression=dict(zip(template.expression_names, w[ni:].tolist())), identity=w[:ni],
                         scale=float(s), rotation=R, translation=t, expression_offsets_m=offsets.astype(np.float32),
                         residual_rms_mm=rms)


def neutralize(template: Template, vertices: np.ndarray, **kw: float) -> tuple:
    """``(neutral_vertices (V, 3) float32, ExpressionFit)``: the reconstruction minus its
    fitted expression — identity, and whatever the reconstruction has beyond the linear model,
    kept."""
    fit = fit_expression(template, vertices, **kw)
    return (np.asarray(vertices, np.float64) - fit.expression_offsets_m).astype(np.float32), fit
