"""How close can the ICT shape space get to the real scan? The oracle fit of the template's first
M identity modes (weights ~ N(0, 1)) + a similarity directly to the scan's GT points (non-rigid
ICP on the evaluation's own metric: GT point -> closest point on the mesh), scored by
``evaluate``'s scan metric (landmark similarity + ICP, unidirectional Chamfer, mm). No image is
used: this bounds every method whose shape is the template moved inside the identity space
(the 3DMM landmark fit, ``vertex_prior=identity|landmarks``), and says how much of the scan
error is left for a learned per-vertex residual.

    python -m research.scan_ceiling.scan_ceiling [--data data/eval_scan] [--modes 0 10 30 100] [--noise-mm 1 3]
    python -m research.scan_ceiling.scan_ceiling --landmark-fits [--data data/eval_scan]

``--landmark-fits``: does trusting the scan's landmarks more help? Per scene (view 0, true
intrinsics) the 3DMM landmark fit (the baseline) to the projection of the scan's own 68
landmarks (MediaPipe's nearest-point map on a frontal render, back-projected onto the scan) with
1, 4.5 and 10 px assumed noise, and to the detected landmarks of the view (both 68-point maps).
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from glvd_core import load_template  # noqa: E402
from glvd_core.baselines import fit_identity_to_points  # noqa: E402
from glvd_core.evaluate import chamfer_scan_mm  # noqa: E402
from glvd_core.expression.shape_space import identity_modes  # noqa: E402


def landmark_fits(a, gt, lm, tpl):
    from glvd_core.baselines import fit_3dmm_to_landmarks
    from glvd_core.cameras import Camera
    from glvd_core.data import GLVDDataset
    from glvd_core.ict import load_ict
    from glvd_core.io import InputError
    from glvd_core.preprocess import MediaPipeFaces
    from glvd_core.preprocess.detect import mp_to_68

    ict, ds = load_ict(), GLVDDataset(a.data)
    res = {}
    for i in range(len(ds)):
        sc = ds[i]
        cam = sc.cameras[0]
        fc = [Camera(np.eye(3), np.zeros(3), cam.K, cam.width, cam.height)]
        gt_c, lm_c = cam.world_to_camera(gt), cam.world_to_camera(lm)
        sets = [(f"scan's landmarks (projected), {n:g} px", cam.project(lm), n) for n in (1.0, 4.5, 10.0)]
        try:
            det = MediaPipeFaces.detect(sc.images[0], where=sc.path.name, segment=False)
            sets += [(f"detected ({m} map), 4.5 px", mp_to_68(det.landmarks478, m), 4.5) for m in ("nearest", "learned")]
        except InputError:
            pass
        for name, l2, npx in sets:
            fit = fit_3dmm_to_landmarks([l2], fc, tpl, ict, noise_px=npx)
            res.setdefault(name, []).append(chamfer_scan_mm(gt_c, lm_c, fit, tpl))
        print(f"\rscene {i + 1}/{len(ds)}", end="", flush=True)
    print()
    table = {k: dict(chamfer_aligned_mm=float(np.mean(v)), scenes=len(v)) for k, v in res.items()}
    for k, v in table.items():
        print(f"3DMM fit to {k:<42} {v['chamfer_aligned_mm']:.3f} mm  ({v['scenes']} scenes)")
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
    ap.add_argument("--landmark-fits", action="store_true",
                    help="instead: the 3DMM landmark fit to the scan's own and the detected landmarks, per scene")
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)
    gt_file = sorted(Path(a.data).glob("scene_*/gt.npz"))
    if not gt_file:
        raise SystemExit(f"{a.data}: no scene_*/gt.npz (make it with scripts/make_scan_eval.py)")
    with np.load(gt_file[0]) as d:  # every scene holds the same scan
        gt, lm = d["points_m"].astype(np.float64), d["landmarks68_m"].astype(np.float64)
    tpl = load_template()
    if a.landmark_fits:
        return landmark_fits(a, gt, lm, tpl)
    modes = identity_modes(tpl)
    extra = tpl.expression_modes_m.astype(np.float32) if a.expressions else modes[:0]
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
