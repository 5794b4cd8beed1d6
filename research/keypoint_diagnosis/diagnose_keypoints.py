"""Where the single-view error comes from: how good are the descent's 3D keypoints, and how much
of the identity could the 18 keypoints carry if they were right?

    python -m research.keypoint_diagnosis.diagnose_keypoints --data data/eval --scenes 20 [--views 1|3] [--weights W] [--json OUT]

On each held-out synthetic scene (MediaPipe landmarks, as ``evaluate``: ``--views 1`` is view 0 in
its camera frame with the true intrinsics, ``--views 3`` the world frame with the true cameras):
- keypoint error of the model's descent at every step (mm, mean over keypoints), raw and after the
  best similarity onto the GT keypoints (single view fixes shape, not scale/depth);
- the GT face fitted from keypoints: the template's identity modes (ICT, weights ~ N(0, 1)) fitted
  by ridge regression to the keypoints up to a similarity, scored with the evaluate metric
  (aligned unidirectional Chamfer, mm):
  * oracle: the GT keypoints themselves (18, and the 68 landmarks) — what a perfect keypoint
    branch would allow through a linear identity fit;
  * the model's final keypoints, for several assumed keypoint noise levels;
- the mean template and the model's own final shape on the same scenes, for reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from glvd_core import Reconstructor, load_template  # noqa: E402
from glvd_core.cameras import Camera  # noqa: E402
from glvd_core.data import GLVDDataset  # noqa: E402
from glvd_core.evaluate import chamfer_mm
from glvd_core.geometry import umeyama  # noqa: E402
from glvd_core.expression.shape_space import identity_modes  # noqa: E402
from glvd_core.io import InputError  # noqa: E402
from glvd_core.model.glvd import ridge_identity_fit, ridge_solve  # noqa: E402
from glvd_core.preprocess import MediaPipeFaces  # noqa: E402

def fit_identity(points_m: np.ndarray, index: np.ndarray, mean_m: np.ndarray, modes_m: np.ndarray,
                 noise_m: float) -> np.ndarray:
    """The identity prior's fit (glvd_core.model.glvd.ridge_identity_fit: identity weights
    w ~ N(0, 1), mean + w·modes matching ``points_m`` (P, 3) at template vertices ``index`` up
    to a similarity, isotropic point noise ``noise_m``). Returns the fitted face (N, 3) in the
    points' frame."""
    f32 = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
    w = ridge_identity_fit(f32(points_m)[None], f32(mean_m[index]), f32(modes_m[:, index]),
                           f32(ridge_solve(modes_m[:, index], noise_m)))[0].double().numpy()
    X = mean_m + np.tensordot(w, modes_m, 1)
    s, R, t = umeyama(X[index], points_m)
    return s * X @ R.T + t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="data/eval")
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--views", type=int, default=1,
                    help="views per scene (1: camera frame, intrinsics only; more: world frame, cameras given)")
    ap.add_argument("--weights", default=None, help="model (default: the bundled one)")
    ap.add_argument("--noise-mm", type=float, nargs="+", default=[2.0, 5.0, 8.0, 12.0],
                    help="assumed keypoint noise levels for the fits on the model's keypoints")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    tpl = load_template()
    modes = identity_modes(tpl).astype(np.float64)
    mean = tpl.vertices_m.astype(np.float64)
    k18, k68 = tpl.keypoint_indices(18), tpl.landmarks68
    rec = Reconstructor.from_pretrained(a.weights, device="cpu")
    if rec.model.cfg.arch.num_keypoints != 18:
        raise SystemExit("this diagnostic assumes the 18-keypoint layout")
    ds = GLVDDataset(a.data)
    rows: dict[str, list] = {"mean template": [], "model final shape": [], "oracle fit, 18 GT keypoints": [],
                             "oracle fit, 68 GT landmarks": []}
    rows.update({f"fit on model keypoints, noise {n:g} mm": [] for n in a.noise_mm})
    kp_raw, kp_aligned, kp_scale, kp_axis = [], [], [], []
    skipped = 0
    for i in range(min(a.scenes, len(ds))):
        s = ds[i]
        cam = s.cameras[0]
        gt = (cam.world_to_camera(s.vertices_m) if a.views == 1 else s.vertices_m).astype(np.float64)
        try:
            lms = [MediaPipeFaces.detect(im, where=s.path.name, segment=False).landmarks68
                   for im in s.images[:a.views]]
        except InputError:
            skipped += 1
            continue
        kw = (dict(intrinsics=[Camera(np.eye(3), np.zeros(3), cam.K, cam.width, cam.height)]) if a.views == 1
              else dict(cameras=s.cameras[:a.views]))
        r = rec.reconstruct(s.images[:a.views], s.masks[:a.views], landmarks=lms, **kw)
        gk = gt[k18]
        raw, al = [], []
        for kp in r.keypoints.astype(np.float64):
            raw.append(np.linalg.norm(kp - gk, axis=1).mean() * 1000)
            sc, R, t = umeyama(kp, gk)
            al.append(np.linalg.norm(sc * kp @ R.T + t - gk, axis=1).mean() * 1000)
        kp_raw.append(raw)
        kp_aligned.append(al)
        kp_final = r.keypoints[-1].astype(np.float64)
        sc, R, t = umeyama(kp_final, gk)
        kp_scale.append(sc)
        kp_axis.append(np.abs(sc * kp_final @ R.T + t - gk).mean(0) * 1000)

        def score(v):
            return chamfer_mm(gt, v, tpl, align=True, n_points=5000)[0]

        rows["mean template"].append(score(r.vertices[0]))
        rows["model final shape"].append(score(r.final_vertices))
        rows["oracle fit, 18 GT keypoints"].append(score(fit_identity(gk, k18, mean, modes, 1e-3)))
        rows["oracle fit, 68 GT landmarks"].append(score(fit_identity(gt[k68], k68, mean, modes, 1e-3)))
        for n in a.noise_mm:
            rows[f"fit on model keypoints, noise {n:g} mm"].append(
                score(fit_identity(kp_final, k18, mean, modes, n / 1000)))
        print(f"\rscene {i + 1}/{min(a.scenes, len(ds))}", end="", flush=True)
    print()
    out = dict(
        scenes=len(kp_raw), views=a.views, skipped_no_face=skipped, data=a.data, weights=a.weights or "bundled",
        aligned_chamfer_mm={k: float(np.mean(v)) for k, v in rows.items()},
        keypoint_error_mm_per_step=dict(raw=np.mean(kp_raw, 0).round(2).tolist(),
                                        aligned=np.mean(kp_aligned, 0).round(2).tolist()),
        keypoint_final_similarity_scale=float(np.mean(kp_scale)),
        keypoint_final_aligned_error_per_axis_mm=dict(zip("xyz", np.mean(kp_axis, 0).round(2).tolist())),
        command="python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
    )
    for k, v in out["aligned_chamfer_mm"].items():
        print(f"{k:<40} {v:6.3f} mm")
    print("keypoint error per step, aligned (mm):", out["keypoint_error_mm_per_step"]["aligned"])
    print("keypoint error per step, raw (mm):    ", out["keypoint_error_mm_per_step"]["raw"])
    print("final keypoints: similarity scale onto GT", round(out["keypoint_final_similarity_scale"], 3),
          "aligned error per axis (mm; camera axes for 1 view, world axes for several)", out["keypoint_final_aligned_error_per_axis_mm"])
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
