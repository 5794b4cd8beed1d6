"""Why do three views gain so little over one? How the identity CNN's errors behave across views.

The image prior averages the identity CNN's readings over the views it has a crop for
(``Reconstructor``: ``read_identity(...).mean(0)``). Averaging removes what differs between the
views' readings and keeps what they share. This script measures, on every detected view of the
three-view validation heads (``data/val150x3``, seed 81000) and of the held-out heads
(``data/eval``, seed 9000), for each CNN given (mirror averaging off, as in the default):

- the reading's shape error by viewing angle (the angle between the camera's direction, seen from
  the head, and the face's forward axis; the head's rotation is the similarity taking the
  template's 68 landmarks onto the true ones);
- the cosine between the errors of two views of the same head (1: the views err alike, and
  averaging them removes nothing);
- the share of the squared error that lies along the true offset from the mean face (shrinkage:
  the reading is the true face, shortened), and the regression of the reading's length on the
  true length;
- the length factor ``beta`` that the mean of three readings would need (least squares of the
  truth on the reading in the shape metric), chosen on ``data/val150x3`` and applied to
  ``data/eval``; and one view's own factor, for comparison. The CNN is trained to give the mean of
  what one view says, so one view needs about 1; three views hold more evidence than one view,
  so the mean of their readings is too short;
- that factor applied on the scan's three-view sets (``data/eval_scan48``, every set with three
  detected views), scored in the scan metric (aligned Chamfer of the shape alone, mm).

Shape errors are the probe's similarity-free narrow-face RMS in mm (``image_identity_probe``),
not the tables' Chamfer.

    python -m research.view_combination.view_combination [--weights bundled PATH ...] [--json research/view_combination/view_combination.json]

Needs data/val150x3, data/eval and data/eval_scan48. About 1 minute on 2 CPU cores for three CNNs.
"""
import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from glvd_core.train.identity import shape_metric  # noqa: E402
from research.lib import load_crops, scan_truth  # noqa: E402

from glvd_core import load_template  # noqa: E402
from glvd_core.cameras import load_cameras  # noqa: E402
from glvd_core.evaluate import chamfer_scan_mm  # noqa: E402
from glvd_core.expression.shape_space import identity_modes  # noqa: E402
from glvd_core.model.identity_cnn import load_identity_cnn  # noqa: E402

ANGLE_BINS_DEG = (0, 10, 20, 30, 90)


def view_angles_deg(root: Path, idx, tpl) -> np.ndarray:
    """(N,) degrees between each view's camera direction, seen from the head, and the face's
    forward (+z) axis; the head's rotation from the template's 68 landmarks to the true ones."""
    T = tpl.vertices_m[tpl.landmarks68].astype(np.float64)
    T = T - T.mean(0)
    out, scenes = [], {}  # scenes: index -> (cameras, true 68 landmarks), each scene read once
    for s, v, _ in idx:
        if s not in scenes:
            sd = root / f"scene_{s:05d}"
            with np.load(sd / "gt.npz") as g:
                scenes[s] = load_cameras(sd / "cameras.json")[0], g["keypoints68_m"].astype(np.float64)
        cams, L = scenes[s]
        cam = cams[v]
        U, _, Vt = np.linalg.svd((L - L.mean(0)).T @ T)
        Rh = U @ np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))]) @ Vt
        d = Rh.T @ (-cam.R.T @ cam.t - L.mean(0))
        out.append(np.degrees(np.arccos(np.clip(d[2] / np.linalg.norm(d), -1, 1))))
    return np.array(out)


def three_view_groups(idx) -> list[list[int]]:
    """Row indices of the scenes whose three views were all detected, view order kept."""
    g = defaultdict(list)
    for i, (s, _, _) in enumerate(idx):
        g[s].append(i)
    return [ii for ii in g.values() if len(ii) == 3]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "data"), help="folder holding val150x3/, eval/, eval_scan48/")
    ap.add_argument("--weights", nargs="+", default=["bundled"], metavar="PATH",
                    help="identity CNN packages; 'bundled' is the shipped one")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    data, tpl = Path(a.data), load_template()
    rms = shape_metric(tpl)
    B, mean = identity_modes(tpl).astype(np.float64), tpl.vertices_m.astype(np.float64)

    def dot(x, y):  # inner product of the metric, per row
        return (rms(x) ** 2 + rms(y) ** 2 - rms(x - y) ** 2) / 2

    sets = {n: load_crops(data / n) for n in ("val150x3", "eval", "eval_scan48")}
    angles = {n: view_angles_deg(data / n, sets[n][2], tpl) for n in ("val150x3", "eval")}
    scan_gt = scan_truth(data / "eval_scan48", sets["eval_scan48"][2])

    def scan_mm(s, w):
        return chamfer_scan_mm(*scan_gt[s], mean + np.tensordot(w.double().numpy(), B, axes=1), tpl)

    out = {"views_detected": {n: len(sets[n][2]) for n in sets}, "cnns": {}}
    for wname in a.weights:
        net = load_identity_cnn(None if wname == "bundled" else wname)
        r = out["cnns"][wname] = {}
        betas = {}
        for n in ("val150x3", "eval"):
            X, W, idx = sets[n]
            w = net.predict(X)
            err = rms(w - W).numpy()
            ang = angles[n]
            r[n] = d = {"views": len(X), "shape_error_mm": float(err.mean()), "by_angle_deg": {}}
            for lo, hi in zip(ANGLE_BINS_DEG, ANGLE_BINS_DEG[1:]):
                m = (ang >= lo) & (ang < hi)
                d["by_angle_deg"][f"{lo}-{hi}"] = dict(views=int(m.sum()), reading_mm=float(err[m].mean()),
                                                       mean_face_mm=float(rms(W[m]).mean()))
            e = w - W
            along = dot(e, W) / dot(W, W)
            d["error_share_along_truth"] = float(((along * rms(W)) ** 2).sum() / (rms(e) ** 2).sum())
            d["reading_length_on_truth"] = float(dot(w, W).sum() / dot(W, W).sum())
            full = three_view_groups(idx)
            E = torch.stack([e[ii] for ii in full])
            cos = [(dot(E[:, i], E[:, j]) / (rms(E[:, i]) * rms(E[:, j]))).mean().item() for i, j in ((0, 1), (0, 2), (1, 2))]
            d["error_cosine_between_views"] = float(np.mean(cos))
            W1 = W[[ii[0] for ii in full]]
            r1, r3 = w[[ii[0] for ii in full]], torch.stack([w[ii].mean(0) for ii in full])
            b1 = float(dot(r1, W1).sum() / dot(r1, r1).sum())
            b3 = float(dot(r3, W1).sum() / dot(r3, r3).sum())
            if n == "val150x3":
                betas = dict(one_view=b1, three_views=b3)
            d.update(three_view_scenes=len(full), beta_own=dict(one_view=b1, three_views=b3),
                     view0_mm=float(rms(r1 - W1).mean()), mean_of_three_mm=float(rms(r3 - W1).mean()),
                     mean_of_three_times_val_beta_mm=float(rms(betas["three_views"] * r3 - W1).mean()))
        r["beta_chosen_on_val150x3"] = betas
        X, _, idx = sets["eval_scan48"]
        w = net.predict(X)
        full = three_view_groups(idx)
        plain = [scan_mm(idx[ii[0]][0], w[ii].mean(0)) for ii in full]
        longer = [scan_mm(idx[ii[0]][0], w[ii].mean(0) * betas["three_views"]) for ii in full]
        r["scan48_three_views"] = dict(sets=len(full), mean_of_three_mm=float(np.mean(plain)),
                                       mean_of_three_times_val_beta_mm=float(np.mean(longer)),
                                       sets_lower_with_beta=int(np.sum(np.array(longer) < np.array(plain))))

        print(f"\n{wname}")
        for n in ("val150x3", "eval"):
            d = r[n]
            print(f"  {n}: {d['views']} views, shape error {d['shape_error_mm']:.3f} mm; by viewing angle: " +
                  ", ".join(f"{k}° {v['reading_mm']:.3f} (mean face {v['mean_face_mm']:.3f}, {v['views']})"
                            for k, v in d["by_angle_deg"].items()))
            print(f"    error cosine between views {d['error_cosine_between_views']:.2f}; share of squared error along "
                  f"the truth {d['error_share_along_truth']:.2f}; reading length on true length {d['reading_length_on_truth']:.2f}")
            print(f"    {d['three_view_scenes']} three-view scenes: view 0 {d['view0_mm']:.3f}, mean of three "
                  f"{d['mean_of_three_mm']:.3f}, x val beta {betas['three_views']:.2f}: {d['mean_of_three_times_val_beta_mm']:.3f} mm; "
                  f"own beta one view {d['beta_own']['one_view']:.2f}, three {d['beta_own']['three_views']:.2f}")
        s = r["scan48_three_views"]
        print(f"  scan48, {s['sets']} three-view sets: mean of three {s['mean_of_three_mm']:.3f}, x {betas['three_views']:.2f}: "
              f"{s['mean_of_three_times_val_beta_mm']:.3f} mm (lower in {s['sets_lower_with_beta']})")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
