"""Model and checkpoint files: safe loading with clear errors, atomic saving, and the device.

File formats: ``glvd-model/1`` (a finished model: config, template hash, weights, recipe) and
``glvd-checkpoint/1`` (a training run's state). Both are torch zip files read with
``weights_only=True``: nothing in a file from elsewhere is ever executed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .io import atomic_writer

CHECKPOINT_FORMAT = "glvd-checkpoint/1"
MODEL_FORMAT = "glvd-model/1"


def atomic_save(obj: object, path: str | Path) -> None:
    """``torch.save`` all or nothing: a crash mid-write leaves ``path`` as it was."""
    with atomic_writer(path) as f:
        torch.save(obj, f)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but CUDA is not available (torch "
                           f"{torch.__version__}, built {'with' if torch.backends.cuda.is_built() else 'without'} CUDA); "
                           "use --device cpu or install the CUDA build (README: CUDA)")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint/model file safely (``weights_only=True``) with clear errors."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such model file")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, not a torch file, unsafe pickle
        raise ValueError(f"{p}: not a readable GLVD model ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(ck, dict) or ck.get("format") not in (CHECKPOINT_FORMAT, MODEL_FORMAT):
        raise ValueError(f"{p}: not a GLVD model file")
    for k, t in ck["model"].items():
        if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"{p}: weights contain NaN or inf ({k})")
    return ck
