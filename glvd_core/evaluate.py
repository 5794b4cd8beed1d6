"""Evaluation: unidirectional Chamfer distance (GT face region -> prediction), in millimetres.

GT points are sampled uniformly (by area, fixed seed) on the GT template mesh restricted to the
ICT narrow-face region without the eye/mouth caps; each point's distance to the predicted mesh
is exact point-to-triangle. "aligned" first maps the prediction onto the GT with the
similarity (scale, rotation, translation) that best fits corresponding template vertices of
that region (Umeyama) — a single photo fixes shape, not scale.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .geometry import align_mesh_to_points, point_to_mesh, umeyama
from .template import Template


def chamfer_scan_mm(gt_points: np.ndarray, gt_landmarks: np.ndarray, pred_vertices: np.ndarray, template: Template,
                    align: bool = True) -> float:
    """Chamfer GT scan points -> prediction (mm) for GT without template correspondence: similarity
    from the 68 landmarks (prediction's landmark vertices -> scan landmarks), refined by
    point-to-plane ICP to convergence (:func:`align_mesh_to_points`)."""
    pred = np.asarray(pred_vertices, np.float64)
    if align:
        s, R, t = umeyama(pred[template.landmarks68], gt_landmarks)
        pred = align_mesh_to_points(gt_points, s * pred @ R.T + t, template.faces)
    return float(point_to_mesh(gt_points, pred, template.faces).mean() * 1000)


@dataclass
class FaceRegion:
    faces: np.ndarray        # triangles fully inside the region
    vertex_mask: np.ndarray  # (N,) bool

    @staticmethod
    def of(template: Template) -> "FaceRegion":
        m = template.narrow_face_mask
        return FaceRegion(template.faces[m[template.faces].all(1)], m)

    def sample(self, vertices: np.ndarray, n: int = 20000, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        v = np.asarray(vertices, np.float64)
        a, b, c = v[self.faces[:, 0]], v[self.faces[:, 1]], v[self.faces[:, 2]]
        area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
        t = rng.choice(len(area), n, p=area / area.sum())
        r1, r2 = rng.random(n), rng.random(n)
        f = r1 + r2 > 1
        r1[f], r2[f] = 1 - r1[f], 1 - r2[f]
        return a[t] + (b[t] - a[t]) * r1[:, None] + (c[t] - a[t]) * r2[:, None]


def chamfer_mm(gt_vertices: np.ndarray, pred_vertices: np.ndarray, template: Template, align: bool,
               n_points: int = 20000) -> tuple[float, np.ndarray]:
    """Unidirectional Chamfer GT region -> prediction (mm) and per-vertex error (N,) in mm
    (after the same alignment)."""
    reg = FaceRegion.of(template)
    pred = np.asarray(pred_vertices, np.float64)
    gt = np.asarray(gt_vertices, np.float64)
    if align:
        s, R, t = umeyama(pred[reg.vertex_mask], gt[reg.vertex_mask])
        pred = s * pred @ R.T + t
    pts = reg.sample(gt, n_points)
    d = point_to_mesh(pts, pred, template.faces)
    return float(d.mean() * 1000), np.linalg.norm(pred - gt, axis=1) * 1000


def error_heatmap_png(path: str | Path, template: Template, per_vertex_mm: np.ndarray, vmax_mm: float = 5.0,
                      size: int = 512) -> None:
    """Frontal render of the template coloured by per-vertex error (0 .. vmax mm, turbo map)."""
    import cv2

    from .render.raster import rasterize

    v = template.vertices_m.astype(np.float64) @ np.diag([1.0, -1.0, -1.0]).T
    v = v - v.mean(0) + [0, 0, 0.6]
    f = 0.5 * size / np.tan(np.radians(14))
    K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]])
    r = rasterize(v, template.faces, K, size, size)
    cov = r.coverage
    val = (per_vertex_mm[template.faces[r.tri[cov]]] * r.bary[cov]).sum(1)
    img = np.full((size, size, 3), 255, np.uint8)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1]
    img[cov] = lut[np.clip(val / vmax_mm * 255, 0, 255).astype(int)]
    bar = np.linspace(0, 255, size - 40).astype(int)
    img[-24:-8, 20:size - 20] = lut[bar][None]
    cv2.putText(img, "0 mm", (20, size - 28), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.putText(img, f"{vmax_mm:g} mm", (size - 80, size - 28), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.imwrite(str(path), img[..., ::-1])


def bootstrap_ci(x_mm: np.ndarray, level: float = 0.95, n_boot: int = 10000, seed: int = 0) -> list[float]:
    """Percentile bootstrap interval of the mean of per-scene errors ``x_mm`` (S,), resampling scenes.

    Fixed seed, so a table re-read from the same scenes gives the same interval. One scene has
    no spread to resample: its interval is the single value."""
    x = np.asarray(x_mm, float)
    if x.size == 0:
        raise ValueError("no scenes to bootstrap")
    means = x[np.random.default_rng(seed).integers(0, x.size, (n_boot, x.size))].mean(1)
    a = (1 - level) / 2
    return [float(np.quantile(means, a)), float(np.quantile(means, 1 - a))]


def paired_difference(ours_mm: np.ndarray, theirs_mm: np.ndarray, level: float = 0.95) -> dict:
    """How much lower ``ours_mm`` is than ``theirs_mm`` on the same scenes (both (S,), mm).

    ``mean_mm`` = mean(theirs − ours), positive when ours is better, with its bootstrap interval
    over scenes (``ci95_mm``; the scenes are resampled in pairs, so what the two methods share —
    a hard scene is hard for both — cancels); ``better`` = in how many scenes ours is lower."""
    ours, theirs = np.asarray(ours_mm, float), np.asarray(theirs_mm, float)
    if ours.shape != theirs.shape:
        raise ValueError(f"paired errors need the same scenes: {ours.shape} vs {theirs.shape}")
    d = theirs - ours
    return dict(mean_mm=float(d.mean()), ci95_mm=bootstrap_ci(d, level), better=int((d > 0).sum()),
                scenes=int(d.size))


def evaluate(data: str | Path, models: dict, views: int = 1, max_scenes: int = 0, template: Template | None = None,
             heatmap: str | None = None, oracle_landmarks: bool = False, baselines: bool = True,
             per_step: bool = False, log: Callable[..., None] = print, fits: dict | None = None) -> dict:
    """Run each model (name -> Reconstructor) and the baselines on a dataset's scenes.
    ``fits``: row name -> :class:`glvd_core.fitting.FitOptions`, each a fitting stage run on the
    first model's result (its time added to the descent's).

    The real pipeline: 2D landmarks from the detector (``oracle_landmarks``: projected GT), the
    dataset's head masks, the true intrinsics; one view is reconstructed in its camera frame
    (GT moved there), several views in the dataset's world frame with its cameras. Scenes where
    the detector finds no face in some view are skipped and counted. Baselines: the mean
    template (step 0 of the first model's descent) and the linear 3DMM landmark fit."""
    from . import load_template
    from .cameras import Camera
    from .data import GLVDDataset
    from .fitting import fit_reconstruction
    from .io import InputError
    from .preprocess import MediaPipeFaces

    ds = GLVDDataset(data)
    tpl = template or load_template()
    ict = None
    if baselines:
        from .ict import load_ict

        ict = load_ict()
    n = min(len(ds), max_scenes) if max_scenes else len(ds)
    fits = fits or {}
    names = list(models) + list(fits) + (["mean template", "3DMM landmark fit"] if baselines else [])
    rows = {name: dict(raw=[], aligned=[], seconds=[]) for name in names}
    per_vertex = {name: [] for name in names}
    steps = {name: [] for name in models}
    scored = []  # scene folder names, in the order of every method's per-scene errors
    skipped = 0
    for i in range(n):
        s = ds[i]
        if len(s.images) < views:
            raise ValueError(f"{s.path}: {len(s.images)} views, {views} requested")
        imgs, masks, cams = s.images[:views], s.masks[:views], s.cameras[:views]
        scan = "points_m" in s.extras
        if scan:  # a real scan: GT points without template correspondence
            to_out = (lambda X: X) if views > 1 else cams[0].world_to_camera
            gt_pts, gt_lm = to_out(s.extras["points_m"]), to_out(s.extras["landmarks68_m"])
            lm3 = s.extras["landmarks68_m"]
        else:
            gt = s.vertices_m if views > 1 else cams[0].world_to_camera(s.vertices_m)
            lm3 = s.vertices_m[tpl.landmarks68]
        try:
            dets = None if oracle_landmarks else [MediaPipeFaces.detect(im, where=f"{s.path.name}", segment=False)
                                                  for im in imgs]
            lms = [c.project(lm3) for c in cams] if oracle_landmarks else [d.landmarks68 for d in dets]
        except InputError:
            skipped += 1
            continue
        kw = dict(cameras=cams) if views > 1 else dict(intrinsics=[Camera(np.eye(3), np.zeros(3), cams[0].K,
                                                                         cams[0].width, cams[0].height)])
        preds = {}
        for name, rec in models.items():
            # the models get the detector's 478 points (mapped to the same 68 inside; the "image"
            # prior crops the face with them)
            r = rec.reconstruct(imgs, masks, landmarks=lms if dets is None else [d.landmarks478 for d in dets], **kw)
            preds[name] = (r.final_vertices, r.timings["total"])
            if name == next(iter(models)):
                mean_face = r.vertices[0]  # the descent's start: the mean template where it begins
                for fname, fo in fits.items():
                    f = fit_reconstruction(tpl, r, fo, masks=masks)
                    preds[fname] = (f.steps[-1] if len(f.steps) else r.final_vertices,
                                    r.timings["total"] + f.seconds)
            if per_step:
                steps[name].append([chamfer_scan_mm(gt_pts, gt_lm, v, tpl) if scan else
                                    chamfer_mm(gt, v, tpl, align=True, n_points=5000)[0] for v in r.vertices])
        if baselines:
            preds["mean template"] = (mean_face, 0.0)
            t0 = time.perf_counter()
            fit_cams = cams if views > 1 else kw["intrinsics"]
            from .baselines import fit_3dmm_to_landmarks

            fit = fit_3dmm_to_landmarks(lms, fit_cams, tpl, ict, world=views > 1)
            preds["3DMM landmark fit"] = (fit, time.perf_counter() - t0)
        for name, (pred, sec) in preds.items():
            if scan:
                raw = chamfer_scan_mm(gt_pts, gt_lm, pred, tpl, align=False)
                al, pv = chamfer_scan_mm(gt_pts, gt_lm, pred, tpl, align=True), np.zeros(tpl.num_vertices)
            else:
                raw, _ = chamfer_mm(gt, pred, tpl, align=False)
                al, pv = chamfer_mm(gt, pred, tpl, align=True)
            rows[name]["raw"].append(raw)
            rows[name]["aligned"].append(al)
            rows[name]["seconds"].append(sec)
            per_vertex[name].append(pv)
        scored.append(s.path.name)
        log(f"\rscene {i + 1}/{n}", end="")
    log("")
    table = {name: dict(chamfer_mm=float(np.mean(r["raw"])), chamfer_aligned_mm=float(np.mean(r["aligned"])),
                        chamfer_aligned_median_mm=float(np.median(r["aligned"])),
                        chamfer_aligned_ci95_mm=bootstrap_ci(r["aligned"]),
                        seconds_per_face=float(np.mean(r["seconds"])), scenes=len(r["raw"]))
             for name, r in rows.items() if r["raw"]}
    ours = next(iter(models))
    paired = {name: paired_difference(rows[ours]["aligned"], rows[name]["aligned"])
              for name in table if name != ours}
    per_scene = dict(scenes=scored, **{name: [float(e) for e in rows[name]["aligned"]] for name in table})
    out = dict(table=table, paired_aligned_mm=paired, per_scene_aligned_mm=per_scene,
               skipped_no_face=skipped, scenes_tried=n, views=views,
               landmarks="oracle (projected GT)" if oracle_landmarks else "detector (MediaPipe)")
    if per_step:
        out["per_step_aligned_mm"] = {k: np.mean(v, 0).tolist() for k, v in steps.items() if v}
    if heatmap:
        error_heatmap_png(heatmap, tpl, np.mean(per_vertex[next(iter(models))], 0))
    return out


def compare_runs(new: dict, old: dict) -> dict:
    """Paired comparison of two :func:`evaluate` results (their JSON) on the scenes both scored.

    For each method in both: ``paired_difference(new, old)`` (positive ``mean_mm``: the new run is
    lower) over the scenes both runs scored, matched by scene name. Raises ``ValueError`` when the
    results carry no per-scene errors (JSON written before they were recorded) or share no scene."""
    try:
        a, b = new["per_scene_aligned_mm"], old["per_scene_aligned_mm"]
    except KeyError:
        raise ValueError("both results need per-scene errors (per_scene_aligned_mm): re-run evaluate") from None
    ia, ib = ({sc: i for i, sc in enumerate(r["scenes"])} for r in (a, b))
    shared = [sc for sc in a["scenes"] if sc in ib]
    if not shared:
        raise ValueError("the two results share no scene: were they run on the same data?")
    return {name: paired_difference([a[name][ia[sc]] for sc in shared], [b[name][ib[sc]] for sc in shared])
            for name in a if name != "scenes" and name in b}


def format_table(result: dict) -> str:
    table, views = result["table"], result["views"]
    lines = [f"Unidirectional Chamfer, GT narrow face -> prediction (mm), {views} view(s); landmarks: "
             f"{result['landmarks']}; {result['skipped_no_face']} of {result['scenes_tried']} scenes skipped (no face found)",
             f"{'method':<22}{'raw':>9}{'aligned':>10}{'95% interval':>18}{'median':>9}{'s/face':>9}{'scenes':>8}"]
    for name, r in table.items():
        lo, hi = r["chamfer_aligned_ci95_mm"]
        lines.append(f"{name:<22}{r['chamfer_mm']:>9.3f}{r['chamfer_aligned_mm']:>10.3f}{f'{lo:.3f}-{hi:.3f}':>18}"
                     f"{r['chamfer_aligned_median_mm']:>9.3f}{r['seconds_per_face']:>9.3f}{r['scenes']:>8d}")
    ours = next(iter(table), None)
    for name, p in result.get("paired_aligned_mm", {}).items():
        lo, hi = p["ci95_mm"]
        lines.append(f"{ours} vs {name}: {p['mean_mm']:+.3f} mm lower (95% interval {lo:+.3f} to {hi:+.3f}), "
                     f"lower in {p['better']} of {p['scenes']} scenes")
    return "\n".join(lines)


def save_json(path: str | Path, obj: object) -> None:
    from .io import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(obj, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)).encode())
