"""How near the truth can the fit's parametrisation get, if the evidence were perfect?

Least squares of the descent's shape plus the 100 identity modes (and the 57 expression modes)
onto the ground truth over the face region, after the best similarity; scored like the tables.
python -m research.photo_fit.oracle_ceiling runs/fitdev_val.pkl --views 3"""
from __future__ import annotations

import argparse
import pickle

import numpy as np

from glvd_core.evaluate import FaceRegion, chamfer_mm
from glvd_core.expression.shape_space import identity_modes
from glvd_core.geometry import umeyama
from glvd_core.template import load_template


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache")
    ap.add_argument("--views", type=int, default=3)
    a = ap.parse_args(argv)
    tpl = load_template()
    mean = tpl.vertices_m.astype(np.float64)
    Bi = identity_modes(tpl).astype(np.float64)
    Bie = np.concatenate([Bi, tpl.expression_modes_m.astype(np.float64)])
    sel = np.asarray(tpl.narrow_face_mask, bool)
    reg = FaceRegion.of(tpl).vertex_mask
    rows = {"descent": [], "descent + identity modes": [], "descent + identity + expression modes": []}
    for sc in pickle.load(open(a.cache, "rb")):
        X = sc["r1"][0] if a.views == 1 else sc["r3"][0]
        gt = sc["gt_world"] if a.views > 1 else sc["cameras"][0].world_to_camera(sc["gt_world"])
        s, R, t = umeyama(mean[sel], X[sel])
        base = ((X - t) @ R) / s  # the descent's shape in the template frame, as the fit starts
        s2, R2, t2 = umeyama(mean[reg], gt[reg])
        G = ((gt - t2) @ R2) / s2
        rows["descent"].append(chamfer_mm(gt, X, tpl, align=True)[0])
        for name, B in (("descent + identity modes", Bi), ("descent + identity + expression modes", Bie)):
            A = B[:, reg].reshape(len(B), -1).T
            w = np.linalg.lstsq(A, (G - base)[reg].ravel(), rcond=None)[0]
            rows[name].append(chamfer_mm(gt, base + np.tensordot(w, B, 1), tpl, align=True)[0])
    out = {k: float(np.mean(v)) for k, v in rows.items()}
    for k, v in out.items():
        print(f"{k:<40}{v:.3f} mm ({len(rows[k])} scenes, {a.views} view(s))")
    return out


if __name__ == "__main__":
    main()
