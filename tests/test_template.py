"""The template is what every reconstruction is made of: its invariants are product promises."""
from collections import Counter

import numpy as np
import pytest

from glvd_core.template.build import triangle_angles


def edges_of(faces):
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def test_counts_and_units(template):
    assert template.vertices_m.shape == (7225, 3)
    assert template.faces.shape == (14342, 3)
    ext = template.vertices_m.max(0) - template.vertices_m.min(0)
    assert 0.1 < ext[0] < 0.3 and 0.15 < ext[1] < 0.4, f"not metres: extent {ext}"


def test_disk_topology_manifold_oriented(template):
    F = template.faces
    assert len(np.unique(F)) == 7225, "every vertex is used"
    directed = Counter(map(tuple, edges_of(F).tolist()))
    assert max(directed.values()) == 1, "consistently oriented (no directed edge twice)"
    und = Counter(tuple(sorted(e)) for e in directed)
    assert max(und.values()) <= 2, "edge-manifold"
    boundary = [e for e, c in und.items() if c == 1]
    bverts = np.unique(np.array(boundary))
    assert len(boundary) == len(bverts) == 106, "one boundary loop of 106 vertices"
    np.testing.assert_array_equal(np.sort(bverts), np.sort(template.boundary))
    V, E, Fn = 7225, len(und), len(F)
    assert V - E + Fn == 1, "Euler characteristic of a disk"
    # connected
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    e = np.array(list(und))
    g = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(V, V))
    assert connected_components(g, directed=False)[0] == 1


def test_outward_orientation(template):
    P, F = template.vertices_m, template.faces
    n = np.cross(P[F[:, 1]] - P[F[:, 0]], P[F[:, 2]] - P[F[:, 0]])
    assert (n[:, 2] > 0).mean() > 0.8, "triangles face out of the face (+z)"


def test_triangle_quality(template):
    ang = np.degrees(triangle_angles(template.vertices_m.astype(np.float64), template.faces))
    assert ang.min() > 5.0, f"degenerate triangle: min angle {ang.min():.2f} deg"
    assert (ang.min(1) >= 15).mean() > 0.999, "almost all triangles have angles >= 15 deg"


def test_density_higher_at_features(template):
    P, F = template.vertices_m, template.faces
    e = edges_of(F)
    length = np.linalg.norm(P[e[:, 0]] - P[e[:, 1]], axis=1)
    names = template.region_names
    reg = template.vertex_region[e[:, 0]]
    skin = length[reg == names.index("skin")].mean()
    for r in ("eye_left", "eye_right", "nose", "mouth"):
        assert length[reg == names.index(r)].mean() < 0.8 * skin, r


def test_symmetry_map(template):
    s = template.symmetry
    np.testing.assert_array_equal(s[s], np.arange(7225))
    err = np.linalg.norm(template.mirror(template.vertices_m) - template.vertices_m, axis=1)
    assert err.max() < 0.5e-3, f"mirror error {err.max()*1000:.3f} mm"


def test_uvs(template):
    assert template.uvs.shape == (7225, 2)
    assert (template.uvs >= 0).all() and (template.uvs <= 1).all()


def test_modes_transfer_exactly(template, ict):
    rng = np.random.default_rng(0)
    idw, exw = rng.normal(0, 1, 100), rng.uniform(0, 1, 57)
    mapped = template.from_ict(ict.shape(None, exw))
    expected = template.vertices_m + np.tensordot(exw, template.expression_modes_m, axes=1)
    np.testing.assert_allclose(mapped, expected, atol=2e-7)
    # identity modes: the map is linear and exact
    W = template.ict_map
    np.testing.assert_allclose(template.from_ict(ict.shape(idw)), W @ ict.shape(idw).astype(np.float64), atol=1e-6)


def test_vertices_lie_on_the_ict_surface(template, ict):
    """Outside the eye/mouth caps each template vertex is a barycentric point of one ICT triangle."""
    W = template.ict_map.tocsr()
    caps = np.isin(template.vertex_region, [template.region_names.index(n) for n in
                                            ("cap_eye_right", "cap_eye_left", "cap_mouth")])
    tri_sets = {frozenset(t) for t in ict.face_triangles().tolist()}
    edge_sets = {frozenset(p) for t in ict.face_triangles().tolist() for p in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2]))}
    for i in np.nonzero(~caps)[0][::7]:
        cols = W.indices[W.indptr[i]:W.indptr[i + 1]]
        w = W.data[W.indptr[i]:W.indptr[i + 1]]
        assert abs(w.sum() - 1) < 1e-9 and (w >= 0).all()
        s = frozenset(cols.tolist())
        assert len(s) == 1 or (len(s) == 2 and s in edge_sets) or s in tri_sets, i


@pytest.mark.parametrize("k", [5, 9, 18, 68])
def test_keypoint_sets(template, ict, k):
    idx = template.keypoint_indices(k)
    assert len(idx) == k == len(np.unique(idx))
    perm = template.keypoint_mirror(k)
    P = template.vertices_m
    np.testing.assert_allclose(P[idx[perm]] * [-1, 1, 1], P[idx], atol=4e-3)
    # each keypoint is close to its ICT landmark
    d = np.linalg.norm(P[template.landmarks68] - ict.neutral_m[ict.landmarks68], axis=1)
    assert d.max() < 3e-3


def test_default_keypoints_are_18(template):
    assert len(template.keypoint_indices()) == 18


def test_landmarks_are_mirror_partners(template):
    """Mirror augmentation relies on it: the mirror of landmark j's vertex is landmark mirror68[j]'s."""
    np.testing.assert_array_equal(template.symmetry[template.landmarks68], template.landmarks68[template.mirror68])


def test_from_ict_handles_batches(template, ict):
    rng = np.random.default_rng(1)
    a, b = ict.shape(rng.normal(0, 1, 100)), ict.shape(None, rng.uniform(0, 1, 57))
    batch = template.from_ict(np.stack([a, b]))
    np.testing.assert_allclose(batch[1], template.from_ict(b), atol=1e-7)
    assert template.from_ict(ict.identity_modes_m[:3]).shape == (3, 7225, 3)
