"""Figures for docs/RESULTS.md: per-step error plot and reconstructions overlaid on the example photos.

    python scripts/make_figures.py            # all of RESULTS.md's figures
    python scripts/make_figures.py wait       # docs/PERFORMANCE.md's click-to-result plot
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


def _shade(vertices_m, template, camera, yaw_deg):
    """(H, W, 3) uint8 grey render of the mesh turned ``yaw_deg`` about its own vertical axis (the
    camera's y), seen by ``camera``: Lambert shading under a light from the camera."""
    from glvd_core.render.raster import rasterize, vertex_normals

    c = vertices_m.mean(0)
    a = np.radians(yaw_deg)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    V = (vertices_m - c) @ R.T + c
    ras = rasterize(camera.world_to_camera(V), template.faces, camera.K, camera.height, camera.width)
    n = vertex_normals(camera.world_to_camera(V), template.faces)
    nb = np.einsum("hwk,hwkc->hwc", ras.bary, n[template.faces[np.maximum(ras.tri, 0)]])
    shade = np.clip(-nb[..., 2] / (np.linalg.norm(nb, axis=-1) + 1e-9), 0, 1) * 200 + 40
    img = np.full(ras.tri.shape + (3,), 255, np.uint8)
    img[ras.coverage] = shade[ras.coverage, None].astype(np.uint8)
    return img


def fit_figure(photo, out):
    """The photo with the descent's mesh, the fitted mesh and the fit with expression drawn over
    it, each shaded from 45 degrees to the side: what the fitting stage changes on a real photo."""
    from glvd_core import Reconstructor
    from glvd_core.fitting import FitOptions, fit_reconstruction
    from glvd_core.pipeline import PipelineOptions, load_inputs, run

    rec = Reconstructor.from_pretrained()
    inputs = load_inputs([photo])
    res = run(rec, inputs, PipelineOptions(fit=FitOptions()))
    r = res.reconstruction
    expr = fit_reconstruction(rec.template, r, FitOptions(expression=True), masks=inputs.masks)  # the same descent
    cam = r.cameras[0]
    panels = []
    for V, label in ((r.final_vertices, "descent"), (res.final_vertices_m, "descent + fit"),
                     (expr.steps[-1] if len(expr.steps) else r.final_vertices, "fit + expression")):
        img = inputs.images[0][..., ::-1].copy()
        uv = cam.project(V)
        for a, b in np.concatenate([r.faces[:, [0, 1]], r.faces[:, [1, 2]]])[::3]:
            cv2.line(img, tuple(np.round(uv[a]).astype(int)), tuple(np.round(uv[b]).astype(int)), (80, 255, 80), 1,
                     cv2.LINE_AA)
        side = _shade(V, rec.template, cam, 45)[..., ::-1].copy()
        for im in (img, side):
            cv2.putText(im, label, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 255), 2, cv2.LINE_AA)
        panels.append(np.concatenate([img, side], 1))
    grid = np.concatenate(panels, 0)
    s = 900 / grid.shape[1]
    cv2.imwrite(str(out), cv2.resize(grid, None, fx=s, fy=s, interpolation=cv2.INTER_AREA))
    print(f"wrote {out}; fit: {len(res.fit.steps)} iterations, {res.fit.seconds:.2f} s; notes: {res.notes}")


# the wait before the two-scale bake and the background model load, as the performance issue measured
# it in Blender (one photo, panel defaults; seconds per stage; 37.7 s in all, 13.7 s not broken out)
WAIT_BEFORE_S = {"model wait": 3.2, "descent": 2.3, "texture": 17.7, "arkit": 0.4, "write scene": 0.4,
                 "not broken out": 13.7}


def wait_plot(src=ROOT / "docs/results/bench_cpu_default.json", out=ROOT / "docs/results/click_to_result.png"):
    """Stacked bars: where an artist's click-to-result time goes, before and now (``bench --blender``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = json.loads(Path(src).read_text())["results"]["blender"]["click"]  # bench --blender
    rows = {"before (issue)": WAIT_BEFORE_S, "first click now": d["first_click_stages"],
            "next clicks now (median)": d["stages_median_s"]}
    stages = list(dict.fromkeys(k for r in rows.values() for k in r))
    fig, ax = plt.subplots(figsize=(7.5, 3.0), dpi=110)
    for y, (name, r) in enumerate(rows.items()):
        left = 0.0
        for i, k in enumerate(stages):
            w = max(0.0, r.get(k, 0.0))
            ax.barh(y, w, left=left, color=plt.cm.tab10(i), label=k if y == 0 or k not in WAIT_BEFORE_S else None)
            left += w
        ax.text(left + 0.3, y, f"{left:.1f} s", va="center")
    ax.set_yticks(range(len(rows)), list(rows))
    ax.invert_yaxis()
    ax.set_xlim(0, 42)
    ax.set_xlabel("seconds from click to finished face (one photo, 2K texture, ARKit keys)")
    handles, labels = ax.get_legend_handles_labels()
    seen = {}
    for h, lab in zip(handles, labels):
        seen.setdefault(lab, h)
    ax.legend(list(seen.values()), list(seen), fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    if sys.argv[1:] == ["wait"]:
        wait_plot()
        sys.exit(0)
    per_step_plot()
    for name in ("astronaut.png", "grace_hopper.jpg"):
        overlay(ROOT / "docs/examples" / name, ROOT / "docs/results" / f"reconstruction_{Path(name).stem}.png")
        fit_figure(ROOT / "docs/examples" / name, ROOT / "docs/results" / f"fit_{Path(name).stem}.png")
