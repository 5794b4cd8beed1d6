"""Can the identity CNN tell when it misreads? A check of confidence signals as a gate.

Every identity reader stronger than the bundled one was kept out of the package by the real scan:
it reads this real head further from its true shape (docs/RESULTS.md). A natural fix would be a
gate: use the reading where the reader is sure of it, shrink it towards the mean face where it is
not. That only works if some signal of the reading itself marks the scan's readings as unusual.
This script measures five such signals for each CNN, on every detected view, and asks two
questions of each:

- *Is it a confidence at all?* On the fresh synthetic heads of ``data/val400`` (seed 80000, view
  0), the Spearman correlation between the signal and the reading's gain (the shape error of the
  mean face minus that of the reading, the probe's similarity-free narrow-face RMS in mm).
- *Does it mark the scan?* The AUROC of the signal between the val400 readings and the readings
  of every detected view of the scan's 48 camera sets (``data/eval_scan48``): 0.5 means the scan's
  readings look like synthetic ones; a gate needs a value near 1 (or 0). And, within the scan,
  the Spearman correlation between the signal and the reading's gain in the scan metric (the mean
  face's aligned Chamfer minus the reading shape's).

The signals, all of the mirror-averaged reading (``image_prior_mirror``):
``length`` (its shape offset from the mean face, mm), ``mirror`` (the shape RMS between the crop's
reading and its mirror image's, mapped back), ``mirror_rel`` (that over the length), ``jitter``
(the RMS spread of the reading over 8 crops moved by the detector differences measured in
``python -m glvd_core train-identity prepare``: ±2.3 px centre, ±7 % scale, ±6° roll) and ``models`` (the mean
shape RMS to the other CNNs' readings; only with more than one ``--weights``).

    python -m research.reading_confidence.reading_confidence [--weights bundled runs/identity_cpu_fresh/identity_cnn.pt ...]
        [--json research/reading_confidence/reading_confidence.json]

``bundled`` is the identity CNN the bundled model carries; other files are any identity CNN package.
Needs data/val400 and data/eval_scan48 (docs/RESULTS.md, "Reproduce"). About 6 minutes on 2 CPU
cores with three CNNs.
"""
import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from glvd_core.train.identity import shape_metric  # noqa: E402
from research.lib import load_crops, scan_truth  # noqa: E402

from glvd_core import load_template  # noqa: E402
from glvd_core.evaluate import chamfer_scan_mm  # noqa: E402
from glvd_core.expression.shape_space import identity_modes  # noqa: E402
from glvd_core.model.identity_cnn import load_identity_cnn, mirror_weight_map  # noqa: E402
from glvd_core.preprocess.face_crop import CROP_PX, face_crop_matrix, warp_crop  # noqa: E402
from research.lib import read_identity  # noqa: E402

JITTERS = 8
JITTER_PX, JITTER_SCALE, JITTER_DEG = 2.3, 0.07, 6.0  # 1 sd, the detector's crop differences on renders


def jittered_crops(root: Path, idx, rng: np.random.Generator) -> torch.Tensor:
    """(N, JITTERS, 3, S, S) uint8: each detected view's crop moved JITTERS times at random."""
    out = []
    for s, v, l478 in idx:
        img = cv2.imread(str(root / f"scene_{s:05d}" / f"view_{v:02d}.png"))[:, :, ::-1].copy()
        M = np.vstack([face_crop_matrix(l478), [0, 0, 1]])
        crops = []
        ctr = np.array([[1, 0, CROP_PX / 2], [0, 1, CROP_PX / 2], [0, 0, 1.0]])
        for _ in range(JITTERS):  # roll and scale about the crop's centre, then a shift (image px -> crop px)
            a, sc = np.radians(rng.normal(0, JITTER_DEG)), np.exp(rng.normal(0, JITTER_SCALE))
            J = ctr @ np.array([[sc * np.cos(a), -sc * np.sin(a), 0], [sc * np.sin(a), sc * np.cos(a), 0],
                                [0, 0, 1]]) @ np.linalg.inv(ctr)
            J[:2, 2] += rng.normal(0, JITTER_PX, 2) * float(np.hypot(*M[0, :2]))
            crops.append(warp_crop(img, (J @ M)[:2]))
        out.append(np.stack(crops))
    return torch.tensor(np.array(out, np.uint8))


def auroc(ref: np.ndarray, other: np.ndarray) -> float:
    """P(a reading of ``other`` has a larger signal than one of ``ref``), ties counted half."""
    gt = (other[:, None] > ref[None]).mean()
    eq = (other[:, None] == ref[None]).mean()
    return float(gt + eq / 2)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "data"), help="folder holding val400/ and eval_scan48/")
    ap.add_argument("--weights", nargs="+", default=["bundled"], metavar="PATH",
                    help="identity CNN packages to check; 'bundled' is the shipped one")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    data, tpl = Path(a.data), load_template()
    rms, mirror = shape_metric(tpl), mirror_weight_map(tpl)
    B, mean = identity_modes(tpl).astype(np.float64), tpl.vertices_m.astype(np.float64)
    nets = {w: load_identity_cnn(None if w == "bundled" else w) for w in a.weights}

    dirs = {"val400": data / "val400", "scan48": data / "eval_scan48"}
    sets = {"val400": load_crops(dirs["val400"], views=(0,)), "scan48": load_crops(dirs["scan48"])}
    readings, signals = {}, {}
    for name, (X, _, idx) in sets.items():
        Xj = jittered_crops(dirs[name], idx, np.random.default_rng(0))
        for w, net in nets.items():
            direct = net.predict(X)
            flipped = net.predict(torch.flip(X, dims=[3])) @ mirror.T
            avg = (direct + flipped) / 2
            jit = read_identity(net, Xj.flatten(0, 1), mirror).view(len(X), JITTERS, -1)
            jspread = rms((jit - jit.mean(1, keepdim=True)).flatten(0, 1)).view(len(X), JITTERS).pow(2).mean(1).sqrt()
            readings[name, w] = avg
            length, mirror_dis = rms(avg).numpy(), rms(direct - flipped).numpy()
            signals[name, w] = {"length": length, "mirror": mirror_dis,
                                "mirror_rel": mirror_dis / np.maximum(length, 1e-9),
                                "jitter": jspread.numpy()}
        print(f"{name}: {len(X)} detected views read", flush=True)
    if len(nets) > 1:
        for name in sets:
            for w in nets:
                signals[name, w]["models"] = np.mean(
                    [rms(readings[name, w] - readings[name, o]).numpy() for o in nets if o != w], 0)

    # Gains: synthetic in the shape metric against the true weights; the scan in its own metric.
    Wt = sets["val400"][1]
    gain = {("val400", w): (rms(Wt) - rms(readings["val400", w] - Wt)).numpy() for w in nets}
    scan_gt = scan_truth(dirs["scan48"], sets["scan48"][2])
    mean_err = {s: chamfer_scan_mm(P, L, mean, tpl) for s, (P, L) in scan_gt.items()}
    for w in nets:
        wr = readings["scan48", w].double().numpy()
        gain["scan48", w] = np.array([mean_err[s] - chamfer_scan_mm(*scan_gt[s], mean + np.tensordot(x, B, axes=1), tpl)
                                      for (s, _, _), x in zip(sets["scan48"][2], wr)])

    out = {"readings": {n: len(sets[n][2]) for n in sets}, "jitter_sd": dict(px=JITTER_PX, scale=JITTER_SCALE, deg=JITTER_DEG),
           "cnns": {}}
    for w in nets:
        r = out["cnns"][w] = {
            "val400_gain_mm": float(gain["val400", w].mean()), "val400_helped": float((gain["val400", w] > 0).mean()),
            "scan48_gain_mm": float(gain["scan48", w].mean()), "scan48_helped": float((gain["scan48", w] > 0).mean()),
            "signals": {}}
        print(f"\n{w}: gain over the mean face, val400 {r['val400_gain_mm']:+.3f} mm (helps in {r['val400_helped']:.0%}), "
              f"scan48 {r['scan48_gain_mm']:+.3f} mm (helps in {r['scan48_helped']:.0%})")
        print(f"  {'signal':<11} {'val400 median':>13} {'scan median':>12} {'AUROC':>6} {'rho(val400 gain)':>17} {'rho(scan gain)':>15}")
        for k in signals["val400", w]:
            ref, sc = signals["val400", w][k], signals["scan48", w][k]
            r["signals"][k] = d = dict(val400_median=float(np.median(ref)), scan48_median=float(np.median(sc)),
                                       auroc_scan_vs_val400=auroc(ref, sc),
                                       spearman_val400_gain=spearman(ref, gain["val400", w]),
                                       spearman_scan48_gain=spearman(sc, gain["scan48", w]))
            print(f"  {k:<11} {d['val400_median']:>13.3f} {d['scan48_median']:>12.3f} {d['auroc_scan_vs_val400']:>6.2f} "
                  f"{d['spearman_val400_gain']:>+17.2f} {d['spearman_scan48_gain']:>+15.2f}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
