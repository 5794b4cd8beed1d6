"""Closest points on triangle meshes and point-to-plane ICP (numpy + scipy), in the units of the input."""

from __future__ import annotations

import numpy as np


def closest_point_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closest points (..., 3) on triangles (a, b, c) to points p (Ericson, vectorised)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    denom = 1.0 / np.where(np.abs(va + vb + vc) < 1e-30, 1e-30, va + vb + vc)
    v = vb * denom
    w = vc * denom
    out = a + ab * v[..., None] + ac * w[..., None]  # inside the face region
    # edge regions
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    m_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
    out = np.where(m_bc[..., None], b + (c - b) * np.nan_to_num(t_bc)[..., None], out)
    m_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    out = np.where(m_ac[..., None], a + ac * np.nan_to_num(t_ac)[..., None], out)
    m_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    out = np.where(m_ab[..., None], a + ab * np.nan_to_num(t_ab)[..., None], out)
    # vertex regions
    out = np.where(((d6 >= 0) & (d5 <= d6))[..., None], c, out)
    out = np.where(((d3 >= 0) & (d4 <= d3))[..., None], b, out)
    out = np.where(((d1 <= 0) & (d2 <= 0))[..., None], a, out)
    return out


def closest_on_mesh(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, k: int = 16) -> tuple[np.ndarray,
                    np.ndarray, np.ndarray]:
    """For each point (P, 3) its exact closest point on a triangle mesh: distance (P,), the point
    (P, 3) and the index of its face (P,) (candidates: the k nearest face centroids)."""
    v = np.asarray(vertices, np.float64)
    cent = v[faces].mean(1)
    from scipy.spatial import cKDTree  # here, not at import: reconstructing a photo never needs it

    _, cand = cKDTree(cent).query(points, k=min(k, len(faces)))
    cand = cand.reshape(len(points), -1)
    tri = faces[cand]
    q = closest_point_on_triangles(points[:, None, :], v[tri[..., 0]], v[tri[..., 1]], v[tri[..., 2]])
    d = np.linalg.norm(q - points[:, None, :], axis=-1)
    best = d.argmin(1)
    r = np.arange(len(d))
    return d[r, best], q[r, best], cand[r, best]


def point_to_mesh(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, k: int = 16,
                  return_points: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Exact distance (P,) from each point to a triangle mesh (candidates: k nearest centroids);
    with ``return_points`` also the closest points (P, 3)."""
    d, q, _ = closest_on_mesh(points, vertices, faces, k)
    return (d, q) if return_points else d


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals (F, 3) of a mesh's faces."""
    v = np.asarray(vertices, np.float64)
    n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)


def similarity_step_columns(q: np.ndarray, n: np.ndarray) -> np.ndarray:
    """(P, 7) Jacobian of the plane residuals n·(Y - g) at closest points q (P, 3) with normals
    n (P, 3) for a small similarity step of the mesh, Y = (1 + sigma) q + omega x q + tau, in the
    order (sigma, omega (3), tau (3)); see :func:`similarity_from_step`."""
    return np.concatenate([(n * q).sum(1, keepdims=True), np.cross(q, n), n], 1)


def similarity_from_step(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity (s, R, t) of a step (sigma, omega, tau) of :func:`similarity_step_columns`."""
    import cv2

    return 1.0 + x[0], cv2.Rodrigues(np.asarray(x[1:4], np.float64))[0], np.asarray(x[4:7], np.float64)


def align_mesh_to_points(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, iters: int = 30,
                         tol: float = 1e-4) -> np.ndarray:
    """The mesh (V, 3) moved by the similarity that minimises the squared distances from the
    points (P, 3) to it: point-to-plane ICP (linearised similarity steps, Gauss-Newton), until a
    step lowers the mean squared plane distance by less than the fraction ``tol`` (a step that
    raised it is undone), or after ``iters`` steps."""
    X = prev = np.asarray(vertices, np.float64)
    last = np.inf
    for _ in range(iters):
        _, q, f = closest_on_mesh(points, X, faces)
        n = face_normals(X, faces)[f]
        r = ((points - q) * n).sum(1)
        if (r ** 2).mean() > (1 - tol) * last:
            return prev if (r ** 2).mean() > last else X
        last, prev = (r ** 2).mean(), X
        x = np.linalg.lstsq(similarity_step_columns(q, n), r, rcond=None)[0]
        s, R, t = similarity_from_step(x)
        X = s * X @ R.T + t
    return X
