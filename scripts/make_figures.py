"""Figures for docs/RESULTS.md: per-step error plot and reconstructions overlaid on the example photos.

    python scripts/make_figures.py
"""
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def per_step_plot(src=ROOT / "docs/results/eval_synthetic_1view.json", out=ROOT / "docs/results/per_step_1view.png"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = json.loads(Path(src).read_text())
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    for name, ys in d["per_step_aligned_mm"].items():
        ax.plot(range(len(ys)), ys, marker="o", label=name)
    mt = d["table"]["mean template"]["chamfer_aligned_mm"]
    ax.axhline(mt, color="gray", ls="--", label=f"mean template {mt:.2f} mm")
    ax.set_xlabel("descent step")
    ax.set_ylabel("aligned Chamfer (mm)")
    ax.set_title(f"held-out synthetic, 1 view ({d['table']['GLVD']['scenes']} scenes)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def overlay(photo, out):
    from glvd_core import Reconstructor
    from glvd_core.preprocess import load_photo

    rec = Reconstructor.from_pretrained()
    ph = load_photo(photo)
    r = rec.reconstruct([ph.image], intrinsics=[ph.camera], names=[str(photo)])
    cam = r.cameras[0]
    uv = cam.project(r.final_vertices)
    img = ph.image[..., ::-1].copy()
    edges = np.concatenate([r.faces[:, [0, 1]], r.faces[:, [1, 2]]])[::3]
    for a, b in edges:
        cv2.line(img, tuple(np.round(uv[a]).astype(int)), tuple(np.round(uv[b]).astype(int)), (80, 255, 80), 1,
                 cv2.LINE_AA)
    kp = cam.project(r.keypoints[-1])
    for p in kp:
        cv2.circle(img, tuple(np.round(p).astype(int)), 3, (0, 0, 255), -1)
    cv2.imwrite(str(out), img)
    print(f"wrote {out} ({r.timings['total']:.2f} s)")


if __name__ == "__main__":
    per_step_plot()
    for name in ("astronaut.png", "grace_hopper.jpg"):
        overlay(ROOT / "docs/examples" / name, ROOT / "docs/results" / f"reconstruction_{Path(name).stem}.png")
