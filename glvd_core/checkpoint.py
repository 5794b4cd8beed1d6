"""Model and checkpoint files: safe loading with clear errors, atomic saving, and the device.

File formats: ``glvd-model/1`` (a finished model: config, template hash, weights, recipe) and
``glvd-checkpoint/1`` (a training run's state). Both are torch zip files read with
``weights_only=True``: nothing in a file from elsewhere is ever executed.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .io import atomic_writer, first_line

if TYPE_CHECKING:
    import torch

CHECKPOINT_FORMAT = "glvd-checkpoint/1"
MODEL_FORMAT = "glvd-model/1"


def atomic_save(obj: object, path: str | Path) -> None:
    """``torch.save`` all or nothing: a crash mid-write leaves ``path`` as it was."""
    import torch

    with atomic_writer(path) as f:
        torch.save(obj, f)


def resolve_device(device: str = "auto") -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but CUDA is not available (torch "
                           f"{torch.__version__}, built {'with' if torch.backends.cuda.is_built() else 'without'} CUDA); "
                           "use --device cpu or install the CUDA build (README: CUDA)")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


def _why_unreadable(p: Path, e: Exception) -> str:
    """One clear reason a model file did not load. Torch's own messages are not passed on when they
    advise ``weights_only=False``: that would run code from a file of unknown origin."""
    text = str(e)
    if p.stat().st_size == 0:
        return "the file is empty"
    if "Unsupported global" in text:
        return "it holds objects that a safe load does not read; only GLVD model files are accepted"
    if "weights_only" in text or "Unpickl" in type(e).__name__ or "invalid load key" in text:
        return "not a PyTorch file, or a damaged one"
    if "zip archive" in text or "central directory" in text or isinstance(e, EOFError):
        return "the file is truncated or not a PyTorch file"
    return f"{type(e).__name__}: {first_line(e)}"


REQUIRED_KEYS = ("config", "model", "template_sha256")


def model_file(path: str | Path) -> Path:
    """``path`` as a model file that exists; FileNotFoundError naming it and why otherwise."""
    p = Path(path)
    try:
        p.stat()
    except OSError as e:
        why = "a symbolic link that loops" if e.errno == errno.ELOOP else "no such model file"
        raise FileNotFoundError(f"{p}: {why}") from None
    if not p.is_file():
        raise FileNotFoundError(f"{p}: not a file")
    return p


def check_model(ck: object, p: Path, nonfinite: Callable[[object], bool]) -> dict:
    """``ck``, what a model file at ``p`` held, when it is a whole GLVD model or checkpoint (a
    format, its config, weights and template hash, no weight for which ``nonfinite`` is true);
    ValueError naming the file otherwise. Shared by the torch and the numpy runtime's readers."""
    if not isinstance(ck, dict) or ck.get("format") not in (CHECKPOINT_FORMAT, MODEL_FORMAT):
        raise ValueError(f"{p}: not a GLVD model file")
    missing = [k for k in REQUIRED_KEYS if k not in ck]
    if missing or not isinstance(ck["model"], dict) or not isinstance(ck["config"], dict):
        raise ValueError(f"{p}: an incomplete GLVD model file (missing or malformed: {', '.join(missing) or 'model/config'})")
    for k, t in ck["model"].items():
        if nonfinite(t):
            raise ValueError(f"{p}: weights contain NaN or inf ({k})")
    return ck


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint/model file safely (``weights_only=True``) with clear errors."""
    import torch

    p = model_file(path)
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, not a torch file, unsafe pickle
        raise ValueError(f"{p}: not a readable GLVD model ({_why_unreadable(p, e)})") from None
    return check_model(ck, p, lambda t: torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all())
