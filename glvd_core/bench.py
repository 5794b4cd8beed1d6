"""``python -m glvd_core bench``: warm-up, then median and spread over repeated runs of
preprocessing, encoders, one descent step (diagonal and the naive full N x N x 3 output), the
whole reconstruction for 1 and 3 views, and a batch of faces; JSON report with device,
versions and command."""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .fitting import FitOptions, fit_reconstruction
from .model.config import get_config
from .model.glvd import GLVD, Features, landmark_heatmaps


def _stats(ts):
    a = np.array(ts) * 1000
    return dict(median_ms=float(np.median(a)), p25_ms=float(np.percentile(a, 25)), p75_ms=float(np.percentile(a, 75)),
                min_ms=float(a.min()), runs=len(a))


def timeit(fn: Callable[[], object], runs: int, warmup: int = 2, sync: Callable[[], None] = lambda: None) -> dict:
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return _stats(ts)


def full_output_step(model: GLVD, feats: Features, v: torch.Tensor, k: torch.Tensor, A: torch.Tensor, b: torch.Tensor,
                     K: torch.Tensor, clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: evaluate g_v's full (N, N, 3) output for every vertex, then take the diagonal."""
    from .geometry.tensor import clip_norm

    B, V = feats.B, feats.V
    kidx = torch.arange(k.shape[1], device=k.device).expand(B, -1)
    dk = clip_norm(model.net.g_k.head(model.keypoint_hidden(feats.fk, B, V, k, A, b, K), kidx), clip)
    h = model.vertex_hidden(feats.fv, B, V, v, k, A, b, K)
    N = v.shape[1]
    out = []
    for s in range(0, N, 1024):  # (chunk, N, 3) at a time; the diagonal of the full output
        full = model.net.g_v.head(h[:, s:s + 1024])
        out.append(full[:, torch.arange(full.shape[1]), torch.arange(s, s + full.shape[1])])
    dv = torch.cat(out, 1)
    prior = model.vertex_prior(k, feats.shape_w)
    if prior is not None:
        dv = dv + model.prior_pull(prior, v)
    dv = clip_norm(dv, clip)
    return v + dv, k + dk


def _bench_cameras(cfg, B: int, V: int, dev):
    """The bench's frame tensors A (B, V, 3, 3), b (B, V, 3), K (B, V, 3, 3): identity axes at the
    frame scale, the head 0.6 units ahead, focal 1.2 x the input size."""
    S = cfg.arch.image_size
    A = torch.eye(3, device=dev).expand(B, V, 3, 3) * cfg.arch.frame_scale_m
    b = torch.tensor([0, 0, 0.6], device=dev).expand(B, V, 3)
    K = torch.tensor([[S * 1.2, 0, S / 2], [0, S * 1.2, S / 2], [0, 0, 1]], device=dev).expand(B, V, 3, 3)
    return A, b, K


def _silhouette(vertices_m: np.ndarray, camera, template) -> np.ndarray:
    """(H, W) uint8 mask of a mesh seen by ``camera``: a stand-in for a user's head mask."""
    from .render.raster import rasterize

    cov = rasterize(camera.world_to_camera(vertices_m), template.faces, camera.K, camera.height, camera.width).coverage
    return cov.astype(np.uint8) * 255


def run_bench(configs: tuple[str, ...] = ("default", "lite", "paper"), device: str = "auto", runs: int = 20,
              batch: int = 32, photo: np.ndarray | None = None, log: Callable[..., None] = print,
              fit: FitOptions | None = None) -> dict:
    """Time each config's stages; ``fit``: also time the fitting stage (bundled model only) on
    the 1- and 3-view reconstructions, with a head mask per view (both evidence terms on)."""
    from . import load_template
    from .checkpoint import resolve_device
    from .reconstruct import Reconstructor

    dev = resolve_device(device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    tpl = load_template()
    report = dict(command=" ".join(sys.argv), device=str(dev),
                  device_name=torch.cuda.get_device_name(0) if dev.type == "cuda" else platform.processor() or platform.machine(),
                  threads=torch.get_num_threads(), torch=torch.__version__, numpy=np.__version__,
                  python=platform.python_version(), runs=runs, results={})
    if photo is None:
        from skimage import data

        photo = np.ascontiguousarray(data.astronaut())
    from .preprocess import MediaPipeFaces

    report["results"]["preprocess_detect_512px"] = timeit(lambda: MediaPipeFaces.detect(photo, segment=True), runs)
    lms = [MediaPipeFaces.detect(photo, segment=False).landmarks478]  # as detected (the "image" prior crops with them)
    for name in configs:
        if name == "default":  # the bundled trained model with its own settings (steps, warm-up, prior)
            rec = Reconstructor.from_pretrained(None, device=str(dev))
            cfg, label = rec.model.cfg, "bundled glvd_core/assets/glvd_default.pt"
        else:  # an untrained preset (same arithmetic as a trained one; its default steps, no prior)
            cfg, label = get_config(name), f"untrained:{name}"
            torch.manual_seed(0)
            rec = Reconstructor(GLVD(cfg, tpl), tpl, dev, source=label)
        m = rec.model
        res = dict(model=label, iterations=cfg.inference.iterations, keypoint_warmup=cfg.inference.keypoint_warmup, vertex_prior=cfg.inference.vertex_prior)
        S = cfg.arch.image_size
        with torch.inference_mode():
            for V in (1, 3):
                img = torch.rand(1, V, 3, S, S, device=dev)
                msk = torch.ones(1, V, 1, S, S, device=dev)
                hm = landmark_heatmaps(torch.rand(1, V, 68, 2, device=dev) * S, torch.ones(1, V, 68, dtype=torch.bool, device=dev),
                                       S, cfg.arch.feature_size, cfg.arch.heatmap_sigma_px)
                res[f"encoders_{V}view"] = timeit(lambda: m.encode(img, msk, hm), runs, sync=sync)
                feats = m.encode(img, msk, hm)
                A, b, K = _bench_cameras(cfg, 1, V, dev)
                v = m.vertex_init[None].clone()
                k = torch.rand(1, cfg.arch.num_keypoints, 3, device=dev) - 0.5
                with m.last_layers_frozen():
                    res[f"descent_step_{V}view"] = timeit(lambda: m.step(feats, v, k, A, b, K, cfg.inference.clip), runs, sync=sync)
                if V == 1:
                    res["naive_full_output_step_1view"] = timeit(
                        lambda: full_output_step(m, feats, v, k, A, b, K, cfg.inference.clip), max(3, runs // 5), warmup=1, sync=sync)
            # what a user waits for: one photo in, mesh out (face detection, landmarks, head mask included)
            res["reconstruct_1photo_end_to_end"] = timeit(lambda: rec.reconstruct([photo]), runs, sync=sync)
            # whole reconstruction through the public API (1 and 3 views, landmarks given)
            res["reconstruct_1view"] = timeit(lambda: rec.reconstruct([photo], landmarks=lms), runs, sync=sync)
            from .cameras import Camera, look_at_rotation

            cams = [Camera.from_fov(512, 512, 40, R=look_at_rotation(a, 0, 0), t=[0, 0, 0.6]) for a in (-30, 0, 30)]
            res["reconstruct_3view"] = timeit(lambda: rec.reconstruct([photo] * 3, cameras=cams, landmarks=lms * 3),
                                              max(5, runs // 2), sync=sync)
            if name == "default":  # the photo-texture bake an artist waits for (the UV layout is cached, as in a session)
                from .texture import bake_texture

                for V, r in ((1, rec.reconstruct([photo], landmarks=lms)),
                             (3, rec.reconstruct([photo] * 3, cameras=cams, landmarks=lms * 3))):
                    for size in (2048, 4096):
                        res[f"texture_bake_{size}_{V}view"] = timeit(
                            lambda: bake_texture(r.final_vertices, [photo] * V, r.cameras, tpl, size=size),
                            max(3, runs // 4), warmup=1)
            if fit is not None and name == "default":
                for V, r in ((1, rec.reconstruct([photo], landmarks=lms)),
                             (3, rec.reconstruct([photo] * 3, cameras=cams, landmarks=lms * 3))):
                    masks = [_silhouette(r.final_vertices, c, tpl) for c in r.cameras]
                    res[f"fit_{V}view"] = timeit(lambda: fit_reconstruction(tpl, r, fit, masks=masks),
                                                 max(3, runs // 4), warmup=1)
            # a batch of faces through the batched model (encoders + 10 steps)
            Bn = batch
            img = torch.rand(Bn, 1, 3, S, S, device=dev)
            msk = torch.ones(Bn, 1, 1, S, S, device=dev)
            hm = torch.zeros(Bn, 1, 68, cfg.arch.feature_size, cfg.arch.feature_size, device=dev)
            A, b, K = _bench_cameras(cfg, Bn, 1, dev)

            def batch_run():
                f = m.encode(img, msk, hm)
                kk = torch.rand(Bn, cfg.arch.num_keypoints, 3, device=dev) - 0.5
                return m.descend(f, m.vertex_init[None].expand(Bn, -1, -1), kk, A, b, K, cfg.inference.clip, cfg.inference.iterations,
                                 cfg.inference.keypoint_warmup)[0]

            with m.last_layers_frozen():
                st = timeit(batch_run, max(3, runs // 5), warmup=1, sync=sync)
            st["faces_per_second"] = Bn / (st["median_ms"] / 1000)
            res[f"batch_{Bn}_faces"] = st
        res["diagonal_speedup_vs_full_output"] = (res["naive_full_output_step_1view"]["median_ms"]
                                                  / res["descent_step_1view"]["median_ms"])
        res["peak_rss_mb_so_far"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if dev.type == "cuda":
            res["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        report["results"][name] = res
        log(f"{name}: " + ", ".join(f"{k} {v['median_ms']:.1f} ms" for k, v in res.items()
                                    if isinstance(v, dict) and "median_ms" in v))
    return report


SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def bench_blender(runs: int = 5, photos: int = 12, log: Callable[..., None] = print) -> dict:
    """The artist's side, each in a fresh process with the bpy module (as an artist starts
    Blender or a batch): ``scripts/bench_blender.py`` (click to finished scene with the panel's
    defaults, first click and median of ``runs``) and ``scripts/batch.py`` over ``photos`` copies of
    the astronaut to .blend + .glb with a 2K texture (photos a minute from process start, peak RSS)."""
    import subprocess
    import tempfile

    import cv2
    from skimage import data

    if not (SCRIPTS / "bench_blender.py").exists():
        raise RuntimeError(f"bench --blender needs the repository's scripts/ (not found beside {Path(__file__).parent})")
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="glvd-bench-") as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, str(SCRIPTS / "bench_blender.py"), "--runs", str(runs), "--json",
                        str(tmp / "click.json")], check=True, capture_output=True)
        out["click"] = json.loads((tmp / "click.json").read_text())
        (tmp / "in").mkdir()
        for i in range(photos):
            cv2.imwrite(str(tmp / "in" / f"face{i:03d}.png"), np.ascontiguousarray(data.astronaut()[..., ::-1]))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(SCRIPTS / "batch.py"), "--input", str(tmp / "in"), "--output",
                        str(tmp / "out"), "--formats", "blend,glb", "--texture", "2048"], check=True, capture_output=True)
        wall = time.perf_counter() - t0
        rep = json.loads((tmp / "out" / "report.json").read_text())
        out["batch"] = dict(photos=photos, formats="blend,glb", texture=2048, wall_s=round(wall, 2),
                            photos_per_minute=round(60 * photos / wall, 1), peak_rss_mb=rep["peak_rss_mb"],
                            rss_mb=[e["rss_mb"] for e in rep["results"]])
    log(f"blender: click to result {out['click']['click_to_result_s']:.2f} s (first {out['click']['first_click_s']:.2f} s), "
        f"batch {out['batch']['photos_per_minute']:.1f} photos/min, peak {out['batch']['peak_rss_mb']:.0f} MB")
    return out


def main_bench(a: argparse.Namespace) -> int:
    if a.threads:
        torch.set_num_threads(a.threads)
    from .cli import fit_options

    rep = run_bench(tuple(a.config), a.device, a.runs, a.batch, fit=fit_options(a))
    if a.blender:
        rep["results"]["blender"] = bench_blender(runs=max(3, a.runs // 4))
    text = json.dumps(rep, indent=1)
    if a.json:
        from .io import atomic_write_bytes

        atomic_write_bytes(a.json, text.encode())
    print(text)
    return 0
