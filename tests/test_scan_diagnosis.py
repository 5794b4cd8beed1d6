"""research/scan_identity_diagnosis: its out-of-span displacements really leave the identity (and
the pose) alone, so a CNN reading should not move with them."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def diag(load_script):
    return load_script("research/scan_identity_diagnosis/scan_identity_diagnosis")


def test_out_of_span_removes_identity_and_similarity_and_keeps_the_rest(diag, template, ict):
    oos = diag.OutOfSpan(template, ict)
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, 100)
    R = np.array([[np.cos(0.02), -np.sin(0.02), 0], [np.sin(0.02), np.cos(0.02), 0], [0, 0, 1]])
    in_span = np.tensordot(w, ict.identity_modes_m.astype(np.float64), 1) + 0.01 * ict.neutral_m \
        + (ict.neutral_m @ R.T - ict.neutral_m) + [0.003, -0.002, 0.001]
    assert oos.rms_mm(in_span) > 1
    assert oos.rms_mm(oos(in_span)) < 0.01  # nothing of an identity change, a scaling or a small rigid motion is left
    bump = np.exp(-((ict.neutral_m - template.vertices_m[template.landmarks68[30]]) ** 2).sum(1) / (2 * 0.02 ** 2))[:, None] \
        * [0, 0, 0.003]  # a 3 mm bump on the nose: not an identity mode
    left = oos(bump)
    assert oos.rms_mm(left) > 0.1 * oos.rms_mm(bump)
    np.testing.assert_allclose(oos(left), left, atol=1e-6)  # removing twice changes nothing
    assert np.abs(oos.coef(left)).max() < 1e-4
