"""The normalised frame GLVD works in, and projections of its points into each view.

Normalised frame: camera-0 axes (OpenCV), origin ``c`` on the head, 1 unit = ``s`` metres
(``cfg.arch.frame_scale_m``), so ``x_cam0 = s * x_n + c``.

- One view: ``c`` is the point at the nominal depth ``z0`` on the ray through the crop centre,
  with ``z0 = fy * head_extent_m / (nominal_fill * H)`` — the depth at which an average head
  fills the crop as the data engine frames it. The scale/depth ambiguity of a single photo is
  resolved by this convention (training rescales GT about the camera centre to depth ``z0``,
  which leaves its projection unchanged).
- Several views: ``c`` is the least-squares intersection of the views' crop-centre rays (metric).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cameras import Camera

R_ICT_TO_CAM = np.diag([1.0, -1.0, -1.0])  # a face looking at the camera: ICT (y up, +z out) -> OpenCV


@dataclass
class Frame:
    """Normalised frame of one scene. A (V, 3, 3), b (V, 3): x_cam_v = A_v @ x_n + b_v; K (V, 3, 3)."""

    c_cam0: np.ndarray
    scale_m: float
    A: np.ndarray
    b: np.ndarray
    K: np.ndarray
    size: int
    cam0: Camera

    def to_camera0_m(self, x_n: np.ndarray) -> np.ndarray:
        return x_n * self.scale_m + self.c_cam0

    def to_world_m(self, x_n: np.ndarray) -> np.ndarray:
        return self.cam0.camera_to_world(self.to_camera0_m(x_n))

    def from_world_m(self, X: np.ndarray) -> np.ndarray:
        return (self.cam0.world_to_camera(X) - self.c_cam0) / self.scale_m


def nominal_depth(cam: Camera, head_extent_m: float, nominal_fill: float) -> float:
    return float(cam.K[1, 1] * head_extent_m / (nominal_fill * cam.height))


def crop_center_ray(cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Origin and unit direction (world) of the ray through the image centre."""
    d = cam.R.T @ np.linalg.solve(cam.K, [(cam.width - 1) / 2, (cam.height - 1) / 2, 1.0])
    return cam.center_world, d / np.linalg.norm(d)


def make_frame(cameras: list[Camera], scale_m: float, head_extent_m: float, nominal_fill: float) -> Frame:
    """Frame for square network-input cameras (all of one size)."""
    cam0 = cameras[0]
    z0 = nominal_depth(cam0, head_extent_m, nominal_fill)
    c = z0 * np.linalg.solve(cam0.K, [(cam0.width - 1) / 2, (cam0.height - 1) / 2, 1.0])
    if len(cameras) > 1:
        M, r = np.zeros((3, 3)), np.zeros(3)
        for cam in cameras:
            o, d = crop_center_ray(cam)
            P = np.eye(3) - np.outer(d, d)
            M += P
            r += P @ o
        w = np.linalg.eigvalsh(M)
        if w.min() > 1e-3 * w.max():  # rays not (nearly) parallel
            c = cam0.world_to_camera(np.linalg.solve(M, r))
    A, b, K = [], [], []
    for cam in cameras:
        Rrel = cam.R @ cam0.R.T
        A.append(scale_m * Rrel)
        b.append(Rrel @ (c - cam0.t) + cam.t)
        K.append(cam.K)
    return Frame(c, scale_m, np.array(A), np.array(b), np.array(K), cam0.width, cam0)
