"""Head pose from 2D landmarks (PnP against the template), the network crop, the head mask and
camera estimation for several uncalibrated photos.

Head frame: the template's ICT axes (x to the viewer's right, y up, z out of the face), metres,
origin at the template centroid — the point the data engine centres its renders on.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..cameras import Camera
from ..template import Template

PNP_LANDMARKS = list(range(17, 68))  # brows, nose, eyes, mouth (the jaw contour is a silhouette)


@dataclass
class HeadPose:
    R: np.ndarray        # (3, 3) head -> camera
    t: np.ndarray        # (3,) metres: the template centroid in camera coordinates
    rms_px: float        # reprojection RMS of the PnP landmarks

    def yaw_pitch_roll_deg(self) -> tuple[float, float, float]:
        M = np.diag([1.0, -1.0, -1.0]) @ self.R  # back to "head in front of camera" convention
        yaw = np.degrees(np.arcsin(np.clip(M[0, 2], -1, 1)))
        pitch = np.degrees(np.arctan2(-M[1, 2], M[2, 2]))
        roll = np.degrees(np.arctan2(-M[0, 1], M[0, 0]))
        return float(yaw), float(pitch), float(roll)


def model_landmarks(template: Template) -> np.ndarray:
    """(68, 3) template landmarks in the head frame (origin at the template centroid)."""
    v = template.vertices_m.astype(np.float64)
    return v[template.landmarks68] - v.mean(0)


def rigid_pnp(points_m: np.ndarray, image_px: np.ndarray, K: np.ndarray) -> HeadPose:
    """The rigid pose that best projects (P, 3) points onto (P, 2) pixels with intrinsics ``K``
    (EPnP, then refined), and its reprojection RMS; ValueError when none is found."""
    obj = np.ascontiguousarray(points_m, np.float64)
    img = np.ascontiguousarray(image_px, np.float64)
    K = np.asarray(K, np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_EPNP)
    if not ok:
        raise ValueError("head pose could not be estimated from the landmarks")
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, rvec, tvec, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    R, _ = cv2.Rodrigues(rvec)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, None)
    return HeadPose(R, tvec.ravel(), float(np.sqrt(((proj[:, 0] - img) ** 2).sum(1).mean())))


def solve_pnp(landmarks68: np.ndarray, camera: Camera, template: Template) -> HeadPose:
    pose = rigid_pnp(model_landmarks(template)[PNP_LANDMARKS], np.asarray(landmarks68, np.float64)[PNP_LANDMARKS],
                     camera.K)
    if pose.t[2] <= 0:  # mirrored solution behind the camera
        raise ValueError("head pose estimate is behind the camera")
    return pose


def head_crop(camera: Camera, pose: HeadPose, head_extent_m: float, nominal_fill: float) -> tuple[float, float, float]:
    """Square crop (x0, y0, side) in image pixels that frames the head as the data engine does:
    centred on the projected template centroid, an average head filling ``nominal_fill``."""
    c = camera.K @ pose.t
    cx, cy = c[0] / c[2], c[1] / c[2]
    side = float(camera.K[1, 1] * head_extent_m / (nominal_fill * pose.t[2]))
    return cx - (side - 1) / 2, cy - (side - 1) / 2, side


def _head_proxy_points() -> np.ndarray:
    """Points of a head-and-neck proxy in the head frame (skull ellipsoid + neck cylinder)."""
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 36), np.linspace(0, np.pi, 18))
    skull = np.stack([0.085 * np.cos(u) * np.sin(v), 0.02 + 0.13 * np.cos(v), -0.035 + 0.11 * np.sin(u) * np.sin(v)], -1)
    a, y = np.meshgrid(np.linspace(0, 2 * np.pi, 24), np.linspace(-0.2, -0.06, 6))
    neck = np.stack([0.06 * np.cos(a), y, -0.04 + 0.06 * np.sin(a)], -1)
    return np.concatenate([skull.reshape(-1, 3), neck.reshape(-1, 3)])


def head_mask(shape: tuple[int, int], camera: Camera, pose: HeadPose, person_mask: np.ndarray | None) -> np.ndarray:
    """(H, W) uint8 head mask: the person mask restricted to the projected head-and-neck proxy
    (the proxy alone where no person mask is available)."""
    H, W = shape
    pts = (_head_proxy_points() @ pose.R.T + pose.t)
    pts = pts[pts[:, 2] > 1e-3]
    uv = (pts @ camera.K.T)
    uv = uv[:, :2] / uv[:, 2:3]
    hull = cv2.convexHull(np.round(uv).astype(np.int32))
    region = np.zeros((H, W), np.uint8)
    cv2.fillConvexPoly(region, hull, 255)
    if person_mask is None:
        return region
    pm = (cv2.resize(person_mask, (W, H)) > 0.5) if person_mask.shape != (H, W) else person_mask > 0.5
    m = (region > 0) & pm
    if m.sum() < 0.2 * (region > 0).sum():  # segmentation missed the person: trust the geometry
        return region
    return m.astype(np.uint8) * 255


def estimate_cameras(landmarks: list, intrinsics: list, template: Template, refine: bool = True) -> tuple[list[Camera],
                     float]:
    """Cameras for several photos of one head from their 68 landmarks: per-view PnP against the
    template landmarks, then joint refinement of all poses and the 3D landmarks (regularised to
    the template). World = head frame (metres). Returns (cameras, per-view RMS px)."""
    from ..geometry.lsq import levenberg_marquardt

    X0 = model_landmarks(template)[PNP_LANDMARKS]
    poses = [solve_pnp(lm, cam, template) for lm, cam in zip(landmarks, intrinsics)]
    obs = [np.asarray(lm, np.float64)[PNP_LANDMARKS] for lm in landmarks]
    n = len(poses)
    rv0 = [cv2.Rodrigues(p.R)[0].ravel() for p in poses]
    x0 = np.concatenate([np.concatenate([r, p.t]) for r, p in zip(rv0, poses)] + [np.zeros(X0.size)])

    def residual(x):
        X = X0 + x[6 * n:].reshape(-1, 3)
        res = []
        for i in range(n):
            proj, _ = cv2.projectPoints(X, x[6 * i:6 * i + 3], x[6 * i + 3:6 * i + 6], intrinsics[i].K, None)
            res.append((proj[:, 0] - obs[i]).ravel())
        res.append(x[6 * n:] * (1.0 / 0.003))  # prior: 3 mm per landmark ~ 1 px
        return np.concatenate(res)

    x = levenberg_marquardt(residual, x0) if refine else x0
    cams, rms = [], []
    X = X0 + x[6 * n:].reshape(-1, 3)
    for i in range(n):
        R, _ = cv2.Rodrigues(x[6 * i:6 * i + 3])
        c = intrinsics[i]
        cams.append(Camera(R, x[6 * i + 3:6 * i + 6], c.K, c.width, c.height))
        proj, _ = cv2.projectPoints(X, x[6 * i:6 * i + 3], x[6 * i + 3:6 * i + 6], c.K, None)
        rms.append(float(np.sqrt(((proj[:, 0] - obs[i]) ** 2).sum(1).mean())))
    return cams, rms
