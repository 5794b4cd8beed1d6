import numpy as np

from glvd_core.render.raster import rasterize


def test_perspective_correct_barycentrics_and_depth():
    """Interpolating the 3D corners with the returned barycentrics gives, at every covered pixel,
    the camera-space point that projects exactly onto that pixel centre, at the returned depth."""
    K = np.array([[100.0, 0, 31.5], [0, 100.0, 31.5], [0, 0, 1]])
    P = np.array([[-0.2, -0.2, 0.5], [0.3, -0.1, 1.5], [-0.1, 0.3, 1.0]])
    r = rasterize(P, np.array([[0, 1, 2]]), K, 64, 64)
    ys, xs = np.nonzero(r.coverage)
    assert len(ys) > 300
    X = r.bary[ys, xs] @ P
    u = K[0, 0] * X[:, 0] / X[:, 2] + K[0, 2]
    v = K[1, 1] * X[:, 1] / X[:, 2] + K[1, 2]
    np.testing.assert_allclose(u, xs, atol=1e-3)
    np.testing.assert_allclose(v, ys, atol=1e-3)
    np.testing.assert_allclose(r.depth[ys, xs], X[:, 2], rtol=1e-5)


def test_zbuffer_keeps_the_nearest():
    K = np.array([[50.0, 0, 15.5], [0, 50.0, 15.5], [0, 0, 1]])
    far = np.array([[-1, -1, 2.0], [1, -1, 2.0], [0, 1, 2.0]])
    near = far * [0.5, 0.5, 0.5]
    r = rasterize(np.concatenate([far, near]), np.array([[0, 1, 2], [3, 4, 5]]), K, 32, 32)
    assert r.tri[16, 16] == 1 and abs(r.depth[16, 16] - 1.0) < 1e-6
