"""Why does the identity CNN misread the real scan? Controlled renders of the scan and of ICT heads,
read by the product's crop + CNN, scored in the probe's shape metric (image_identity_probe.py).

    python -m research.scan_identity_diagnosis.scan_identity_diagnosis [--weights A.pt B.pt ...] [--json OUT.json]

Every render uses the scan set's own cameras, lighting, skin tone and backgrounds
(``make_scan_eval.py``'s random stream, seed 77, 16 sets x 3 views; the re-rendered scan is checked
to be byte-identical to ``data/eval_scan``), so only the mesh differs:

1. **twins**: the ICT head nearest the scan (the shape-space oracle of ``scan_ceiling.py``, 100
   identity modes, at 10 mm and 3 mm noise) with both eyes closed. Its identity is known exactly.
2. **smoothed scan**: the scan after 10 and 40 Taubin smoothing steps (is it fine detail?).
3. **hybrids**: the scan's narrow face on the 10 mm twin's head, and the twin's face on the scan's
   head (which region misleads?).
Then on 80 fresh ICT heads (seed 61000, half plain, plain ones eyes-closed, 1 view):
4. **out-of-span fields**: a random smooth displacement (20 Gaussian bumps, 2-4 cm) with its part
   in the identity modes + similarity removed, scaled to 1.7 and 3 mm RMS over the narrow face; the
   heads' identity is unchanged, so the reading should be too;
5. **the scan's own out-of-span residual** (scan surface minus the 10 mm twin, spread onto the ICT
   head, in-span part removed) added to each head: does it push the CNN the way it errs on the scan?
Finally 6. the cosine of the CNN's mean scan reading to the oracle at 1-20 mm noise, and 7. the scan
error of the mean face moved along the 3 mm and 10 mm oracles' directions by |w| = 1 ... 31.
Synthetic truth: the known weights. Scan truth: the 10 mm oracle (the probe's convention), also 3 mm.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from glvd_core import load_template  # noqa: E402
from glvd_core.baselines import fit_identity_to_points  # noqa: E402
from glvd_core.expression.shape_space import identity_modes  # noqa: E402
from glvd_core.model.identity_cnn import load_identity_cnn  # noqa: E402
from glvd_core.preprocess.face_crop import face_crop  # noqa: E402
from glvd_core.geometry.similarity import similarity_basis  # noqa: E402
from glvd_core.train.identity import shape_metric  # noqa: E402
from research.lib import load_script, shape_cosine  # noqa: E402
_mse = load_script("make_scan_eval")
eroded_face_mask, place_scan, render_camera_set = _mse.eroded_face_mask, _mse.place_scan, _mse.render_camera_set

SCAN_SETS, VIEWS = 16, 3
HEAD_SEED, HEADS = 61000, 80


def crop_or_none(rgb):
    from glvd_core.io import InputError
    from glvd_core.preprocess import MediaPipeFaces

    try:
        return face_crop(rgb, MediaPipeFaces.detect(rgb, segment=False).landmarks478)
    except InputError:
        return None


def taubin(V, F, steps):
    import scipy.sparse as sp

    n = len(V)
    i = np.r_[F[:, 0], F[:, 1], F[:, 2], F[:, 1], F[:, 2], F[:, 0]]
    j = np.r_[F[:, 1], F[:, 2], F[:, 0], F[:, 0], F[:, 1], F[:, 2]]
    A = sp.coo_matrix((np.ones(len(i)), (i, j)), (n, n)).tocsr()
    A.data[:] = 1
    L = sp.diags(1 / np.maximum(np.asarray(A.sum(1)).ravel(), 1)) @ A
    for _ in range(steps):
        V = V + 0.5 * (L @ V - V)
        V = V - 0.53 * (L @ V - V)
    return V


class OutOfSpan:
    """Removes from a displacement of the ICT head (26719, 3) its part in the template's identity
    modes + a similarity, as seen on the narrow face; reports the narrow-face RMS of what is left."""

    def __init__(self, tpl, ict):
        self.tpl, self.ict, self.nf = tpl, ict, tpl.narrow_face_mask
        X0 = tpl.vertices_m[self.nf].astype(np.float64)
        self.c = X0.mean(0)
        self.A = np.concatenate([identity_modes(tpl)[:, self.nf].reshape(100, -1).T.astype(np.float64),
                                 similarity_basis(X0 - self.c)], 1)

    def coef(self, d):
        return np.linalg.lstsq(self.A, self.tpl.from_ict(d)[self.nf].reshape(-1).astype(np.float64), rcond=None)[0]

    def __call__(self, d):
        S = similarity_basis(self.ict.neutral_m.astype(np.float64) - self.c)  # the same similarity on the ICT head
        for _ in range(6):  # the template is interpolated from the ICT head: iterate to a clean removal
            k = self.coef(d)
            d = d - np.tensordot(k[:100], self.ict.identity_modes_m.astype(np.float64), 1) - (S @ k[100:]).reshape(-1, 3)
        return d

    def rms_mm(self, d):
        return float(np.sqrt((self.tpl.from_ict(d)[self.nf].astype(np.float64) ** 2).sum(1).mean()) * 1000)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scan", default=str(ROOT.parent / "shared/data/eval/lee_perry_smith/LeePerrySmith.glb"))
    ap.add_argument("--data", default=str(ROOT / "data/eval_scan"), help="the scan set (make_scan_eval.py, 16 x 3)")
    ap.add_argument("--weights", nargs="+", default=["bundled"],
                    help="identity CNN files to read with ('bundled': the one the bundled model carries)")
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)
    import cv2
    from scipy.spatial import cKDTree

    from glvd_core.data.dataset import scene_rng
    from glvd_core.data.synth import SceneConfig, render_model, render_view, sample_lighting, sample_scene
    from glvd_core.evaluate import chamfer_scan_mm
    from glvd_core.geometry import closest_on_mesh
    from glvd_core.ict import load_ict

    tpl, ict = load_template(), load_ict()
    rm, B, rms = render_model(ict), identity_modes(tpl), shape_metric(tpl)
    nets = {w: load_identity_cnn(None if w == "bundled" else w) for w in a.weights}
    with np.load(sorted(Path(a.data).glob("scene_*/gt.npz"))[0]) as d:
        gt, lm = d["points_m"].astype(np.float64), d["landmarks68_m"].astype(np.float64)
    blink = np.zeros(57, np.float32)
    for n in ("eyeBlink_L", "eyeBlink_R"):
        blink[list(ict.expression_names).index(n)] = 1
    oracle = {nz: fit_identity_to_points(gt, lm, tpl, B, nz / 1000) for nz in (1, 3, 5, 10, 20)}
    w10, X10, (s_, R_, t_) = oracle[10]
    Q, F, _ = place_scan(a.scan)
    ict_tris = rm.tris[~rm.lash_tri]
    report = dict(command=" ".join(sys.argv), weights=a.weights, scan_sets={}, heads={}, oracle_cosine={})

    def read(crops, truth, name, table):
        if not crops:
            table[name] = dict(views=0)
            print(f"  {name:<34} MediaPipe found no face in any view", flush=True)
            return
        X = torch.tensor(np.array(crops))
        W = torch.as_tensor(np.asarray(truth, np.float32)).reshape(-1, 100).expand(len(X), 100)
        for wn, net in nets.items():
            P = net.predict(X)
            row = dict(views=len(X), shape_rms_mm=rms(P - W).mean().item(), mean_face_mm=rms(-W).mean().item(),
                       cosine_mean=float(np.nanmean([shape_cosine(rms, p, w) for p, w in zip(P, W)])),
                       cosine_of_mean_reading=shape_cosine(rms, P.mean(0), W[0]) if truth.ndim == 1 else None)
            table.setdefault(name, {})[wn] = row
            print(f"  {name:<34} {wn:<28} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()
                                                          if isinstance(v, float)) + f"  ({len(X)} views)", flush=True)

    # 1-3: meshes under the scan set's own renders
    tw = ict.shape(w10, blink)
    tw_scan = (tw - t_) @ R_ / s_  # the 10 mm twin moved into the scan's frame (the oracle maps scan -> template)
    kd = cKDTree(tpl.vertices_m)
    ict_nn, scan_nn = kd.query(ict.neutral_m)[1], kd.query(s_ * Q[F].mean(1) @ R_.T + t_)[1]
    face = tpl.narrow_face_mask
    core = eroded_face_mask(tpl)  # the hybrids' parts overlap by two rings instead of leaving a slit
    Vh = np.concatenate([tw_scan, Q])
    meshes = {
        "scan": (Q, F),
        "twin (10 mm oracle)": (tw, ict_tris),
        "twin (3 mm oracle)": (ict.shape(oracle[3][0], blink), ict_tris),
        "scan, 10 Taubin steps": (taubin(Q, F, 10), F),
        "scan, 40 Taubin steps": (taubin(Q, F, 40), F),
        "scan's face + twin's head": (Vh, np.concatenate([ict_tris[~core[ict_nn[ict_tris]].all(1)], F[face[scan_nn]] + len(tw)])),
        "twin's face + scan's head": (Vh, np.concatenate([ict_tris[face[ict_nn[ict_tris]].all(1)], F[~core[scan_nn]] + len(tw)])),
    }
    print("scan sets (truth: the 10 mm oracle; the 3 mm twin against its own weights):")
    for name, (V, T) in meshes.items():
        renders = [(i, v, rgb) for i in range(SCAN_SETS) for v, (_, rgb, _) in enumerate(render_camera_set(V, T, i, VIEWS))]
        if name == "scan":  # the same pixels as the evaluation set, or nothing here means anything
            for i, v, rgb in renders:
                ref = cv2.imread(str(Path(a.data) / f"scene_{i:05d}" / f"view_{v:02d}.png"))[:, :, ::-1]
                if not np.array_equal(ref, rgb):
                    raise SystemExit(f"the re-rendered scan differs from {a.data} (set {i}, view {v})")
        crops = [c for c in (crop_or_none(rgb) for _, _, rgb in renders) if c is not None]
        read(crops, oracle[3][0] if "3 mm" in name else w10, name, report["scan_sets"])
    # 4-5: fresh ICT heads, with and without out-of-span displacements
    oos = OutOfSpan(tpl, ict)
    inner = np.where(core)[0]
    twin_inner = (X10 + np.tensordot(blink, tpl.expression_modes_m, 1))[inner]  # template frame
    _, q, _ = closest_on_mesh(twin_inner, s_ * Q @ R_.T + t_, F)
    res = q - twin_inner
    dk, jk = cKDTree(tpl.vertices_m[inner]).query(ict.neutral_m, k=16)
    wk = np.exp(-dk ** 2 / (2 * 0.01 ** 2))
    scan_field = oos((wk[..., None] * res[jk]).sum(1) / np.maximum(wk.sum(1), 1e-3)[:, None]
                     * np.clip(wk.sum(1), 0, 1)[:, None])
    report["scan_residual"] = dict(rms_mm_on_core=float(np.sqrt((res ** 2).sum(1).mean()) * 1000),
                                   out_of_span_rms_mm=oos.rms_mm(scan_field))
    print(f"scan - twin on the eroded narrow face: {report['scan_residual']['rms_mm_on_core']:.2f} mm RMS; "
          f"its out-of-span part, spread onto the ICT head: {report['scan_residual']['out_of_span_rms_mm']:.2f} mm")
    cfg = SceneConfig(p_plain=0.5, p_closed_eyes=1.0)
    cases = {"ICT heads": None, "+ random out-of-span field, 1.7 mm": 1.7, "+ random out-of-span field, 3 mm": 3.0,
             "+ the scan's out-of-span residual": "scan"}
    crops, truth = {k: [] for k in cases}, {k: [] for k in cases}
    for i in range(HEADS):
        g = scene_rng(HEAD_SEED, i)
        sc = sample_scene(ict, g, 1, cfg)
        c, ell, amp = tpl.vertices_m[face][g.choice(face.sum(), 20)], g.uniform(0.02, 0.04, 20), g.normal(0, 1, (20, 3))
        bumps = oos(np.exp(-((ict.neutral_m[:, None] - c[None]) ** 2).sum(-1) / (2 * ell ** 2)) @ amp)
        bumps /= oos.rms_mm(bumps) / 1000
        for k, v in cases.items():
            d = 0 if v is None else scan_field if v == "scan" else v / 1000 * bumps
            gg = scene_rng(HEAD_SEED + 1000, i)  # the same lighting and background for every case
            crop = crop_or_none(render_view(ict, rm, sc.vertices_ict_m + d, sc.cameras[0], sc.appearance,
                                            sample_lighting(gg), gg)[0])
            if crop is not None:
                crops[k].append(crop)
                truth[k].append(sc.identity)
    print(f"{HEADS} ICT heads (seed {HEAD_SEED}; truth: their own weights):")
    for k in cases:
        read(crops[k], np.array(truth[k]), k, report["heads"])
    # 6: which oracle does the CNN's scan reading point to?
    scan_crops = torch.tensor(np.array([c for c in (crop_or_none(cv2.imread(str(p))[:, :, ::-1].copy())
                                                     for p in sorted(Path(a.data).glob("scene_*/view_*.png")))
                                        if c is not None]))
    print("the mean scan reading against the oracle at each noise:")
    for wn, net in nets.items():
        p = net.predict(scan_crops).mean(0).numpy()
        report["oracle_cosine"][wn] = dict(
            reading_norm=float(np.linalg.norm(p)),
            reading_scan_mm=chamfer_scan_mm(gt, lm, tpl.vertices_m + np.tensordot(p, B, 1), tpl),
            by_noise_mm={nz: dict(weight_norm=float(np.linalg.norm(o[0])),
                                  oracle_scan_mm=chamfer_scan_mm(gt, lm, o[1], tpl),
                                  cosine=shape_cosine(rms, p, o[0])) for nz, o in oracle.items()})
        print(f"  {wn}: |w| {np.linalg.norm(p):.2f}, " + ", ".join(
            f"{nz} mm (|w| {v['weight_norm']:.1f}) {v['cosine']:+.2f}" for nz, v in report["oracle_cosine"][wn]["by_noise_mm"].items()))
    # 7: how much does a step of a given length along each oracle's direction pay on the scan?
    report["along_oracle"] = {}
    for nz in (3, 10):
        u = oracle[nz][0] / np.linalg.norm(oracle[nz][0])
        report["along_oracle"][nz] = {n: chamfer_scan_mm(gt, lm, tpl.vertices_m + np.tensordot(n * u, B, 1), tpl)
                                      for n in (0, 1, 2, 3, 5, 7, 10, 15, 20, 31)}
        print(f"scan mm along the {nz} mm oracle's direction: " + ", ".join(
            f"|w| {n}: {v:.3f}" for n, v in report["along_oracle"][nz].items()))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
