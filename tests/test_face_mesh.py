"""Face detection without MediaPipe: its models (converted once into an asset) and its graphs in
numpy give the points, faces, masks and refusals MediaPipe 0.10.21 gives (here the reference,
installed in the development environment only)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import mediapipe as mp  # the reference (scripts/setup.sh installs it); the product does not import it
import numpy as np
import pytest

from glvd_core.io import InputError
from glvd_core.preprocess import MediaPipeFaces
from glvd_core.preprocess.face_mesh import detect_faces, face_mesh, person_mask
from glvd_core.runtime.tflite import ASSET

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"


def _photo(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(EXAMPLES / name)), cv2.COLOR_BGR2RGB)


def _reference(img: np.ndarray) -> tuple[list, list, np.ndarray]:
    """MediaPipe's legacy solutions, fresh for each image (a reused graph carries state from the
    image before): the face mesh's faces (478, 3) in pixels, the full-range detector's boxes,
    the person mask."""
    H, W = img.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=5, refine_landmarks=True,
                                         min_detection_confidence=0.4) as fm:
        faces = [np.array([[p.x * W, p.y * H, p.z * W] for p in f.landmark]) for f in fm.process(img).multi_face_landmarks or []]
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.4) as fd:
        boxes = []
        for d in fd.process(img).detections or []:
            b = d.location_data.relative_bounding_box
            boxes.append(np.array([b.xmin * W, b.ymin * H, (b.xmin + b.width) * W, (b.ymin + b.height) * H]))
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        mask = seg.process(img).segmentation_mask
    return faces, boxes, mask


@pytest.fixture(scope="module")
def images(tiny_dataset):
    from glvd_core.data import GLVDDataset

    a, g = _photo("astronaut.png"), _photo("grace_hopper.jpg")
    two = np.full((700, 1200, 3), 60, np.uint8)
    two[50:562, 20:532], two[60:660, 600:1112] = a, g
    far = np.full((1536, 2048, 3), 90, np.uint8)  # a face the mesh's detector misses: found by the full-range one
    far[836:1436, 1436:1948] = g
    renders = [im for s in (GLVDDataset(tiny_dataset)[i] for i in range(3)) for im in s.images]
    return dict(astronaut=a, grace_hopper=g, two_faces=two, far_face=far, **{f"render_{i}": r for i, r in enumerate(renders)})


def test_faces_points_boxes_and_masks_are_mediapipes(images):
    for name, img in images.items():
        faces, boxes, mask = _reference(img)
        ours = face_mesh(img)
        assert len(ours) == len(faces), name
        for a, b in zip(faces, ours):
            assert np.abs(a[:, :2] - b[:, :2]).max() < 0.05, name  # pixels; measured at most 0.032
            assert np.abs(a[:, 2] - b[:, 2]).max() < 0.05, name
        det = detect_faces(img, MediaPipeFaces.FULL_RANGE_MIN_SCORE, "full_range")
        assert len(det) == len(boxes), name
        for a, b in zip(boxes, det):
            assert np.abs(a - b.box).max() < 0.01, name
        assert np.abs(person_mask(img) - mask).max() < 2e-3, name


def test_the_largest_face_wins_and_a_distant_face_is_found(images):
    d = MediaPipeFaces.detect(images["two_faces"], where="two.png")
    assert d.notes == ["2 faces found in two.png; using the largest"]
    assert d.box[0] > 600  # Grace Hopper's face, the larger one
    assert not face_mesh(images["far_face"])  # the mesh's own detector misses it ...
    d = MediaPipeFaces.detect(images["far_face"], where="far.png")  # ... the full-range detector finds it
    assert 1436 < d.box[0] < d.box[2] < 1948 and d.person_mask.shape == images["far_face"].shape[:2]
    with pytest.raises(InputError, match="no face found in blank.png"):
        MediaPipeFaces.detect(np.full((300, 400, 3), 128, np.uint8), where="blank.png")


def test_the_models_asset_is_what_the_converter_makes_from_the_wheel(tmp_path):
    """The committed asset is reproducible: scripts/convert_mediapipe_models.py on the mediapipe
    wheel gives the same graphs and weights."""
    out = tmp_path / "models.npz"
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "convert_mediapipe_models.py"), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    with np.load(out) as new, np.load(ASSET) as old:
        assert sorted(new.files) == sorted(old.files)
        for k in old.files:
            if k.endswith("/graph"):
                assert json.loads(new[k].tobytes()) == json.loads(old[k].tobytes()), k
            else:
                assert new[k].dtype == old[k].dtype and np.array_equal(new[k], old[k]), k


def test_detection_runs_where_mediapipe_does_not_import(images):
    img = images["grace_hopper"]
    ref = MediaPipeFaces.detect(img, where="gh")
    script = f"""
import sys
sys.modules["mediapipe"] = None
import numpy as np, cv2
from glvd_core.preprocess import MediaPipeFaces
img = cv2.cvtColor(cv2.imread({str(EXAMPLES / "grace_hopper.jpg")!r}), cv2.COLOR_BGR2RGB)
print(repr(MediaPipeFaces.detect(img, where="gh").landmarks478.tolist()))
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr[-2000:]
    np.testing.assert_array_equal(np.array(eval(p.stdout)), ref.landmarks478)


def test_suppression_merges_overlapping_boxes_and_stops_at_an_empty_one():
    from glvd_core.preprocess.face_mesh import weighted_nms

    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [5, 5, 5, 5.0]])
    kps = np.zeros((4, 6, 2))
    kps[1] += 1.0
    out = weighted_nms(boxes, kps, np.array([0.9, 0.6, 0.8, 0.95]))
    # the empty box is best: kept as it is, and (as MediaPipe does) nothing after it
    assert len(out) == 1 and np.array_equal(out[0][0], boxes[3]) and out[0][2] == 0.95
    out = weighted_nms(boxes[:3], kps[:3], np.array([0.9, 0.6, 0.8]))
    assert [round(s, 2) for _, _, s in out] == [0.9, 0.8]
    np.testing.assert_allclose(out[0][0], [0.4, 0, 10.4, 10])  # (0.9 * box0 + 0.6 * box1) / 1.5
    np.testing.assert_allclose(out[0][1], 0.4)
