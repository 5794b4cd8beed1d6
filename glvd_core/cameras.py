"""Cameras: one convention for all of glvd_core, with explicit conversions.

Convention (OpenCV): camera axes x right, y down, z forward (the viewing direction).
A world point X (metres) maps to camera coordinates ``x = R @ X + t`` and to pixels
``u ~ K @ x`` where pixel centres have integer coordinates (pixel row i, column j is the
point u = j, v = i). ``cameras.json`` holds::

    {"convention": "opencv", "units": "metres",
     "views": [{"image": "view_00.png", "mask": "mask_00.png",
                "R": [[..3..], [..], [..]], "t": [tx, ty, tz],
                "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], "width": W, "height": H}, ...]}

Blender cameras look along their local -Z with +Y up: ``R_blender_cam = diag(1, -1, -1) @ R``
(see :func:`opencv_to_blender_matrix_world`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


DEFAULT_FOV_DEG = 40.0  # field of view across the longer image side when nothing says otherwise (~50 mm full frame)

class CameraError(ValueError):
    """A cameras.json (or camera argument) that cannot be used; the message names the problem."""


@dataclass
class Camera:
    """A pinhole camera. R: (3, 3) world->camera rotation; t: (3,) metres; K: (3, 3) pixels."""

    R: np.ndarray
    t: np.ndarray
    K: np.ndarray
    width: int
    height: int

    def __post_init__(self):
        self.R = np.asarray(self.R, np.float64).reshape(3, 3)
        self.t = np.asarray(self.t, np.float64).reshape(3)
        self.K = np.asarray(self.K, np.float64).reshape(3, 3)
        self.width, self.height = int(self.width), int(self.height)

    # -- construction ------------------------------------------------------------------
    @staticmethod
    def from_fov(width: int, height: int, fov_deg: float, R: np.ndarray | None = None,
                 t: np.ndarray | None = None) -> "Camera":
        """A centred camera whose field of view across the *longer* image side is ``fov_deg``."""
        if not 1.0 <= fov_deg <= 170.0:
            raise CameraError(f"field of view {fov_deg} deg is outside 1..170")
        f = 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2)
        K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])
        return Camera(np.eye(3) if R is None else R, np.zeros(3) if t is None else t, K, width, height)

    @property
    def center_world(self) -> np.ndarray:
        return -self.R.T @ self.t

    @property
    def fov_deg(self) -> float:
        return math.degrees(2 * math.atan(0.5 * max(self.width, self.height) / self.K[0, 0]))

    # -- maps ----------------------------------------------------------------------------
    def world_to_camera(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X) @ self.R.T + self.t

    def camera_to_world(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x) - self.t) @ self.R

    def project(self, X_world: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 2) pixels."""
        x = self.world_to_camera(X_world)
        u = x @ self.K.T
        return u[:, :2] / u[:, 2:3]

    def crop_resize(self, x0: float, y0: float, scale: float, width: int, height: int) -> "Camera":
        """The camera of the image cropped at (x0, y0) (pixels, top-left pixel centre of the crop)
        and resized by ``scale`` (new pixels per old pixel) to width x height."""
        A = np.array([[scale, 0, -scale * x0 + 0.5 * (scale - 1)], [0, scale, -scale * y0 + 0.5 * (scale - 1)], [0, 0, 1]])
        return Camera(self.R, self.t, A @ self.K, width, height)

    def to_dict(self) -> dict:
        return dict(R=self.R.tolist(), t=self.t.tolist(), K=self.K.tolist(), width=self.width, height=self.height)

    @staticmethod
    def from_dict(d: dict, where: str = "camera") -> "Camera":
        try:
            R = np.asarray(d["R"], np.float64)
            t = np.asarray(d["t"], np.float64)
            K = np.asarray(d["K"], np.float64)
            w, h = int(d["width"]), int(d["height"])
        except KeyError as e:
            raise CameraError(f"{where}: missing field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise CameraError(f"{where}: malformed value ({e})") from None
        if R.shape != (3, 3) or t.shape != (3,) or K.shape != (3, 3):
            raise CameraError(f"{where}: R must be 3x3, t 3 and K 3x3 (got {R.shape}, {t.shape}, {K.shape})")
        if not (np.isfinite(R).all() and np.isfinite(t).all() and np.isfinite(K).all()):
            raise CameraError(f"{where}: non-finite numbers")
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
            raise CameraError(f"{where}: R is not a rotation matrix")
        if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]):
            raise CameraError(f"{where}: K is not a valid intrinsics matrix")
        if w <= 0 or h <= 0:
            raise CameraError(f"{where}: width and height must be positive")
        return Camera(R, t, K, w, h)


def save_cameras(path: str | Path, cameras: list[Camera], images: list[str] | None = None,
                 masks: list[str | None] | None = None) -> None:
    views = []
    for i, c in enumerate(cameras):
        v = c.to_dict()
        if images is not None:
            v["image"] = str(images[i])
        if masks is not None:
            v["mask"] = str(masks[i])
        views.append(v)
    text = json.dumps({"convention": "opencv", "units": "metres", "views": views}, indent=1)
    Path(path).write_text(text)


def load_cameras(path: str | Path) -> tuple[list[Camera], list[dict]]:
    """Read cameras.json -> (cameras, raw view dicts). Raises CameraError naming the file."""
    from .io import read_json

    p = Path(path)
    data = read_json(p, CameraError)
    if not isinstance(data, dict) or not isinstance(data.get("views"), list) or not data["views"]:
        raise CameraError(f"{p}: expected an object with a non-empty 'views' list")
    if data.get("convention", "opencv") != "opencv":
        raise CameraError(f"{p}: convention {data.get('convention')!r} is not supported (use 'opencv')")
    cams = []
    for i, v in enumerate(data["views"]):
        if not isinstance(v, dict):
            raise CameraError(f"{p}: view {i} is not an object")
        cams.append(Camera.from_dict(v, where=f"{p} view {i}"))
    return cams, data["views"]


def look_at_rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """World->camera rotation of a camera in front of a head that faces +z (ICT axes: y up),
    after the head turns by yaw (about y), pitch (about x) and roll (about z), in degrees."""
    y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    Ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    Rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    head = Rz @ Rx @ Ry
    return np.diag([1.0, -1.0, -1.0]) @ head


def opencv_to_blender_matrix_world(cam: Camera) -> np.ndarray:
    """4x4 Blender ``matrix_world`` of an OpenCV camera (world axes unchanged)."""
    M = np.eye(4)
    M[:3, :3] = (np.diag([1.0, -1.0, -1.0]) @ cam.R).T
    M[:3, 3] = cam.center_world
    return M
