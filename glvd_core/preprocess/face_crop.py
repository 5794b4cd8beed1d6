"""The face crop the identity CNN (:mod:`glvd_core.model.identity_cnn`) reads.

The crop: the box of MediaPipe's 478 points (in image axes), enlarged 1.25 times, rotated about
its centre so the outer eye corners are level, resized to ``CROP_PX`` (borders replicate the
image edge). The box is taken before levelling, so a rolled head gets a slightly larger, shifted
box; the weights were trained with exactly this crop, so it stays until they are retrained.
"""

from __future__ import annotations

import cv2
import numpy as np

CROP_PX = 112


def face_crop_matrix(landmarks478: np.ndarray) -> np.ndarray:
    """(478, >=2) MediaPipe points (pixels) -> (2, 3) affine map from image pixels to crop pixels."""
    p = np.asarray(landmarks478, np.float64)
    if p.ndim != 2 or p.shape[0] != 478 or p.shape[1] < 2 or not np.isfinite(p[:, :2]).all():
        raise ValueError(f"the face crop needs (478, 2+) finite landmarks, got shape {p.shape}")
    p = p[:, :2]
    le, re = p[33], p[263]  # outer eye corners, image left and right
    ang = np.degrees(np.arctan2(re[1] - le[1], re[0] - le[0]))
    c = (p.min(0) + p.max(0)) / 2
    s = CROP_PX / (1.25 * max(np.ptp(p[:, 0]), np.ptp(p[:, 1]), 1e-6))
    M = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), float(ang), s)
    M[:, 2] += CROP_PX / 2 - c
    return M


def face_crop(image: np.ndarray, landmarks478: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB image and its (478, >=2) MediaPipe points (pixels) -> (3, CROP_PX,
    CROP_PX) uint8: the points' box x 1.25, eyes levelled (:func:`face_crop_matrix`)."""
    return warp_crop(image, face_crop_matrix(landmarks478))


def warp_crop(image: np.ndarray, M: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 image and a (2, 3) image-to-crop affine map -> (3, CROP_PX, CROP_PX) uint8
    (area filter when shrinking, bilinear when enlarging; borders replicate the image edge)."""
    s = float(np.hypot(*M[0, :2]))
    out = cv2.warpAffine(np.ascontiguousarray(image), M, (CROP_PX, CROP_PX),
                         flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.transpose(2, 0, 1)
