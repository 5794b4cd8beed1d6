"""The identity CNN's training recipe on rendered-while-training scenes
(``python -m glvd_core train-identity``): its crops are the product's crop, moved by measured detector
differences, and ``prepare`` measures those differences."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def tic():
    from glvd_core.train import identity

    return identity


def _points(rng):
    """A plausible (478, 2) point cloud: a rotated, scaled blob with distinct eye corners."""
    p = rng.normal(0, 30, (478, 2)) + [128, 120]
    p[33], p[263] = [100, 110], [156, 104]
    return p


def test_crop_parameters_round_trip(tic):
    from glvd_core.preprocess.face_crop import face_crop_matrix

    rng = np.random.default_rng(0)
    for _ in range(5):
        M = face_crop_matrix(_points(rng))
        np.testing.assert_allclose(tic.crop_from_params(tic.crop_params(M)), M, atol=1e-9)


def test_a_measured_difference_moves_the_crop_by_that_many_crop_pixels(tic):
    from glvd_core.preprocess.face_crop import CROP_PX

    p = np.array([130.0, 118.0, np.log(0.6), 0.0])
    M0 = tic.crop_from_params(p)
    M1 = tic.crop_from_params(tic.jittered(p, np.array([3.0, -2.0, 0.0, 0.0])))
    c_old = np.array([p[0], p[1], 1.0])
    np.testing.assert_allclose(M0 @ c_old, [CROP_PX / 2, CROP_PX / 2])
    np.testing.assert_allclose(M1 @ c_old, [CROP_PX / 2 - 3, CROP_PX / 2 + 2], atol=1e-9)
    M2 = tic.crop_from_params(tic.jittered(p, np.array([0.0, 0.0, 0.1, 5.0])))
    assert np.isclose(np.hypot(*M2[0, :2]), 0.6 * np.exp(0.1)) and np.isclose(np.degrees(np.arctan2(M2[0, 1], M2[0, 0])), 5)


def _fake_detections(root: Path, mp_vertex, noise_px=0.0, seed=0):
    """Write detection caches whose 478 points are the projections of ``mp_vertex`` (+ noise)."""
    from glvd_core.cameras import load_cameras

    rng = np.random.default_rng(seed)
    for sd in sorted(root.glob("scene_*")):
        V = np.load(sd / "gt.npz")["vertices_m"]
        cams = load_cameras(sd / "cameras.json")[0]
        pts = np.array([np.c_[c.project(V[mp_vertex]) + rng.normal(0, noise_px, (478, 2)), np.zeros(478)] for c in cams])
        np.savez(sd / "landmarks_detected.npz", landmarks478=pts, ok=np.ones(len(cams), bool), source="mediapipe")


def test_prepare_finds_the_vertex_behind_each_point_and_measures_no_difference_for_exact_points(tic, tiny_dataset,
                                                                                                 tmp_path, template):
    mp_vertex = (np.arange(478) * 15) % len(template.vertices_m)
    for name in ("train", "train_plain", "val"):
        shutil.copytree(tiny_dataset, tmp_path / name)
        _fake_detections(tmp_path / name, mp_vertex)
    out = tmp_path / "prep.npz"
    tic.main(["prepare", "--data", str(tmp_path), "--out", str(out)])
    with np.load(out) as z:
        found, jt, jp, crops = z["mp_vertex"], z["jitter_textured"], z["jitter_plain"], z["val_crops"]
    # the found vertex sits where the true one does (template vertices can coincide at seams)
    np.testing.assert_allclose(template.vertices_m[found], template.vertices_m[mp_vertex], atol=1e-6)
    assert jt.shape == (6, 4) and jp.shape == (6, 4) and np.abs(jt).max() < 1e-6
    assert crops.shape == (6, 3, 112, 112) and crops.std() > 5


def test_training_crops_are_the_product_crop_of_the_projected_points(tic, ict, template, tmp_path):
    """With zero measured difference the worker's crop is exactly face_crop() of the projected
    points on the same render; with a difference it is another crop of the same image."""
    from dataclasses import asdict

    from glvd_core.data.dataset import scene_rng
    from glvd_core.data.synth import SceneConfig, render_model, render_view, sample_lighting, sample_scene
    from glvd_core.ict import find_ict_path
    from glvd_core.preprocess.face_crop import face_crop, face_crop_matrix, warp_crop

    mp_vertex = (np.arange(478) * 15) % len(template.vertices_m)
    prep = tmp_path / "prep.npz"
    zero = np.zeros((4, 4), np.float32)
    np.savez(prep, mp_vertex=mp_vertex, jitter_textured=zero, jitter_plain=zero)
    cfg = SceneConfig(size=128)
    tic._worker_init(str(find_ict_path(None)), str(prep), asdict(cfg))
    crops, identity, plain = tic._render((123, 4, 1, 2))
    rng = scene_rng(123, 4)
    sc = sample_scene(ict, rng, 1, cfg)
    rgb, _ = render_view(ict, render_model(ict), sc.vertices_ict_m, sc.cameras[0], sc.appearance, sample_lighting(rng), rng)
    ref = face_crop(rgb, sc.cameras[0].project(template.from_ict(sc.vertices_ict_m)[mp_vertex]))
    assert crops.shape == (2, 3, 112, 112) and not plain
    np.testing.assert_array_equal(crops[0], ref)
    np.testing.assert_array_equal(crops[1], ref)
    np.testing.assert_array_equal(identity, sc.identity)
    np.savez(prep, mp_vertex=mp_vertex, jitter_textured=zero + [4, 0, 0, 0], jitter_plain=zero)
    tic._worker_init(str(find_ict_path(None)), str(prep), asdict(cfg))
    shifted = tic._render((123, 4, 1, 1))[0][0]
    # the crop window moved by the measured difference (4 crop pixels along the image's x)
    pts = sc.cameras[0].project(template.from_ict(sc.vertices_ict_m)[mp_vertex])
    M = tic.crop_from_params(tic.jittered(tic.crop_params(face_crop_matrix(pts)), np.array([4.0, 0, 0, 0])))
    assert not np.array_equal(shifted, ref)
    np.testing.assert_array_equal(shifted, warp_crop(rgb, M))
    old_centre = np.linalg.solve(face_crop_matrix(pts)[:, :2], [56, 56] - face_crop_matrix(pts)[:, 2])
    assert np.isclose(np.linalg.norm(M @ np.r_[old_centre, 1] - 56), 4)


def test_training_refuses_evaluation_seeds(tic, tmp_path):
    with pytest.raises(SystemExit, match="evaluation"):
        tic.main(["train", "--seed", "9000", "--prep", str(tmp_path / "none.npz"), "--out", str(tmp_path)])


def test_a_saved_package_loads_as_the_network_that_was_scored(template, tmp_path):
    """What both trainers write (fp16 weights, arch, recipe, scores) is what the product loads:
    the loaded network predicts exactly what the rounded network predicted."""
    from glvd_core.model.identity_cnn import IdentityCNN, load_identity_cnn, round_to_fp16, save_identity_cnn

    torch.manual_seed(0)
    net = IdentityCNN(width=8).eval()
    for m in net.modules():  # non-trivial BatchNorm statistics, so they must travel too
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    before = net.f[0][0].weight.detach().clone()
    fp16 = round_to_fp16(net)
    assert all(v.dtype == torch.float16 for v in fp16.values() if v.is_floating_point())
    assert not torch.equal(before, net.f[0][0].weight) and torch.equal(net.f[0][0].weight, fp16["f.0.0.weight"].float())
    crops = torch.randint(0, 256, (4, 3, 112, 112), dtype=torch.uint8)
    scored = net.predict(crops)
    path = tmp_path / "identity_cnn.pt"
    save_identity_cnn(path, net, fp16, dict(template_sha256=template.sha256, steps=1), dict(val_shape_rms_mm=1.0))
    loaded = load_identity_cnn(str(path))
    assert loaded.arch == dict(width=8, modes=100)
    torch.testing.assert_close(loaded.predict(crops), scored, rtol=0, atol=0)
    with pytest.raises(ValueError, match="template_sha256"):
        save_identity_cnn(tmp_path / "x.pt", net, fp16, dict(steps=1), {})
    other = tmp_path / "other.pt"
    save_identity_cnn(other, net, fp16, dict(template_sha256="0" * 64), {})
    with pytest.raises(ValueError, match="another template"):
        load_identity_cnn(str(other))


def test_mirror_augmentation_flips_half_the_crops_with_their_weights(template):
    """Each crop is either kept with its weights or flipped left-right with its weights mapped to
    the mirrored face's; about half are flipped."""
    from glvd_core.model.identity_cnn import mirror_batch, mirror_weight_map

    R = mirror_weight_map(template)
    g = torch.Generator().manual_seed(0)
    crops = torch.randint(0, 256, (200, 3, 8, 8), dtype=torch.uint8, generator=g)
    w = torch.randn(200, R.shape[0], generator=g)
    x2, w2 = mirror_batch(crops, w, R, generator=g)
    x0, w0 = mirror_batch(crops, w, None)
    assert x0 is crops and w0 is w  # augmentation off: the batch as it was
    flipped = (x2 == torch.flip(crops, dims=[3])).flatten(1).all(1)
    kept = (x2 == crops).flatten(1).all(1)
    assert bool((flipped ^ kept).all()) and 70 < int(flipped.sum()) < 130
    torch.testing.assert_close(w2[kept], w[kept])
    torch.testing.assert_close(w2[flipped], w[flipped] @ R.T)
