"""Detector landmarks for training data: run the same detector as inference on the renders and
cache the result per scene (``landmarks_detected.npz``: ``landmarks68`` (V, 68, 2) pixels,
``ok`` (V,) bool), so training heatmaps are made the way inference makes them."""

from __future__ import annotations

import sys
import time

import numpy as np

from .dataset import GLVDDataset, save_npz_deterministic

CACHE = "landmarks_detected.npz"


def cache_detected_landmarks(root, progress=True) -> dict:
    from ..io import InputError
    from ..preprocess import MediaPipeFaces

    ds = GLVDDataset(root)
    t0, n, ok = time.time(), 0, 0
    for i in range(len(ds)):
        s = ds[i]
        lms, oks = [], []
        for v, img in enumerate(s.images):
            n += 1
            try:
                d = MediaPipeFaces.detect(img, where=f"{s.path.name} view {v}", segment=False)
                lms.append(d.landmarks68)
                oks.append(True)
                ok += 1
            except InputError:
                lms.append(np.zeros((68, 2)))
                oks.append(False)
        save_npz_deterministic(s.path / CACHE, landmarks68=np.array(lms, np.float32), ok=np.array(oks))
        if progress:
            print(f"\r{i + 1}/{len(ds)} scenes, detected {ok}/{n} views ({ok / n:.1%})", end="", file=sys.stderr)
    if progress:
        print(f"\ndetector success on renders: {ok}/{n} = {ok / max(n, 1):.1%} in {time.time() - t0:.0f} s")
    return dict(views=n, detected=ok, rate=ok / max(n, 1))


def load_detected(scene_dir):
    p = scene_dir / CACHE
    if not p.is_file():
        return None
    with np.load(p) as z:
        return z["landmarks68"].astype(np.float64), z["ok"].astype(bool)
