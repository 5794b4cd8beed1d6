import numpy as np
import pytest

from glvd_core.evaluate import chamfer_mm
from glvd_core.geometry import closest_point_on_triangles, point_to_mesh, umeyama


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


def test_3dmm_fit_recovers_a_synthetic_identity(ict, template):
    """Noise-free landmarks of a known ICT identity: the fit lands far closer than the mean face."""
    from glvd_core.baselines import fit_3dmm_to_landmarks
    from glvd_core.cameras import Camera, look_at_rotation

    rng = np.random.default_rng(4)
    gt = template.from_ict(ict.shape(rng.normal(0, 1, 100)))
    cam = Camera.from_fov(256, 256, 30, R=look_at_rotation(25, 5, 0), t=[0, 0, 0.7])
    lm = cam.project(gt[template.landmarks68])
    gt_c = cam.world_to_camera(gt)
    fit = fit_3dmm_to_landmarks([lm], [Camera(np.eye(3), np.zeros(3), cam.K, 256, 256)], template, ict, noise_px=0.5)
    e_fit = chamfer_mm(gt_c, fit, template, align=True)[0]
    e_mean = chamfer_mm(gt_c, template.vertices_m, template, align=True)[0]
    assert e_fit < 0.8 * e_mean, (e_fit, e_mean)


@pytest.mark.parametrize("world", [False, True])
def test_landmark_fit_jacobian_matches_finite_differences(template, monkeypatch, world):
    """The fit's analytic Jacobian (pose + 100 weights, one camera or several in a world frame)
    equals central differences of its residual, so the fit lands where scipy's own would."""
    import glvd_core.baselines as bl
    from glvd_core.cameras import Camera, look_at_rotation
    from glvd_core.expression.shape_space import identity_modes

    problem, real = {}, bl.least_squares

    def spy(fun, x0, jac, **kw):
        problem.update(fun=fun, jac=jac, x0=x0)
        return real(fun, x0, jac=jac, **kw)

    monkeypatch.setattr(bl, "least_squares", spy)
    B, rng = identity_modes(template), np.random.default_rng(5)
    face = template.vertices_m + np.tensordot(rng.standard_normal(len(B)), B, axes=1)
    cams = [Camera.from_fov(256, 256, 30, R=look_at_rotation(yaw, 5, 0), t=[0.01, 0, 0.7]) for yaw in (-30, 0, 35)]
    if not world:
        cams = cams[:1]
    lms = [c.project(face[template.landmarks68]) + rng.normal(0, 2, (68, 2)) for c in cams]
    fit_cams = cams if world else [Camera(np.eye(3), np.zeros(3), cams[0].K, 256, 256)]
    bl.fit_identity_to_landmarks(lms, fit_cams, template, B, prior=2.0, world=world,
                                 prior_mean=rng.standard_normal(len(B)))
    x = problem["x0"] + rng.normal(0, 0.05, problem["x0"].shape)
    J, h = problem["jac"](x), 1e-6
    num = np.stack([(problem["fun"](x + h * e) - problem["fun"](x - h * e)) / (2 * h) for e in np.eye(len(x))], 1)
    assert J.shape == num.shape
    np.testing.assert_allclose(J, num, atol=1e-4 * np.abs(num).max())


def test_scan_chamfer_aligns_to_convergence_from_poor_landmarks(template):
    """The scan metric scores a mesh against its own surface as ~0 even when the landmarks that
    start the alignment are about a centimetre off (a real scan's landmarks are MediaPipe's, not
    the template's vertices), and is not fooled into scoring a different face as well."""
    from glvd_core.cameras import look_at_rotation
    from glvd_core.evaluate import chamfer_scan_mm
    from glvd_core.expression.shape_space import identity_modes

    rng = np.random.default_rng(6)
    tri = template.faces[rng.choice(template.num_faces, 4000)]
    r = rng.dirichlet(np.ones(3), 4000)
    R = look_at_rotation(-15, 10, 3)
    pts = 1.2 * ((r[..., None] * template.vertices_m[tri]).sum(1)) @ R.T + [0.02, 0.0, 0.5]
    lm = 1.2 * template.vertices_m[template.landmarks68] @ R.T + [0.02, 0.0, 0.5] + rng.normal(0, 0.008, (68, 3))
    assert chamfer_scan_mm(pts, lm, template.vertices_m, template) < 0.01
    other = template.vertices_m + np.tensordot(rng.normal(0, 1, 20), identity_modes(template)[:20], axes=1)
    assert chamfer_scan_mm(pts, lm, other, template) > 0.5


def test_shape_space_oracle_recovers_a_moved_identity_from_its_surface(template):
    """The scan-ceiling oracle: samples of a shape-space face's surface, moved by a similarity
    into another frame and scale, give back its weights, its shape and the similarity."""
    from glvd_core.baselines import fit_identity_to_points
    from glvd_core.cameras import look_at_rotation
    from glvd_core.evaluate import chamfer_scan_mm
    from glvd_core.expression.shape_space import identity_modes

    rng = np.random.default_rng(5)
    B = identity_modes(template)[:10].astype(np.float64)
    w_true = rng.normal(0, 1.5, 10)
    face = template.vertices_m + np.tensordot(w_true, B, axes=1)
    tri = template.faces[rng.choice(template.num_faces, 4000)]
    r = rng.dirichlet(np.ones(3), 4000)
    s_true, R_true, t_true = 1.7, look_at_rotation(20, -10, 5), np.array([0.1, -0.2, 0.3])
    moved = lambda X: s_true * X @ R_true.T + t_true  # noqa: E731
    pts = moved((r[..., None] * face[tri]).sum(1))
    lm = moved(face[template.landmarks68])
    w, X, (s, R, t) = fit_identity_to_points(pts, lm, template, B, noise_m=1e-4)
    np.testing.assert_allclose(w, w_true, atol=0.01)
    assert abs(s * s_true - 1) < 1e-4  # the similarity found undoes the move
    np.testing.assert_allclose(R @ R_true, np.eye(3), atol=1e-4)
    e_fit = chamfer_scan_mm(pts, lm, X, template)
    e_mean = chamfer_scan_mm(pts, lm, template.vertices_m, template)
    assert e_fit < 0.01 and e_mean > 1.0, (e_fit, e_mean)  # mm (of the moved frame)


def test_intervals_cover_the_mean_and_pairing_cancels_what_scenes_share():
    from glvd_core.evaluate import bootstrap_ci, compare_runs, paired_difference

    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 0.5, 60)
    lo, hi = bootstrap_ci(x)
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert lo < x.mean() < hi and abs((hi - lo) / (2 * 1.96 * se) - 1) < 0.15  # about ±1.96 standard errors
    assert bootstrap_ci([1.5]) == [1.5, 1.5]
    # scene difficulty varies far more than the gap between two methods: unpaired intervals overlap,
    # the paired one excludes zero
    hard = rng.normal(2.0, 0.5, 40)
    ours, theirs = hard + rng.normal(0, 0.01, 40), hard + 0.03 + rng.normal(0, 0.01, 40)
    assert bootstrap_ci(ours)[1] > bootstrap_ci(theirs)[0]
    p = paired_difference(ours, theirs)
    assert p["ci95_mm"][0] > 0 and abs(p["mean_mm"] - 0.03) < 0.01 and p["better"] >= 35 and p["scenes"] == 40
    with pytest.raises(ValueError, match="same scenes"):
        paired_difference(ours, theirs[:-1])
    # runs compare on the scenes both scored, matched by name, whatever their order
    new = dict(per_scene_aligned_mm=dict(scenes=["a", "b", "c"], GLVD=[1.0, 2.0, 3.0]))
    old = dict(per_scene_aligned_mm=dict(scenes=["c", "a", "d"], GLVD=[3.5, 1.5, 9.0]))
    c = compare_runs(new, old)["GLVD"]
    assert c["scenes"] == 2 and c["better"] == 2 and c["mean_mm"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="share no scene"):
        compare_runs(new, dict(per_scene_aligned_mm=dict(scenes=["x"], GLVD=[1.0])))


def test_evaluate_cli_prints_the_table(tiny_dataset, tmp_path, capsys):
    import json

    from glvd_core.cli import main
    from glvd_core.model.config import get_config
    from glvd_core.train.trainer import Trainer, TrainOptions

    cfg = get_config("tiny", sdf_steps=2, kp_steps=2, vertex_steps=2)
    model = Trainer(cfg, tiny_dataset, tmp_path / "run", TrainOptions(progress=False)).run()
    out = tmp_path / "e.json"
    rc = main(["evaluate", "--data", str(tiny_dataset), "--weights", str(model), "--lvd-weights", str(model),
               "--views", "1", "--oracle-landmarks", "--json", str(out), "--heatmap", str(tmp_path / "h.png"),
               "--per-step", "--device", "cpu", "--max-scenes", "1"])
    assert rc == 0
    res = json.loads(out.read_text())
    # evaluate measures the fitting stage by default: a "GLVD + fit to photos" row beside the descent's
    assert set(res["table"]) == {"GLVD", "LVD (no keypoints)", "GLVD + fit to photos", "mean template",
                                 "3DMM landmark fit"}
    assert res["table"]["GLVD"]["scenes"] == 1 and len(res["per_step_aligned_mm"]["GLVD"]) == 11
    # per-scene errors, named, and every other method paired against GLVD on them
    per = res["per_scene_aligned_mm"]
    assert per["scenes"] == ["scene_00000"] and per["GLVD"] == [res["table"]["GLVD"]["chamfer_aligned_mm"]]
    assert set(res["paired_aligned_mm"]) == {"LVD (no keypoints)", "GLVD + fit to photos", "mean template",
                                             "3DMM landmark fit"}
    assert res["paired_aligned_mm"]["LVD (no keypoints)"]["mean_mm"] == 0.0  # the same weights
    printed = capsys.readouterr().out
    assert "95% interval" in printed and "GLVD vs mean template" in printed
    # two runs' JSON compare scene by scene; a file without per-scene errors is refused clearly
    assert main(["compare", str(out), str(out)]) == 0
    assert "+0.000" in capsys.readouterr().out
    old = tmp_path / "old.json"
    old.write_text(json.dumps({k: v for k, v in res.items() if k != "per_scene_aligned_mm"}))
    assert main(["compare", str(out), str(old)]) == 2
    assert "re-run evaluate" in capsys.readouterr().err
    assert (tmp_path / "h.png").stat().st_size > 1000
    # --set changes inference settings of the trained model (here: 3 steps, the keypoint prior) ...
    rc = main(["evaluate", "--data", str(tiny_dataset), "--weights", str(model), "--views", "1", "--oracle-landmarks",
               "--json", str(out), "--per-step", "--device", "cpu", "--max-scenes", "1",
               "--set", "iterations=3", "vertex_prior=keypoints", "--no-fit"])
    assert rc == 0 and len(json.loads(out.read_text())["per_step_aligned_mm"]["GLVD"]) == 4
    assert "GLVD + fit to photos" not in json.loads(out.read_text())["table"]
    # ... and nothing that would need other weights
    rc = main(["evaluate", "--data", str(tiny_dataset), "--weights", str(model), "--device", "cpu", "--set", "hidden_v=32"])
    assert rc != 0 and "cannot override hidden_v" in capsys.readouterr().err
