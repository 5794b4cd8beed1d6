"""Similarity transforms (scale, rotation, translation) between corresponding point sets, numpy."""

from __future__ import annotations

import numpy as np


def umeyama(src: np.ndarray, dst: np.ndarray, scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising |s R src + t - dst|^2 over corresponding points."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    U, S, Vt = np.linalg.svd(xd.T @ xs / len(src))
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    s = (S * np.diag(D)).sum() / (xs ** 2).sum(1).mean() if scale else 1.0
    return s, R, mu_d - s * R @ mu_s


def similarity_basis(X0c: np.ndarray) -> np.ndarray:
    """(3n, 7): how the points ``X0c`` (n, 3), centred, move under a small similarity about their
    centre, one column per parameter: scale, then for each axis a translation and a rotation."""
    cols = [X0c.reshape(-1)]
    for a in range(3):
        e = np.eye(3)[a]
        cols += [np.broadcast_to(e, X0c.shape).reshape(-1), np.cross(e, X0c).reshape(-1)]
    return np.stack(cols, 1)
