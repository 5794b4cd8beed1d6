"""Fit the MediaPipe-478 -> template-68 landmark map (research/learned_landmark_map/landmark_regressor.py).

Ridge regression from all 478 detected points to the projected ground-truth landmarks of the data
engine's renders, in a similarity-normalised frame. The penalty is chosen on a validation set (the
largest within 1 % of the best validation error: the most regularised map that is as good); the
errors of the map and of the nearest-point look-up it replaces are measured on every set given and
stored in the asset.

    python -m research.learned_landmark_map.fit_landmark_regressor --train data/train --val data/val --eval data/eval

The datasets need MediaPipe's points cached (``python -m glvd_core detect-landmarks --data DIR``;
run here for any set whose cache is missing or older).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from glvd_core import load_template  # noqa: E402
from glvd_core.data import GLVDDataset  # noqa: E402
from glvd_core.data.landmarks import CACHE, cache_detected_landmarks  # noqa: E402
from glvd_core.preprocess.detect import mp_to_68 as mp_to_68_index  # noqa: E402
from research.learned_landmark_map.landmark_regressor import ASSET, LandmarkRegressor  # noqa: E402

GROUPS = (("jaw", slice(0, 17)), ("brows", slice(17, 27)), ("nose", slice(27, 36)), ("eyes", slice(36, 48)),
          ("mouth", slice(48, 68)))


def collect(root, template):
    """(F, 478, 3) detections, (F, 68, 2) projected GT landmarks, (F,) image widths of every
    detected view of a dataset (caching the detections first where needed)."""
    ds = GLVDDataset(root)
    caches = [ds[i].path / CACHE for i in range(len(ds))]
    if not all(c.is_file() and "landmarks478" in np.load(c).files for c in caches):
        cache_detected_landmarks(root)
    P, G, W = [], [], []
    for i in range(len(ds)):
        s = ds[i]
        with np.load(s.path / CACHE) as z:
            p478, ok = z["landmarks478"], z["ok"].astype(bool)
        for v, cam in enumerate(s.cameras):
            if ok[v]:
                P.append(p478[v])
                G.append(cam.project(s.vertices_m[template.landmarks68]))
                W.append(cam.width)
    return np.array(P, np.float64), np.array(G, np.float64), np.array(W, np.float64)


def errors_px(pred, gt, width) -> dict:
    """Mean distance to the GT landmarks in pixels at 256 px, overall and per group."""
    e = np.linalg.norm(pred - gt, axis=-1) * (256.0 / width[:, None])
    return dict(mean=round(float(e.mean()), 3), median=round(float(np.median(e)), 3),
                **{n: round(float(e[:, r].mean()), 3) for n, r in GROUPS})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", default="data/train")
    ap.add_argument("--val", default="data/val")
    ap.add_argument("--eval", default=None, help="a held-out set to report on (not used for any choice)")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3])
    ap.add_argument("--out", default=str(ASSET))
    a = ap.parse_args(argv)
    tpl = load_template()
    sets = {"train": collect(a.train, tpl), "val": collect(a.val, tpl)}
    if a.eval:
        sets["eval"] = collect(a.eval, tpl)
    P, G, _ = sets["train"]
    val = {}
    for lam in a.lambdas:
        reg = LandmarkRegressor.fit(P, G, lam)
        val[lam] = errors_px(reg(sets["val"][0]), sets["val"][1], sets["val"][2])["mean"]
        print(f"lambda {lam:g}: validation {val[lam]:.3f} px")
    best = min(val.values())
    lam = max(k for k, v in val.items() if v <= 1.01 * best)
    reg = LandmarkRegressor.fit(P, G, lam)
    report = {name: dict(views=len(p), regressor=errors_px(reg(p), g, w), nearest_point=errors_px(mp_to_68_index(p), g, w))
              for name, (p, g, w) in sets.items()}
    reg.info = dict(lam=lam, validation_px_by_lambda={f"{k:g}": v for k, v in val.items()},
                    data=dict(train=str(a.train), val=str(a.val), eval=a.eval), errors_px_at_256=report,
                    command="python -m research.learned_landmark_map.fit_landmark_regressor " + " ".join(argv if argv is not None else sys.argv[1:]))
    reg.save(a.out)
    print(json.dumps(report, indent=1))
    print(f"lambda {lam:g}; wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
