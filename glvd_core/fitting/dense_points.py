"""MediaPipe's 478 face points as fixed places on the template surface.

Each point is a triangle and barycentric coordinates on the template, chosen so that the point
projects where MediaPipe puts it on renders of ICT heads with known shape and camera, with the
measured spread of the detector about that place (``sigma``, a fraction of the face size) as its
reliability. Calibrated once by ``scripts/build_dense_points.py`` (the asset records the command,
the data and the template hash).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..template import Template

ASSET = Path(__file__).resolve().parent.parent / "assets" / "mediapipe_points.npz"


def face_size_px(points478: np.ndarray) -> float:
    """The face's size in pixels: the geometric mean of the width and height of the box of the
    (478, >=2) points. Residuals of the dense-point term are measured in this unit."""
    p = np.asarray(points478, np.float64)[:, :2]
    w, h = np.ptp(p[:, 0]), np.ptp(p[:, 1])
    return float(np.sqrt(max(w, 1.0) * max(h, 1.0)))


@dataclass(frozen=True)
class DensePoints:
    """Attributes:
        vertices: (478, 3) int template vertex ids of each point's triangle corners.
        bary: (478, 3) float64 barycentric weights (rows sum to 1).
        sigma: (478,) the detector's spread about each place, fraction of the face size.
        recipe: how the asset was made.
    """

    vertices: np.ndarray
    bary: np.ndarray
    sigma: np.ndarray
    recipe: str

    def at(self, per_vertex: np.ndarray) -> np.ndarray:
        """(..., V, C) per-vertex values -> (..., 478, C) at the points (barycentric blend)."""
        x = np.asarray(per_vertex)
        return np.einsum("...jkc,jk->...jc", x[..., self.vertices, :], self.bary)


@lru_cache(maxsize=2)
def load_dense_points(template: Template, path: str | None = None) -> DensePoints:
    """The bundled (or ``path``'s) calibration for ``template``; refuses one made for another."""
    p = Path(path) if path else ASSET
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing; build it with scripts/build_dense_points.py")
    with np.load(p) as z:
        if str(z["template_sha256"]) != template.sha256:
            raise ValueError(f"{p} was calibrated for another template; rebuild it with scripts/build_dense_points.py")
        tri = template.faces[z["triangle"].astype(np.int64)]
        return DensePoints(tri.astype(np.int64), z["bary"].astype(np.float64), z["sigma"].astype(np.float64),
                           str(z["recipe"]))
