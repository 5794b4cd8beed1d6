"""MediaPipe's face mesh (the legacy ``FaceMesh(static_image_mode=True, refine_landmarks=True)``
graph of mediapipe 0.10.21) in numpy: face detection, then 478 landmarks per face.

The models are MediaPipe's own (Apache-2.0), run by :mod:`glvd_core.runtime.tflite`; the steps
between them follow the graph's calculators (``mediapipe/modules/face_landmark``,
``face_detection``), so the points match MediaPipe's to a fraction of a pixel (tested). It
needs numpy only: what the Blender extension runs where MediaPipe is not installed.

Image coordinates: pixels, x right, y down, the image spanning [0, W] x [0, H] (MediaPipe's
normalised coordinates times the image size).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..runtime.nn import bilinear
from ..runtime.tflite import load_model, resize_bilinear

F32 = np.float32
LANDMARK_PX = 192          # the landmark model's input
SEGMENTATION_PX = 256      # the selfie segmentation model's input (the general model, 256 x 256)
# The two detectors (face_detection_short_range.pbtxt, face_detection_full_range.pbtxt):
# input side, anchor grids as (stride, anchors per cell), output names (boxes, scores).
DETECTORS = {
    "short_range": dict(size=128, grids=((8, 2), (16, 6)), outputs=("regressors", "classificators")),
    "full_range": dict(size=192, grids=((4, 1),), outputs=("Identity", "Identity_1")),
}
ROI_SCALE = 1.5            # face_detection_front_detection_to_roi: the detection box x 1.5, square
NMS_IOU = 0.3              # weighted non-maximum suppression, intersection over union
FACE_FLAG = 0.5            # the landmark model's face-presence threshold
# LandmarksRefinementCalculator (tensors_to_face_landmarks_with_attention.pbtxt): the irises'
# depth is the mean depth of these eye-contour points.
LEFT_EYE_Z = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173)
RIGHT_EYE_Z = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398)


@dataclass
class Detection:
    """One face from the detector, image pixels: box (x0, y0, x1, y1), 6 keypoints (6, 2)
    (eyes, nose tip, mouth, ear tragions), score in [0, 1]."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def warp_rect(image: np.ndarray, center: tuple, size: tuple, rotation: float, out: int,
              border: str = "replicate") -> np.ndarray:
    """The rotated rectangle (centre and size in pixels, rotation in radians) of an (H, W, C) uint8
    image resampled to (out, out, C) uint8 as MediaPipe's ImageToTensorCalculator does it (its
    corners onto the output's, OpenCV's bilinear ``warpPerspective``: positions rounded to 1/32
    pixel; ``border`` "replicate" or "zero")."""
    c, s = np.cos(rotation), np.sin(rotation)
    u = np.arange(out, dtype=np.float64) / out - 0.5
    gu, gv = np.meshgrid(u * size[0], u * size[1])
    x = center[0] + c * gu - s * gv
    y = center[1] + s * gu + c * gv
    v = bilinear(image.astype(np.float64), np.round(x * 32) / 32, np.round(y * 32) / 32, border)
    return np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)


@lru_cache(maxsize=2)
def ssd_anchors(detector: str = "short_range") -> np.ndarray:
    """(N, 2) anchor centres of a detector, normalised (SsdAnchorsCalculator, fixed anchor size):
    short range 896 (strides 8, 16, 16, 16, two anchors a layer), full range 2304 (stride 4, one)."""
    spec = DETECTORS[detector]
    out = []
    for stride, per_cell in spec["grids"]:
        n = spec["size"] // stride
        yy, xx = np.mgrid[0:n, 0:n]
        c = np.stack([(xx + 0.5) / n, (yy + 0.5) / n], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, per_cell, 1).reshape(-1, 2))
    return np.concatenate(out).astype(F32)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box a (4,) with boxes b (N, 4), (x0, y0, x1, y1)."""
    iw = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def detect_faces(image: np.ndarray, min_score: float = 0.5, detector: str = "short_range") -> list[Detection]:
    """Faces in an (H, W, 3) uint8 RGB image, best first: a detector ("short_range": faces within
    about 2 m, what the face mesh runs; "full_range": small and distant faces too) on the
    letterboxed image, decoded on its anchors, weighted non-maximum suppression."""
    spec = DETECTORS[detector]
    size = spec["size"]
    H, W = image.shape[:2]
    side = max(H, W)
    x = warp_rect(image, (W / 2, H / 2), (side, side), 0.0, size, border="zero")
    out = load_model(f"face_detection_{detector}")(x[None].astype(F32) / 127.5 - 1)
    raw, logits = out[spec["outputs"][0]][0], out[spec["outputs"][1]][0, :, 0]
    scores = 1 / (1 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))
    keep = np.nonzero(scores >= min_score)[0]
    if not len(keep):
        return []
    a = ssd_anchors(detector)[keep]
    r = raw[keep] / size
    centre, wh = r[:, :2] + a, r[:, 2:4]
    boxes = np.concatenate([centre - wh / 2, centre + wh / 2], 1)
    kps = r[:, 4:16].reshape(-1, 6, 2) + a[:, None]
    centre = np.array([W / 2, H / 2])  # the letterboxed tensor (normalised) -> image pixels: (p - 0.5) * side + centre
    return [Detection(np.concatenate([(box[:2] - 0.5) * side + centre, (box[2:] - 0.5) * side + centre]),
                      (kp - 0.5) * side + centre, score) for box, kp, score in weighted_nms(boxes, kps, scores[keep])]


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> list[tuple]:
    """MediaPipe's weighted non-maximum suppression: boxes (N, 4) (x0, y0, x1, y1), keypoints
    (N, K, 2), scores (N,) -> [(box, keypoints, score)], best first; each is the score-weighted
    mean of the boxes overlapping the best remaining one by IoU > 0.3, with that one's score."""
    order = list(np.argsort(-scores, kind="stable"))
    found = []
    while order:
        top = order[0]
        sim = _iou(boxes[top], boxes[order])
        near = [order[i] for i in range(len(order)) if sim[i] > NMS_IOU]
        rest = [order[i] for i in range(len(order)) if not sim[i] > NMS_IOU]
        if not near:  # a degenerate (empty) box overlaps nothing, not even itself: MediaPipe keeps
            near, rest = [top], []  # it as it is and stops there
        order = rest
        w = scores[near][:, None]
        found.append(((boxes[near] * w).sum(0) / w.sum(), (keypoints[near] * w[:, :, None]).sum(0) / w.sum(),
                      float(scores[top])))
    return found


def face_roi(det: Detection) -> tuple[tuple, float, float]:
    """The landmark model's crop of a detection: (centre (x, y), side, rotation) in pixels and
    radians: the box centre, the box's longer side x 1.5, levelled by the eyes."""
    (x0, y0), (x1, y1) = det.keypoints[0], det.keypoints[1]
    rotation = -np.arctan2(-(y1 - y0), x1 - x0)
    rotation = (rotation + np.pi) % (2 * np.pi) - np.pi
    box = det.box
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    side = max(box[2] - box[0], box[3] - box[1]) * ROI_SCALE
    return centre, float(side), float(rotation)


def face_landmarks(image: np.ndarray, centre: tuple, side: float, rotation: float) -> np.ndarray | None:
    """(478, 3) points of the face in the square crop (centre, side in pixels, rotation): x, y in
    image pixels, z relative depth x the image width's normalised crop (MediaPipe's z times W);
    None when the model's face flag is below 0.5."""
    crop = warp_rect(image, centre, (side, side), rotation, LANDMARK_PX)
    out = load_model("face_landmark_with_attention")(crop[None].astype(F32) / 255)
    if 1 / (1 + np.exp(-float(out["conv_faceflag"].ravel()[0]))) < FACE_FLAG:
        return None
    p = np.zeros((478, 3), np.float64)
    p[:468] = out["output_mesh_identity"].reshape(468, 3)
    for name, idx in zip(("output_lips", "output_left_eye", "output_right_eye"), _refined_indices()):
        p[idx, :2] = out[name].reshape(-1, 2)
    p[468:473, :2] = out["output_left_iris"].reshape(5, 2)
    p[473:478, :2] = out["output_right_iris"].reshape(5, 2)
    p[468:473, 2] = p[list(LEFT_EYE_Z), 2].mean()
    p[473:478, 2] = p[list(RIGHT_EYE_Z), 2].mean()
    p /= LANDMARK_PX  # normalised to the crop
    c, s = np.cos(rotation), np.sin(rotation)
    x, y = p[:, 0] - 0.5, p[:, 1] - 0.5
    return np.stack([centre[0] + side * (c * x - s * y), centre[1] + side * (s * x + c * y), p[:, 2] * side], 1)


@lru_cache(maxsize=1)
def _refined_indices() -> tuple:
    """The mesh points the lips, left-eye and right-eye outputs replace: the subsets of the
    model's own Landmarks2TransformMatrix operators (lips, left eye, right eye), which are the
    LandmarksRefinementCalculator's index mappings."""
    g = load_model("face_landmark_with_attention").graph
    return tuple(np.asarray(o["options"]["subset_idxs"]) for o in g["ops"] if o["op"] == "Landmarks2TransformMatrix")


def face_mesh(image: np.ndarray, max_faces: int = 5, min_score: float = 0.4) -> list[np.ndarray]:
    """Every face's (478, 3) points (:func:`face_landmarks`) in an (H, W, 3) uint8 RGB image, in
    the detector's order (best first), as ``FaceMesh(static_image_mode=True,
    refine_landmarks=True, max_num_faces, min_detection_confidence)`` returns them."""
    faces = []
    for det in detect_faces(image, min_score)[:max_faces]:
        p = face_landmarks(image, *face_roi(det))
        if p is not None:
            faces.append(p)
    return faces


def person_mask(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1]: where the (H, W, 3) uint8 RGB image shows a person (MediaPipe's
    selfie segmentation, general model: the whole image stretched to 256 x 256, the mask
    resized back bilinearly)."""
    H, W = image.shape[:2]
    x = warp_rect(image, (W / 2, H / 2), (W, H), 0.0, SEGMENTATION_PX, border="zero")
    m = load_model("selfie_segmentation")(x[None].astype(F32) / 255)["activation_10"]
    size = np.array([H, W])
    return resize_bilinear(m, size, dict(align_corners=False, half_pixel_centers=True))[0, :, :, 0]
