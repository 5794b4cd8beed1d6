"""Helpers the experiments share (the product never imports research/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import torch

from glvd_core.preprocess.face_crop import face_crop

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str):
    """``scripts/NAME.py`` as a module (the maintainers' scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def read_identity(net, crops: torch.Tensor, mirror: torch.Tensor | None = None, batch: int = 64) -> torch.Tensor:
    """(B, 3, S, S) uint8 crops -> (B, M) identity weights; with ``mirror`` (the map of
    :func:`glvd_core.model.identity_cnn.mirror_weight_map`) each crop is also read flipped and the
    two readings averaged (mirror averaging: measured in research/mirror_average, not shipped)."""
    w = net.predict(crops, batch)
    if mirror is None:
        return w
    return (w + net.predict(torch.flip(crops, dims=[3]), batch) @ mirror.T) / 2


def load_crops(root: Path, views=None):
    """Crops, GT identity weights (or None) and (scene, view) of every detected view (``views``:
    only these view indices). Synthetic sets use their detection cache; the scan set is detected."""
    from glvd_core.io import InputError
    from glvd_core.preprocess import MediaPipeFaces

    X, W, idx = [], [], []
    for sd in sorted(root.glob("scene_*")):
        cache = sd / "landmarks_detected.npz"
        cached = None
        if cache.is_file():
            with np.load(cache) as z:
                cached = z["ok"], z["landmarks478"]
        with np.load(sd / "gt.npz") as g:
            w = g["identity"] if "identity" in g.files else None
        for v in range(len(list(sd.glob("view_*.png")))):
            if views is not None and v not in views or cached is not None and not cached[0][v]:
                continue
            img = cv2.imread(str(sd / f"view_{v:02d}.png"))[:, :, ::-1].copy()
            if cached is not None:
                l478 = cached[1][v]
            else:
                try:
                    l478 = MediaPipeFaces.detect(img, segment=False).landmarks478
                except InputError:
                    continue
            X.append(face_crop(img, l478))
            W.append(w)
            idx.append((int(sd.name[6:]), v, l478))
    Wa = None if W[0] is None else torch.tensor(np.array(W, np.float32))
    return torch.tensor(np.array(X, np.uint8)), Wa, idx


def scan_truth(root: Path, idx) -> dict:
    """Scene index -> (GT points (P, 3) m, 68 landmarks (68, 3) m) of every scan scene named in
    ``idx`` (as :func:`load_crops` returns it), each file read once."""
    out = {}
    for s, _, _ in idx:
        if s not in out:
            with np.load(root / f"scene_{s:05d}" / "gt.npz") as g:
                out[s] = g["points_m"], g["landmarks68_m"]
    return out


def shape_cosine(rms, a, b) -> float:
    """Cosine between two identity-weight vectors in the metric of :func:`shape_metric` (the
    shapes' similarity-free offsets from the mean face); NaN when one is zero."""
    a, b = torch.as_tensor(a, dtype=torch.float32)[None], torch.as_tensor(b, dtype=torch.float32)[None]
    na, nb = rms(a).item(), rms(b).item()
    if na == 0 or nb == 0:
        return float("nan")
    return (na ** 2 + nb ** 2 - rms(a - b).item() ** 2) / (2 * na * nb)


def _mean_or_none(x):
    """Mean of the defined values, None when there are none (the mean face has no direction)."""
    x = [v for v in x if np.isfinite(v)]
    return float(np.mean(x)) if x else None
