"""The synthetic data engine: what training looks at must be right and reproducible."""
import json

import cv2
import numpy as np

from glvd_core.data import GLVDDataset, make_dataset


def test_layout_and_loader(tiny_dataset, template):
    meta = json.loads((tiny_dataset / "dataset.json").read_text())
    assert meta["format"] == "glvd-dataset/1" and meta["template_sha256"] == template.sha256
    ds = GLVDDataset(tiny_dataset)
    assert len(ds) == 3
    s = ds[0]
    assert len(s.images) == 2 and s.images[0].shape == (128, 128, 3) and s.masks[0].shape == (128, 128)
    assert s.vertices_m.shape == (7225, 3)
    np.testing.assert_allclose(s.extras["keypoints68_m"], s.vertices_m[template.landmarks68])


def test_projected_gt_lies_inside_the_mask(tiny_dataset):
    """Every GT vertex is on the head, so it projects inside the head mask (visible or not)."""
    ds = GLVDDataset(tiny_dataset)
    for i in range(len(ds)):
        s = ds[i]
        for cam, mask in zip(s.cameras, s.masks):
            m = cv2.dilate((mask > 127).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
            uv = np.round(cam.project(s.vertices_m)).astype(int)
            inside = (uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.height)
            assert inside.mean() > 0.99, "the face is in the picture"
            hit = m[uv[inside, 1], uv[inside, 0]]
            assert hit.all(), f"{(~hit).sum()} GT vertices outside the mask"


def test_mask_equals_rasterised_coverage(ict):
    from glvd_core.data.synth import SceneConfig, render_model, render_view, sample_lighting, sample_scene
    from glvd_core.render.raster import rasterize

    rng = np.random.default_rng(3)
    sc = sample_scene(ict, rng, 1, SceneConfig(size=96))
    rm = render_model(ict)
    _, mask = render_view(ict, rm, sc.vertices_ict_m, sc.cameras[0], sc.appearance, sample_lighting(rng), rng)
    tris = rm.tris if sc.appearance["lashes"] else rm.tris[~rm.lash_tri]
    cam = sc.cameras[0]
    r = rasterize(cam.world_to_camera(sc.vertices_ict_m).astype(np.float32), tris, cam.K, 96, 96)
    np.testing.assert_array_equal(mask > 0, r.coverage)
    assert 0.1 < r.coverage.mean() < 0.9


def test_same_seed_same_bytes(tmp_path, tiny_dataset):
    out = tmp_path / "again"
    make_dataset(out, scenes=3, views=2, seed=7, size=128, workers=2, progress=False)
    for f in sorted(tiny_dataset.rglob("*")):
        if f.is_file():
            assert (out / f.relative_to(tiny_dataset)).read_bytes() == f.read_bytes(), f.name


def test_cli_make_data(tmp_path):
    from glvd_core.cli import main

    assert main(["make-data", "--out", str(tmp_path / "d"), "--scenes", "2", "--views", "1", "--size", "64", "--seed", "1"]) == 0
    assert (tmp_path / "d" / "scene_00001" / "view_00.png").is_file()


def _flat_light():
    """Ambient light only: every surface point shows its albedo unchanged."""
    z = np.zeros(3)
    return dict(direction=np.array([0.0, 0.0, -1.0]), intensity=z, ambient=np.ones(3), wrap=0.0,
                fill_dir=np.array([0.0, 0.0, 1.0]), fill=0.0)


def test_plain_appearance_paints_nothing(ict):
    """A plain scene (an untextured scan's look) shows one albedo under flat light; a default
    scene paints lips, brows and eyes on the same head."""
    from glvd_core.data.synth import SceneConfig, render_model, render_view, sample_scene

    rm = render_model(ict)
    spread = {}
    for p in (0.0, 1.0):
        rng = np.random.default_rng(11)
        sc = sample_scene(ict, rng, 1, SceneConfig(size=160, yaw_deg=0, pitch_deg=0, roll_deg=0, p_plain=p))
        assert sc.appearance["plain"] is (p == 1.0)
        rgb, mask = render_view(ict, rm, sc.vertices_ict_m, sc.cameras[0], sc.appearance, _flat_light(), rng)
        inner = cv2.erode((mask > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        spread[p] = np.abs(rgb[inner].astype(float) - np.median(rgb[inner], 0)).max()
    assert spread[1.0] <= 3, spread  # blur + dither only
    assert spread[0.0] > 40, spread


def test_plain_and_closed_eyes_keep_heads_and_cameras(ict):
    """A plain copy of a dataset (same seed) holds the same identities and cameras, so the two
    appearances pair up; p_plain = 0 leaves the random stream (earlier datasets) unchanged;
    closed eyes set both blink modes and the vertices follow them."""
    from glvd_core.data.synth import SceneConfig, sample_scene

    def scene(**kw):
        return sample_scene(ict, np.random.default_rng(5), 2, SceneConfig(size=64, **kw))

    base, same, plain = scene(), scene(p_closed_eyes=1.0), scene(p_plain=1.0, p_closed_eyes=1.0)
    for other in (same, plain):
        np.testing.assert_array_equal(other.identity, base.identity)
        for c0, c1 in zip(base.cameras, other.cameras):
            np.testing.assert_array_equal(c0.K, c1.K)
            np.testing.assert_array_equal(c0.t, c1.t)
    np.testing.assert_array_equal(same.expression, base.expression)  # closed eyes act on plain scenes only
    assert {k: str(v) for k, v in same.appearance.items()} == {k: str(v) for k, v in base.appearance.items()}
    blink = [ict.expression_names.index(n) for n in ("eyeBlink_L", "eyeBlink_R")]
    np.testing.assert_array_equal(plain.expression[blink], 1.0)
    np.testing.assert_allclose(plain.vertices_ict_m, ict.shape(plain.identity, plain.expression))
    assert np.abs(plain.vertices_ict_m - base.vertices_ict_m).max() > 0.003  # the lids moved


def test_make_data_plain_options(tmp_path):
    import pytest

    from glvd_core.cli import main

    with pytest.raises(ValueError, match="p_plain"):
        make_dataset(tmp_path / "bad", scenes=1, p_plain=1.5, progress=False)
    assert not (tmp_path / "bad").exists()
    assert main(["make-data", "--out", str(tmp_path / "p"), "--scenes", "1", "--size", "64", "--plain", "1",
                 "--closed-eyes", "1"]) == 0
    cfg = json.loads((tmp_path / "p" / "dataset.json").read_text())["generator"]["config"]
    assert cfg["p_plain"] == 1.0 and cfg["p_closed_eyes"] == 1.0
