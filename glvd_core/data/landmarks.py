"""Detector landmarks for training data: run the same detector as inference on the renders and
cache the result per scene, so training heatmaps are made the way inference makes them.

``landmarks_detected.npz``: ``landmarks478`` (V, 478, 3) MediaPipe's points, ``ok`` (V,) bool,
``source`` "mediapipe" — or ``landmarks68`` (V, 68, 2) pixels with ``source`` "given", for
landmarks written by other code and used as stored. Loading maps the 478 points with the current
68-point map (:func:`glvd_core.preprocess.mp_to_68`), so a cache never goes stale when the map
changes; a cache from before the 478 points were kept is refused with what to run."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .dataset import GLVDDataset, save_npz_deterministic

if TYPE_CHECKING:
    from ..cameras import Camera

CACHE = "landmarks_detected.npz"


def cache_detected_landmarks(root: str | Path, progress: bool = True) -> dict:
    from ..io import InputError
    from ..preprocess import MediaPipeFaces

    ds = GLVDDataset(root)
    t0, n, ok = time.time(), 0, 0
    for i in range(len(ds)):
        s = ds[i]
        l478, oks = [], []
        for v, img in enumerate(s.images):
            n += 1
            try:
                d = MediaPipeFaces.detect(img, where=f"{s.path.name} view {v}", segment=False)
                l478.append(d.landmarks478)
                oks.append(True)
                ok += 1
            except InputError:
                l478.append(np.zeros((478, 3)))
                oks.append(False)
        save_npz_deterministic(s.path / CACHE, landmarks478=np.array(l478, np.float32), ok=np.array(oks), source=np.array("mediapipe"))
        if progress:
            print(f"\r{i + 1}/{len(ds)} scenes, detected {ok}/{n} views ({ok / n:.1%})", end="", file=sys.stderr)
    if progress:
        print(f"\ndetector success on renders: {ok}/{n} = {ok / max(n, 1):.1%} in {time.time() - t0:.0f} s")
    return dict(views=n, detected=ok, rate=ok / max(n, 1))


def detected_views(root: str | Path,
                   limit: int | None = None) -> Iterator[tuple[Camera, np.ndarray, np.ndarray, Path, int]]:
    """Yield (camera, GT vertices (V, 3) world metres, detected 478 points (478, 3) pixels, scene
    dir, view index) for every view of a dataset whose detection cache found a face."""
    from ..cameras import load_cameras

    for sd in sorted(Path(root).glob("scene_*"))[:limit]:
        with np.load(sd / CACHE) as z:
            ok, l478 = z["ok"], z["landmarks478"]
        with np.load(sd / "gt.npz") as g:
            V = g["vertices_m"]
        for v, cam in enumerate(load_cameras(sd / "cameras.json")[0]):
            if ok[v]:
                yield cam, V, l478[v], sd, v


def load_detected(scene_dir: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(landmarks68 (V, 68, 2) pixels, ok (V,) bool) of a scene's cache, or None without one."""
    p = scene_dir / CACHE
    if not p.is_file():
        return None
    with np.load(p) as z:
        if "source" not in z.files:
            raise ValueError(f"{p} was cached by an older version (no MediaPipe points kept); "
                             f"re-run: python -m glvd_core detect-landmarks --data {scene_dir.parent}")
        ok = z["ok"].astype(bool)
        if str(z["source"]) != "mediapipe":
            return z["landmarks68"].astype(np.float64), ok
        from ..preprocess import mp_to_68

        lm = np.zeros((len(ok), 68, 2))
        if ok.any():
            lm[ok] = mp_to_68(z["landmarks478"][ok])
        return lm, ok
