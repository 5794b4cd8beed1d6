"""How many keypoints must the artist move? The bundled model's descent on held-out synthetic
heads (one view, the evaluate protocol) with 0, 1, 3 and 18 keypoints held, chosen in the order
an artist would move them (nearest the nose tip, chin, outer eye corners, mouth corners, ...),
two ways:

- ``snap``: each held keypoint at the true position of its template vertex;
- ``shift``: each held keypoint moved from where the free descent left it by how far its template
  vertex is from the truth (what an artist does: drag the empty by the error they see).

Aligned Chamfer (shape) and unaligned Chamfer (shape and placement), mm.

    python -m research.keypoint_curve.keypoint_curve --data data/eval --json research/keypoint_curve/keypoint_curve_eval_1view.json
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from glvd_core.cameras import Camera
from glvd_core.data import GLVDDataset
from glvd_core.evaluate import chamfer_mm
from glvd_core.io import InputError
from glvd_core.preprocess import MediaPipeFaces
from glvd_core.reconstruct import ReconstructOptions, Reconstructor

# Multi-PIE 68 points in the order an artist looks at a face (as research/pin_curve)
ARTIST_ORDER = [30, 8, 36, 45, 48, 54, 39, 42, 4, 12, 2, 14, 19, 24, 31, 35, 51, 57, 6, 10]


def artist_keypoints(template, keypoint_vertices: np.ndarray) -> list[int]:
    """The keypoints (indices 0..K-1) in the order an artist would move them: for each landmark of
    ARTIST_ORDER the nearest keypoint not yet taken, then the rest."""
    V = template.vertices_m
    order: list[int] = []
    for lm in ARTIST_ORDER:
        d = np.linalg.norm(V[keypoint_vertices] - V[template.landmarks68[lm]], axis=1)
        for j in np.argsort(d):
            if int(j) not in order:
                order.append(int(j))
                break
    return order + [j for j in range(len(keypoint_vertices)) if j not in order]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/eval")
    ap.add_argument("--counts", type=int, nargs="+", default=[0, 1, 3, 18])
    ap.add_argument("--max-scenes", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    rec = Reconstructor.from_pretrained()
    tpl = rec.template
    K = rec.cfg.arch.num_keypoints
    kp_vertices = np.asarray(tpl.keypoint_indices(K))
    order = artist_keypoints(tpl, kp_vertices)
    ds = GLVDDataset(a.data)
    n = len(ds) if not a.max_scenes else min(a.max_scenes, len(ds))
    rows: dict = {(mode, c): [] for mode in ("snap", "shift") for c in a.counts}
    skipped = 0
    for i in range(n):
        s = ds[i]
        cam = s.cameras[0]
        gt = cam.world_to_camera(s.vertices_m)  # one view: the output frame is the camera's
        try:
            det = MediaPipeFaces.detect(s.images[0], where=s.path.name, segment=False)
        except InputError:
            skipped += 1
            continue
        kw = dict(intrinsics=[Camera(np.eye(3), np.zeros(3), cam.K, cam.width, cam.height)])

        def run(held):
            return rec.reconstruct(s.images[:1], s.masks[:1], landmarks=[det.landmarks478],
                                   options=ReconstructOptions(keypoints=held or None), **kw)

        free = run(None)
        error = gt[kp_vertices] - free.final_vertices[kp_vertices]
        for mode in ("snap", "shift"):
            for c in a.counts:
                if mode == "snap":
                    held = {j: tuple(gt[kp_vertices[j]]) for j in order[:c]}
                else:
                    held = {j: tuple(free.keypoints[-1, j] + error[j]) for j in order[:c]}
                r = run(held) if c else free
                rows[(mode, c)].append((chamfer_mm(gt, r.final_vertices, tpl, align=True)[0],
                                        chamfer_mm(gt, r.final_vertices, tpl, align=False)[0]))
    args = argv if argv is not None else sys.argv[1:]
    out = dict(command="python -m research.keypoint_curve.keypoint_curve " + " ".join(args),
               data=a.data, scenes=len(rows[("snap", a.counts[0])]), skipped=skipped, order=order,
               keypoints={f"{mode} {c}": dict(aligned_mm=float(np.mean([v[0] for v in r])),
                                              aligned_median_mm=float(np.median([v[0] for v in r])),
                                              unaligned_mm=float(np.mean([v[1] for v in r])),
                                              unaligned_median_mm=float(np.median([v[1] for v in r])))
                          for (mode, c), r in rows.items()})
    for k, r in out["keypoints"].items():
        print(f"{k:>8} held: aligned {r['aligned_mm']:.3f} mm (median {r['aligned_median_mm']:.3f}), "
              f"unaligned {r['unaligned_mm']:.3f} mm (median {r['unaligned_median_mm']:.3f})", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
