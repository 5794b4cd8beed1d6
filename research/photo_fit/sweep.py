"""Score fit settings on cached descents (cache_descent.py): aligned and raw Chamfer, paired
against the descent, and surface roughness (against the ground truth's).  python -m research.photo_fit.sweep runs/fitdev_val.pkl --views 1 --variant NAME[:F=V,...] ..."""
from __future__ import annotations

import argparse
import json
import pickle
import time

import numpy as np

from glvd_core.evaluate import chamfer_mm, paired_difference
from glvd_core.fitting import ViewEvidence, fit_to_photos
from glvd_core.template import load_template
from research.photo_fit.photo_fit_val import parse_variant


def roughness_mm(V: np.ndarray, template) -> float:
    """Surface roughness: the 99th percentile over the narrow face of the uniform Laplacian's
    magnitude (each vertex's distance to the mean of its neighbours), millimetres."""
    import scipy.sparse as sp

    f = template.faces
    n = template.num_vertices
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    A = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    A.data[:] = 1.0
    deg = np.asarray(A.sum(1)).ravel()
    lap = np.asarray(V, np.float64) - (A @ np.asarray(V, np.float64)) / deg[:, None]
    return float(np.percentile(np.linalg.norm(lap, axis=1)[template.narrow_face_mask], 99) * 1e3)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache")
    ap.add_argument("--views", type=int, default=1)
    ap.add_argument("--variant", action="append", default=[])
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    tpl = load_template()
    scenes = pickle.load(open(a.cache, "rb"))
    variants = dict(parse_variant(v) for v in a.variant)
    rows = {"descent": dict(al=[], raw=[], sec=[], rough=[])} | {k: dict(al=[], raw=[], sec=[], rough=[]) for k in variants}
    truth_rough = []
    for sc in scenes:
        X, cams, p478, est = sc["r1"] if a.views == 1 else sc["r3"]
        gt = sc["gt_world"] if a.views > 1 else sc["cameras"][0].world_to_camera(sc["gt_world"])
        ev = [ViewEvidence(c, p, m) for c, p, m in zip(cams, p478, sc["masks"][:a.views])]
        preds = {"descent": (X, 0.0)}
        truth_rough.append(roughness_mm(gt, tpl))
        for k, fo in variants.items():
            t0 = time.perf_counter()
            f = fit_to_photos(tpl, X, ev, fo, est)
            preds[k] = (f.steps[-1] if len(f.steps) else X, time.perf_counter() - t0)
        for k, (V, sec) in preds.items():
            rows[k]["al"].append(chamfer_mm(gt, V, tpl, align=True)[0])
            rows[k]["raw"].append(chamfer_mm(gt, V, tpl, align=False)[0])
            rows[k]["sec"].append(sec)
            rows[k]["rough"].append(roughness_mm(V, tpl))
    out = {}
    for k, r in rows.items():
        p = paired_difference(rows["descent"]["al"], r["al"]) if k != "descent" else None
        out[k] = dict(aligned=float(np.mean(r["al"])), raw=float(np.mean(r["raw"])), sec=float(np.median(r["sec"])),
                      roughness_p99_mm=float(np.mean(r["rough"])), paired_vs_descent=p,
                      per_scene_aligned_mm=[float(e) for e in r["al"]])
        line = f"{k:<28}{out[k]['aligned']:8.3f}{out[k]['raw']:9.2f}{out[k]['sec']:7.2f}s  rough {out[k]['roughness_p99_mm']:.3f}"
        if p:
            line += f"   descent lower by {p['mean_mm']:+.3f} ({p['ci95_mm'][0]:+.3f} to {p['ci95_mm'][1]:+.3f})"
        print(line, flush=True)
    print(f"{'ground truth roughness':<28}{np.mean(truth_rough):.3f} mm (99th percentile of the Laplacian over the face)")
    if a.json:
        json.dump(dict(views=a.views, scenes=len(scenes), rows=out, truth_roughness_p99_mm=float(np.mean(truth_rough)), variants={k: str(v) for k, v in variants.items()}),
                  open(a.json, "w"), indent=1)
    return out


if __name__ == "__main__":
    main()
