"""How many clicks until it is right? Pins at the true projections of 0, 3, 5, 10 and 20 points an
artist would click, in one photo, added to the fitting stage on cached descents of held-out heads.

    python -m research.photo_fit.cache_descent --data data/eval --out runs/fitdev_eval.pkl
    python -m research.pin_curve.pin_curve runs/fitdev_eval.pkl --json research/pin_curve/pin_curve_eval_1view.json
"""
from __future__ import annotations

import argparse
import json
import pickle

import numpy as np

from glvd_core.evaluate import chamfer_mm
from glvd_core.fitting import FitOptions, Pin, ViewEvidence, fit_to_photos
from glvd_core.template import load_template

# Multi-PIE 68 indices in the order an artist clicks: outer eye corners, nose tip, mouth corners,
# chin, inner eye corners, jaw, cheek contour, brows, nose wings, lips, lower jaw.
ARTIST_ORDER = [36, 45, 30, 48, 54, 8, 39, 42, 4, 12, 2, 14, 19, 24, 31, 35, 51, 57, 6, 10]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache")
    ap.add_argument("--counts", type=int, nargs="+", default=[0, 3, 5, 10, 20])
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    tpl = load_template()
    scenes = pickle.load(open(a.cache, "rb"))
    rows = {n: [] for n in a.counts}
    descent = []
    for sc in scenes:
        X, cams, p478, est = sc["r1"]
        gt = sc["cameras"][0].world_to_camera(sc["gt_world"])
        descent.append(chamfer_mm(gt, X, tpl, align=True)[0])
        for n in a.counts:
            ids = [int(tpl.landmarks68[k]) for k in ARTIST_ORDER[:n]]
            pins = [Pin((v, v, v), (1.0, 0.0, 0.0), tuple(cams[0].project(gt[v:v + 1])[0])) for v in ids]
            f = fit_to_photos(tpl, X, [ViewEvidence(cams[0], p478[0], sc["masks"][0], pins)], FitOptions(), est)
            rows[n].append(chamfer_mm(gt, f.steps[-1] if len(f.steps) else X, tpl, align=True)[0])
    out = dict(scenes=len(scenes), descent_mm=float(np.mean(descent)),
               pins={n: dict(aligned_mm=float(np.mean(v)), median_mm=float(np.median(v))) for n, v in rows.items()})
    print(f"descent alone {out['descent_mm']:.3f} mm ({len(scenes)} scenes, one view)")
    for n, r in out["pins"].items():
        print(f"fit with {n:>2} pins: {r['aligned_mm']:.3f} mm (median {r['median_mm']:.3f})", flush=True)
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)
    return out


if __name__ == "__main__":
    main()
