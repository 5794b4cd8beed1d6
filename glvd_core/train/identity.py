"""Train the identity CNN (``vertex_prior="image"``) on scenes rendered while it trains: a GPU
recipe that is not bound by how many faces MediaPipe can detect on this machine.

The shipped CNN (``research/image_identity/``) learns from the crops of MediaPipe's
detections on saved datasets, so its data is capped by rendering *and* detecting on 2 CPU cores.
Here worker processes render fresh scenes (1 view each by default: the most identities per
second) and crop them where MediaPipe would, while the main process trains on the crops made so
far. Two steps:

``prepare`` (here, once; needs data/train, data/train_plain, data/val with their detection caches)
    writes a small npz (``--out``, default .gpu/identity_prep.npz) with
    - ``mp_vertex`` (478,): the template vertex whose projection lies nearest, on average, to each
      of MediaPipe's 478 points in data/train's detections (the "GT" crop is the box of these
      projections, exactly as :func:`glvd_core.preprocess.face_crop.face_crop_matrix` builds it);
    - ``jitter_textured`` / ``jitter_plain`` (N, 4): how MediaPipe's crop differs from that GT crop
      on textured (data/train) and plain (data/train_plain) renders: centre (x, y) in crop pixels,
      log scale, angle in degrees. Training crops add one such difference drawn at random, so the
      network sees the crop errors it will meet at run time, bias included;
    - ``val_crops`` / ``val_identity``: data/val's detected crops (the run-time crop) and weights.

``train`` (anywhere; CUDA when present)
    renders ``--scenes`` scenes of seed ``--seed`` (never an evaluation seed: eval 9000, val 7000),
    ``--crops`` jittered crops per view, and trains ``IdentityCNN(width)`` for ``--minutes`` with
    the probe's loss (similarity-free identity-shape RMS over the narrow face), bf16 autocast on
    CUDA, a time-based warm-up + cosine learning rate, scored on the val crops as it goes. Writes
    ``identity_cnn.pt`` (fp16, the product's format, with recipe and val score) and ``log.json``.

    python -m glvd_core train-identity prepare
    python -m glvd_core train-identity train --prep .gpu/identity_prep.npz --minutes 8 \\
        --scenes 60000 --seed 30000 --out $OUT [--init previous.pt]
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from ..expression.shape_space import identity_modes
from ..geometry.similarity import similarity_basis
from ..model.identity_cnn import IdentityCNN, mirror_batch, mirror_weight_map, round_to_fp16, save_identity_cnn
from ..preprocess.face_crop import CROP_PX, face_crop, face_crop_matrix, warp_crop
from ..template import load_template

if TYPE_CHECKING:
    from ..template import Template


EVAL_SEEDS = (7000, 9000)  # val and eval: never trained on


def shape_metric(tpl: Template) -> Callable[[torch.Tensor], torch.Tensor]:
    """rms(dw) (B,) mm: per-vertex RMS over the narrow face of the identity-weight error ``dw``
    (B, 100), each mode's similarity part (translation, rotation, scale about the mean face)
    projected out; computed on ``dw``'s device. The identity CNN's training loss."""
    nf = tpl.narrow_face_mask
    Bn = torch.tensor(identity_modes(tpl)[:, nf].reshape(100, -1) * 1000, dtype=torch.float64)
    X0 = tpl.vertices_m[nf].astype(np.float64) * 1000
    Q, _ = torch.linalg.qr(torch.tensor(similarity_basis(X0 - X0.mean(0))))
    Bp = Bn - (Bn @ Q) @ Q.T
    G = (Bp @ Bp.T / nf.sum()).float()
    return lambda dw: torch.sqrt(torch.einsum("bi,ij,bj->b", dw, G.to(dw.device), dw).clamp_min(0))


def crop_params(M: np.ndarray) -> np.ndarray:
    """(2, 3) crop matrix -> (crop centre x, y in image pixels, log scale, angle in degrees)."""
    s = float(np.hypot(M[0, 0], M[0, 1]))
    c = np.linalg.solve(M[:, :2], np.array([CROP_PX / 2, CROP_PX / 2]) - M[:, 2])
    return np.array([c[0], c[1], np.log(s), np.degrees(np.arctan2(M[0, 1], M[0, 0]))])


def crop_from_params(p: np.ndarray) -> np.ndarray:
    """Inverse of :func:`crop_params`: the (2, 3) map sending the centre to the crop's middle."""
    s, a = np.exp(p[2]), np.radians(p[3])
    A = s * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    return np.hstack([A, (np.array([CROP_PX / 2, CROP_PX / 2]) - A @ p[:2])[:, None]])


def jittered(p: np.ndarray, d: np.ndarray) -> np.ndarray:
    """GT crop parameters ``p`` moved by one measured detector difference ``d`` (centre in crop px)."""
    return np.array([p[0] + d[0] / np.exp(p[2]), p[1] + d[1] / np.exp(p[2]), p[2] + d[2], p[3] + d[3]])


def _views(root: Path, limit=None):
    """(projected template vertices (V, 2), detected 478 points (478, 2)) of each detected view."""
    from ..data.landmarks import detected_views

    for cam, V, l478, sd, v in detected_views(root, limit):
        yield cam.project(V), l478[:, :2], sd, v


def prepare(a: argparse.Namespace) -> None:
    data = Path(a.data)
    P, D = zip(*[(p, d) for p, d, _, _ in _views(data / "train", 500)])
    P, D = torch.tensor(np.array(P), dtype=torch.float64), torch.tensor(np.array(D), dtype=torch.float64)  # (N, V, 2), (N, 478, 2)
    # mean over views of |P_v - D_j|^2 for every (vertex, point) pair, as matrix products
    cost = (P.pow(2).sum(-1).mean(0)[:, None] - 2 * torch.einsum("nvc,njc->vj", P, D) / len(P)
            + D.pow(2).sum(-1).mean(0)[None])
    mp_vertex = cost.argmin(0).numpy()
    rms = cost.min(0).values.clamp_min(0).sqrt()
    print(f"478 points <- template vertices from {len(P)} views: rms {rms.median():.2f} px median, {rms.max():.2f} max")
    jit = {}
    for name, key in (("train", "jitter_textured"), ("train_plain", "jitter_plain")):
        out = []
        for p, d, _, _ in _views(data / name):
            g, m = crop_params(face_crop_matrix(p[mp_vertex])), crop_params(face_crop_matrix(d))
            out.append([(m[0] - g[0]) * np.exp(g[2]), (m[1] - g[1]) * np.exp(g[2]), m[2] - g[2], m[3] - g[3]])
        jit[key] = np.array(out, np.float32)
        j = jit[key]
        print(f"{name}: {len(j)} detected views; detector crop - GT crop: centre {j[:, :2].mean(0).round(2)} "
              f"+- {j[:, :2].std(0).round(2)} px, log scale {j[:, 2].mean():+.3f} +- {j[:, 2].std():.3f}, "
              f"angle {j[:, 3].mean():+.2f} +- {j[:, 3].std():.2f} deg")
    import cv2

    X, W = [], []
    for _, d, sd, v in _views(data / "val"):
        X.append(face_crop(cv2.imread(str(sd / f"view_{v:02d}.png"))[:, :, ::-1], d))  # d: the detected points
        W.append(np.load(sd / "gt.npz")["identity"])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, mp_vertex=mp_vertex, val_crops=np.array(X, np.uint8),
                        val_identity=np.array(W, np.float32), template_sha256=load_template().sha256, **jit)
    print(f"wrote {a.out} ({Path(a.out).stat().st_size / 1e6:.1f} MB; {len(X)} val crops)")


_W = {}  # per worker process: the ICT model, render model, template and prep arrays


def _worker_init(ict_path, prep_path, cfg_dict):
    from ..data.synth import SceneConfig, render_model
    from ..ict import load_ict

    torch.set_num_threads(1)
    ict = load_ict(ict_path)
    with np.load(prep_path) as z:
        _W.update(mp_vertex=z["mp_vertex"], tex=z["jitter_textured"], plain=z["jitter_plain"])
    _W.update(ict=ict, rm=render_model(ict), tpl=load_template(), cfg=SceneConfig(**cfg_dict))


def _render(job):
    """One scene: its views rendered, each cropped ``crops`` times -> (crops uint8, identity, plain)."""
    from ..data.dataset import scene_rng
    from ..data.synth import render_view, sample_lighting, sample_scene

    seed, index, views, crops = job
    rng = scene_rng(seed, index)
    sc = sample_scene(_W["ict"], rng, views, _W["cfg"])
    jrng = np.random.default_rng(np.random.SeedSequence([seed, index, 1]))
    pool = _W["plain"] if sc.appearance["plain"] else _W["tex"]
    V = _W["tpl"].from_ict(sc.vertices_ict_m)
    out = []
    for cam in sc.cameras:
        rgb, _ = render_view(_W["ict"], _W["rm"], sc.vertices_ict_m, cam, sc.appearance, sample_lighting(rng), rng)
        g = crop_params(face_crop_matrix(cam.project(V[_W["mp_vertex"]])))
        for d in pool[jrng.integers(len(pool), size=crops)]:
            out.append(warp_crop(rgb, crop_from_params(jittered(g, d))))
    return np.array(out, np.uint8), sc.identity, bool(sc.appearance["plain"])


def train(a: argparse.Namespace) -> float:
    from ..ict import find_ict_path

    if a.seed in EVAL_SEEDS:
        raise SystemExit(f"seed {a.seed} makes evaluation scenes; pick another")
    t0 = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tpl = load_template()
    with np.load(a.prep) as z:
        if str(z["template_sha256"]) != tpl.sha256:
            raise SystemExit(f"{a.prep} was made for another template; re-run prepare")
        Xv, Wv = torch.tensor(z["val_crops"]), torch.tensor(z["val_identity"])
    rms = shape_metric(tpl)
    mirror = mirror_weight_map(tpl) if a.mirror else None

    cfg = dict(size=a.size, p_plain=a.p_plain, p_closed_eyes=a.closed_eyes)
    n_img = a.scenes * a.views * a.crops
    X = torch.empty((n_img, 3, CROP_PX, CROP_PX), dtype=torch.uint8)
    W = torch.empty((a.scenes, 100))
    state = dict(scenes=0, plain=0, done=False)
    lock = threading.Lock()

    workers = a.workers or max(1, (os.cpu_count() or 2) - 2)
    torch.set_num_threads(2)  # the main process only feeds the GPU; the cores render
    ctx = get_context("fork")
    pool = ctx.Pool(workers, _worker_init, (str(find_ict_path(None)), a.prep, cfg))
    jobs = [(a.seed, i, a.views, a.crops) for i in range(a.scenes)]

    def collect():
        for crops, w, plain in pool.imap_unordered(_render, jobs, chunksize=4):
            with lock:
                s = state["scenes"]
                X[s * a.views * a.crops:(s + 1) * a.views * a.crops] = torch.from_numpy(crops)
                W[s] = torch.from_numpy(w)
                state["scenes"], state["plain"] = s + 1, state["plain"] + plain
            if time.time() - t0 > a.render_minutes * 60:
                break
        state["done"] = True
        pool.terminate()

    threading.Thread(target=collect, daemon=True).start()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # after the fork

    net = IdentityCNN(width=a.width).to(dev).to(memory_format=torch.channels_last)
    if a.init:
        ck = torch.load(a.init, map_location="cpu", weights_only=True)
        net.load_state_dict({k: v.float() for k, v in ck.get("model", ck).items()})
    opt = torch.optim.AdamW(net.parameters(), a.lr, weight_decay=1e-4)
    budget = a.minutes * 60
    per_scene = a.views * a.crops

    def val():
        with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
            return rms(net.predict(Xv).float() - Wv).mean().item()

    log = dict(args=vars(a), device=str(torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"), val=[])
    step, t_train, last_val = 0, None, 0.0
    while True:
        with lock:
            n = state["scenes"]
        if n < max(64, a.batch // per_scene):
            time.sleep(0.5)
            continue
        if t_train is None:
            t_train = time.time()
            print(f"training starts after {t_train - t0:.0f} s ({n} scenes rendered)", flush=True)
        f = (time.time() - t_train) / (budget - (t_train - t0))
        if f >= 1:
            break
        lr = a.lr * min(1.0, f / 0.03) * 0.5 * (1 + np.cos(np.pi * f))
        for g in opt.param_groups:
            g["lr"] = lr
        si = torch.randint(n, (a.batch,))
        xi = si * per_scene + torch.randint(per_scene, (a.batch,))
        x, w = mirror_batch(X[xi], W[si], mirror)
        x = x.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
        w = w.to(dev, non_blocking=True)
        net.train()
        with torch.autocast(dev.type, torch.bfloat16, enabled=dev.type == "cuda"):
            pred = net(x, augment=True)
        loss = rms(pred.float() - w).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if time.time() - last_val > a.val_every:
            last_val = time.time()
            v = val()
            log["val"].append(dict(seconds=round(last_val - t0), step=step, scenes=n, lr=lr, train=loss.sqrt().item(), val=v))
            print(f"{last_val - t0:5.0f} s  step {step} ({step / (last_val - t_train):.1f}/s)  scenes {n}  lr {lr:.2e}  "
                  f"train {loss.sqrt().item():.3f}  "
                  f"val {v:.3f} mm", flush=True)
    if not state["done"]:
        pool.terminate()
    net = net.float().to(memory_format=torch.contiguous_format)
    fp16 = round_to_fp16(net)  # score what ships: fp16-rounded values
    v = rms(net.to("cpu").predict(Xv) - Wv).mean().item()
    with lock:
        n, n_plain = state["scenes"], state["plain"]
    log.update(steps=step, scenes_rendered=n, plain_scenes=n_plain, final_val_fp16_cpu=v, seconds=round(time.time() - t0),
               val_mean_face=rms(-Wv).mean().item())
    recipe = dict(script="python -m glvd_core train-identity", seed=a.seed, scenes_rendered=n, views=a.views, size=a.size,
                  crops_per_view=a.crops, mirror=a.mirror, p_plain=a.p_plain, p_closed_eyes=a.closed_eyes, steps=step, batch=a.batch,
                  lr=a.lr, minutes=a.minutes, init=a.init, template_sha256=tpl.sha256, device=log["device"])
    save_identity_cnn(out / "identity_cnn.pt", net, fp16, recipe, dict(val_shape_rms_mm=v))
    (out / "log.json").write_text(json.dumps(log, indent=1) + "\n")
    print(f"done: {step} steps on {n} scenes ({n_plain} plain) in {time.time() - t0:.0f} s; val {v:.3f} mm "
          f"(mean face {log['val_mean_face']:.3f}); wrote {out / 'identity_cnn.pt'}", flush=True)
    os._exit(0)  # the render pool's threads may still hold results; nothing else to wait for


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m glvd_core train-identity", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="measure the detector's crops (here); write the prep npz")
    p.add_argument("--data", default="data")
    p.add_argument("--out", default=".gpu/identity_prep.npz")
    t = sub.add_parser("train", help="render and train at once (CUDA when present)")
    t.add_argument("--prep", default=".gpu/identity_prep.npz")
    t.add_argument("--out", default="runs/identity_cnn_gpu")
    t.add_argument("--minutes", type=float, default=8.0, help="whole run, rendering included")
    t.add_argument("--render-minutes", type=float, default=None, help="stop rendering after this (default: --minutes)")
    t.add_argument("--scenes", type=int, default=60000, help="at most this many scenes (fewer if time runs out)")
    t.add_argument("--seed", type=int, default=30000)
    t.add_argument("--views", type=int, default=1)
    t.add_argument("--crops", type=int, default=2, help="jittered crops per view")
    t.add_argument("--size", type=int, default=256)
    t.add_argument("--p-plain", type=float, default=0.5)
    t.add_argument("--closed-eyes", type=float, default=0.5)
    t.add_argument("--width", type=int, default=48)
    t.add_argument("--batch", type=int, default=256)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--workers", type=int, default=0)
    t.add_argument("--val-every", type=float, default=30.0, help="seconds between val scores")
    t.add_argument("--init", default=None, help="start from these weights (same width)")
    t.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                   help="mirror augmentation: half of each batch flipped left-right, weights mapped to the mirrored "
                        "face's (default on; session 13's runs had none)")
    a = ap.parse_args(argv)
    if a.cmd == "prepare":
        prepare(a)
    else:
        a.render_minutes = a.minutes if a.render_minutes is None else a.render_minutes
        train(a)
