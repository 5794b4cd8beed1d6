"""The real-photo likeness benchmark's measures (glvd_core.likeness) on hand-made shapes, where
the right answer is known: one head for everybody scores spread 0 and AUC 0.5; people drawn from
the ICT population, each photo a little off, score spread about 1 and AUC 1; a person's true
shape fits their other photo's points exactly, the mean face does not."""
import numpy as np
import pytest

from glvd_core import likeness
from glvd_core.cameras import look_at_rotation
from glvd_core.expression.shape_space import identity_modes
from glvd_core.fitting.dense_points import load_dense_points
from glvd_core.template import load_template


@pytest.fixture(scope="module")
def space():
    tpl = load_template()
    return tpl, identity_modes(tpl), load_dense_points(tpl)


def project(points_m, R, t, K):
    x = (points_m @ R.T + t) @ K.T
    return x[:, :2] / x[:, 2:]


def photos_of(shapes, space, rng):
    """Detected points and intrinsics of one photo per shape: the shape's 478 points seen from a
    random yaw at 0.6 m by a 1000 px camera."""
    tpl, _, dense = space
    K = np.array([[1000.0, 0, 256], [0, 1000.0, 256], [0, 0, 1]])
    points, Ks = [], []
    for s in shapes:
        R = look_at_rotation(rng.uniform(-30, 30), rng.uniform(-10, 10), 0.0)
        p3 = dense.at(np.asarray(s, np.float64)) - tpl.vertices_m.mean(0)
        points.append(project(p3, R, np.array([0.0, 0.0, 0.6]), K))
        Ks.append(K)
    return points, Ks


def test_one_head_for_everybody_has_no_spread_and_chance_verification(space):
    tpl, modes, dense = space
    rng = np.random.default_rng(0)
    people = ["a", "a", "b", "b", "c", "c"]
    shapes = [tpl.vertices_m.copy() for _ in people]
    points, Ks = photos_of(shapes, space, rng)
    t = likeness.likeness_table(shapes, people, points, Ks, tpl, modes, dense)
    assert t["identity_spread"]["ratio"] == pytest.approx(0.0, abs=1e-6)
    assert t["verification"]["auc"] == 0.5
    # every photo is the mean face: it fits the other photos as well as the mean face does
    assert t["cross_view"]["ratio"] == pytest.approx(1.0, abs=1e-3)


def test_people_as_different_as_the_population_are_told_apart_and_fit_their_other_photos(space):
    tpl, modes, dense = space
    rng = np.random.default_rng(1)
    people, shapes = [], []
    for person in range(6):
        w = rng.normal(0, 1, modes.shape[0]).astype(np.float32)
        for _ in range(2):  # each photo's reading a little off the person's shape
            noisy = w + rng.normal(0, 0.05, w.shape).astype(np.float32)
            shapes.append(tpl.vertices_m + np.tensordot(noisy, modes, axes=1))
            people.append(person)
    points, Ks = photos_of(shapes, space, rng)
    t = likeness.likeness_table(shapes, people, points, Ks, tpl, modes, dense)
    assert 0.7 < t["identity_spread"]["ratio"] < 1.3
    assert t["verification"]["auc"] == 1.0 and t["verification"]["ratio"] > 5
    assert t["cross_view"]["glvd_px"] < 0.5 * t["cross_view"]["mean_face_px"]


def test_a_shape_posed_onto_its_own_projection_fits_to_the_pixel(space):
    tpl, _, dense = space
    pts = dense.at(tpl.vertices_m.astype(np.float64)) - tpl.vertices_m.mean(0)
    K = np.array([[800.0, 0, 300], [0, 800.0, 200], [0, 0, 1]])
    img = project(pts, look_at_rotation(20, 5, 3), np.array([0.01, -0.02, 0.5]), K)
    assert likeness.posed_rms_px(pts, img, K) < 1e-3
    # a wider face does not fit (a uniformly larger one would: scale and distance trade in one photo)
    assert likeness.posed_rms_px(pts * np.array([1.15, 1.0, 1.0]), img, K) > 0.5


def test_the_auc_counts_ties_half_and_needs_both_kinds():
    assert likeness.roc_auc([3, 4], [1, 2]) == 1.0
    assert likeness.roc_auc([1], [1]) == 0.5
    assert likeness.roc_auc([1, 3], [2]) == 0.5
    with pytest.raises(ValueError):
        likeness.roc_auc([], [1])


def test_a_folder_without_two_people_is_refused_before_any_work(tmp_path):
    from glvd_core.cli import main

    with pytest.raises(FileNotFoundError):
        likeness.people_photos(tmp_path / "missing")
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.jpg").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="at least two people, found 1"):
        likeness.people_photos(tmp_path)
    assert main(["evaluate-likeness", "--photos", str(tmp_path)]) == 2
