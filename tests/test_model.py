"""GLVD networks, descent and training on CPU with the tiny config."""
import json

import numpy as np
import pytest
import torch

from glvd_core import load_template
from glvd_core.model.config import get_config
from glvd_core.model.glvd import GLVD
from glvd_core.model.networks import WNMLP
from glvd_core.reconstruct import Cancelled, Reconstructor
from glvd_core.checkpoint import load_checkpoint
from glvd_core.train.trainer import Trainer, TrainOptions
from glvd_core.reconstruct import ReconstructOptions


def test_diagonal_equals_the_full_outputs_diagonal():
    torch.manual_seed(0)
    mlp = WNMLP(cin=7, hidden=16, n_targets=50)
    x = torch.randn(2, 50, 7)
    h = mlp.hidden(x)
    full = mlp.head(h)  # (2, 50, 50, 3)
    diag = mlp.head(h, torch.arange(50).expand(2, -1))
    assert full.shape == (2, 50, 50, 3) and diag.shape == (2, 50, 3)
    torch.testing.assert_close(diag, full[:, torch.arange(50), torch.arange(50)], rtol=1e-5, atol=1e-6)
    sub = torch.randint(0, 50, (2, 50, 4))
    picked = mlp.head(h, sub)
    ref = torch.gather(full, 2, sub[..., None].expand(-1, -1, -1, 3))
    torch.testing.assert_close(picked, ref, rtol=1e-5, atol=1e-6)
    mlp.freeze_last(True)  # inference cache gives the same numbers
    torch.testing.assert_close(mlp.head(h, torch.arange(50).expand(2, -1)), diag)


def test_paper_config_sizes():
    cfg = get_config("paper")
    assert (cfg.arch.image_size, cfg.arch.fv_stacks, cfg.arch.hidden_v, cfg.arch.num_keypoints, cfg.arch.fv_out) == (256, 4, 512, 18, 64)
    counts = GLVD(cfg, load_template()).net.parameter_counts()
    assert 22e6 < counts["vertex_branch"] < 28e6  # paper: ~25.6 M
    assert 11e6 < counts["g_v"] < 12e6            # paper: ~11.6 M
    assert 0.4e6 < counts["g_k"] < 0.45e6         # paper: ~0.43 M


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = get_config("tiny", sdf_steps=10, kp_steps=10, vertex_steps=20)
    Trainer(cfg, tiny_dataset, out, TrainOptions(ckpt_every=5, log_every=1, progress=False, threads=1)).run()
    return out


def _losses(run, stage):
    return [json.loads(l)["loss"] for l in (run / "metrics.jsonl").read_text().splitlines()
            if json.loads(l)["stage"] == stage]


def test_training_writes_model_and_metrics(tiny_run, template):
    ck = load_checkpoint(tiny_run / "model.pt")
    assert ck["template_sha256"] == template.sha256 and ck["config"]["name"] == "tiny"
    for stage in ("sdf", "kp", "vertex"):
        assert (tiny_run / f"stage_{stage}.pt").is_file() and _losses(tiny_run, stage)


def test_resume_gives_the_same_losses(tiny_dataset, tiny_run, tmp_path):
    """Stop mid-stage, resume from the checkpoint: the losses equal the uninterrupted run's."""
    cfg = get_config("tiny", sdf_steps=10, kp_steps=10, vertex_steps=20)
    out = tmp_path / "r"
    Trainer(cfg, tiny_dataset, out, TrainOptions(ckpt_every=5, log_every=1, progress=False, threads=1,
                                                  stop_after=25)).run()  # sdf 10 + kp 10 + vertex 5
    with pytest.raises(FileExistsError):
        Trainer(cfg, tiny_dataset, out, TrainOptions(progress=False))
    Trainer(cfg, tiny_dataset, out, TrainOptions(ckpt_every=5, log_every=1, progress=False, threads=1),
            resume=True).run()
    for stage in ("sdf", "kp", "vertex"):
        np.testing.assert_allclose(_losses(out, stage), _losses(tiny_run, stage), rtol=1e-5, atol=1e-6)


def test_time_limit_and_loader_threads_resume_to_the_same_losses(tiny_dataset, tiny_run, tmp_path):
    """A run cut by its time limit off a checkpoint boundary, built by loader threads, then
    resumed, trains on the same batches with the same losses as the uninterrupted run."""
    cfg = get_config("tiny", sdf_steps=10, kp_steps=10, vertex_steps=20)
    out = tmp_path / "t"
    opts = dict(ckpt_every=5, log_every=1, progress=False, threads=1, loader_threads=2)
    t = Trainer(cfg, tiny_dataset, out, TrainOptions(**opts, time_limit_s=1e-9))
    assert t.run() == out / "last.pt" and t.stopped_early
    ck = load_checkpoint(out / "last.pt")
    assert (ck["stage"], ck["step"]) == ("sdf", 1)  # saved although 1 is not a multiple of ckpt_every
    t = Trainer(cfg, tiny_dataset, out, TrainOptions(**opts), resume=True)
    assert t.run() == out / "model.pt" and not t.stopped_early
    for stage in ("sdf", "kp", "vertex"):
        np.testing.assert_allclose(_losses(out, stage), _losses(tiny_run, stage), rtol=1e-5, atol=1e-6)


def test_loss_decreases_over_50_steps(tiny_dataset, tmp_path):
    cfg = get_config("tiny", sdf_steps=0, kp_steps=0, vertex_steps=50, lr=3e-3, feature_dropout=0.0)
    out = tmp_path / "d"
    Trainer(cfg, tiny_dataset, out, TrainOptions(log_every=1, progress=False, max_scenes=4)).run()
    loss = _losses(out, "vertex")
    assert np.mean(loss[-10:]) < 0.9 * np.mean(loss[:10]), (loss[:10], loss[-10:])


@pytest.fixture(scope="module")
def untrained():
    return Reconstructor.untrained("tiny", device="cpu")


def test_reconstruction_shapes_and_determinism(untrained, tiny_dataset):
    from glvd_core.data import GLVDDataset

    s = GLVDDataset(tiny_dataset)[0]
    r1 = untrained.reconstruct(s.images[:1], s.masks[:1], options=ReconstructOptions(iterations=4, seed=3, detect=False))
    r2 = untrained.reconstruct(s.images[:1], s.masks[:1], options=ReconstructOptions(iterations=4, seed=3, detect=False))
    assert r1.vertices.shape == (5, 7225, 3) and r1.keypoints.shape == (5, 18, 3)
    assert r1.faces.shape == (14342, 3) and r1.frame == "camera"
    np.testing.assert_array_equal(r1.vertices, r2.vertices)
    r3 = untrained.reconstruct(s.images[:1], s.masks[:1], options=ReconstructOptions(iterations=4, seed=4, detect=False))
    assert not np.array_equal(r1.keypoints[0], r3.keypoints[0])
    for k in ("prepare", "encode", "descent", "total"):
        assert r1.timings[k] >= 0
    # clipping: no vertex moves more than clip * scale per step
    step = np.linalg.norm(np.diff(r1.vertices, axis=0), axis=-1).max()
    assert step <= untrained.cfg.inference.clip * untrained.cfg.arch.frame_scale_m * (1 + 1e-4)


def test_prepared_ahead_gives_the_same_reconstruction(untrained, tiny_dataset):
    """A batch prepares the next input (detection, masks) on another thread: same result."""
    from glvd_core.data import GLVDDataset

    s = GLVDDataset(tiny_dataset)[2]
    lm = [s.cameras[0].project(s.vertices_m[untrained.template.landmarks68])]
    direct = untrained.reconstruct(s.images[:1], s.masks[:1], landmarks=lm, options=ReconstructOptions(iterations=3))
    prepared = untrained.prepare(s.images[:1], s.masks[:1], landmarks=lm)
    ahead = untrained.reconstruct(s.images[:1], s.masks[:1], landmarks=lm, prepared=prepared, options=ReconstructOptions(iterations=3))
    np.testing.assert_array_equal(direct.vertices, ahead.vertices)
    assert direct.info["notes"] == ahead.info["notes"]


def test_multiview_with_one_view_equals_single_view(untrained, tiny_dataset):
    from glvd_core.data import GLVDDataset

    s = GLVDDataset(tiny_dataset)[1]
    cam = s.cameras[0]
    lm = [cam.project(s.vertices_m[untrained.template.landmarks68])]
    single = untrained.reconstruct(s.images[:1], s.masks[:1], landmarks=lm, options=ReconstructOptions(fov_deg=cam.fov_deg))
    multi = untrained.reconstruct(s.images[:1], s.masks[:1], cameras=[cam], landmarks=lm)
    assert multi.frame == "world"
    np.testing.assert_allclose(cam.world_to_camera(multi.final_vertices), single.final_vertices, atol=1e-5)


def test_callback_progress_and_cancel(untrained, tiny_dataset):
    from glvd_core.data import GLVDDataset

    s = GLVDDataset(tiny_dataset)[0]
    seen = []
    untrained.reconstruct(s.images[:1], callback=lambda i, v, k: seen.append((i, v.shape, k.shape)), options=ReconstructOptions(iterations=3, detect=False))
    assert seen == [(1, (7225, 3), (18, 3)), (2, (7225, 3), (18, 3)), (3, (7225, 3), (18, 3))]
    with pytest.raises(Cancelled):
        untrained.reconstruct(s.images[:1], callback=lambda i, v, k: i < 2, options=ReconstructOptions(iterations=5, detect=False))

    class Stop(Exception):
        pass

    frozen_during = []

    def boom(i, v, k):
        frozen_during.append(untrained.model.net.g_v._frozen_w3 is not None)
        raise Stop()

    with pytest.raises(Stop):
        untrained.reconstruct(s.images[:1], callback=boom, options=ReconstructOptions(iterations=5, detect=False))
    # the last layers are materialised for the descent and released however it ends (a stale
    # cache would survive a later weight update)
    nets = (untrained.model.net.g_v, untrained.model.net.g_k)
    assert frozen_during == [True] and all(n._frozen_w3 is None for n in nets)


def test_cuda_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        Reconstructor.untrained("tiny", device="cuda")


def test_reconstruct_cli_writes_a_valid_obj(tiny_run, tiny_dataset, tmp_path, template):
    from glvd_core.cli import main
    from glvd_core.io import read_obj

    scene = tiny_dataset / "scene_00000"
    out = tmp_path / "face.obj"
    rc = main(["reconstruct", str(scene / "view_00.png"), "--masks", str(scene / "mask_00.png"), "--output", str(out),
               "--weights", str(tiny_run / "model.pt"), "--iterations", "3", "--trajectory", str(tmp_path / "t.npz"),
               "--json", str(tmp_path / "s.json"), "--device", "cpu", "--no-detect"])
    assert rc == 0
    v, f = read_obj(out)
    assert v.shape == (7225, 3) and f.shape == (14342, 3)
    np.testing.assert_array_equal(f, template.faces)
    assert np.load(tmp_path / "t.npz")["vertices"].shape == (4, 7225, 3)
    assert json.loads((tmp_path / "s.json").read_text())["frame"] == "camera"
    rc = main(["reconstruct", str(scene / "view_00.png"), str(scene / "view_01.png"), "--cameras",
               str(scene / "cameras.json"), "--output", str(out), "--weights", str(tiny_run / "model.pt"),
               "--iterations", "2", "--no-detect"])
    assert rc == 0


def test_cached_detector_landmarks_follow_every_augmentation(tiny_dataset, tmp_path, template):
    """With a landmark cache equal to the projected GT, each batch's landmarks are exactly the
    projection of its (mirrored, zoomed, resized) GT through its own cameras."""
    import shutil

    from glvd_core.data import GLVDDataset
    from glvd_core.data.dataset import save_npz_deterministic
    from glvd_core.train.batch import SceneBank

    root = tmp_path / "d"
    shutil.copytree(tiny_dataset, root)
    ds = GLVDDataset(root)
    for i in range(len(ds)):
        s = ds[i]
        lm = np.stack([c.project(s.vertices_m[template.landmarks68]) for c in s.cameras])
        save_npz_deterministic(s.path / "landmarks_detected.npz", landmarks68=lm.astype(np.float32),
                               ok=np.ones(len(lm), bool), source=np.array("given"))
    cfg = get_config("tiny", landmark_noise_px=5.0)
    bank = SceneBank(root, cfg, template, log=lambda *a: None)
    for step in range(6):
        b = bank.batch(np.random.default_rng(step), 2, 2)
        g = b.gt_vertices[:, torch.as_tensor(template.landmarks68)]
        x = torch.einsum("bvij,bpj->bvpi", b.A, g) + b.b[:, :, None]
        uv = torch.einsum("bvij,bvpj->bvpi", b.K[..., :2, :], x / x[..., 2:3])
        torch.testing.assert_close(uv, b.landmarks_px, atol=2e-3, rtol=0)


@pytest.mark.parametrize("prior", ["none", "keypoints", "image"])
def test_diagonal_descent_equals_the_full_output_reference(untrained, tiny_dataset, prior, network_inputs):
    """The fast path (diagonal gather, cached weights) matches the naive full-output step within 1e-4 m,
    with and without the keypoint-posed template prior ("image" without a face crop: the mean shape)."""
    from glvd_core.bench import full_output_step
    from glvd_core.data import GLVDDataset

    s = GLVDDataset(tiny_dataset)[0]
    rec = untrained if prior == "none" else Reconstructor.untrained(get_config("tiny", vertex_prior=prior), device="cpu")
    lm = [s.cameras[0].project(s.vertices_m[rec.template.landmarks68])]
    r = rec.reconstruct(s.images[:1], s.masks[:1], cameras=s.cameras[:1], landmarks=lm, options=ReconstructOptions(iterations=5, seed=2))
    views, cams, _ = rec.prepare(s.images[:1], s.masks[:1], s.cameras[:1], lm)
    cfg = rec.cfg
    fr, img, msk, hm, A, b, K = network_inputs(rec, views)
    with torch.no_grad():
        feats = rec.model.encode(img, msk, hm)
        k = (torch.rand(1, cfg.arch.num_keypoints, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1) * cfg.inference.kp_init_extent
        v = rec.model.vertex_init[None].clone()
        for _ in range(5):
            v, k = full_output_step(rec.model, feats, v, k, A, b, K, cfg.inference.clip)
    ref = fr.to_world_m(v[0].numpy().astype(np.float64))
    assert np.abs(ref - r.final_vertices).max() < 1e-4


@pytest.mark.slow
def test_two_scene_overfit_reaches_under_2mm(tmp_path):
    """The whole pipeline can learn: trained on 2 scenes (no augmentation or noise), the descent
    reconstructs them (seen view, oracle landmarks) to < 2 mm aligned Chamfer, better than the
    mean template. ~2 min on 2 CPU cores."""
    from glvd_core.data import make_dataset
    from glvd_core.evaluate import evaluate

    data = tmp_path / "data"
    make_dataset(data, scenes=2, views=1, seed=77, size=256, workers=1, progress=False)
    cfg = get_config("tiny", sdf_steps=200, kp_steps=600, vertex_steps=3000, augment=False, mirror=False,
                     feature_dropout=0.0, kp_noise_sigma=0.005, landmark_noise_px=0.0, multiview_prob=0.0)
    Trainer(cfg, data, tmp_path / "run", TrainOptions(progress=False, threads=2)).run()
    rec = Reconstructor.from_pretrained(tmp_path / "run" / "model.pt", device="cpu")
    res = evaluate(data, {"GLVD": rec}, views=1, oracle_landmarks=True, log=lambda *a, **k: None)
    table = res["table"]
    assert table["GLVD"]["scenes"] == 2
    assert table["GLVD"]["chamfer_aligned_mm"] < 2.0, table
    assert table["GLVD"]["chamfer_aligned_mm"] < table["mean template"]["chamfer_aligned_mm"], table


def test_bench_times_the_bundled_model_end_to_end():
    """`bench --config default` times the model users get, with its own settings, from the photo alone."""
    from glvd_core.bench import run_bench

    rep = run_bench(configs=("default",), device="cpu", runs=1, batch=2, log=lambda *_: None)
    res = rep["results"]["default"]
    assert res["model"].startswith("bundled") and res["iterations"] == Reconstructor.from_pretrained().cfg.inference.iterations
    for k in ("reconstruct_1photo_end_to_end", "reconstruct_1view", "descent_step_1view", "batch_2_faces",
              "texture_bake_2048_1view", "texture_bake_4096_3view"):
        assert res[k]["runs"] >= 1 and res[k]["median_ms"] > 0, k
    assert res["diagonal_speedup_vs_full_output"] > 1
