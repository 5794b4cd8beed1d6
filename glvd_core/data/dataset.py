"""The on-disk dataset format (synthetic or real) and its writer/loader.

Layout (``glvd-dataset/1``)::

    DIR/dataset.json            {"format": "glvd-dataset/1", "scenes": N, "views": V, "size": S,
                                 "seed": s, "template_sha256": ..., "units": "metres",
                                 "camera_convention": "opencv", "generator": {...}}
    DIR/scene_00000/view_00.png     RGB image (8-bit)
    DIR/scene_00000/mask_00.png     head mask (8-bit, 0 or 255)
    DIR/scene_00000/cameras.json    see glvd_core.cameras (world->camera R, t in metres; K pixels)
    DIR/scene_00000/gt.npz          vertices_m (7225, 3) template-topology GT in world metres,
                                    keypoints68_m (68, 3), and (synthetic only) identity (100,),
                                    expression (57,)

A real dataset (e.g. H3DS scans registered to the template) uses the same files; only
``gt.npz`` ``vertices_m`` is required. An evaluation-only scan without template correspondence
stores ``points_m`` (P, 3) (face-region surface samples) and ``landmarks68_m`` instead. Writing is deterministic: the same seed gives the same
bytes, whatever the number of worker processes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from ..cameras import load_cameras, save_cameras
from ..io import atomic_write_bytes, save_npz_deterministic
from ..template import load_template

FORMAT = "glvd-dataset/1"


def _write_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", img if img.ndim == 2 else img[..., ::-1])
    if not ok:
        raise IOError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes())


def scene_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def _make_scene(args):
    out, index, views, seed, cfg_dict, ict_path = args
    from ..ict import load_ict
    from .synth import SceneConfig, render_model, render_view, sample_lighting, sample_scene

    ict = load_ict(ict_path)
    tpl = load_template()
    cfg = SceneConfig(**cfg_dict)
    rng = scene_rng(seed, index)
    sc = sample_scene(ict, rng, views, cfg)
    d = Path(out) / f"scene_{index:05d}"
    d.mkdir(parents=True, exist_ok=True)
    rm = render_model(ict)
    images, masks = [], []
    for v, cam in enumerate(sc.cameras):
        rgb, mask = render_view(ict, rm, sc.vertices_ict_m, cam, sc.appearance, sample_lighting(rng), rng)
        _write_png(d / f"view_{v:02d}.png", rgb)
        _write_png(d / f"mask_{v:02d}.png", mask)
        images.append(f"view_{v:02d}.png")
        masks.append(f"mask_{v:02d}.png")
    gt = tpl.from_ict(sc.vertices_ict_m)
    save_npz_deterministic(d / "gt.npz", vertices_m=gt, keypoints68_m=gt[tpl.landmarks68],
                           identity=sc.identity, expression=sc.expression)
    save_cameras(d / "cameras.json", sc.cameras, images, masks)
    return index


def make_dataset(out: str | Path, scenes: int, views: int = 1, seed: int = 0, size: int = 256,
                 workers: int | None = None, ict_path: str | Path | None = None, progress: bool = True, p_plain: float = 0.0,
                 p_closed_eyes: float = 0.0) -> dict:
    """Generate ``scenes`` synthetic scenes of ``views`` views into ``out``; returns stats.
    ``p_plain``: fraction of scenes with a plain, untextured-scan appearance; ``p_closed_eyes``:
    fraction of those with both eyes closed (``SceneConfig``)."""
    from ..ict import find_ict_path
    from .synth import SceneConfig

    if scenes < 1 or views < 1 or size < 32:
        raise ValueError("need scenes >= 1, views >= 1 and size >= 32")
    for name, p in (("p_plain", p_plain), ("p_closed_eyes", p_closed_eyes)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {p}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ict_path = str(find_ict_path(ict_path))
    cfg = asdict(SceneConfig(size=size, p_plain=float(p_plain), p_closed_eyes=float(p_closed_eyes)))
    workers = workers or min(os.cpu_count() or 1, scenes)
    jobs = [(str(out), i, views, seed, cfg, ict_path) for i in range(scenes)]
    t0 = time.time()
    done = 0
    if workers > 1:
        with get_context("fork").Pool(workers) as pool:
            for _ in pool.imap_unordered(_make_scene, jobs, chunksize=max(1, scenes // (8 * workers))):
                done += 1
                if progress:
                    _bar(done, scenes, t0, views)
    else:
        for j in jobs:
            _make_scene(j)
            done += 1
            if progress:
                _bar(done, scenes, t0, views)
    dt = time.time() - t0
    meta = dict(format=FORMAT, scenes=scenes, views=views, size=size, seed=seed,
                template_sha256=load_template().sha256, units="metres", camera_convention="opencv",
                generator=dict(name="glvd_core synthetic ICT renderer", config=cfg))
    (out / "dataset.json").write_text(json.dumps(meta, indent=1))
    stats = dict(seconds=dt, images=scenes * views, images_per_second=scenes * views / max(dt, 1e-9), workers=workers)
    if progress:
        print(f"\nwrote {scenes} scenes x {views} views to {out} in {dt:.1f} s "
              f"({stats['images_per_second']:.1f} images/s, {workers} workers)")
    return stats


def _bar(done, total, t0, views):
    rate = done * views / max(time.time() - t0, 1e-9)
    w = 30
    f = int(w * done / total)
    print(f"\r[{'#' * f}{'.' * (w - f)}] {done}/{total} scenes  {rate:.1f} img/s", end="", flush=True)


@dataclass
class SceneRecord:
    """One scene of a dataset: images (V, H, W, 3) uint8, masks (V, H, W) uint8, cameras, GT."""

    path: Path
    images: list
    masks: list
    cameras: list
    vertices_m: np.ndarray | None
    extras: dict


class GLVDDataset:
    """Reads a ``glvd-dataset/1`` directory (synthetic, or real scans registered to the template)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta = self.root / "dataset.json"
        if not meta.is_file():
            raise FileNotFoundError(f"{self.root}: not a GLVD dataset (no dataset.json)")
        self.meta = json.loads(meta.read_text())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{meta}: format {self.meta.get('format')!r}, expected {FORMAT!r}")
        self.scene_dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and (p / "cameras.json").is_file())
        if not self.scene_dirs:
            raise ValueError(f"{self.root}: no scenes")

    def __len__(self):
        return len(self.scene_dirs)

    def __getitem__(self, i: int) -> SceneRecord:
        d = self.scene_dirs[i]
        cams, views = load_cameras(d / "cameras.json")
        imgs, masks = [], []
        for v in views:
            im = cv2.imread(str(d / v["image"]), cv2.IMREAD_COLOR)
            if im is None:
                raise IOError(f"{d / v['image']}: unreadable image")
            imgs.append(im[..., ::-1].copy())
            if "mask" in v:
                m = cv2.imread(str(d / v["mask"]), cv2.IMREAD_GRAYSCALE)
                if m is None:
                    raise IOError(f"{d / v['mask']}: unreadable mask")
                masks.append(m)
            else:
                masks.append(np.full(im.shape[:2], 255, np.uint8))
        gt, extras = None, {}
        if (d / "gt.npz").is_file():
            with np.load(d / "gt.npz") as z:
                gt = z["vertices_m"].astype(np.float32) if "vertices_m" in z.files else None
                extras = {k: z[k] for k in z.files if k != "vertices_m"}
        return SceneRecord(d, imgs, masks, cams, gt, extras)
