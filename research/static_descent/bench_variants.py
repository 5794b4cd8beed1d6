"""Time the static-shape variants (eager float32, bf16 autocast, CUDA graph, both) of encoders +
all descent steps, one view, at batch 1 and ``--batch``, with each one's largest vertex difference
from the float32 eager result (NOTES.md).

    python -m research.static_descent.bench_variants [--config default lite paper] [--device cuda] [--variants eager bf16 graph graph_bf16] [--json OUT]
"""
from __future__ import annotations

import argparse
import json

import torch

from glvd_core.bench import _bench_cameras, timeit
from glvd_core.model.glvd import GLVD
from research.static_descent.static_descent import StaticDescent

VARIANTS = {"eager": (False, None), "bf16": (False, torch.bfloat16), "graph": (True, None),
            "graph_bf16": (True, torch.bfloat16)}


def time_variants(m: GLVD, dev, batches, variants, runs, sync) -> dict:
    """Encoders + all descent steps through :class:`StaticDescent` (static shapes; CUDA graph and
    autocast variants), 1 view, per batch size: median time, faces/s, and the largest vertex
    difference from the float32 eager result, metres."""
    cfg, out = m.cfg, {}
    for B in batches:
        g = torch.Generator(device="cpu").manual_seed(B)
        S, h = cfg.arch.image_size, cfg.arch.feature_size
        x = dict(images=torch.rand(B, 1, 3, S, S, generator=g), masks=torch.ones(B, 1, 1, S, S),
                 heatmaps=torch.rand(B, 1, cfg.arch.heatmap_channels, h, h, generator=g) ** 8,
                 keypoints=(torch.rand(B, cfg.arch.num_keypoints, 3, generator=g) * 2 - 1) * cfg.inference.kp_init_extent)
        x.update(zip("AbK", _bench_cameras(cfg, B, 1, "cpu")))
        x = {k: v.to(dev).contiguous() for k, v in x.items()}
        ref = None
        for name in variants:
            graph, amp = VARIANTS[name]
            key = f"{name}_batch{B}"
            try:
                sd = StaticDescent(m, B, 1, graph=graph, amp=amp, example=x)
                captured = sd.graph is not None
                try:
                    v = sd(**x)[0].clone()
                    st = timeit(lambda: sd(**x), runs if B == 1 else max(5, runs // 2), sync=sync)
                finally:
                    sd.close()
            except Exception as e:  # noqa: BLE001 - a variant this device or model cannot run is reported
                out[key] = dict(error=f"{type(e).__name__}: {e}"[:300])
                continue
            if ref is None:
                ref = v
            st.update(faces_per_second=B / (st["median_ms"] / 1000), cuda_graph=captured,
                      max_vertex_diff_m=float((v - ref).norm(dim=-1).max()) * cfg.arch.frame_scale_m)
            out[key] = st
    return out


def main(argv=None) -> dict:
    from glvd_core.checkpoint import resolve_device
    from glvd_core.reconstruct import Reconstructor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", nargs="+", default=["default"], help="default (the bundled model), lite, paper, tiny")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS),
                    help="default: all on CUDA, eager and bf16 on a CPU")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    dev = resolve_device(a.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    variants = a.variants or (tuple(VARIANTS) if dev.type == "cuda" else ("eager", "bf16"))
    out = {}
    for name in a.config:
        rec = (Reconstructor.from_pretrained(device=str(dev)) if name == "default"
               else Reconstructor.untrained(name, device=str(dev)))
        out[name] = time_variants(rec.model, dev, sorted({1, a.batch}), variants, a.runs, sync)
        for k, v in out[name].items():
            print(f"{name} {k}: " + (v["error"] if "error" in v else
                                     f"{v['median_ms']:.2f} ms, {v['faces_per_second']:.0f} faces/s, "
                                     f"max diff {v['max_vertex_diff_m'] * 1000:.4f} mm"), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
