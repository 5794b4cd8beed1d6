import numpy as np

from glvd_core.evaluate import chamfer_mm, closest_point_on_triangles, point_to_mesh, umeyama


def test_closest_point_on_triangle_regions():
    a, b, c = np.array([0.0, 0, 0]), np.array([1.0, 0, 0]), np.array([0.0, 1, 0])
    pts = np.array([[0.2, 0.2, 1.0], [-1, -1, 0], [2, -0.5, 0], [0.5, -1, 0], [1, 1, 0], [-1, 0.5, 0.3]])
    exp = np.array([[0.2, 0.2, 0], [0, 0, 0], [1, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0]])
    q = closest_point_on_triangles(pts, a[None], b[None], c[None])
    np.testing.assert_allclose(q, exp, atol=1e-12)


def test_chamfer_zero_on_itself_and_exact_for_a_shift(template):
    gt = template.vertices_m.astype(np.float64)
    assert chamfer_mm(gt, gt, template, align=False)[0] < 1e-9
    shifted = gt + [0, 0, 0.002]
    raw, _ = chamfer_mm(gt, shifted, template, align=False)
    assert 1.0 < raw <= 2.0 + 1e-9  # never more than the 2 mm shift, and most of it along normals
    al, pv = chamfer_mm(gt, shifted, template, align=True)
    assert al < 1e-6 and pv.max() < 1e-6


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    y = 1.7 * x @ q.T + [1, 2, 3]
    s, R, t = umeyama(x, y)
    np.testing.assert_allclose(s * x @ R.T + t, y, atol=1e-9)


def test_point_to_mesh_on_a_plane():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.0]])
    f = np.array([[0, 1, 2], [1, 3, 2]])
    d = point_to_mesh(np.array([[0.5, 0.5, 0.3], [2, 0.5, 0]]), v, f)
    np.testing.assert_allclose(d, [0.3, 1.0])
