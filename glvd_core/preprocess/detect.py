"""Offline face detection, 478 landmarks and person segmentation with MediaPipe 0.10.21
(models ship inside the wheel; Apache-2.0), mapped to the Multi-PIE 68 layout of the template."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..io import InputError
from .mp68 import MP68_INDEX

MIN_FACE_PX = 64


@dataclass
class FaceDetection:
    """One face: landmarks in image pixels."""

    landmarks478: np.ndarray      # (478, 3) x, y pixels; z relative (MediaPipe units x width)
    box: tuple                    # (x0, y0, x1, y1) of the 478 landmarks, pixels
    person_mask: np.ndarray | None = None  # (H, W) float in [0, 1]
    faces_found: int = 1
    notes: list = field(default_factory=list)

    @property
    def size_px(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @cached_property
    def landmarks68(self) -> np.ndarray:
        """(68, 2) pixels, the template's Multi-PIE layout (:func:`mp_to_68`)."""
        return mp_to_68(self.landmarks478)


class MediaPipeFaces:
    """Thread-safe, lazily built MediaPipe face mesh + selfie segmentation."""

    _lock = threading.Lock()
    _mesh = None
    _seg = None
    _det = None

    @classmethod
    def _build(cls):
        if cls._mesh is None:
            try:
                import mediapipe as mp
            except ImportError as e:
                raise RuntimeError("face detection needs mediapipe==0.10.21 (scripts/setup.sh installs it)") from e
            cls._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=5,
                                                        refine_landmarks=True, min_detection_confidence=0.4)
            cls._seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
            cls._det = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.4)

    @classmethod
    def warm_up(cls) -> None:
        """Build the detectors now (about a second on a CPU) so that the first photo does not wait."""
        with cls._lock:
            cls._build()

    @classmethod
    def detect(cls, image: np.ndarray, where: str = "image", segment: bool = True) -> FaceDetection:
        """Largest face in an RGB uint8 image; raises InputError naming ``where`` when there is none."""
        H, W = image.shape[:2]
        img = np.ascontiguousarray(image)
        def mesh_crop(bb):
            cx, cy = (bb.xmin + bb.width / 2) * W, (bb.ymin + bb.height / 2) * H
            side = 2.2 * max(bb.width * W, bb.height * H)
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            sub = img[y0:int(min(H, cy + side / 2)), x0:int(min(W, cx + side / 2))]
            if min(sub.shape[:2]) < 16:
                return [], (0, 0), None
            return cls._mesh.process(np.ascontiguousarray(sub)).multi_face_landmarks or [], (x0, y0), sub

        with cls._lock:
            cls._build()
            res = cls._mesh.process(img)
            faces = res.multi_face_landmarks or []
            offset, sub = (0, 0), None
            det = cls._det.process(img).detections or []  # full range: small and several faces
            n_det = len(det)
            if det:
                bb = max(det, key=lambda d: d.location_data.relative_bounding_box.width).location_data.relative_bounding_box
                if faces:  # did the mesh take the largest face? if not, mesh that face's crop
                    p0 = faces[0].landmark[1]
                    inside = bb.xmin <= p0.x <= bb.xmin + bb.width and bb.ymin <= p0.y <= bb.ymin + bb.height
                    if len(faces) < n_det and not inside:
                        f2, off2, sub2 = mesh_crop(bb)
                        if f2:
                            faces, offset, sub = f2, off2, sub2
                else:  # small face in a large photo: find it first, then mesh a crop
                    faces, offset, sub = mesh_crop(bb)
            mask = cls._seg.process(img).segmentation_mask if segment else None
        n_faces = max(len(faces), n_det) if faces else 0
        if not faces:
            raise InputError(f"no face found in {where}")
        sw, sh = (sub.shape[1], sub.shape[0]) if sub is not None and offset != (0, 0) else (W, H)
        pts = [np.array([[p.x * sw + offset[0], p.y * sh + offset[1], p.z * sw] for p in f.landmark]) for f in faces]
        areas = [np.ptp(p[:, 0]) * np.ptp(p[:, 1]) for p in pts]
        best = int(np.argmax(areas))
        p = pts[best]
        notes = []
        if n_faces > 1:
            notes.append(f"{n_faces} faces found in {where}; using the largest")
        box = (float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max()))
        d = FaceDetection(p, box, None if mask is None else np.asarray(mask, np.float32), n_faces, notes)
        if d.size_px < MIN_FACE_PX:
            raise InputError(f"the face in {where} is too small ({d.size_px:.0f} px across; at least {MIN_FACE_PX} px needed)")
        lm = p[:, :2]
        outside = ((lm[:, 0] < 0) | (lm[:, 0] > W - 1) | (lm[:, 1] < 0) | (lm[:, 1] > H - 1)).mean()
        if outside > 0.1:
            raise InputError(f"the face in {where} is cut off by the image border ({outside:.0%} of the landmarks outside)")
        return d


def mp_to_68(p478: np.ndarray) -> np.ndarray:
    """(478, 3) or (F, 478, 3) MediaPipe points (x, y pixels, z relative) -> (68, 2) / (F, 68, 2)
    pixels in the template's Multi-PIE layout: the nearest single mesh point per landmark
    (``mp68.MP68_INDEX``)."""
    return np.asarray(p478)[..., MP68_INDEX, :2].astype(np.float64)
