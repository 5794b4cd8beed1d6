"""How good could a landmark fit be? The 3DMM identity fit (glvd_core.baselines) to the true 2D
landmarks (projected ground truth, assumed noise 0.5 and 2 px) and to the detected ones (4.5 px),
1 view (camera frame, true intrinsics) and 3 views (world frame, true cameras), on the first N
held-out scenes; aligned unidirectional Chamfer (mm) as ``evaluate``, 5,000 points; also the
detected landmarks' mean pixel error at 256 px.

    python -m research.landmark_ceiling.landmark_ceiling [N=20]   (data/eval)
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from glvd_core import load_template  # noqa: E402
from glvd_core.baselines import fit_3dmm_to_landmarks  # noqa: E402
from glvd_core.cameras import Camera  # noqa: E402
from glvd_core.data import GLVDDataset  # noqa: E402
from glvd_core.evaluate import chamfer_mm  # noqa: E402
from glvd_core.ict import load_ict  # noqa: E402
from glvd_core.io import InputError  # noqa: E402
from glvd_core.preprocess import MediaPipeFaces  # noqa: E402

tpl, ict, ds = load_template(), load_ict(), GLVDDataset("data/eval")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20
res = {}
for i in range(N):
    s = ds[i]
    for views in (1, 3):
        cams = s.cameras[:views]
        gt = s.vertices_m if views > 1 else cams[0].world_to_camera(s.vertices_m)
        fc = cams if views > 1 else [Camera(np.eye(3), np.zeros(3), cams[0].K, cams[0].width, cams[0].height)]
        true = [c.project(s.vertices_m[tpl.landmarks68]) for c in cams]
        try:
            det = [MediaPipeFaces.detect(im, segment=False).landmarks68 for im in s.images[:views]]
        except InputError:
            det = None
        for name, lms, npx in [("true landmarks, 0.5 px", true, 0.5), ("true landmarks, 2 px", true, 2.0),
                               ("detected, 4.5 px", det, 4.5)]:
            if lms is not None:
                fit = fit_3dmm_to_landmarks(lms, fc, tpl, ict, world=views > 1, noise_px=npx)
                res.setdefault((name, views), []).append(chamfer_mm(gt, fit, tpl, align=True, n_points=5000)[0])
        if det is not None:
            err = np.mean([np.linalg.norm(d - t, axis=1).mean() * 256 / c.width for d, t, c in zip(det, true, cams)])
            res.setdefault(("detected landmark error, px", views), []).append(err)
for (name, views), v in sorted(res.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    print(f"{views} view(s)  {name:<30} {np.mean(v):.3f}  (n={len(v)})")
