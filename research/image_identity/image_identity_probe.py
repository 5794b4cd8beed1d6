"""Does appearance (dense image evidence) carry the identity the landmarks miss? A probe.

A small CNN (5 strided residual-free conv blocks, ~2.8 M parameters, from scratch) reads a
112 px face crop (centred on MediaPipe's 478 points, rotated to level the eyes) and predicts the
100 ICT identity weights. Loss: the squared per-vertex error of the identity shape over the
template's narrow face with the similarity part of every mode projected out (so it matches the
aligned metric); augmentation: small affine jitter, colour gains, contrast and (unless
``--no-mirror``) left-right mirroring with the weights mapped to the mirrored face's. No image of
the scan is ever used for training.

Scored on view 0 of each scene (the 1-view tables' protocol), the shape alone (``mean + w·modes``,
pose removed by the alignment), also with the crop read mirrored too (``image_prior_mirror``),
against the same shape from the mean face (w = 0), from the 3DMM landmark fit (the baseline's
weights, learned and nearest 68-point maps) and from an equal blend of the CNN and the
learned-map fit:
- synthetic sets: aligned unidirectional Chamfer to the GT vertices (``evaluate.chamfer_mm``);
- the Lee Perry-Smith scan renders: the scan metric (``evaluate.chamfer_scan_mm``).
Also the cosine between each predicted shape offset and the true one (synthetic: the GT identity
weights; the scan: the shape-space oracle fit to its surface at 10 mm noise, ``scan_ceiling.py``),
in the same similarity-free vertex metric as the loss: +1 means the right direction.

    python -m research.image_identity.image_identity_probe [--epochs 30] [--out runs/image_identity] \\
        [--json research/image_identity/image_identity/probe.json] [--train train ...] [--sets val eval ...]

Needs data/train, data/val, data/eval with their ``landmarks_detected.npz`` caches
(``python -m glvd_core detect-landmarks --data DIR``) and data/eval_scan. About 27 minutes of
training on 2 CPU cores for 30 epochs; a checkpoint in ``--out`` is reused with ``--skip-train``.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from glvd_core import load_template  # noqa: E402
from glvd_core.baselines import fit_identity_to_points  # noqa: E402
from glvd_core.expression.shape_space import identity_modes  # noqa: E402
from glvd_core.preprocess.face_crop import CROP_PX  # noqa: E402
from glvd_core.model.identity_cnn import (IdentityCNN, mirror_batch,  # noqa: E402
                                         mirror_weight_map, round_to_fp16, save_identity_cnn)
from glvd_core.train.identity import shape_metric  # noqa: E402
from research.lib import _mean_or_none, load_crops, read_identity, shape_cosine  # noqa: E402

ORACLE_NOISE_M = 0.010  # the scan's "true direction": the shape-space oracle at 10 mm (scan_ceiling.py)


def train(net, X, W, Xv, Wv, rms, epochs, bs=64, log=print, mirror=None):
    """AdamW with a one-cycle schedule on the shape loss; ``mirror`` (a :func:`mirror_weight_map`):
    each batch's crops are half flipped left-right with their weights mapped (mirror augmentation)."""
    steps = epochs * (len(X) // bs)
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps, pct_start=0.1)
    t0 = time.time()
    for ep in range(epochs):
        net.train()
        perm, tl = torch.randperm(len(X)), []
        for i in range(0, len(perm) - bs + 1, bs):
            j = perm[i:i + bs]
            x, w = mirror_batch(X[j], W[j], mirror)
            loss = rms(net(x, augment=True) - w).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tl.append(loss.sqrt().item())
        log(f"epoch {ep + 1}/{epochs} {time.time() - t0:.0f} s  train {np.mean(tl):.3f}  "
            f"val {rms(net.predict(Xv) - Wv).mean().item():.3f} mm (shape RMS)")


def landmark_fit_weights(root: Path, idx, tpl, method: str):
    from glvd_core.baselines import fit_identity_to_landmarks
    from glvd_core.cameras import Camera, load_cameras
    from glvd_core.preprocess.detect import mp_to_68

    B, out = identity_modes(tpl), []
    for s, v, l478 in idx:
        c = load_cameras(root / f"scene_{s:05d}" / "cameras.json")[0][v]
        fc = Camera(np.eye(3), np.zeros(3), c.K, c.width, c.height)
        out.append(fit_identity_to_landmarks([mp_to_68(l478[None], method)[0]], [fc], tpl, B)[0])
    return np.array(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "data"), help="folder holding train/ val/ eval/ eval_scan/")
    ap.add_argument("--train", nargs="+", default=["train"],
                    help="training sets under --data (several are pooled), default: train")
    ap.add_argument("--sets", nargs="+", default=["val", "eval", "eval_scan"],
                    help="sets under --data to score (view 0), default: val eval eval_scan")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                    help="mirror augmentation: half of each batch flipped left-right, weights mapped to the "
                         "mirrored face's (default on; the bundled CNN of session 12 was trained --no-mirror)")
    ap.add_argument("--out", default=str(ROOT / "runs/image_identity"))
    ap.add_argument("--skip-train", action="store_true", help="reuse OUT/identity_cnn.pt")
    ap.add_argument("--weights", default=None, metavar="PATH",
                    help="score these weights instead of training (any identity CNN file, e.g. one made by "
                         "python -m glvd_core train-identity, or the one the bundled model carries)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--ship", default=None, metavar="PATH",
                    help="also write the weights rounded to fp16 (scored as rounded) with their recipe and "
                         "scores, as the product loads them (scripts/ship_model.py --identity-cnn puts it in a model); the recipe "
                         "names --train and --epochs as given, so give those of the training run")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    from glvd_core.evaluate import chamfer_mm, chamfer_scan_mm

    data, out = Path(a.data), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tpl = load_template()
    rms = shape_metric(tpl)
    net = IdentityCNN()
    ckpt = out / "identity_cnn.pt"
    if a.weights:
        from glvd_core.model.identity_cnn import load_identity_cnn

        if a.ship:
            raise SystemExit("--ship re-packages a training run of this script; --weights files are already packaged")
        net = load_identity_cnn(a.weights)
    elif a.skip_train:
        net.load_state_dict(torch.load(ckpt, weights_only=True))
    else:
        parts = [load_crops(data / t) for t in a.train]
        X, W = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        Xv, Wv, _ = load_crops(data / "val")
        print(f"{len(X)} training crops, {len(Xv)} validation crops; shape RMS of w = 0: "
              f"train {rms(-W).mean():.3f}, val {rms(-Wv).mean():.3f} mm")
        train(net, X, W, Xv, Wv, rms, a.epochs, mirror=mirror_weight_map(tpl) if a.mirror else None)
        torch.save(net.state_dict(), ckpt)
    if a.ship:  # score exactly what ships
        fp16 = round_to_fp16(net)

    B = identity_modes(tpl)
    mean = tpl.vertices_m.astype(np.float64)
    made = dict(weights=a.weights) if a.weights else dict(epochs=a.epochs, train_sets=a.train, mirror=a.mirror)
    result = made | dict(crop_px=CROP_PX, parameters=sum(p.numel() for p in net.parameters()), sets={})
    for name in a.sets:
        root = data / name
        Xs, _, idx = load_crops(root, views=(0,))
        w = {"mean face": np.zeros((len(Xs), 100)), "cnn": net.predict(Xs).numpy(),
             "cnn, mirror-averaged": read_identity(net, Xs, mirror_weight_map(tpl)).numpy()}
        w["landmark fit, nearest map"] = landmark_fit_weights(root, idx, tpl, "nearest")
        w["landmark fit, learned map"] = landmark_fit_weights(root, idx, tpl, "learned")
        w["blend: (cnn + learned fit) / 2"] = (w["cnn"] + w["landmark fit, learned map"]) / 2
        scores, cosines = {k: [] for k in w}, {k: [] for k in w}
        for i, (s, v, _) in enumerate(idx):
            with np.load(root / f"scene_{s:05d}" / "gt.npz") as g:
                gt = {k: g[k] for k in g.files}
            if "points_m" in gt:  # the scan: the direction its oracle fit (10 mm) takes from the mean
                w_gt = fit_identity_to_points(gt["points_m"], gt["landmarks68_m"], tpl, B, ORACLE_NOISE_M)[0]
            else:
                w_gt = gt["identity"]
            for k in w:
                shape = mean + np.tensordot(w[k][i], B, axes=1)
                if "points_m" in gt:
                    scores[k].append(chamfer_scan_mm(gt["points_m"], gt["landmarks68_m"], shape, tpl))
                else:
                    scores[k].append(chamfer_mm(gt["vertices_m"], shape, tpl, align=True)[0])
                cosines[k].append(shape_cosine(rms, w[k][i], w_gt))
        result["sets"][name] = {k: dict(aligned_mm=float(np.mean(v)), median_mm=float(np.median(v)),
                                        weight_norm=float(np.linalg.norm(w[k], axis=1).mean()),
                                        cosine_to_truth=_mean_or_none(cosines[k]))
                                for k, v in scores.items()}
        result["sets"][name]["scenes"] = len(idx)
        print(f"\n{name}: {len(idx)} scenes (view 0 detected), aligned mm of the identity shape")
        for k, v in scores.items():
            c = result["sets"][name][k]["cosine_to_truth"]
            print(f"  {k:<32} {np.mean(v):.3f}  (median {np.median(v):.3f}, |w| {np.linalg.norm(w[k], axis=1).mean():.1f}, "
                  f"cosine to the true direction {'-' if c is None else f'{c:+.2f}'})")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    if a.ship:
        recipe = dict(script="scripts/image_identity_probe.py", epochs=a.epochs, mirror=a.mirror, crop_px=CROP_PX,
                      train_sets={t: _data_recipe(data / t) for t in a.train}, template_sha256=tpl.sha256)
        save_identity_cnn(a.ship, net, fp16, recipe, result["sets"])
        print(f"wrote {a.ship} ({Path(a.ship).stat().st_size / 1e6:.1f} MB)")


def _data_recipe(root: Path) -> dict:
    """What made a training set: its scene count, views, seed, size and plain-render fractions."""
    meta = json.loads((root / "dataset.json").read_text())
    cfg = meta["generator"]["config"]
    return {k: meta[k] for k in ("scenes", "views", "seed", "size")} | {k: cfg.get(k, 0.0) for k in ("p_plain", "p_closed_eyes")}


if __name__ == "__main__":
    main()
