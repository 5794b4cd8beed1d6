"""Build the 7,225-vertex GLVD template from the ICT-FaceKit face region.

Recipe (see ``docs/TEMPLATE.md`` for the measured result):

1. Take the ICT face region (vertices 0..9408; quads split on the shorter diagonal). It is a
   surface with three holes (eye openings, mouth slit). Fill each hole with a fan to a
   virtual vertex at the rim's centroid, which makes a topological disk.
2. Map that disk to the unit disk with Floater's mean-value (Tutte) parametrisation
   (bijective), the outer rim placed on the circle by 3D arc length, starting at the
   forehead mid-line so the map is mirror-symmetric (u_x -> -u_x).
3. Place 106 boundary vertices evenly (3D arc length) on the outer rim, then 7,119 interior
   vertices as a weighted centroidal Voronoi tessellation (Lloyd on density samples) whose
   target edge length is short around the eyes, nose and mouth and grades out to the
   boundary spacing. The point set is exactly mirror-symmetric (pairs + points on the axis),
   which gives an exact left/right vertex map.
4. Delaunay-triangulate in the parameter disk (the hull is exactly the 106 rim points, so
   F = 2V - B - 2 = 14,342), lift to 3D through the parametrisation, then improve the
   triangles with intrinsic Delaunay edge flips in 3D.

Each template vertex is a fixed linear combination of ICT vertices (a barycentric triple on
the ICT surface; inside the eye/mouth caps a combination of the rim vertices), stored as a
sparse matrix ``W`` (7225 x 26719), so every ICT identity/expression mode lands on the
template exactly: ``template(shape) = W @ ict(shape)``.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Callable

import numpy as np
import scipy.sparse as sp
from scipy.spatial import Delaunay, cKDTree

from ..ict import FACE_REGION_END, ICTModel

N_VERTICES = 7225
N_BOUNDARY = 106
N_TRIANGLES = 14342

# Multi-PIE 68 landmark groups (0-based), ICT uses this layout.
LM_JAW = list(range(0, 17))
LM_BROW_R, LM_BROW_L = list(range(17, 22)), list(range(22, 27))
LM_NOSE = list(range(27, 36))
LM_EYE_R, LM_EYE_L = list(range(36, 42)), list(range(42, 48))
LM_MOUTH = list(range(48, 68))
# Keypoint subsets as 68-layout indices. 18 is the default (paper); all are mirror-closed.
KEYPOINT_SETS_68 = {
    5: [36, 45, 30, 48, 54],
    9: [36, 39, 42, 45, 30, 48, 54, 51, 8],
    18: [3, 13, 8, 17, 21, 22, 26, 36, 39, 42, 45, 30, 33, 48, 51, 54, 57, 27],
    68: list(range(68)),
}
# Mirror of the 68 layout (subject's right <-> left).
MIRROR_68 = (
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)
REGION_NAMES = ("skin", "eye_right", "eye_left", "nose", "mouth", "brow_right", "brow_left",
                "cap_eye_right", "cap_eye_left", "cap_mouth")


# ----------------------------------------------------------------------------- mesh helpers
def boundary_loops(tris: np.ndarray) -> list[np.ndarray]:
    """Ordered boundary loops, following the triangles' own half-edge direction."""
    half = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    key = set(map(tuple, half.tolist()))
    nxt = {}
    for a, b in half.tolist():
        if (b, a) not in key:
            nxt[a] = b
    loops, seen = [], set()
    for s in list(nxt):
        if s in seen:
            continue
        loop, cur = [], s
        while cur not in seen:
            seen.add(cur)
            loop.append(cur)
            cur = nxt[cur]
        loops.append(np.array(loop))
    return sorted(loops, key=len, reverse=True)


def triangle_angles(p: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """(F, 3) interior angles in radians at each corner; p may be 2D or 3D."""
    a, b, c = p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]]

    def ang(x, y, z):
        u, v = y - x, z - x
        cos = (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1) + 1e-30)
        return np.arccos(np.clip(cos, -1.0, 1.0))

    return np.stack([ang(a, b, c), ang(b, c, a), ang(c, a, b)], 1)


def triangle_areas(p: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]]
    cr = np.cross(b - a, c - a)
    return 0.5 * (np.linalg.norm(cr, axis=1) if cr.ndim == 2 else np.abs(cr))


def signed_area_2d(p: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def locate(points: np.ndarray, uv: np.ndarray, tris: np.ndarray, k: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Point location in a 2D triangulation: (triangle index, barycentrics) per point.

    Candidates are the k triangles with the nearest centroids; points not found among them
    (long thin triangles) are retried with more candidates."""
    tree = cKDTree(uv[tris].mean(1))
    tri_out = np.zeros(len(points), np.int64)
    bary_out = np.zeros((len(points), 3))
    todo = np.arange(len(points))
    while len(todo):
        kk = min(k, len(tris))
        _, cand = tree.query(points[todo], k=kk)
        cand = cand.reshape(len(todo), kk)
        a, b, c = uv[tris[cand, 0]], uv[tris[cand, 1]], uv[tris[cand, 2]]
        p = points[todo][:, None, :]
        det = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
        l1 = ((p[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (p[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])) / det
        l2 = ((b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (p[..., 0] - a[..., 0])) / det
        bary = np.stack([1 - l1 - l2, l1, l2], -1)
        best = bary.min(-1).argmax(1)
        rows = np.arange(len(todo))
        worst = bary[rows, best].min(-1)
        ok = (worst >= -1e-9) | (kk == len(tris))
        bb = np.clip(bary[rows, best], 0, None)
        tri_out[todo[ok]] = cand[rows, best][ok]
        bary_out[todo[ok]] = (bb / bb.sum(1, keepdims=True))[ok]
        if (kk == len(tris)) and (worst < -1e-6).any():
            raise RuntimeError(f"point location failed (min barycentric {worst.min():.2e})")
        todo, k = todo[~ok], k * 8
    return tri_out, bary_out


# ----------------------------------------------------------------------------- parametrisation
def mean_value_parametrisation(p3: np.ndarray, tris: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Floater mean-value map of a disk mesh to the unit disk, outer loop on the circle."""
    n = len(p3)
    ang = triangle_angles(p3, tris)
    rows, cols, vals = [], [], []
    for c in range(3):
        i, j, k = tris[:, c], tris[:, (c + 1) % 3], tris[:, (c + 2) % 3]
        t = np.tan(ang[:, c] / 2)
        for other in (j, k):
            rows.append(i)
            cols.append(other)
            vals.append(t / np.linalg.norm(p3[other] - p3[i], axis=1))
    W = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    # outer loop: start at the forehead mid-line (max y among |x| small), arc-length on the circle
    xs = p3[outer]
    start = np.argmax(np.where(np.abs(xs[:, 0]) < 1e-4, xs[:, 1], -np.inf))
    loop = np.roll(outer, -start)
    seg = np.linalg.norm(np.roll(p3[loop], -1, 0) - p3[loop], axis=1)
    s = np.concatenate([[0], np.cumsum(seg)[:-1]]) / seg.sum()
    theta = np.pi / 2 + 2 * np.pi * s
    uv = np.zeros((n, 2))
    uv[loop] = np.stack([np.cos(theta), np.sin(theta)], 1)
    interior = np.setdiff1d(np.unique(tris), loop)
    L = sp.diags(np.asarray(W.sum(1)).ravel()) - W
    A = L[interior][:, interior].tocsc()
    rhs = -L[interior][:, loop] @ uv[loop]
    from scipy.sparse.linalg import splu

    lu = splu(A)
    uv[interior] = np.stack([lu.solve(np.ascontiguousarray(rhs[:, 0])), lu.solve(np.ascontiguousarray(rhs[:, 1]))], 1)
    if (signed_area_2d(uv, tris) < 0).mean() > 0.5:  # keep the map orientation-preserving
        uv[:, 0] *= -1
    if (signed_area_2d(uv, tris) <= 0).any():
        raise RuntimeError("mean-value parametrisation folded")
    return uv, loop, s * seg.sum()


# ----------------------------------------------------------------------------- 3D edge flips
def delaunay_flips_3d(p3: np.ndarray, tris: np.ndarray, max_passes: int = 20) -> tuple[np.ndarray, int]:
    """Intrinsic Delaunay edge flips on the lifted mesh (interior edges only, V/F/B unchanged)."""
    tris = tris.copy()
    total = 0
    for _ in range(max_passes):
        edge_tris = defaultdict(list)
        for t, (a, b, c) in enumerate(tris.tolist()):
            for u, v, w in ((a, b, c), (b, c, a), (c, a, b)):
                edge_tris[(min(u, v), max(u, v))].append((t, w))
        edges = set(edge_tris)
        flipped, touched = 0, set()
        for (u, v), lst in edge_tris.items():
            if len(lst) != 2:
                continue
            (t1, w1), (t2, w2) = lst
            if t1 in touched or t2 in touched:
                continue
            if (min(w1, w2), max(w1, w2)) in edges:
                continue

            def angle(o, x, y):
                a, b = p3[x] - p3[o], p3[y] - p3[o]
                return np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))

            if angle(w1, u, v) + angle(w2, u, v) <= np.pi + 1e-9:
                continue
            # new triangles keep t1's orientation: t1 contains directed edge x->y opposite w1
            a1 = tris[t1].tolist()
            i = a1.index(w1)
            x, y = a1[(i + 1) % 3], a1[(i + 2) % 3]  # t1 = (w1, x, y)
            n_old = np.cross(p3[x] - p3[w1], p3[y] - p3[w1]) + np.cross(p3[w2] - p3[y], p3[x] - p3[y])
            new1, new2 = [w1, x, w2], [w1, w2, y]
            ok = all(np.dot(np.cross(p3[q[1]] - p3[q[0]], p3[q[2]] - p3[q[0]]), n_old) > 0 for q in (new1, new2))
            if not ok:
                continue
            tris[t1], tris[t2] = new1, new2
            edges.add((min(w1, w2), max(w1, w2)))
            touched.update((t1, t2))
            flipped += 1
        total += flipped
        if not flipped:
            break
    return tris, total


# ----------------------------------------------------------------------------- the builder
def build_template(ict: ICTModel, seed: int = 0, lloyd_iters: int = 80, n_samples: int = 600_000,
                   feature_ratio: float = 0.5, feature_sigma_m: float = 0.012, grade_m: float = 0.035,
                   log: Callable[..., None] = print) -> dict:
    rng = np.random.default_rng(seed)
    V = ict.neutral_m.astype(np.float64)
    N = len(V)
    T = ict.face_triangles()
    loops = boundary_loops(T)
    outer, holes = loops[0], loops[1:]
    log(f"face region: {len(np.unique(T))} vertices, {len(T)} triangles, outer rim {len(outer)}, "
        f"holes {[len(h) for h in holes]}")
    # 1. fill each hole (eye openings, mouth slit) with a fan to a virtual rim-centroid vertex
    Pext = [V]
    fills, cap_of_vertex = [], {}
    for h, loop in enumerate(holes):
        c = N + h
        Pext.append(V[loop].mean(0, keepdims=True))
        fills.append(np.stack([np.roll(loop, -1), loop, np.full_like(loop, c)], 1))  # reverse rim half-edge
        cap_of_vertex[c] = loop
    Pext = np.concatenate(Pext)
    Tf = np.concatenate([T] + fills)
    cap_id_tri = np.concatenate([np.full(len(T), -1)] + [np.full(len(f), h) for h, f in enumerate(fills)])

    # 2. parametrise
    uv, outer_loop, outer_s = mean_value_parametrisation(Pext, Tf, outer)
    perimeter = float(np.linalg.norm(np.roll(V[outer_loop], -1, 0) - V[outer_loop], axis=1).sum())

    # 3a. size field (target edge length, metres) on the extended vertices
    lm = V[ict.landmarks68]
    feat = lm[LM_EYE_R + LM_EYE_L + LM_NOSE + LM_MOUTH]
    d_feat = cKDTree(feat).query(Pext)[0]
    d_bound = cKDTree(V[outer_loop]).query(Pext)[0]
    h_b = perimeter / N_BOUNDARY
    ramp = np.clip(d_bound / grade_m, 0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)
    w_feat = np.exp(-0.5 * (d_feat / feature_sigma_m) ** 2)
    area3 = triangle_areas(Pext, Tf)

    def size(h0):
        hc = h0 * (1 - (1 - feature_ratio) * w_feat)
        return h_b + (hc - h_b) * ramp

    n_int = N_VERTICES - N_BOUNDARY
    lo, hi = 1e-4, 0.05
    for _ in range(60):  # bisection: expected hex-CVT count == n_int
        h0 = 0.5 * (lo + hi)
        hv = size(h0)
        cnt = (area3 / (0.8660254 * hv[Tf].mean(1) ** 2)).sum()
        lo, hi = (h0, hi) if cnt > n_int else (lo, h0)
    hv = size(h0)
    log(f"size field: boundary {h_b*1000:.2f} mm, skin {h0*1000:.2f} mm, features {h0*feature_ratio*1000:.2f} mm")
    tri_density = 1.0 / hv[Tf].mean(1) ** 2  # points per m^2 (up to a constant)

    # boundary vertices: evenly in 3D arc length, symmetric (k <-> 106-k)
    sb = np.arange(N_BOUNDARY) * perimeter / N_BOUNDARY
    seg_idx = np.searchsorted(outer_s, sb, side="right") - 1
    seg_len = np.linalg.norm(V[np.roll(outer_loop, -1)] - V[outer_loop], axis=1)
    tb = (sb - outer_s[seg_idx]) / seg_len[seg_idx]
    ia, ib = outer_loop[seg_idx], np.roll(outer_loop, -1)[seg_idx]
    ang_a = np.arctan2(uv[ia, 1], uv[ia, 0])
    ang_d = np.angle(np.exp(1j * (np.arctan2(uv[ib, 1], uv[ib, 0]) - ang_a)))
    theta_b = ang_a + tb * ang_d
    uv_b = np.stack([np.cos(theta_b), np.sin(theta_b)], 1)
    uv_b[0] = [0.0, 1.0]  # exactly on the mirror axis
    uv_b[N_BOUNDARY // 2, 0] = 0.0
    uv_b[N_BOUNDARY // 2 + 1:] = uv_b[1:N_BOUNDARY // 2][::-1] * [-1, 1]  # exact mirror pairs

    # 3b. density samples in the parameter disk, mirror-symmetric, inside the 106-gon
    p_tri = tri_density * area3
    p_tri /= p_tri.sum()
    ts = rng.choice(len(Tf), size=n_samples // 2, p=p_tri)
    r1, r2 = rng.random(len(ts)), rng.random(len(ts))
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    S = uv[Tf[ts, 0]] * (1 - r1 - r2)[:, None] + uv[Tf[ts, 1]] * r1[:, None] + uv[Tf[ts, 2]] * r2[:, None]
    S = np.concatenate([S, S * [-1, 1]])
    # keep samples strictly inside the polygon of the boundary vertices
    ang = np.arctan2(uv_b[:, 1], uv_b[:, 0])
    order = np.argsort(ang)
    ang_s, ub_s = ang[order], uv_b[order]
    a_samp = np.arctan2(S[:, 1], S[:, 0])
    k = (np.searchsorted(ang_s, a_samp) - 1) % N_BOUNDARY
    p0, p1 = ub_s[k], ub_s[(k + 1) % N_BOUNDARY]
    cross = (p1[:, 0] - p0[:, 0]) * (S[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (S[:, 0] - p0[:, 0])
    S = S[cross > 1e-4]

    # 3c. symmetric Lloyd: boundary fixed, axis points move on u_x = 0, pairs mirrored
    ys = np.linspace(-0.999, 0.999, 4001)
    tri_i, bary = locate(np.stack([np.zeros_like(ys), ys], 1), uv, Tf)
    axis3 = (Pext[Tf[tri_i]] * bary[..., None]).sum(1)
    h_axis = (hv[Tf[tri_i]] * bary).sum(1)
    cum = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(axis3, axis=0), axis=1) / h_axis[1:])])
    n_axis = int(round(cum[-1])) - 1
    if (n_int - n_axis) % 2:
        n_axis += 1
    axis_y = np.interp(np.linspace(0, cum[-1], n_axis + 2)[1:-1], cum, ys)
    n_half = (n_int - n_axis) // 2
    right = S[S[:, 0] > 0.002]
    half = right[rng.choice(len(right), n_half, replace=False)]
    for it in range(lloyd_iters):
        G = np.concatenate([uv_b, np.stack([np.zeros(n_axis), axis_y], 1), half, half * [-1, 1]])
        _, owner = cKDTree(G).query(S, workers=-1)
        cnt = np.bincount(owner, minlength=len(G))
        sx = np.bincount(owner, S[:, 0], len(G))
        sy = np.bincount(owner, S[:, 1], len(G))
        o_axis = N_BOUNDARY
        o_half = o_axis + n_axis
        o_mir = o_half + n_half
        ax_cnt = cnt[o_axis:o_half]
        axis_y = np.where(ax_cnt > 0, sy[o_axis:o_half] / np.maximum(ax_cnt, 1), axis_y)
        hc = cnt[o_half:o_mir] + cnt[o_mir:]
        hx = (sx[o_half:o_mir] - sx[o_mir:]) / np.maximum(hc, 1)
        hy = (sy[o_half:o_mir] + sy[o_mir:]) / np.maximum(hc, 1)
        empty = hc == 0
        half = np.stack([hx, hy], 1)
        if empty.any():
            half[empty] = right[rng.choice(len(right), empty.sum(), replace=False)]
        axis_y = np.sort(axis_y)
    G = np.concatenate([uv_b, np.stack([np.zeros(n_axis), axis_y], 1), half, half * [-1, 1]])
    sym = np.concatenate([
        (N_BOUNDARY - np.arange(N_BOUNDARY)) % N_BOUNDARY,
        N_BOUNDARY + np.arange(n_axis),
        N_BOUNDARY + n_axis + n_half + np.arange(n_half),
        N_BOUNDARY + n_axis + np.arange(n_half),
    ])
    log(f"points: {N_BOUNDARY} boundary, {n_axis} on the mirror axis, {n_half} mirrored pairs")

    # 4. triangulate in the disk
    dt = Delaunay(G)
    F = dt.simplices.astype(np.int64)
    F = F[np.abs(signed_area_2d(G, F)) > 1e-12]
    hull = np.unique(dt.convex_hull)
    if len(hull) != N_BOUNDARY or hull.max() >= N_BOUNDARY:
        raise RuntimeError(f"convex hull has {len(hull)} points, expected the {N_BOUNDARY} rim points")
    neg = signed_area_2d(G, F) < 0
    F[neg] = F[neg][:, [0, 2, 1]]

    # lift: sparse map template -> extended ICT vertices -> ICT vertices
    rows, cols, vals = [], [], []
    bidx = np.arange(N_BOUNDARY)
    rows += [bidx, bidx]
    cols += [ia, ib]
    vals += [1 - tb, tb]
    inner = np.arange(N_BOUNDARY, N_VERTICES)
    ti, bc = locate(G[inner], uv, Tf)
    cap = np.full(N_VERTICES, -1)
    cap[inner] = cap_id_tri[ti]
    for c in range(3):
        rows.append(inner)
        cols.append(Tf[ti, c])
        vals.append(bc[:, c])
    rows, cols, vals = map(np.concatenate, (rows, cols, vals))
    # expand virtual centroids into their rim vertices
    er, ec, ev = [rows[cols < N]], [cols[cols < N]], [vals[cols < N]]
    for c, loop in cap_of_vertex.items():
        m = cols == c
        er.append(np.repeat(rows[m], len(loop)))
        ec.append(np.tile(loop, m.sum()))
        ev.append(np.repeat(vals[m] / len(loop), len(loop)))
    Wm = sp.csr_matrix((np.concatenate(ev), (np.concatenate(er), np.concatenate(ec))), shape=(N_VERTICES, N))
    Wm.sum_duplicates()
    Wm.eliminate_zeros()
    P3 = np.asarray(Wm @ V)

    F, nflip = delaunay_flips_3d(P3, F)
    # orient outward (the face looks along +z)
    nrm = np.cross(P3[F[:, 1]] - P3[F[:, 0]], P3[F[:, 2]] - P3[F[:, 0]])
    if (nrm[:, 2] * triangle_areas(P3, F)).sum() < 0:
        F = F[:, [0, 2, 1]]
    ang = np.degrees(triangle_angles(P3, F))
    bad = ang.min(1) < 15
    if bad.any():
        c = P3[F[bad]].mean(1)
        log(f"{bad.sum()} triangles under 15 deg at (mm) {np.round(c*1000).astype(int).tolist()[:12]}; "
            f"boundary vertices in them: {np.isin(F[bad], np.arange(N_BOUNDARY)).any(1).sum()}, "
            f"cap: {(cap[F[bad]] >= 0).any(1).sum()}")
    log(f"triangles: {len(F)}, {nflip} 3D Delaunay flips, min angle {ang.min():.2f} deg, "
        f"1st percentile {np.percentile(ang.min(1), 1):.2f} deg")

    # UVs (per ICT vertex; the face region has no UV seams — checked here)
    vert_uv = np.zeros((N, 2))
    cnt_uv = np.zeros(N)
    fm = (ict.triangles < FACE_REGION_END).all(1)
    tv, tu = ict.triangles[fm].ravel(), ict.triangle_uvs[fm].ravel()
    np.add.at(vert_uv, tv, ict.uvs[tu])
    np.add.at(cnt_uv, tv, 1)
    vert_uv /= np.maximum(cnt_uv, 1)[:, None]
    face_v = np.unique(T)
    seam = np.zeros(N)
    np.maximum.at(seam, tv, np.abs(ict.uvs[tu] - vert_uv[tv]).max(1))
    if seam[face_v].max() > 1e-5:
        raise RuntimeError("UV seam inside the ICT face region")
    uvs = np.asarray(Wm @ vert_uv)

    # regions
    region = np.zeros(N_VERTICES, np.uint8)
    groups = [(1, LM_EYE_R, 0.012), (2, LM_EYE_L, 0.012), (3, LM_NOSE, 0.014), (4, LM_MOUTH, 0.012),
              (5, LM_BROW_R, 0.010), (6, LM_BROW_L, 0.010)]
    best = np.full(N_VERTICES, np.inf)
    for rid, idx, rad in groups:
        d = cKDTree(lm[idx]).query(P3)[0] / rad
        sel = (d < 1) & (d < best)
        region[sel], best[sel] = rid, d[sel]
    hole_x = [V[h].mean(0)[0] for h in holes]
    for h, loop in enumerate(holes):
        name = "cap_mouth" if len(loop) == max(len(x) for x in holes) else ("cap_eye_right" if hole_x[h] < 0 else "cap_eye_left")
        region[cap == h] = REGION_NAMES.index(name)
    narrow_end = ict.regions["narrow_face"][1]
    src_max = np.zeros(N_VERTICES, np.int64)
    coo = Wm.tocoo()
    np.maximum.at(src_max, coo.row, coo.col)
    narrow = (src_max < narrow_end) & (cap < 0)

    # keypoints: template vertex nearest to each ICT landmark
    # (closed lips: inner-lip landmarks coincide; the jaw-open shape tells upper from lower)
    from scipy.optimize import linear_sum_assignment

    j_open = ict.expression_names.index("jawOpen")
    V_open = V + ict.expression_modes_m[j_open]
    P3_open = np.asarray(Wm @ V_open)
    cost = (np.linalg.norm(P3[None] - lm[:, None], axis=2)
            + np.linalg.norm(P3_open[None] - V_open[ict.landmarks68][:, None], axis=2))
    # mirror-consistent: assign the axis landmarks to axis vertices and the subject's-right
    # landmarks freely, then take the mirror vertex for each left landmark
    mirror68 = np.array(MIRROR_68)
    on_axis = np.nonzero(mirror68 == np.arange(68))[0]
    right = np.nonzero(mirror68 > np.arange(68))[0]
    is_axis_v = sym == np.arange(N_VERTICES)
    big = cost.max() * 10
    c2 = cost.copy()
    c2[np.ix_(on_axis, np.nonzero(~is_axis_v)[0])] = big
    rows = np.concatenate([on_axis, right])
    _, cols = linear_sum_assignment(c2[rows])
    kp68 = np.zeros(68, np.int64)
    kp68[rows] = cols
    kp68[mirror68[right]] = sym[kp68[right]]
    if len(np.unique(kp68)) != 68:
        raise RuntimeError("two landmarks share a template vertex")
    kp_err = cost[np.arange(68), kp68] / 2
    log(f"landmarks -> template vertices: mean {kp_err.mean()*1000:.2f} mm, max {kp_err.max()*1000:.2f} mm")
    sym_err = np.linalg.norm(P3[sym] * [-1, 1, 1] - P3, axis=1)
    log(f"mirror symmetry: max {sym_err.max()*1000:.4f} mm, mean {sym_err.mean()*1000:.4f} mm")

    expr = np.stack([np.asarray(Wm @ m) for m in ict.expression_modes_m.astype(np.float64)]).astype(np.float32)
    src_hash = hashlib.sha256(open(ict.path, "rb").read()).hexdigest()
    meta = dict(source="ICT-FaceKit light model (MIT)", source_sha256=src_hash, seed=seed,
                lloyd_iters=lloyd_iters, n_samples=n_samples, feature_ratio=feature_ratio,
                feature_sigma_m=feature_sigma_m, grade_m=grade_m, delaunay_flips=int(nflip),
                min_angle_deg=float(ang.min()), boundary_spacing_m=h_b, skin_spacing_m=float(h0),
                mirror_max_error_m=float(sym_err.max()))
    return dict(
        vertices_m=P3.astype(np.float32),
        faces=F.astype(np.int32),
        uvs=uvs.astype(np.float32),
        symmetry=sym.astype(np.int32),
        vertex_region=region,
        region_names=np.array(REGION_NAMES),
        narrow_face_mask=narrow,
        boundary=np.arange(N_BOUNDARY, dtype=np.int32),
        landmarks68=kp68.astype(np.int32),
        keypoint_sets_68=np.array(json.dumps(KEYPOINT_SETS_68)),
        mirror68=np.array(MIRROR_68, np.int32),
        expression_modes_m=expr,
        expression_names=np.array(ict.expression_names),
        ict_map_indptr=Wm.indptr.astype(np.int32),
        ict_map_indices=Wm.indices.astype(np.int32),
        ict_map_weights=Wm.data.astype(np.float64),
        ict_num_vertices=np.array(N),
        meta=np.array(json.dumps(meta)),
    )
