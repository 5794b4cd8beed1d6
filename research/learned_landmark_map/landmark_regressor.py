"""MediaPipe's 478 face-mesh points -> the template's 68 landmarks, a learned linear map.

MediaPipe's mesh points are not the template's (ICT) landmark vertices: the nearest single mesh
point per landmark (``mp68.MP68_INDEX``) lies 4.4 px from the projected ground truth at 256 px
(jaw 6.2 px: a silhouette contour against fixed vertices). This module replaces that look-up by
ridge regression from all 478 points (x, y and MediaPipe's relative depth z), fitted on the data
engine's renders by ``research/learned_landmark_map/fit_landmark_regressor.py``; the measured errors are stored in the
asset (``landmarks68_regressor.npz`` beside this file, derived from ICT-FaceKit renders: see
ICT_LICENSE.txt / ICT_CREDITS.md beside it) and in docs/PREPROCESS.md.

The map works in a normalised frame: each face's 478 (x, y) are moved by the 2D similarity
(scale, in-plane rotation, translation) that best fits them onto a reference shape, z is scaled
by the same factor and centred; the prediction is moved back by the inverse similarity. So the
result follows the face exactly under image scaling, in-plane rotation and translation.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

ASSET = Path(__file__).resolve().parent / "landmarks68_regressor.npz"
NUM_MESH = 478
NUM_LANDMARKS = 68


def similarity_2d(points: np.ndarray, reference: np.ndarray):
    """Per face, the 2D similarity taking ``points`` (F, M, 2) onto ``reference`` (M, 2) in least
    squares: scale s (F,), rotation R (F, 2, 2), translation t (F, 2) with ref ~ s R p + t."""
    p = np.asarray(points, np.float64)
    mp, mr = p.mean(1), reference.mean(0)
    X, Y = p - mp[:, None], reference - mr
    C = np.einsum("fmi,mj->fij", X, Y)
    theta = np.arctan2(C[:, 0, 1] - C[:, 1, 0], C[:, 0, 0] + C[:, 1, 1])
    c, s_ = np.cos(theta), np.sin(theta)
    R = np.stack([np.stack([c, -s_], -1), np.stack([s_, c], -1)], -2)  # rotation by theta
    s = (np.einsum("fij,fmj->fmi", R, X) * Y).sum((1, 2)) / (X ** 2).sum((1, 2)).clip(1e-12)
    t = mr - s[:, None] * np.einsum("fij,fj->fi", R, mp)
    return s, R, t


def apply_2d(points: np.ndarray, s, R, t) -> np.ndarray:
    """(F, M, 2) -> s R p + t per face."""
    return s[:, None, None] * np.einsum("fij,fmj->fmi", R, points) + t[:, None]


def invert_2d(points: np.ndarray, s, R, t) -> np.ndarray:
    """Inverse of :func:`apply_2d`."""
    return np.einsum("fji,fmj->fmi", R, points - t[:, None]) / s[:, None, None]


def features(p478: np.ndarray, reference: np.ndarray):
    """(F, 478, 3) MediaPipe points (x, y pixels, z relative) -> design matrix (F, 478*3 + 1) in
    the normalised frame, and the per-face similarity (s, R, t) that defines it."""
    p = np.asarray(p478, np.float64)
    if p.ndim != 3 or p.shape[1:] != (NUM_MESH, 3):
        raise ValueError(f"expected (faces, {NUM_MESH}, 3) MediaPipe points, got {p.shape}")
    s, R, t = similarity_2d(p[..., :2], reference)
    xy = apply_2d(p[..., :2], s, R, t)
    z = s[:, None] * p[..., 2]
    z = z - z.mean(1, keepdims=True)
    return np.concatenate([xy.reshape(len(p), -1), z, np.ones((len(p), 1))], 1), (s, R, t)


def reference_shape(p478: np.ndarray, iterations: int = 3) -> np.ndarray:
    """(478, 2) generalised-Procrustes mean of many faces' (x, y), zero mean, unit RMS radius."""
    p = np.asarray(p478, np.float64)[..., :2]
    ref = p.mean(0)
    for _ in range(iterations + 1):
        ref = ref - ref.mean(0)
        ref = ref / np.sqrt((ref ** 2).sum(1).mean())
        ref = apply_2d(p, *similarity_2d(p, ref)).mean(0)
    ref = ref - ref.mean(0)
    return ref / np.sqrt((ref ** 2).sum(1).mean())


def fit_ridge(F: np.ndarray, Y: np.ndarray, lam: float) -> np.ndarray:
    """Ridge solve W (D, T) of Y ~ F W, penalty ``lam * len(F) * |W|^2`` on all but the bias row."""
    A = F.T @ F
    pen = np.full(F.shape[1], lam * len(F))
    pen[-1] = 0.0
    return np.linalg.solve(A + np.diag(pen), F.T @ Y)


class LandmarkRegressor:
    """``regressor(p478)``: (478, 3) or (F, 478, 3) MediaPipe points -> (68, 2) / (F, 68, 2) pixels."""

    def __init__(self, weights: np.ndarray, reference: np.ndarray, info: dict | None = None):
        self.weights = np.asarray(weights, np.float64)      # (478*3 + 1, 68*2)
        self.reference = np.asarray(reference, np.float64)  # (478, 2)
        self.info = info or {}
        if self.weights.shape != (NUM_MESH * 3 + 1, NUM_LANDMARKS * 2) or self.reference.shape != (NUM_MESH, 2):
            raise ValueError(f"landmark regressor of the wrong shape: {self.weights.shape}, {self.reference.shape}")

    @classmethod
    def fit(cls, p478: np.ndarray, gt68: np.ndarray, lam: float, info: dict | None = None) -> "LandmarkRegressor":
        """Fit on (F, 478, 3) detections and their (F, 68, 2) true landmark positions, pixels."""
        ref = reference_shape(p478)
        F, (s, R, t) = features(p478, ref)
        Y = apply_2d(np.asarray(gt68, np.float64), s, R, t).reshape(len(F), -1)
        return cls(fit_ridge(F, Y, lam), ref, info)

    def __call__(self, p478: np.ndarray) -> np.ndarray:
        p = np.asarray(p478, np.float64)
        single = p.ndim == 2
        F, sim = features(p[None] if single else p, self.reference)
        out = invert_2d((F @ self.weights).reshape(len(F), NUM_LANDMARKS, 2), *sim)
        return out[0] if single else out

    def save(self, path) -> None:
        from glvd_core.io import atomic_write_bytes
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, weights=self.weights.astype(np.float32), reference=self.reference.astype(np.float32),
                            info=np.array(json.dumps(self.info, sort_keys=True)))
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path=ASSET) -> "LandmarkRegressor":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"landmark regressor {path} is missing (research/learned_landmark_map/fit_landmark_regressor.py makes it)")
        with np.load(path) as z:
            return cls(z["weights"], z["reference"], json.loads(str(z["info"])))


@lru_cache(maxsize=1)
def default_regressor() -> LandmarkRegressor:
    """The bundled regressor (loaded once)."""
    return LandmarkRegressor.load()
