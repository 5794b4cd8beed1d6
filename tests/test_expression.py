"""ARKit blendshapes and the neutral option on reconstructed faces (no ICT data needed)."""
import cv2
import numpy as np
import pytest

from glvd_core import load_template
from glvd_core.expression import ARKIT_NAMES, arkit_offsets, fit_expression, neutralize
from glvd_core.expression.shape_space import identity_modes

TPL = load_template()


def posed(shape, scale=1.08, rvec=(0.1, -0.5, 0.05), t=(0.01, -0.02, 0.6)):
    """A template-frame shape seen by a camera: similarity into an OpenCV camera frame."""
    R = np.diag([1.0, -1.0, -1.0]) @ cv2.Rodrigues(np.array(rvec, float))[0]
    return (scale * shape @ R.T + t).astype(np.float32), R


def person(seed=0, expression=None):
    rng = np.random.default_rng(seed)
    shape = TPL.vertices_m + np.tensordot(rng.normal(0, 1, 100), identity_modes(TPL), 1)
    expr = np.zeros(57)
    for name, w in (expression or {}).items():
        expr[TPL.expression_names.index(name)] = w
    return shape, shape + np.tensordot(expr, TPL.expression_modes_m, 1)


def test_the_52_arkit_names_exactly():
    assert len(ARKIT_NAMES) == 52 == len(set(ARKIT_NAMES))
    for n in ("eyeBlinkLeft", "jawOpen", "mouthSmileRight", "browInnerUp", "cheekPuff", "tongueOut",
              "mouthRollUpper", "noseSneerLeft", "eyeLookInRight"):
        assert n in ARKIT_NAMES


def test_all_weights_zero_is_the_reconstruction_and_jaw_open_drops_the_chin():
    neutral, _ = person(1)
    V, R = posed(neutral)
    off = arkit_offsets(TPL, V)
    assert set(off) == set(ARKIT_NAMES)
    total = V + sum(0.0 * d for d in off.values())
    np.testing.assert_array_equal(total, V)
    chin = TPL.landmarks68[8]
    down = -R[:, 1]  # the head's down direction in the camera frame (template y is up)
    drop_mm = 1e3 * off["jawOpen"][chin] @ down
    assert 15 < drop_mm < 50, drop_mm  # a wide-open mouth: a few centimetres (ARKit scale)
    assert np.abs(off["tongueOut"]).max() == 0
    # the left eye (subject's own left, x > 0 in the template) blinks with eyeBlinkLeft
    moved = np.linalg.norm(off["eyeBlinkLeft"], axis=1) > 1e-4
    assert (TPL.vertices_m[moved, 0] > 0).mean() > 0.95


def test_offsets_scale_with_the_face():
    neutral, _ = person(2)
    a = arkit_offsets(TPL, posed(neutral, scale=1.0)[0])["jawOpen"]
    b = arkit_offsets(TPL, posed(neutral, scale=1.2)[0])["jawOpen"]
    assert np.linalg.norm(b, axis=1).max() == pytest.approx(1.2 * np.linalg.norm(a, axis=1).max(), rel=1e-3)


def test_neutralize_removes_the_expression_and_keeps_the_identity():
    rng = np.random.default_rng(5)
    neutral, expressive = person(3, {"jawOpen": 0.5, "mouthSmile_L": 0.6, "mouthSmile_R": 0.6, "eyeBlink_R": 0.8})
    V, _ = posed(expressive)
    V = V + rng.normal(0, 0.0005, V.shape).astype(np.float32)  # a reconstruction is not exact
    gt, _ = posed(neutral)
    out, fit = neutralize(TPL, V)
    face = TPL.narrow_face_mask.astype(bool)
    before = np.linalg.norm(V - gt, axis=1)[face].mean() * 1e3
    after = np.linalg.norm(out - gt, axis=1)[face].mean() * 1e3
    assert after < 0.25 * before and after < 1.0, (before, after)
    assert fit.expression["jawOpen"] == pytest.approx(0.5, abs=0.1)
    assert fit.expression["eyeBlink_R"] == pytest.approx(0.8, abs=0.15)
    # a neutral face stays (almost) where it is
    still, fit0 = neutralize(TPL, gt)
    assert np.linalg.norm(still - gt, axis=1)[face].mean() * 1e3 < 0.3
    with pytest.raises(ValueError, match="shape"):
        fit_expression(TPL, V[:100])
