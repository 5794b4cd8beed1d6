"""Does photo-consistency between views (glvd_core/fitting/photo.py) make the fit nearer the
truth? Scored on data/val's cached descents (research/photo_fit/cache_descent.py), three views,
paired against the shipped fit (points + mask outline).

    python -m research.photo_consistency.photo_consistency runs/fitdev_val.pkl --variant photo:photo=True ...
"""
from __future__ import annotations

import argparse
import json
import pickle
import time

import numpy as np

from glvd_core.evaluate import chamfer_mm, paired_difference
from glvd_core.fitting import FitOptions, ViewEvidence, fit_to_photos
from glvd_core.template import load_template
from research.photo_fit.photo_fit_val import parse_variant


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache")
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--scenes", type=int, default=0)
    ap.add_argument("--no-masks", action="store_true", help="as photos without a mask: points (+ photo) only")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    tpl = load_template()
    scenes = pickle.load(open(a.cache, "rb"))
    scenes = scenes[:a.scenes] if a.scenes else scenes
    variants = {"fit (shipped)": FitOptions()} | dict(parse_variant(v) for v in a.variant)
    rows = {k: dict(al=[], sec=[]) for k in ["descent", *variants]}
    for sc in scenes:
        X, cams, p478, est = sc["r3"]
        gt = sc["gt_world"]
        rows["descent"]["al"].append(chamfer_mm(gt, X, tpl, align=True)[0])
        masks = [None] * 3 if a.no_masks else sc["masks"][:3]
        ev = [ViewEvidence(c, p, m, image=im) for c, p, m, im in zip(cams, p478, masks, sc["images"][:3])]
        for k, fo in variants.items():
            t0 = time.perf_counter()
            f = fit_to_photos(tpl, X, ev, fo, est)
            rows[k]["sec"].append(time.perf_counter() - t0)
            rows[k]["al"].append(chamfer_mm(gt, f.steps[-1] if len(f.steps) else X, tpl, align=True)[0])
    base = "fit (shipped)"
    out = {}
    for k, r in rows.items():
        p = paired_difference(r["al"], rows[base]["al"]) if k != base else None
        out[k] = dict(aligned=float(np.mean(r["al"])), sec=float(np.median(r["sec"])) if r["sec"] else 0.0,
                      paired_lower_than_shipped_fit=p)
        print(f"{k:<40}{np.mean(r['al']):8.3f}{out[k]['sec']:7.2f}s" + (
            f"   lower than the shipped fit by {p['mean_mm']:+.3f} ({p['ci95_mm'][0]:+.3f} to {p['ci95_mm'][1]:+.3f}),"
            f" {p['better']}/{p['scenes']} scenes" if p else ""), flush=True)
    if a.json:
        json.dump(dict(scenes=len(scenes), no_masks=a.no_masks, rows=out, variants={k: str(v) for k, v in variants.items()}),
                  open(a.json, "w"), indent=1)
    return out


if __name__ == "__main__":
    main()
