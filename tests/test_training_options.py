"""Training options a run relies on: the keypoint-posed template prior, starting from weights,
bf16 autocast, and data-parallel training under torchrun (CPU, gloo)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from glvd_core.cli import parse_overrides
from glvd_core.model.config import get_config
from glvd_core.geometry.tensor import similarity_fit
from glvd_core.model.glvd import GLVD
from glvd_core.reconstruct import Reconstructor
from glvd_core.checkpoint import load_checkpoint
from glvd_core.train.trainer import Trainer, TrainOptions
from glvd_core.reconstruct import ReconstructOptions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rotation(seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_similarity_fit_recovers_a_similarity():
    src = torch.randn(18, 3, generator=torch.Generator().manual_seed(0))
    R = torch.as_tensor(np.stack([_rotation(1), _rotation(2)]), dtype=torch.float32)
    s = torch.tensor([0.8, 1.3])
    t = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.5, -1.0]])
    dst = s[:, None, None] * src @ R.transpose(1, 2) + t[:, None]
    s2, R2, t2 = similarity_fit(src, dst)
    torch.testing.assert_close(s2, s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(R2, R, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(t2, t, atol=1e-5, rtol=1e-5)


def test_vertex_prior_is_the_template_posed_on_the_keypoints(template):
    """With a zero residual, the descent pulls every vertex onto the template moved by the
    similarity of its keypoints onto the current keypoints."""
    model = GLVD(get_config("tiny", vertex_prior="keypoints"), template)
    R = torch.as_tensor(_rotation(3), dtype=torch.float32)
    posed = 1.1 * model.vertex_init @ R.T + torch.tensor([0.05, -0.1, 0.2])
    prior = model.vertex_prior(posed[model.kp_index][None])
    assert prior.shape == (1, template.num_vertices, 3)
    torch.testing.assert_close(prior[0], posed, atol=1e-5, rtol=1e-5)
    assert GLVD(get_config("tiny"), template).vertex_prior(posed[model.kp_index][None]) is None
    with pytest.raises(ValueError, match="vertex_prior"):
        GLVD(get_config("tiny", vertex_prior="mean"), template)


def test_similarity_fit_takes_a_source_per_scene():
    src = torch.randn(2, 18, 3, generator=torch.Generator().manual_seed(4))
    R = torch.as_tensor(np.stack([_rotation(5), _rotation(6)]), dtype=torch.float32)
    dst = torch.tensor([0.9, 1.2])[:, None, None] * src @ R.transpose(1, 2) + torch.tensor([[0.1, 0.2, 0.3]])[:, None]
    s, R2, t = similarity_fit(src, dst)
    torch.testing.assert_close(s[:, None, None] * src @ R2.transpose(1, 2) + t[:, None], dst, atol=1e-5, rtol=1e-5)


def test_a_prior_run_initialised_from_a_plain_model_starts_at_zero_residual(tiny_dataset, tmp_path):
    plain = tmp_path / "plain"
    cfg = get_config("tiny", sdf_steps=2, kp_steps=2, vertex_steps=2)
    Trainer(cfg, tiny_dataset, plain, TrainOptions(progress=False, threads=1)).run()
    src = load_checkpoint(plain / "model.pt")["model"]
    t = Trainer(get_config("tiny", vertex_prior="keypoints", sdf_steps=0, kp_steps=0, vertex_steps=0), tiny_dataset,
                tmp_path / "prior", TrainOptions(progress=False, threads=1, init=str(plain / "model.pt")))
    state = t.model.net.state_dict()
    for k, v in src.items():
        if k == "g_v.l3.bias":  # the residual head starts near zero
            assert torch.count_nonzero(state[k]) == 0
        elif k == "g_v.l3.parametrizations.weight.original0":
            torch.testing.assert_close(state[k], 0.01 * v.float())
        else:  # everything else is the source's
            torch.testing.assert_close(state[k], v.float(), msg=k)
    with pytest.raises(ValueError, match="architecture"):
        Trainer(get_config("lite"), tiny_dataset, tmp_path / "other",
                TrainOptions(progress=False, init=str(plain / "model.pt")))


def test_bf16_autocast_trains_every_stage_on_cpu(tiny_dataset, tmp_path):
    """The mixed-precision path CUDA training takes, forced on the CPU: finite losses, a loadable model."""
    cfg = get_config("tiny", sdf_steps=3, kp_steps=3, vertex_steps=3, vertex_prior="keypoints")
    out = tmp_path / "bf16"
    Trainer(cfg, tiny_dataset, out, TrainOptions(progress=False, log_every=1, threads=1, amp="bf16")).run()
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert {l["stage"] for l in lines} == {"sdf", "kp", "vertex"}
    assert all(np.isfinite(l["loss"]) for l in lines)
    rec = Reconstructor.from_pretrained(out / "model.pt", device="cpu")
    from glvd_core.data import GLVDDataset

    s = GLVDDataset(tiny_dataset)[0]
    r = rec.reconstruct(s.images[:1], s.masks[:1], options=ReconstructOptions(iterations=2, detect=False))
    assert np.isfinite(r.vertices).all()
    with pytest.raises(ValueError, match="amp"):
        Trainer(cfg, tiny_dataset, tmp_path / "x", TrainOptions(progress=False, amp="fp8"))


def test_config_overrides_parse_types_and_booleans():
    o = parse_overrides(["augment=false", "mirror=True", "vertex_steps=12", "clip=0.05", "vertex_prior=keypoints"])
    assert o == dict(augment=False, mirror=True, vertex_steps=12, clip=0.05, vertex_prior="keypoints")
    cfg = get_config("lite", **o)
    assert (cfg.train.augment, cfg.train.vertex_steps, cfg.inference.clip, cfg.arch.image_size) == (False, 12, 0.05, 128)
    for bad in ("augment=maybe", "no_such_field=1", "vertex_steps"):
        with pytest.raises(ValueError):
            parse_overrides([bad])


@pytest.mark.parametrize("field, value", [("vertex_prior", "identity"), ("encoding", "absolute"),
                                          ("update", "later"), ("num_keypoints", 7), ("clip", 0.0),
                                          ("vertex_stage_frozen", "f_v,g_v.l9")])
def test_configs_refuse_a_value_outside_their_choices(field, value):
    with pytest.raises(ValueError, match=field):
        get_config("tiny", **{field: value})


def test_a_model_file_config_round_trips_flat_and_refuses_retired_experiments():
    from glvd_core.model.config import GLVDConfig

    cfg = get_config("lite", vertex_prior="image", iterations=12, vertex_stage_frozen="f_v,g_v.l1")
    flat = cfg.to_dict()
    assert flat["vertex_stage_frozen"] == "f_v,g_v.l1" and GLVDConfig.from_dict(flat) == cfg
    assert GLVDConfig.from_dict(dict(flat, image_prior_mirror=False)) == cfg  # the never-shipped default loads
    with pytest.raises(ValueError, match="never shipped"):
        GLVDConfig.from_dict(dict(flat, image_prior_mirror=True))


def test_the_image_prior_is_not_trained(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="inference-time"):
        Trainer(get_config("tiny", vertex_prior="image"), tiny_dataset, tmp_path / "run")


@pytest.mark.slow
def test_torchrun_ddp_keeps_ranks_in_sync(tiny_dataset, tmp_path):
    """``torchrun --nproc_per_node 2 -m glvd_core train``: two CPU ranks (gloo) with different batches
    finish every stage with identical weights (the trainer checks it: gradients are averaged) and
    rank 0 writes the model. ~1 min on 2 cores."""
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "glvd_core", "train", "--config", "tiny", "--data", str(tiny_dataset), "--out", str(out),
           "--device", "cpu", "--threads", "1", "--quiet",
           "--set", "sdf_steps=3", "kp_steps=3", "vertex_steps=3"]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert (out / "model.pt").is_file()
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(l["stage"], l["step"]) for l in lines] == [("sdf", 3), ("kp", 3), ("vertex", 3)]  # rank 0 only


def test_frozen_parts_are_not_trained_in_the_vertex_stage(tiny_dataset, tmp_path):
    cfg = get_config("tiny", sdf_steps=0, kp_steps=0, vertex_steps=3, vertex_stage_frozen="f_v,g_v.l1,g_v.l2")
    t = Trainer(cfg, tiny_dataset, tmp_path / "f", TrainOptions(progress=False, threads=1))
    before = {k: v.clone() for k, v in t.model.net.state_dict().items()}
    t.run()
    after = t.model.net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("g_v.l3.") for k in changed), sorted(changed)
    with pytest.raises(ValueError, match="vertex_stage_frozen"):
        Trainer(get_config("tiny", vertex_stage_frozen="g_v.l9"), tiny_dataset, tmp_path / "g", TrainOptions(progress=False))
