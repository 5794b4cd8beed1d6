"""Render the real Lee Perry-Smith head scan into an evaluation dataset (never for training).

    python scripts/make_scan_eval.py --scan ../shared/data/eval/lee_perry_smith/LeePerrySmith.glb \\
        --out data/eval_scan [--scenes 10] [--views 3] [--seed 77]

The scan ("Infinite, 3D Head Scan" by Lee Perry-Smith, CC-BY 3.0, based on a work at
www.triplegangers.com) is read with Blender's glTF importer (bpy), then:
1. turned to glTF's y-up axes, centred and roughly scaled to a head;
2. rendered frontally for each of four yaw candidates; MediaPipe finds the face; the 68
   landmarks are back-projected onto the scan through the z-buffer;
3. moved into the ICT head frame (metres) by the similarity that best maps its inner-face
   landmarks (17-67) onto the template's;
4. the GT region: area-uniform samples of the scan whose nearest template vertex lies in the
   narrow-face region eroded by two rings, within 1 cm of the template;
5. rendered under random cameras (the data engine's ranges, yaw limited to +-45 deg) with a
   uniform skin albedo (the scan has no texture), into a glvd-dataset/1 directory whose gt.npz
   holds ``points_m`` and ``landmarks68_m`` instead of template vertices.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def read_glb(path):
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(path))
    obs = [o for o in bpy.data.objects if o.type == "MESH"]
    if not obs:
        raise ValueError(f"{path}: no mesh")
    ob = obs[0]
    me = ob.data
    me.calc_loop_triangles()
    co = np.array([v.co for v in me.vertices], np.float64)
    M = np.array(ob.matrix_world, np.float64)
    co = co @ M[:3, :3].T + M[:3, 3]
    tris = np.array([t.vertices[:] for t in me.loop_triangles], np.int64)
    return co[:, [0, 2, 1]] * [1, 1, -1], tris  # Blender z-up -> glTF y-up (x, z, -y)


SKIN = np.array([0.82, 0.62, 0.5])  # the scan's albedo (sRGB), varied per camera set
SCAN_SEED = 77


def place_scan(scan_path, size: int = 256):
    """Steps 1-3: the scan read (bpy), turned and scaled to a head, its 68 landmarks found on a frontal
    render and back-projected, and moved into the ICT head frame. Returns the vertices (P, 3) and
    triangles (T, 3) in that frame (metres) and the landmarks (68, 3) there."""
    from glvd_core import load_template
    from glvd_core.cameras import Camera, look_at_rotation
    from glvd_core.data.synth import render_mesh
    from glvd_core.geometry import umeyama
    from glvd_core.io import InputError
    from glvd_core.preprocess import MediaPipeFaces

    tpl = load_template()
    P, F = read_glb(scan_path)
    P = P - (P.max(0) + P.min(0)) / 2
    P *= 0.26 / np.ptp(P[:, 1])  # rough: a head ~26 cm tall
    S = size
    best = None
    for yaw in (0, 90, 180, 270):
        c, s_ = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
        Ry = np.array([[c, 0, s_], [0, 1, 0], [-s_, 0, c]])
        Q = P @ Ry.T
        cam = Camera.from_fov(S, S, 25, R=look_at_rotation(0, 0, 0), t=[0, 0, 0.75])
        light = dict(direction=np.array([0.2, 0.3, 1.0]) / np.linalg.norm([0.2, 0.3, 1.0]), intensity=np.ones(3) * 0.9,
                     ambient=np.ones(3) * 0.35, wrap=0.2, fill_dir=np.array([0, 0, -1.0]), fill=0.1)
        (rgb, _), r = render_mesh(Q, F, SKIN, cam, light, np.random.default_rng(0))
        try:
            d = MediaPipeFaces.detect(rgb, where=f"scan render yaw {yaw}", segment=False)
        except InputError:
            continue
        if best is None or d.size_px > best[0]:
            best = (d.size_px, yaw, Q, cam, r, d)
    if best is None:
        raise SystemExit("no face found on any scan render")
    _, yaw, Q, cam, r, d = best
    lm2 = np.round(d.landmarks68).astype(int).clip(0, S - 1)
    lm3 = []
    for x, y in lm2:
        t = r.tri[y, x]
        if t < 0:
            raise SystemExit("a landmark missed the scan surface")
        lm3.append(cam.camera_to_world((cam.world_to_camera(Q[F[t]]) * r.bary[y, x][:, None]).sum(0)))
    lm3 = np.array(lm3)
    tl = tpl.vertices_m.astype(np.float64)[tpl.landmarks68]
    s, R, t = umeyama(lm3[17:], tl[17:])
    Qi = s * Q @ R.T + t
    lmi = s * lm3 @ R.T + t
    print(f"scan: yaw candidate {yaw} deg, landmark fit RMS {np.sqrt(((lmi[17:] - tl[17:]) ** 2).sum(1).mean()) * 1000:.2f} mm,"
          f" scale {s:.4f}")
    return Qi, F, lmi


def render_camera_set(vertices_m, tris, index: int, views: int, size: int = 256, seed: int = SCAN_SEED):
    """Step 5 for one camera set: ``views`` renders of any mesh (ICT head frame, metres) under the
    set's random cameras, lighting, skin tone and backgrounds -> list of (Camera, RGB, mask). The
    stream depends only on (seed, index), so another mesh gets exactly the scan's conditions."""
    from glvd_core import load_template
    from glvd_core.data.dataset import scene_rng
    from glvd_core.data.synth import SceneConfig, render_mesh, sample_camera, sample_lighting

    tpl = load_template()
    cfg = SceneConfig(size=size, yaw_deg=45.0, pitch_deg=20.0, roll_deg=10.0)
    center = np.array([0.0, tpl.vertices_m[:, 1].mean(), tpl.vertices_m[:, 2].mean()])

    class _RM:  # what sample_camera needs: the framed head height
        head_height = 0.36

    g = scene_rng(seed, index)
    tone = np.clip(SKIN * g.uniform(0.8, 1.1, 3), 0, 1)
    out = []
    for _ in range(views):
        cm = sample_camera(g, _RM, cfg, center)
        (rgb, mask), _ = render_mesh(vertices_m, tris, tone, cm, sample_lighting(g), g)
        out.append((cm, rgb, mask))
    return out


def eroded_face_mask(tpl, rings: int = 2) -> np.ndarray:
    """(N,) bool: the template's narrow-face region less its outer ``rings`` rings of vertices."""
    inside = tpl.narrow_face_mask.copy()
    for _ in range(rings):
        inside[np.unique(tpl.faces[~inside[tpl.faces].all(1)])] = False
    return inside


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scan", default=str(ROOT.parent / "shared/data/eval/lee_perry_smith/LeePerrySmith.glb"))
    ap.add_argument("--out", default=str(ROOT / "data/eval_scan"))
    ap.add_argument("--scenes", type=int, default=10)
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=SCAN_SEED)
    a = ap.parse_args(argv)

    from glvd_core import load_template
    from glvd_core.cameras import save_cameras
    from glvd_core.data.dataset import FORMAT, _write_png, save_npz_deterministic
    from glvd_core.geometry import point_to_mesh

    tpl = load_template()
    Qi, F, lmi = place_scan(a.scan, a.size)
    # GT region: scan samples near the template's narrow face
    rng = np.random.default_rng(a.seed)
    A, B, C = Qi[F[:, 0]], Qi[F[:, 1]], Qi[F[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(B - A, C - A), axis=1)
    ti = rng.choice(len(F), 60000, p=area / area.sum())
    r1, r2 = rng.random(len(ti)), rng.random(len(ti))
    fl = r1 + r2 > 1
    r1[fl], r2[fl] = 1 - r1[fl], 1 - r2[fl]
    pts = A[ti] + (B[ti] - A[ti]) * r1[:, None] + (C[ti] - A[ti]) * r2[:, None]
    # keep points whose nearest template vertex lies well inside the narrow face (region eroded
    # by two rings, so nothing beyond the region's rim is scored) and within 1 cm of the template
    from scipy.spatial import cKDTree

    inside = eroded_face_mask(tpl)
    _, nearest = cKDTree(tpl.vertices_m).query(pts)
    dist = point_to_mesh(pts, tpl.vertices_m, tpl.faces)
    keep = inside[nearest] & (dist < 0.01)
    gt_pts = pts[keep][:20000]
    print(f"GT region: {len(gt_pts)} scan points over the eroded narrow-face region (within 1 cm of the template)")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(a.scenes):
        dsc = out / f"scene_{i:05d}"
        dsc.mkdir(exist_ok=True)
        cams, ims, mks = [], [], []
        for v, (cm, rgb, mask) in enumerate(render_camera_set(Qi, F, i, a.views, a.size, a.seed)):
            _write_png(dsc / f"view_{v:02d}.png", rgb)
            _write_png(dsc / f"mask_{v:02d}.png", mask)
            cams.append(cm)
            ims.append(f"view_{v:02d}.png")
            mks.append(f"mask_{v:02d}.png")
        save_cameras(dsc / "cameras.json", cams, ims, mks)
        save_npz_deterministic(dsc / "gt.npz", points_m=gt_pts.astype(np.float32), landmarks68_m=lmi.astype(np.float32))
    meta = dict(format=FORMAT, kind="scan", scenes=a.scenes, views=a.views, size=a.size, seed=a.seed,
                template_sha256=tpl.sha256, units="metres", camera_convention="opencv",
                source="Infinite, 3D Head Scan by Lee Perry-Smith (CC-BY 3.0, www.triplegangers.com); evaluation only")
    (out / "dataset.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {a.scenes} scenes x {a.views} views to {out}")


if __name__ == "__main__":
    main()
