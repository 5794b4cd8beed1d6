"""Likeness on real photos, with no 3D ground truth: do different people come out different, the
same person alike, and does one photo's face fit the person's other photos?

    python -m glvd_core evaluate-likeness --photos DIR [--weights W] [--json OUT]

DIR holds one folder per person with that person's photos (``DIR/PERSON/*.jpg|png``). Each photo
is reconstructed alone, its expression removed (the rest shape of ``neutral``), and the shapes
are compared on the template's narrow face region after a rigid alignment (no scale: the
reconstructions are in metres):

- **identity spread**: the mean aligned RMS between photos of different people, as a fraction of
  the same between random identities of the ICT population (weights ~ N(0, 1)). 0 means every
  person comes out the same head; 1 means people differ as much as ICT's population does.
- **verification**: same-person pairs against different-person pairs: the ROC AUC of "a
  different-person pair is farther apart than a same-person pair" (0.5: no better than chance)
  and the ratio of their mean distances.
- **cross-view consistency**: for each ordered pair (i, j) of one person's photos, photo i's
  shape posed by its best rigid fit (PnP with photo j's camera) onto photo j's 478 detected
  points: the RMS reprojection error in photo j's pixels, beside the mean face posed the same
  way. (Verification alone can be gamed by any embedding; this one cannot.)

A photo that fails (no face, unreadable) is reported and left out. Evaluation only: this module
imports the product, never the other way round.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from .geometry.similarity import umeyama
from .preprocess.photo import PHOTO_EXTENSIONS
from .template import Template

if TYPE_CHECKING:
    from .fitting.dense_points import DensePoints
    from .reconstruct import Reconstructor

def aligned_rms_mm(a_m: np.ndarray, b_m: np.ndarray, region: np.ndarray) -> float:
    """RMS distance in mm between corresponding (V, 3) metre shapes over ``region`` (V,) bool,
    after the rigid motion that best brings ``a`` onto ``b`` there."""
    a, b = np.asarray(a_m, np.float64)[region], np.asarray(b_m, np.float64)[region]
    _, R, t = umeyama(a, b, scale=False)
    return float(np.sqrt((((a @ R.T + t) - b) ** 2).sum(1).mean()) * 1e3)


def distance_matrix_mm(shapes_m: list, region: np.ndarray) -> np.ndarray:
    """(N, N) aligned RMS in mm between every two shapes (0 on the diagonal). A rigid fit's
    residual is the same both ways (the inverse motion brings ``b`` onto ``a``), so each pair is
    aligned once."""
    n = len(shapes_m)
    d = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        d[i, j] = d[j, i] = aligned_rms_mm(shapes_m[i], shapes_m[j], region)
    return d


def population_spread_mm(template: Template, identity_modes_m: np.ndarray, n: int = 60, seed: int = 0) -> float:
    """Mean aligned RMS (mm) between ``n`` random ICT identities (weights ~ N(0, 1)) on the template."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0, (n, identity_modes_m.shape[0])).astype(np.float32)
    shapes = template.vertices_m[None] + np.tensordot(w, identity_modes_m, axes=1)
    d = distance_matrix_mm(list(shapes), template.narrow_face_mask)
    return float(d[np.triu_indices(n, 1)].mean())


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive score exceeds a negative one), ties counted half (the Mann-Whitney AUC)."""
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if not len(pos) or not len(neg):
        raise ValueError("the AUC needs at least one pair of each kind")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def verification(distances_mm: np.ndarray, people: list) -> dict:
    """Same- against different-person pairs of an (N, N) distance matrix; ``people``: N labels."""
    same, different = [], []
    for i, j in itertools.combinations(range(len(people)), 2):
        (same if people[i] == people[j] else different).append(distances_mm[i, j])
    if not different:
        raise ValueError("verification needs photos of at least two people")
    out = dict(different_pairs=len(different), same_pairs=len(same), different_mm=float(np.mean(different)))
    if same:
        out.update(same_mm=float(np.mean(same)), auc=roc_auc(np.array(different), np.array(same)),
                   ratio=float(np.mean(different) / max(np.mean(same), 1e-12)))
    return out


def posed_rms_px(points_m: np.ndarray, landmarks_px: np.ndarray, K: np.ndarray) -> float:
    """RMS reprojection error (pixels) of (P, 3) points posed by their best rigid fit (PnP with
    intrinsics ``K``) onto (P, >=2) detected points."""
    from .preprocess.framing import rigid_pnp

    return rigid_pnp(points_m, np.asarray(landmarks_px, np.float64)[:, :2], K).rms_px


def people_photos(root: str | Path) -> dict:
    """{person: [photo paths]} of ``root/PERSON/*`` (sorted); ValueError for fewer than two people."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    people = {d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in PHOTO_EXTENSIONS)
              for d in sorted(root.iterdir()) if d.is_dir()}
    people = {k: v for k, v in people.items() if v}
    if len(people) < 2:
        raise ValueError(f"{root}: needs a folder of photos for each of at least two people, found {len(people)}")
    return people


def likeness_table(shapes_m: list, people: list, points478: list, cameras_K: list, template: Template,
                   identity_modes_m: np.ndarray, dense: DensePoints) -> dict:
    """The three measures of the module docstring for per-photo (V, 3) shapes with their person
    labels, detected (478, >=2) points and (3, 3) intrinsics; ``dense``: the template's 478 places."""
    region = template.narrow_face_mask
    d = distance_matrix_mm(shapes_m, region)
    ver = verification(d, people)
    pop = population_spread_mm(template, identity_modes_m)
    mean_face_points = dense.at(template.vertices_m.astype(np.float64))
    ours, mean_face = [], []
    for i, j in itertools.permutations(range(len(people)), 2):
        if people[i] != people[j]:
            continue
        ours.append(posed_rms_px(dense.at(np.asarray(shapes_m[i], np.float64)), points478[j], cameras_K[j]))
        mean_face.append(posed_rms_px(mean_face_points, points478[j], cameras_K[j]))
    cross = None
    if ours:
        cross = dict(pairs=len(ours), glvd_px=float(np.mean(ours)), mean_face_px=float(np.mean(mean_face)),
                     ratio=float(np.mean(ours) / np.mean(mean_face)))
    return dict(people=len(set(people)), photos=len(people),
                identity_spread=dict(different_people_mm=ver["different_mm"], ict_population_mm=pop,
                                     ratio=ver["different_mm"] / pop),
                verification=ver, cross_view=cross)


def evaluate_likeness(root: str | Path, reconstructor: Reconstructor, log: Callable[[str], None] = print) -> dict:
    """Reconstruct every photo of ``root`` (:func:`people_photos`) alone and score the set
    (:func:`likeness_table`); photos that fail are listed under "failed"."""
    from .expression.shape_space import identity_modes
    from .fitting.dense_points import load_dense_points
    from .io import InputError
    from .pipeline import PipelineOptions, load_inputs, run

    tpl = reconstructor.template
    shapes, labels, points, Ks, photos, failed = [], [], [], [], [], []
    for person, paths in people_photos(root).items():
        for p in paths:
            try:
                res = run(reconstructor, load_inputs([p]), PipelineOptions(neutral=True))
                lm = res.reconstruction.landmarks478[0]
                if lm is None:
                    raise InputError("no 478-point detection")
            except (InputError, OSError, ValueError) as e:
                failed.append(dict(photo=str(p), error=str(e)))
                log(f"{person}/{p.name}: left out ({e})")
                continue
            shapes.append(res.final_vertices_m)
            labels.append(person)
            points.append(np.asarray(lm)[:, :2])
            Ks.append(res.reconstruction.cameras[0].K)
            photos.append(str(p))
            log(f"{person}/{p.name}: ok")
    if len(set(labels)) < 2:
        raise ValueError(f"{root}: fewer than two people have a photo that reconstructs")
    table = likeness_table(shapes, labels, points, Ks, tpl, identity_modes(tpl), load_dense_points(tpl))
    return dict(table, model=reconstructor.source, photos_used=photos, failed=failed)


def format_likeness(t: dict) -> str:
    s, v, c = t["identity_spread"], t["verification"], t["cross_view"]
    lines = [f"{t['people']} people, {t['photos']} photos",
             f"identity spread     {s['ratio']:.2f} of the ICT population's "
             f"({s['different_people_mm']:.2f} mm between people vs {s['ict_population_mm']:.2f} mm)"]
    if "auc" in v:
        lines.append(f"verification        AUC {v['auc']:.2f}, different/same distance {v['ratio']:.2f} "
                     f"({v['different_mm']:.2f} / {v['same_mm']:.2f} mm; {v['different_pairs']} / {v['same_pairs']} pairs)")
    else:
        lines.append("verification        no person has two photos")
    if c:
        lines.append(f"cross-view          {c['glvd_px']:.2f} px vs the mean face's {c['mean_face_px']:.2f} px "
                     f"({c['ratio']:.2f}x; {c['pairs']} ordered pairs)")
    return "\n".join(lines)
