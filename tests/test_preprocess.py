"""Real photos in: detection, landmarks, masks, crops and cameras."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from glvd_core.cameras import Camera, look_at_rotation
from glvd_core.io import InputError
from glvd_core.preprocess import MediaPipeFaces, camera_for, estimate_cameras, head_crop, load_photo, solve_pnp


def astronaut():
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def grace_hopper_path():
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.mark.parametrize("which", ["astronaut", "grace_hopper"])
def test_public_domain_photos_are_detected(which):
    img = astronaut() if which == "astronaut" else load_photo(grace_hopper_path()).image
    d = MediaPipeFaces.detect(img, where=which)
    H, W = img.shape[:2]
    assert d.landmarks68.shape == (68, 2) and d.size_px > 100
    lm = d.landmarks68
    # anatomy: eyes above the mouth, the subject's right eye (36-41) on the image left
    assert lm[36:48, 1].mean() < lm[48:68, 1].mean() < lm[8, 1]
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean()
    assert d.person_mask is not None and d.person_mask.shape == (H, W)


def test_no_face_is_a_clear_error():
    img = (np.random.default_rng(0).random((256, 256, 3)) * 40 + 100).astype(np.uint8)
    with pytest.raises(InputError, match="no face found in noise.png"):
        MediaPipeFaces.detect(img, where="noise.png")


def test_detected_landmarks_match_projected_gt_on_renders(ict):
    """On synthetic renders (seeds no training set uses) the detected landmarks lie near the
    projected GT ones."""
    from glvd_core import load_template
    from glvd_core.data.synth import SceneConfig, render_model, render_view, sample_lighting, sample_scene
    from glvd_core.preprocess.detect import mp_to_68
    from glvd_core.preprocess.mp68 import MP68_INDEX

    tpl = load_template()
    errs, found = [], 0
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        sc = sample_scene(ict, rng, 1, SceneConfig(size=256, yaw_deg=35))
        rgb, _ = render_view(ict, render_model(ict), sc.vertices_ict_m, sc.cameras[0], sc.appearance,
                             sample_lighting(rng), rng)
        try:
            d = MediaPipeFaces.detect(rgb, segment=False)
        except InputError:
            continue
        found += 1
        gt = sc.cameras[0].project(tpl.from_ict(sc.vertices_ict_m)[tpl.landmarks68])
        assert np.abs(d.landmarks68 - d.landmarks478[MP68_INDEX, :2]).max() == 0  # the nearest-point map
        errs.append(np.linalg.norm(mp_to_68(d.landmarks478) - gt, axis=1).mean())
    assert found >= 10
    assert np.mean(errs) < 8.0, f"mean landmark error {np.mean(errs):.2f} px at 256 px"


def test_pnp_recovers_synthetic_camera_poses(template):
    """Projected template landmarks + 1 px noise -> head pose within a few degrees."""
    from glvd_core.preprocess.framing import model_landmarks

    rng = np.random.default_rng(0)
    X = model_landmarks(template)
    for yaw, pitch, roll in [(0, 0, 0), (40, 10, -5), (-55, -20, 10), (20, 25, 15)]:
        R = look_at_rotation(yaw, pitch, roll)
        cam = Camera.from_fov(640, 480, 35, R=R, t=[0.01, -0.02, 0.55])
        lm = cam.project(X) + rng.normal(0, 1.0, (68, 2))
        pose = solve_pnp(lm, Camera.from_fov(640, 480, 35), template)
        ang = np.degrees(np.arccos(np.clip((np.trace(pose.R.T @ R) - 1) / 2, -1, 1)))
        assert ang < 3.0, (yaw, pitch, roll, ang)
        assert np.linalg.norm(pose.t - cam.t) < 0.03


def test_multiview_camera_estimation(template):
    from glvd_core.preprocess.framing import model_landmarks

    X = model_landmarks(template)
    rng = np.random.default_rng(1)
    truth = [Camera.from_fov(512, 512, 30, R=look_at_rotation(y, 5, 0), t=[0, 0, 0.6]) for y in (-35, 0, 35)]
    lms = [c.project(X) + rng.normal(0, 0.7, (68, 2)) for c in truth]
    cams, rms = estimate_cameras(lms, [Camera.from_fov(512, 512, 30)] * 3, template)
    assert max(rms) < 2.0
    for c, t in zip(cams, truth):
        rel_est = c.R @ cams[0].R.T
        rel_true = t.R @ truth[0].R.T
        ang = np.degrees(np.arccos(np.clip((np.trace(rel_est.T @ rel_true) - 1) / 2, -1, 1)))
        assert ang < 3.0


def test_crop_round_trip_maps_pixels_back_exactly(template):
    """A 3D point projects onto the network input where the crop puts its original pixel."""
    from glvd_core.model.config import get_config
    from glvd_core.reconstruct import prepare_view

    cfg = get_config("lite")
    cam = Camera.from_fov(800, 600, 45)
    X = np.array([[0.03, -0.02, 0.7], [-0.05, 0.04, 0.65]])
    crop = (250.3, 120.7, 301.9)
    v = prepare_view(np.zeros((600, 800, 3), np.uint8), None, cam, cam.project(X), cfg.arch.image_size, crop=crop)
    np.testing.assert_allclose(v.camera.project(X), v.landmarks, atol=1e-9)
    s = cfg.arch.image_size / crop[2]
    np.testing.assert_allclose((v.landmarks - 0.5 * (s - 1)) / s + crop[:2], cam.project(X), atol=1e-9)


def test_head_crop_frames_like_the_data_engine(ict, template):
    """PnP crop of a render: about the size and place the data engine framed it."""
    from glvd_core.data.synth import SceneConfig, sample_scene
    from glvd_core.model.config import get_config

    cfg = get_config("paper")
    rng = np.random.default_rng(5)
    sc = sample_scene(ict, rng, 1, SceneConfig(size=256, offset=0.0, fill=(0.925, 0.925)))
    cam = sc.cameras[0]
    lm = cam.project(template.from_ict(sc.vertices_ict_m)[template.landmarks68])
    x0, y0, side = head_crop(cam, solve_pnp(lm, cam, template), cfg.arch.head_extent_m, cfg.arch.nominal_fill)
    assert abs(side / 256 - 1) < 0.15
    assert abs(x0 + (side - 1) / 2 - 127.5) < 20 and abs(y0 + (side - 1) / 2 - 127.5) < 20


def test_exif_focal_length_sets_intrinsics(tmp_path):
    from PIL import Image

    p = tmp_path / "f.jpg"
    im = Image.fromarray(astronaut())
    exif = im.getexif()
    exif.get_ifd(0x8769)[0xA405] = 50  # 35 mm-equivalent focal length
    im.save(p, exif=exif)
    ph = load_photo(p)
    assert "exif" in ph.camera_source
    f_expected = 50 * np.hypot(512, 512) / 43.2666
    assert abs(ph.camera.K[0, 0] - f_expected) < 1e-6
    cam, src = camera_for(512, 512)
    assert "default" in src and abs(cam.fov_deg - 40) < 1e-9


@pytest.mark.parametrize("kind", ["missing", "directory", "zero", "truncated"])
def test_unreadable_photos_name_the_file(tmp_path, kind):
    p = tmp_path / "x.jpg"
    if kind == "directory":
        p.mkdir()
    elif kind == "zero":
        p.write_bytes(b"")
    elif kind == "truncated":
        ok, buf = cv2.imencode(".jpg", astronaut())
        p.write_bytes(buf.tobytes()[:300])
    with pytest.raises(InputError) as e:
        load_photo(p)
    assert str(p) in str(e.value)


def test_photo_modes_and_orientation(tmp_path):
    from PIL import Image

    a = astronaut()
    Image.fromarray(a[..., 0]).save(tmp_path / "g.png")
    Image.fromarray(np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray((a[..., 0].astype(np.uint16) * 257)).save(tmp_path / "16.png")
    Image.fromarray(a).convert("CMYK").save(tmp_path / "cmyk.jpg")
    for n in ("g.png", "rgba.png", "16.png", "cmyk.jpg"):
        ph = load_photo(tmp_path / n)
        assert ph.image.shape == (512, 512, 3) and ph.image.dtype == np.uint8, n
    np.testing.assert_array_equal(load_photo(tmp_path / "16.png").image[..., 0], a[..., 0])
    # EXIF orientation 6 (rotate 90 CW on display)
    im = Image.fromarray(a[:, :300])
    ex = im.getexif()
    ex[0x0112] = 6
    im.save(tmp_path / "rot.jpg", exif=ex)
    assert load_photo(tmp_path / "rot.jpg").image.shape == (300, 512, 3)


def test_two_faces_take_the_largest_and_say_so():
    a = astronaut()  # face ~106 px
    g = load_photo(grace_hopper_path()).image  # face ~200 px
    canvas = np.full((620, 1060, 3), 200, np.uint8)
    canvas[:512, :512] = a
    canvas[:g.shape[0], 540:540 + g.shape[1]] = g
    d = MediaPipeFaces.detect(canvas, where="two.png", segment=False)
    assert d.faces_found == 2 and any("2 faces found in two.png" in n for n in d.notes)
    assert d.landmarks68[:, 0].mean() > 540  # the larger face (Grace Hopper, right)


def test_masks_follow_their_photo(tmp_path):
    from glvd_core.preprocess.photo import load_mask_for

    big = tmp_path / "big.png"
    cv2.imwrite(str(big), np.zeros((600, 3000, 3), np.uint8))
    ph = load_photo(big)
    assert ph.image.shape[:2] == (410, 2048)
    m = tmp_path / "m.png"
    cv2.imwrite(str(m), np.full((600, 3000), 255, np.uint8))
    assert load_mask_for(m, ph).shape == (410, 2048)
    wrong = tmp_path / "w.png"
    cv2.imwrite(str(wrong), np.full((300, 300), 255, np.uint8))
    with pytest.raises(InputError, match="w.png: mask is 300x300 but the photo .*big.png is 3000x600"):
        load_mask_for(wrong, ph)
