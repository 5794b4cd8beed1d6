"""The "image" shape prior: identity read from the face crop (glvd_core/model/identity_cnn.py)."""
import cv2
import numpy as np
import pytest
import torch

from glvd_core.io import InputError
from glvd_core.preprocess.face_crop import CROP_PX, face_crop, face_crop_matrix
from glvd_core.preprocess import MediaPipeFaces
from glvd_core.reconstruct import Reconstructor
from glvd_core.reconstruct import ReconstructOptions


@pytest.fixture(scope="module")
def astronaut_face():
    from skimage import data

    img = np.ascontiguousarray(data.astronaut())
    return img, MediaPipeFaces.detect(img, where="astronaut", segment=False)


def _moved(img, det, angle_deg, scale, shift):
    H, W = img.shape[:2]
    M = cv2.getRotationMatrix2D((W / 2 + 20, H / 2 - 10), angle_deg, scale)
    M[:, 2] += shift
    p = det.landmarks478.copy()
    p[:, :2] = p[:, :2] @ M[:, :2].T + M[:, 2]
    return cv2.warpAffine(img, M, (W + 100, H + 100), flags=cv2.INTER_LINEAR), p


def test_face_crop_follows_the_face_and_levels_the_eyes(astronaut_face):
    """Scaling and shifting the photo (its points with it) gives the same crop; a rolled photo's
    crop has the outer eye corners level and the face centred."""
    img, det = astronaut_face
    ref = face_crop(img, det.landmarks478)
    assert ref.shape == (3, CROP_PX, CROP_PX) and ref.dtype == np.uint8
    moved = face_crop(*_moved(img, det, 0.0, 1.3, (15, -8)))
    inner = (slice(None), slice(8, -8), slice(8, -8))  # borders replicate different edges
    assert np.abs(moved[inner].astype(float) - ref[inner]).mean() < 3.0
    for angle in (-25.0, 10.0, 25.0):
        _, p = _moved(img, det, angle, 1.0, (0, 0))
        M = face_crop_matrix(p)
        eyes = p[[33, 263], :2] @ M[:, :2].T + M[:, 2]
        assert abs(eyes[0, 1] - eyes[1, 1]) < 1e-6 and eyes[0, 0] < eyes[1, 0]
        nose = p[1, :2] @ M[:, :2].T + M[:, 2]
        assert np.all(np.abs(nose - CROP_PX / 2) < CROP_PX / 4)
    with pytest.raises(ValueError, match="478"):
        face_crop(img, det.landmarks478[:68])


def test_478_points_give_the_same_reconstruction_as_their_68(astronaut_face):
    """MediaPipe's 478 points are accepted as landmarks: mapped to the same 68 as detection does."""
    img, det = astronaut_face
    rec = Reconstructor.untrained("tiny", device="cpu")
    a = rec.reconstruct([img], landmarks=[det.landmarks68], options=ReconstructOptions(iterations=2))
    b = rec.reconstruct([img], landmarks=[det.landmarks478], options=ReconstructOptions(iterations=2))
    np.testing.assert_array_equal(a.vertices, b.vertices)


@pytest.mark.parametrize("bad, message", [(np.zeros((478, 2)), "478, 3"), (np.zeros((67, 2)), "68, 2"),
                                          (np.full((68, 2), np.nan), "NaN")])
def test_malformed_landmarks_are_a_clear_error(astronaut_face, bad, message):
    img, _ = astronaut_face
    rec = Reconstructor.untrained("tiny", device="cpu")
    with pytest.raises(InputError, match=message):
        rec.reconstruct([img], landmarks=[bad], names=["astronaut.png"], options=ReconstructOptions(iterations=1))


def test_bundled_identity_cnn_reads_identity_from_renders(ict, template):
    """On renders no training set used (seed 31337), the bundled CNN's identity shape is closer to
    the true one than the mean face is, on average (aligned Chamfer of the identity shapes)."""
    from glvd_core.data.synth import SceneConfig, render_model, render_view, sample_lighting, sample_scene
    from glvd_core.evaluate import chamfer_mm
    from glvd_core.expression.shape_space import identity_modes
    from glvd_core.model.identity_cnn import load_identity_cnn

    B, mean, rm = identity_modes(template), template.vertices_m.astype(np.float64), render_model(ict)
    crops, truth = [], []
    for i in range(16):
        rng = np.random.default_rng([31337, i])
        sc = sample_scene(ict, rng, 1, SceneConfig(yaw_deg=30, pitch_deg=15))
        rgb, _ = render_view(ict, rm, sc.vertices_ict_m, sc.cameras[0], sc.appearance, sample_lighting(rng), rng)
        try:
            det = MediaPipeFaces.detect(rgb, segment=False)
        except InputError:
            continue
        crops.append(face_crop(rgb, det.landmarks478))
        truth.append(sc.identity)
    assert len(crops) >= 12
    w = load_identity_cnn().predict(torch.as_tensor(np.stack(crops))).numpy()
    err = {k: np.mean([chamfer_mm(mean + np.tensordot(t, B, axes=1), mean + np.tensordot(p, B, axes=1), template,
                                  align=True, n_points=4000)[0] for t, p in zip(truth, ws)])
           for k, ws in (("cnn", w), ("mean face", np.zeros_like(w)))}
    assert err["cnn"] < err["mean face"], err  # measured: 1.575 against 1.627 mm


def test_image_prior_shapes_the_template_from_the_crop(astronaut_face):
    """vertex_prior=image: the bundled model's template is shaped by the CNN's identity; without
    MediaPipe's 478 points there is no crop, so it keeps the mean shape and says so."""
    img, det = astronaut_face
    image = Reconstructor.from_pretrained(device="cpu", overrides={"vertex_prior": "image"})
    keypoints = Reconstructor.from_pretrained(device="cpu", overrides={"vertex_prior": "keypoints"})
    views, _, notes = image.prepare([img], landmarks=[det.landmarks478])
    assert views[0].face_crop is not None and not notes
    with_crop = image.reconstruct([img], landmarks=[det.landmarks478], prepared=(views, _, notes))
    assert not any("image shape prior" in n for n in with_crop.info["notes"])
    no_crop = image.reconstruct([img], landmarks=[det.landmarks68])
    assert any("keeps the template's mean shape" in n for n in no_crop.info["notes"])
    # with no identity the prior is the keypoint-posed mean template: the "keypoints" prior
    ref = keypoints.reconstruct([img], landmarks=[det.landmarks68])
    np.testing.assert_allclose(no_crop.vertices, ref.vertices, atol=1e-6)
    assert np.abs(with_crop.final_vertices - no_crop.final_vertices).max() > 5e-4  # the shape moved (> 0.5 mm)


def _shape_rms_mm(template, dw):
    """Per-vertex RMS (mm) over the template of the shape offset that identity weights ``dw`` make."""
    from glvd_core.expression.shape_space import identity_modes

    d = np.tensordot(np.asarray(dw, np.float64), identity_modes(template), axes=1)
    return 1000 * np.sqrt((d ** 2).sum(-1).mean())


def test_mirror_weight_map_gives_the_weights_of_the_mirrored_face(template):
    """The map takes a shape-space face's identity weights to those of its mirror image (the
    template's symmetry), and applied twice it returns the face."""
    from glvd_core.expression.shape_space import identity_modes
    from glvd_core.model.identity_cnn import mirror_weight_map

    B, R = identity_modes(template), mirror_weight_map(template).double().numpy()
    for seed in range(3):
        w = np.random.default_rng(seed).standard_normal(len(B))
        mirrored = template.mirror(np.tensordot(w, B, axes=1))
        assert 1000 * np.abs(np.tensordot(R @ w, B, axes=1) - mirrored).max() < 0.5  # of a ~12 mm offset
        assert _shape_rms_mm(template, R @ R @ w - w) < 0.03 * _shape_rms_mm(template, w)
        assert _shape_rms_mm(template, R @ w - w) > 0.3 * _shape_rms_mm(template, w)  # faces are not symmetric


def test_a_candidate_identity_cnn_replaces_the_bundled_one_without_touching_it(astronaut_face, tmp_path):
    """evaluate --identity-cnn: a reconstructor can read identity with other CNN weights (a new
    training run's) while the bundled file stays as it is; a missing file fails at load time."""
    from glvd_core.model.identity_cnn import load_identity_cnn

    img, det = astronaut_face
    net = load_identity_cnn()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    last_bias = [k for k in state if k.endswith("bias")][-1]
    state[last_bias] += 0.5  # another network: every identity weight read 0.5 higher
    torch.save(state, tmp_path / "candidate.pt")
    overrides = {"vertex_prior": "image"}
    bundled = Reconstructor.from_pretrained(device="cpu", overrides=overrides)
    candidate = Reconstructor.from_pretrained(device="cpu", overrides=overrides, identity_cnn=tmp_path / "candidate.pt")
    views, _, _ = candidate.prepare([img], landmarks=[det.landmarks478])
    crop = torch.as_tensor(views[0].face_crop)[None]
    w_bundled, w_candidate = bundled._image_shape(views, []), candidate._image_shape(views, [])
    np.testing.assert_allclose(w_bundled, net.predict(crop)[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(w_candidate - w_bundled, 0.5, atol=1e-4)
    with pytest.raises(FileNotFoundError, match="no identity CNN weights"):
        Reconstructor.from_pretrained(device="cpu", identity_cnn=tmp_path / "missing.pt")


def test_landmark_fit_from_a_reading_moves_it_only_as_far_as_the_landmarks_ask(template):
    """fit_identity_to_landmarks(prior_mean=w): the fit of a shape-space face's exact landmarks,
    started from a wrong reading of it, ends nearer the face than the reading; the tighter its
    prior the nearer the reading it stays; a malformed reading is a clear error."""
    from glvd_core.baselines import fit_identity_to_landmarks
    from glvd_core.cameras import Camera, look_at_rotation
    from glvd_core.evaluate import chamfer_mm
    from glvd_core.expression.shape_space import identity_modes

    B, mean = identity_modes(template), template.vertices_m.astype(np.float64)
    rng = np.random.default_rng(11)
    truth = rng.standard_normal(len(B))
    reading = truth + 1.2 * rng.standard_normal(len(B))  # a reader's error, about the CNN's (RMS 1.0)
    cam = Camera.from_fov(256, 256, 30, R=look_at_rotation(20, 5, 0), t=[0, 0, 0.7])
    lm = cam.project((mean + np.tensordot(truth, B, axes=1))[template.landmarks68])
    K = [Camera(np.eye(3), np.zeros(3), cam.K, 256, 256)]

    def fused(sd):
        return fit_identity_to_landmarks([lm], K, template, B, prior=sd ** -2, noise_px=0.5, prior_mean=reading)[0]

    def error_mm(w):
        return chamfer_mm(mean + np.tensordot(truth, B, axes=1), mean + np.tensordot(w, B, axes=1), template,
                          align=True, n_points=4000)[0]

    loose, tight = fused(0.5), fused(0.01)
    assert error_mm(loose) < 0.8 * error_mm(reading), (error_mm(loose), error_mm(reading))
    assert np.abs(tight - reading).max() < 0.05 < np.abs(loose - reading).max()
    with pytest.raises(ValueError, match="prior_mean must be 100 finite weights"):
        fit_identity_to_landmarks([lm], K, template, B, prior_mean=reading[:10])


def test_one_model_file_carries_both_networks_and_ship_model_repackages_it(load_script, tmp_path):
    """The bundled model file holds the descent networks and the image prior's CNN together;
    ship_model.py re-packages it with another identity CNN (and keeps its own otherwise), and a
    model file without one refuses the 'image' prior at load time instead of failing mid-run."""
    from glvd_core.checkpoint import atomic_save, load_checkpoint
    from glvd_core.model.identity_cnn import load_identity_cnn
    from glvd_core.reconstruct import DEFAULT_MODEL

    ship = load_script("scripts/ship_model")
    bundled = Reconstructor.from_pretrained(device="cpu")
    assert bundled.cfg.inference.vertex_prior == "image" and bundled.identity_net is not None
    net = load_identity_cnn()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    last_bias = [k for k in state if k.endswith("bias")][-1]
    state[last_bias] += 0.5
    torch.save(state, tmp_path / "candidate.pt")
    ship.main(["--model", str(DEFAULT_MODEL), "--identity-cnn", str(tmp_path / "candidate.pt"),
               "--set", "iterations=7", "--out", str(tmp_path / "repacked.pt")])
    repacked = Reconstructor.from_pretrained(tmp_path / "repacked.pt", device="cpu")
    assert repacked.cfg.inference.iterations == 7
    b, r = bundled.identity_net.state_dict(), repacked.identity_net.state_dict()
    torch.testing.assert_close(r[last_bias], b[last_bias] + 0.5, atol=1e-3, rtol=0)
    ship.main(["--model", str(tmp_path / "repacked.pt"), "--set", "iterations=8", "--out", str(tmp_path / "again.pt")])
    again = Reconstructor.from_pretrained(tmp_path / "again.pt", device="cpu")
    torch.testing.assert_close(again.identity_net.state_dict()[last_bias], r[last_bias])
    ck = load_checkpoint(DEFAULT_MODEL)
    del ck["identity_cnn"]
    atomic_save(ck, tmp_path / "no_cnn.pt")
    with pytest.raises(ValueError, match="needs an identity CNN"):
        Reconstructor.from_pretrained(tmp_path / "no_cnn.pt", device="cpu")
    assert Reconstructor.from_pretrained(tmp_path / "no_cnn.pt", device="cpu",
                                         overrides={"vertex_prior": "keypoints"}).identity_net is None
