"""Does shading help a one-photo fit? After the shipped fit (points + outline), refine the 100
identity weights with the head pose held, pulled by MediaPipe's 478 points (as the fit) and by
shading: each visible face pixel's grey level against a first/second-order spherical-harmonics
light on the mesh's normal (constant albedo, the light solved each iteration, Cauchy-robust so
brows, lips and eyes count little).

python -m research.shading_fit.shading_fit runs/fitdev_val.pkl --weights 0 0.1 0.3 1 --json research/shading_fit/val_1view.json
"""
from __future__ import annotations

import argparse
import json
import pickle
import time

import numpy as np

from glvd_core.evaluate import chamfer_mm, paired_difference
from glvd_core.expression.shape_space import identity_modes
from glvd_core.fitting import FitOptions, ViewEvidence, fit_to_photos
from glvd_core.fitting.dense_points import face_size_px, load_dense_points
from glvd_core.geometry import umeyama
from glvd_core.render.raster import rasterize, vertex_normals
from glvd_core.template import load_template


def sh_basis(n: np.ndarray, order: int) -> np.ndarray:
    """(P, 3) unit normals -> (P, 4 or 9) real SH basis (unnormalised)."""
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    cols = [np.ones_like(x), x, y, z]
    if order == 2:
        cols += [x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1]
    return np.stack(cols, 1)


def sh_grad(n: np.ndarray, l: np.ndarray, order: int) -> np.ndarray:
    """d (l . Y(n)) / d n, (P, 3)."""
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    g = np.tile(l[1:4], (len(n), 1))
    if order == 2:
        g = g + np.stack([l[4] * y + l[5] * z + 2 * l[7] * x,
                          l[4] * x + l[6] * z - 2 * l[7] * y,
                          l[5] * x + l[6] * y + 6 * l[8] * z], 1)
    return g


def refine(tpl, V0, cam, image, p478, weight, iters=5, order=2, prior=30.0, n_pix=3000, rng=None):
    mean = tpl.vertices_m.astype(np.float64)
    Bi = identity_modes(tpl).astype(np.float64)
    sel = np.asarray(tpl.narrow_face_mask, bool)
    s, R, t = umeyama(mean[sel], V0[sel])
    base = ((V0 - t) @ R) / s
    dense = load_dense_points(tpl)
    sig_pts = dense.sigma * face_size_px(p478)
    faces = tpl.faces
    face_tri = sel[faces].all(1)
    grey = image.astype(np.float64).mean(2) / 255.0
    grey = grey ** 2.2  # sRGB -> roughly linear
    w = np.zeros(len(Bi))
    H_img, W_img = grey.shape
    K = cam.K
    sigma_I = None

    def shape(wv):
        return s * (base + np.tensordot(wv, Bi, 1)) @ R.T + t

    def points_res(X):
        P = dense.at(X)
        y = P @ cam.R.T + cam.t
        uv = (y @ K.T)[:, :2] / y[:, 2:3]
        return (uv - p478[:, :2]) / sig_pts[:, None], y, P

    h = 1e-3
    for _ in range(iters):
        X = shape(w)
        Xc = X @ cam.R.T + cam.t
        r = rasterize(Xc, faces, K, H_img, W_img)
        ys, xs = np.nonzero(r.coverage)
        keep = face_tri[r.tri[ys, xs]]
        ys, xs = ys[keep], xs[keep]
        if len(ys) > n_pix:
            pick = rng.choice(len(ys), n_pix, replace=False)
            ys, xs = ys[pick], xs[pick]
        tri = faces[r.tri[ys, xs]]
        bary = r.bary[ys, xs].astype(np.float64)
        I = grey[ys, xs]

        def normals_at(Xc_):
            n = vertex_normals(Xc_, faces).astype(np.float64)
            nb = np.einsum("pkc,pk->pc", n[tri], bary)
            return nb / (np.linalg.norm(nb, axis=1, keepdims=True) + 1e-12)

        n0 = normals_at(Xc)
        Y = sh_basis(n0, order)
        # light: robust least squares (constant albedo folded in)
        wl = np.ones(len(I))
        for _ in range(3):
            l = np.linalg.lstsq(Y * wl[:, None], I * wl, rcond=None)[0]
            e = I - Y @ l
            c = 2.385 * max(np.median(np.abs(e)), 1e-6)
            wl = 1 / (1 + (e / c) ** 2)
        if sigma_I is None:
            sigma_I = 1.4826 * np.median(np.abs(e))
        rs = (I - Y @ l) / sigma_I
        ws = 1 / (1 + (rs / 3.0) ** 2)  # Cauchy
        # Jacobian of the shading residual: finite differences of the normals along each mode
        gY = sh_grad(n0, l, order)
        dXc = s * np.einsum("ij,mvj->mvi", cam.R @ R, Bi)  # d Xc / d w_m
        Js = np.zeros((len(I), len(Bi)))
        for m in range(len(Bi)):
            dn = (normals_at(Xc + h * dXc[m]) - n0) / h
            Js[:, m] = -(gY * dn).sum(1) / sigma_I
        # points (pose held): residual and Jacobian
        rp, y, _ = points_res(X)
        d_uv = (K[None, :2] - ((y @ K.T)[:, :2] / y[:, 2:3])[:, :, None] * K[None, 2:3]) / (y @ K.T)[:, 2, None, None]
        dP = np.einsum("jk,mjkc->mjc", dense.bary, dXc[:, dense.vertices])  # (M, 478, 3) camera frame
        Jp = np.einsum("jrc,mjc->jrm", d_uv, dP) / sig_pts[:, None, None]
        wp = 1 / (1 + (rp ** 2).sum(1) / 9.0)
        Jp_f = Jp.reshape(-1, len(Bi))
        wp_f = np.repeat(wp, 2)
        H = Jp_f.T @ (Jp_f * wp_f[:, None]) + weight * Js.T @ (Js * ws[:, None]) + prior * np.eye(len(Bi))
        g = Jp_f.T @ (wp_f * rp.ravel()) + weight * Js.T @ (ws * rs) + prior * w
        w = w - np.linalg.solve(H, g)
    return shape(w)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 0.3, 1.0])
    ap.add_argument("--order", type=int, default=2)
    ap.add_argument("--scenes", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    tpl = load_template()
    scenes = pickle.load(open(a.cache, "rb"))
    if a.scenes:
        scenes = scenes[:a.scenes]
    rows = {"descent": [], "fit (shipped)": []} | {f"shading {w:g}": [] for w in a.weights}
    secs = {k: [] for k in rows}
    rng = np.random.default_rng(0)
    for k_sc, sc in enumerate(scenes):
        X, cams, p478, est = sc["r1"]
        gt = sc["cameras"][0].world_to_camera(sc["gt_world"])
        f = fit_to_photos(tpl, X, [ViewEvidence(cams[0], p478[0], sc["masks"][0])], FitOptions(), est)
        V1 = f.steps[-1].astype(np.float64) if len(f.steps) else X
        rows["descent"].append(chamfer_mm(gt, X, tpl, align=True)[0])
        rows["fit (shipped)"].append(chamfer_mm(gt, V1, tpl, align=True)[0])
        for wgt in a.weights:
            t0 = time.perf_counter()
            V = refine(tpl, V1, cams[0], sc["images"][0], np.asarray(p478[0], np.float64), wgt, order=a.order, rng=rng)
            secs[f"shading {wgt:g}"].append(time.perf_counter() - t0)
            rows[f"shading {wgt:g}"].append(chamfer_mm(gt, V, tpl, align=True)[0])
        print(f"scene {k_sc + 1}/{len(scenes)}: " + "  ".join(f"{k} {v[-1]:.3f}" for k, v in rows.items()), flush=True)
    out = {}
    for k, v in rows.items():
        p = paired_difference(rows["fit (shipped)"], v) if k.startswith("shading") else None
        out[k] = dict(aligned=float(np.mean(v)), paired_vs_fit=p, sec=float(np.median(secs[k])) if secs[k] else 0.0,
                      per_scene_aligned_mm=[float(e) for e in v])
        print(f"{k:<16}{np.mean(v):.3f}" + (f"  vs fit {p['mean_mm']:+.3f} ({p['ci95_mm'][0]:+.3f} to {p['ci95_mm'][1]:+.3f})" if p else ""))
    if a.json:
        json.dump(dict(order=a.order, scenes=len(scenes), rows=out), open(a.json, "w"), indent=1)
    return out


if __name__ == "__main__":
    main()
