
import numpy as np
import pytest

from glvd_core.cameras import Camera, CameraError, load_cameras, look_at_rotation, save_cameras


def test_crop_resize_maps_pixels_exactly():
    cam = Camera(look_at_rotation(20, -10, 5), [0.01, -0.02, 0.6], [[900, 0, 310.5], [0, 905, 240.2], [0, 0, 1]], 640, 480)
    X = np.random.default_rng(0).normal(0, 0.05, (50, 3))
    p = cam.project(X)
    x0, y0, s = 120.0, 40.0, 256 / 300
    c2 = cam.crop_resize(x0, y0, s, 256, 256)
    q = c2.project(X)
    # pixel centres: old pixel (x0, y0) is the crop's first pixel; continuous edges map linearly
    np.testing.assert_allclose(q, (p - [x0, y0]) * s + 0.5 * (s - 1), atol=1e-9)
    # and back: the inverse affine recovers the original pixels exactly
    np.testing.assert_allclose((q - 0.5 * (s - 1)) / s + [x0, y0], p, atol=1e-9)


def test_json_round_trip(tmp_path):
    cams = [Camera.from_fov(256, 256, 30, R=look_at_rotation(a, 0, 0), t=[0, 0, 0.5]) for a in (0, 30)]
    save_cameras(tmp_path / "c.json", cams, ["a.png", "b.png"])
    back, views = load_cameras(tmp_path / "c.json")
    for a, b in zip(cams, back):
        np.testing.assert_allclose(a.R, b.R)
        np.testing.assert_allclose(a.K, b.K)
    assert views[1]["image"] == "b.png"


@pytest.mark.parametrize("content, words", [
    ("{", "not valid JSON"),
    ("[]", "non-empty 'views'"),
    ('{"views": [{"R": [[1,0,0],[0,1,0],[0,0,1]], "t": [0,0,0]}]}', "missing field 'K'"),
    ('{"views": [{"R": [[2,0,0],[0,1,0],[0,0,1]], "t": [0,0,0], "K": [[1,0,0],[0,1,0],[0,0,1]], "width": 4, "height": 4}]}', "not a rotation"),
    ('{"views": [{"R": [[1,0,0],[0,1,0],[0,0,1]], "t": [0,0], "K": [[1,0,0],[0,1,0],[0,0,1]], "width": 4, "height": 4}]}', "t 3"),
])
def test_malformed_cameras_name_file_and_problem(tmp_path, content, words):
    p = tmp_path / "cameras.json"
    p.write_text(content)
    with pytest.raises(CameraError) as e:
        load_cameras(p)
    assert str(p) in str(e.value) and words in str(e.value)


def test_fov_camera():
    c = Camera.from_fov(512, 256, 40)
    assert abs(c.fov_deg - 40) < 1e-9
