"""Calibrate MediaPipe's 478 points onto the template surface (glvd_core/assets/mediapipe_points.npz).

    python -m glvd_core make-data --out data/calib --scenes 250 --views 2 --seed 1000
    python -m glvd_core detect-landmarks --data data/calib
    python scripts/build_dense_points.py --data data/calib

For every point: the template vertex whose projection lies nearest to the detection on average
over the renders (distances in units of the face size, glvd_core.fitting.dense_points.face_size_px),
then, over the triangles around that vertex, the barycentric place whose projections fit the
detections best (least squares, two Cauchy reweighting passes against wrong detections). ``sigma``
is the robust spread (1.4826 x median) of the per-coordinate error at that place. The renders are
training-distribution heads (seed 1000), never data/val* or data/eval.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def collect(root: Path):
    """(projected GT vertices (N, V, 2), detections (N, 478, 2), face sizes (N,)) of detected views."""
    from glvd_core.data.landmarks import detected_views
    from glvd_core.fitting.dense_points import face_size_px

    P, D, S = [], [], []
    for cam, V, l478, _, _ in detected_views(root):
        P.append(cam.project(V))
        D.append(l478[:, :2])
        S.append(face_size_px(l478))
    return np.array(P), np.array(D, np.float64), np.array(S)


def fit_triangle(pa, pb, pc, d, w):
    """Barycentric (a, b) on one triangle minimising sum w |pa + a (pb - pa) + b (pc - pa) - d|^2
    over views (all (N, 2), units of the face size), clamped into the triangle; returns (bary (3,), cost)."""
    E = np.stack([pb - pa, pc - pa], -1)  # (N, 2, 2)
    r = d - pa
    A = np.einsum("n,nci,ncj->ij", w, E, E)
    b = np.einsum("n,nci,nc->i", w, E, r)
    try:
        ab = np.linalg.solve(A + 1e-9 * np.eye(2), b)
    except np.linalg.LinAlgError:
        ab = np.zeros(2)
    a, bb = np.clip(ab, 0, 1)
    if a + bb > 1:
        a, bb = a / (a + bb), bb / (a + bb)
    bary = np.array([1 - a - bb, a, bb])
    pred = pa * bary[0] + pb * bary[1] + pc * bary[2]
    return bary, float((w * ((pred - d) ** 2).sum(-1)).sum())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/calib")
    ap.add_argument("--out", default=str(ROOT / "glvd_core/assets/mediapipe_points.npz"))
    a = ap.parse_args(argv)
    from glvd_core.io import save_npz_deterministic
    from glvd_core.template import load_template

    tpl = load_template()
    P, D, S = collect(Path(a.data))
    Pn, Dn = P / S[:, None, None], D / S[:, None, None]
    print(f"{len(P)} detected views", flush=True)
    # nearest vertex per point: mean over views of |P_v - D_j|^2 as matrix products
    cost = (np.einsum("nvc,nvc->v", Pn, Pn)[:, None] - 2 * np.einsum("nvc,njc->vj", Pn, Dn)
            + np.einsum("njc,njc->j", Dn, Dn)[None]) / len(P)
    best = cost.argmin(0)
    faces = tpl.faces
    vert_faces = [[] for _ in range(tpl.num_vertices)]
    for f, tri in enumerate(faces):
        for v in tri:
            vert_faces[v].append(f)
    tris, barys, sigmas = [], [], []
    for j in range(478):
        ring = set(faces[vert_faces[best[j]]].ravel())
        cand = sorted({f for v in ring for f in vert_faces[v]})
        w = np.ones(len(P))
        for _ in range(3):  # fit, then Cauchy-reweight the views (a wrong detection weighs little)
            fits = [(fit_triangle(Pn[:, faces[f, 0]], Pn[:, faces[f, 1]], Pn[:, faces[f, 2]], Dn[:, j], w), f)
                    for f in cand]
            (bary, _), f = min(fits, key=lambda x: x[0][1])
            pred = np.einsum("nkc,k->nc", Pn[:, faces[f]], bary)
            err = np.linalg.norm(pred - Dn[:, j], axis=1)
            c = 2.385 * max(np.median(err), 1e-6)
            w = 1 / (1 + (err / c) ** 2)
        tris.append(f)
        barys.append(bary)
        sigmas.append(1.4826 * np.median(np.abs(pred - Dn[:, j])))
    sigma = np.array(sigmas)
    print(f"sigma (face sizes): median {np.median(sigma):.4f}, 10th {np.percentile(sigma, 10):.4f}, "
          f"90th {np.percentile(sigma, 90):.4f}, max {sigma.max():.4f}", flush=True)
    recipe = (f"scripts/build_dense_points.py --data {a.data} ({len(P)} detected views of ICT renders, "
              "make-data --scenes 250 --views 2 --seed 1000; detect-landmarks)")
    save_npz_deterministic(a.out, triangle=np.array(tris, np.int32), bary=np.array(barys, np.float32),
                           sigma=sigma.astype(np.float32), template_sha256=np.array(tpl.sha256), recipe=np.array(recipe))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
