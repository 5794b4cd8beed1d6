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
