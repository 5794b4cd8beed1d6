"""Offline face detection, 478 landmarks and person segmentation with MediaPipe's models
(Apache-2.0; run in numpy by :mod:`.face_mesh`), mapped to the Multi-PIE 68 layout of the
template."""

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
    """Thread-safe face mesh, face detection and person segmentation: MediaPipe's models and
    graphs run in numpy (:mod:`.face_mesh`), as ``mediapipe`` 0.10.21's legacy solutions
    (``FaceMesh(static_image_mode=True, max_num_faces=5, refine_landmarks=True,
    min_detection_confidence=0.4)``, full-range ``FaceDetection``, ``SelfieSegmentation``) return
    them, without MediaPipe installed."""

    _lock = threading.Lock()
    MAX_FACES = 5
    MESH_MIN_SCORE = 0.4   # min_detection_confidence of the face mesh's detector
    # The full-range detector's threshold: 0.6, what mediapipe 0.10.21's FaceDetection applies
    # whatever min_detection_confidence says (measured: its detections match ours at 0.6 only).
    FULL_RANGE_MIN_SCORE = 0.6

    @classmethod
    def warm_up(cls) -> None:
        """Load the models now (a fraction of a second) so that the first photo does not wait."""
        from ..runtime.tflite import load_model

        with cls._lock:
            for name in ("face_detection_short_range", "face_landmark_with_attention", "face_detection_full_range",
                         "selfie_segmentation"):
                load_model(name)

    @classmethod
    def detect(cls, image: np.ndarray, where: str = "image", segment: bool = True) -> FaceDetection:
        """Largest face in an RGB uint8 image; raises InputError naming ``where`` when there is none."""
        from .face_mesh import detect_faces, face_mesh, person_mask

        H, W = image.shape[:2]
        img = np.ascontiguousarray(image)

        def mesh_crop(box):  # the face mesh on a crop around a detection box (pixels)
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            side = 2.2 * max(box[2] - box[0], box[3] - box[1])
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            sub = img[y0:int(min(H, cy + side / 2)), x0:int(min(W, cx + side / 2))]
            if min(sub.shape[:2]) < 16:
                return []
            return [f + np.array([x0, y0, 0.0]) for f in face_mesh(np.ascontiguousarray(sub), cls.MAX_FACES,
                                                                     cls.MESH_MIN_SCORE)]

        with cls._lock:
            faces = face_mesh(img, cls.MAX_FACES, cls.MESH_MIN_SCORE)
            det = detect_faces(img, cls.FULL_RANGE_MIN_SCORE, "full_range")  # small and several faces
            n_det = len(det)
            if det:
                box = max(det, key=lambda d: d.box[2] - d.box[0]).box
                if faces:  # did the mesh take the largest face? if not, mesh that face's crop
                    nose = faces[0][1]
                    inside = box[0] <= nose[0] <= box[2] and box[1] <= nose[1] <= box[3]
                    if len(faces) < n_det and not inside:
                        faces = mesh_crop(box) or faces
                else:  # small face in a large photo: find it first, then mesh a crop
                    faces = mesh_crop(box)
            mask = person_mask(img) if segment else None
        n_faces = max(len(faces), n_det) if faces else 0
        if not faces:
            raise InputError(f"no face found in {where}")
        areas = [np.ptp(p[:, 0]) * np.ptp(p[:, 1]) for p in faces]
        p = faces[int(np.argmax(areas))]
        notes = []
        if n_faces > 1:
            notes.append(f"{n_faces} faces found in {where}; using the largest")
        box = (float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max()))
        d = FaceDetection(p, box, mask, n_faces, notes)
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
