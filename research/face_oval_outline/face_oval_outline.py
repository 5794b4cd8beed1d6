"""Does the fit gain from an outline on photos without a head mask, taken from MediaPipe's face
oval (its 36 contour points, filled as a polygon)? Scored on data/val's cached descents
(research/photo_fit/cache_descent.py), paired against the fit with points only (what a photo
without a mask gets today) and against the fit with the dataset's true head masks.

    python -m research.face_oval_outline.face_oval_outline runs/fitdev_val.pkl --views 1 --json research/face_oval_outline/val_1view.json
"""
from __future__ import annotations

import argparse
import json
import pickle

import cv2
import numpy as np

from glvd_core.evaluate import chamfer_mm, paired_difference
from glvd_core.fitting import FitOptions, ViewEvidence, fit_to_photos
from glvd_core.template import load_template

# MediaPipe's face-oval contour (FACEMESH_FACE_OVAL), in order around the face
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]


def oval_mask(p478: np.ndarray, shape: tuple) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(p478[FACE_OVAL, :2]).astype(np.int32)], 255)
    return m


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache")
    ap.add_argument("--views", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    tpl = load_template()
    scenes = pickle.load(open(a.cache, "rb"))
    variants = {
        "points only (no mask: today)": lambda sc, p: [None] * len(p),
        "points + face-oval outline (face region)": lambda sc, p: [oval_mask(q, m.shape) for q, m in zip(p, sc["masks"])],
        "points + true head mask (face region)": lambda sc, p: list(sc["masks"][:len(p)]),
    }
    opts = {"points + face-oval outline (head region)": FitOptions(outline_region="head")}
    rows = {k: [] for k in ["descent", *variants, *opts]}
    for sc in scenes:
        X, cams, p478, est = sc["r1"] if a.views == 1 else sc["r3"]
        gt = sc["gt_world"] if a.views > 1 else sc["cameras"][0].world_to_camera(sc["gt_world"])
        rows["descent"].append(chamfer_mm(gt, X, tpl, align=True)[0])
        for k, masks in variants.items():
            ev = [ViewEvidence(c, p, m) for c, p, m in zip(cams, p478, masks(sc, p478))]
            f = fit_to_photos(tpl, X, ev, FitOptions(), est)
            rows[k].append(chamfer_mm(gt, f.steps[-1] if len(f.steps) else X, tpl, align=True)[0])
        for k, fo in opts.items():
            ev = [ViewEvidence(c, p, oval_mask(p, m.shape)) for c, p, m in zip(cams, p478, sc["masks"])]
            f = fit_to_photos(tpl, X, ev, fo, est)
            rows[k].append(chamfer_mm(gt, f.steps[-1] if len(f.steps) else X, tpl, align=True)[0])
    base = "points only (no mask: today)"
    out = {}
    for k, r in rows.items():
        p = paired_difference(rows[base], r) if k != base else None
        out[k] = dict(aligned=float(np.mean(r)), paired_vs_points_only=p)
        print(f"{k:<44}{np.mean(r):8.3f}" + (f"   points-only lower by {p['mean_mm']:+.3f} ({p['ci95_mm'][0]:+.3f} to "
                                             f"{p['ci95_mm'][1]:+.3f})" if p else ""), flush=True)
    if a.json:
        json.dump(dict(views=a.views, scenes=len(scenes), rows=out), open(a.json, "w"), indent=1)
    return out


if __name__ == "__main__":
    main()
