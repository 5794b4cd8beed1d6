"""How close can the ICT shape space get to the real scan? The oracle fit of the template's first
M identity modes (weights ~ N(0, 1)) + a similarity directly to the scan's GT points (non-rigid
ICP on the evaluation's own metric: GT point -> closest point on the mesh), scored by
``evaluate``'s scan metric (landmark similarity + ICP, unidirectional Chamfer, mm). No image is
used: this bounds every method whose shape is the template moved inside the identity space
(the 3DMM landmark fit, ``vertex_prior=identity|landmarks``), and says how much of the scan
error is left for a learned per-vertex residual.

    python scripts/scan_ceiling.py [--data data/eval_scan] [--modes 0 10 30 100] [--noise-mm 1 3]
    python scripts/scan_ceiling.py --landmark-ceiling [--data data/eval_scan]

``--landmark-ceiling``: the scan's own ``landmarks68_m`` are MediaPipe's (nearest-point map) on a
frontal render, back-projected — MediaPipe's definitions, not the template's. The template's
definitions on the scan are taken from the oracle fit (100 modes, ``--ceiling-noise-mm``) instead:
its 68 landmark vertices, moved back into the scan's frame. Per scene (view 0, true intrinsics):
the 3DMM landmark fit (the baseline) to their projection (0.5 / 2 / 4.5 px assumed noise) and to
the scan's MediaPipe landmarks, and the detected landmarks' error against them for both 68-point
maps (pixels at 256 px).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from glvd_core import load_template  # noqa: E402
from glvd_core.baselines import fit_identity_to_points  # noqa: E402
from glvd_core.evaluate import chamfer_scan_mm  # noqa: E402
from glvd_core.expression.shape_space import identity_modes  # noqa: E402


def landmark_ceiling(a, gt, lm, tpl, modes):
    from glvd_core.baselines import fit_3dmm_to_landmarks
    from glvd_core.cameras import Camera
    from glvd_core.data import GLVDDataset
    from glvd_core.ict import load_ict
    from glvd_core.io import InputError
    from glvd_core.preprocess import MediaPipeFaces
    from glvd_core.preprocess.detect import mp_to_68

    _, X, (s, R, t) = fit_identity_to_points(gt, lm, tpl, modes, a.ceiling_noise_mm / 1000)
    ict_lm = (X[tpl.landmarks68] - t) @ R / s  # the template's 68 landmarks on the scan, scan frame
    print(f"oracle fit ({a.ceiling_noise_mm:g} mm): {chamfer_scan_mm(gt, lm, X, tpl):.3f} mm; the scan's MediaPipe "
          f"landmarks lie {np.linalg.norm(ict_lm - lm, axis=1).mean() * 1000:.2f} mm from the template's definitions")
    ict, ds = load_ict(), GLVDDataset(a.data)
    res = {}
    for i in range(len(ds)):
        sc = ds[i]
        cam = sc.cameras[0]
        fc = [Camera(np.eye(3), np.zeros(3), cam.K, cam.width, cam.height)]
        gt_c, lm_c = cam.world_to_camera(gt), cam.world_to_camera(lm)
        true = cam.project(ict_lm)
        sets = [("template-defined landmarks, 0.5 px", true, 0.5), ("template-defined landmarks, 2 px", true, 2.0),
                ("template-defined landmarks, 4.5 px", true, 4.5),
                ("scan's MediaPipe landmarks (projected), 4.5 px", cam.project(lm), 4.5)]
        try:
            det = MediaPipeFaces.detect(sc.images[0], where=sc.path.name, segment=False)
        except InputError:
            det = None
        if det is not None:
            for m in ("nearest", "learned"):
                d68 = mp_to_68(det.landmarks478, m)
                res.setdefault(f"detected ({m} map): error vs template-defined, px", []).append(
                    np.linalg.norm(d68 - true, axis=1).mean() * 256 / cam.width)
                sets.append((f"detected ({m} map), 4.5 px", d68, 4.5))
        for name, l2, npx in sets:
            fit = fit_3dmm_to_landmarks([l2], fc, tpl, ict, noise_px=npx)
            res.setdefault(name, []).append(chamfer_scan_mm(gt_c, lm_c, fit, tpl))
        print(f"\rscene {i + 1}/{len(ds)}", end="", flush=True)
    print()
    table = {k: dict(mean=float(np.mean(v)), n=len(v)) for k, v in res.items()}
    for k, v in table.items():
        print(f"{k:<58} {v['mean']:.3f}  (n={v['n']})")
    if a.json:
        Path(a.json).write_text(json.dumps(dict(data=a.data, command=" ".join(sys.argv), table=table), indent=1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/eval_scan")
    ap.add_argument("--modes", type=int, nargs="+", default=[0, 10, 30, 100])
    ap.add_argument("--noise-mm", type=float, nargs="+", default=[1.0])
    ap.add_argument("--expressions", action="store_true",
                    help="also fit the template's 57 expression modes (weights ~ N(0, 1) too): is the scan's "
                         "expression (closed eyes) part of its error?")
    ap.add_argument("--landmark-ceiling", action="store_true")
    ap.add_argument("--ceiling-noise-mm", type=float, default=5.0)
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)
    gt_file = sorted(Path(a.data).glob("scene_*/gt.npz"))
    if not gt_file:
        raise SystemExit(f"{a.data}: no scene_*/gt.npz (make it with scripts/make_scan_eval.py)")
    with np.load(gt_file[0]) as d:  # every scene holds the same scan
        gt, lm = d["points_m"].astype(np.float64), d["landmarks68_m"].astype(np.float64)
    tpl = load_template()
    modes = identity_modes(tpl)
    extra = tpl.expression_modes_m.astype(np.float32) if a.expressions else modes[:0]
    if a.landmark_ceiling:
        return landmark_ceiling(a, gt, lm, tpl, modes)
    rows = []
    for m in a.modes:
        for n in a.noise_mm if m or a.expressions else [0.0]:
            w, X, _ = fit_identity_to_points(gt, lm, tpl, np.concatenate([modes[:m], extra]), n / 1000)
            mm = chamfer_scan_mm(gt, lm, X, tpl)
            wi, we = np.linalg.norm(w[:m]), np.linalg.norm(w[m:])
            rows.append(dict(modes=m, expressions=a.expressions, noise_mm=n, chamfer_aligned_mm=mm,
                             identity_weight_norm=float(wi), expression_weight_norm=float(we)))
            print(f"identity modes {m:>3}{' + 57 expr' if a.expressions else ''}  noise {n:4.1f} mm  "
                  f"aligned Chamfer {mm:.3f} mm  |w_id| {wi:.2f}" + (f"  |w_expr| {we:.2f}" if a.expressions else ""),
                  flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(dict(data=a.data, command=" ".join(sys.argv), rows=rows), indent=1))


if __name__ == "__main__":
    main()
