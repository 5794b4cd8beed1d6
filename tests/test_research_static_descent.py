"""research/static_descent: the static-shape path runs the product's descent, and its bench
reports every variant (cheap on a CPU: the tiny preset)."""
import numpy as np
import pytest
import torch

from glvd_core.model.config import get_config
from glvd_core.reconstruct import ReconstructOptions, Reconstructor
from research.static_descent.static_descent import StaticDescent


@pytest.mark.parametrize("prior", ["none", "image"])
def test_static_descent_runs_the_same_descent_as_reconstruct(tiny_dataset, prior, network_inputs):
    from glvd_core.data import GLVDDataset

    s = GLVDDataset(tiny_dataset)[0]
    rec = Reconstructor.untrained(get_config("tiny", vertex_prior=prior), device="cpu")
    lm = [s.cameras[0].project(s.vertices_m[rec.template.landmarks68])]
    r = rec.reconstruct(s.images[:1], s.masks[:1], cameras=s.cameras[:1], landmarks=lm,
                        options=ReconstructOptions(iterations=5, seed=2))
    views, _, _ = rec.prepare(s.images[:1], s.masks[:1], s.cameras[:1], lm)
    cfg = rec.cfg
    fr, img, msk, hm, A, b, K = network_inputs(rec, views)
    k0 = (torch.rand(1, cfg.arch.num_keypoints, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1) * cfg.inference.kp_init_extent
    sd = StaticDescent(rec.model, 1, 1, iterations=5, graph=True)  # graph is ignored on a CPU
    try:
        vs, _ = sd(img, msk, hm, A, b, K, k0)
    finally:
        sd.close()
    assert sd.graph is None and np.abs(fr.to_world_m(vs[0].numpy().astype(np.float64)) - r.final_vertices).max() < 1e-4
    with pytest.raises(ValueError, match="takes"):
        StaticDescent(rec.model, 2)(*[torch.zeros(1)] * 7)


def test_bench_variants_reports_time_and_difference_per_variant():
    from research.static_descent.bench_variants import main

    out = main(["--config", "tiny", "--device", "cpu", "--runs", "1", "--batch", "2", "--variants", "eager", "bf16"])
    sv = out["tiny"]
    assert set(sv) == {"eager_batch1", "bf16_batch1", "eager_batch2", "bf16_batch2"}
    assert sv["eager_batch2"]["max_vertex_diff_m"] == 0 and sv["eager_batch2"]["faces_per_second"] > 0
    assert 0 < sv["bf16_batch2"]["max_vertex_diff_m"] < 0.05 and not sv["bf16_batch2"]["cuda_graph"]
