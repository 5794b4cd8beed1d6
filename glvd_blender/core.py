"""The seam to glvd_core (bundled inside the extension, or the development checkout) and the
user's Python environment for the modules Blender does not bundle."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

_ADDED: list[str] = []


def glvd_core() -> ModuleType:
    """The glvd_core package: bundled beside this add-on in the extension, else the checkout's."""
    try:
        return importlib.import_module(__package__ + ".glvd_core")
    except ImportError:
        return importlib.import_module("glvd_core")


def import_core(sub: str) -> ModuleType:
    """A glvd_core sub-module (``"preprocess"``, ``"reconstruct"``, …) wherever glvd_core lives."""
    return importlib.import_module(glvd_core().__name__ + "." + sub)


def default_environment() -> str:
    """``<checkout>/.venv/lib/python3.X/site-packages`` when running from a development checkout."""
    root = Path(__file__).resolve().parent.parent
    p = root / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    return str(p) if p.is_dir() else ""


def site_packages(path: str) -> str:
    """The site-packages folder of ``path``: itself, or inside a venv folder (``Lib/site-packages``
    on Windows, ``lib/pythonX.Y/site-packages`` on macOS and Linux, for this Blender's Python)."""
    p = Path(path)
    for inner in (p / "Lib" / "site-packages",
                  p / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"):
        if inner.is_dir():
            return str(inner)
    return str(p)


def use_environment(path: str) -> str | None:
    """Add a site-packages directory, or a venv folder's, to sys.path (at the end, so Blender's
    numpy stays first). Returns an error message or None."""
    if not path:
        return None
    p = site_packages(os.path.abspath(bpy_abspath(path)))
    if not os.path.isdir(p):
        return f"Python environment not found: {p}"
    if p not in sys.path:
        sys.path.append(p)
        _ADDED.append(p)
    _REPORT.clear()  # a module missing before may import now
    return None


def forget_environments() -> None:
    _REPORT.clear()
    for p in _ADDED:
        if p in sys.path:
            sys.path.remove(p)
    _ADDED.clear()


def bpy_abspath(path: str) -> str:
    try:
        import bpy

        return bpy.path.abspath(path)
    except Exception:
        return path


# What reconstructing imports besides Blender's own numpy. PyTorch and MediaPipe are not among
# them: the model and MediaPipe's face models run in glvd_core's numpy runtime (PyTorch adds CUDA).
REQUIRED_MODULES = ("cv2", "PIL")
_REPORT: list = []


def runtime_report() -> tuple[bool, str]:
    """(every module reconstructing needs imports, one line for the panel): the first module that
    does not import, with its real ImportError, else the runtime and its device. Imports each
    module once (cached until the Python environment changes)."""
    if not _REPORT:
        _REPORT.append(_runtime_report())
    return _REPORT[0]


def _runtime_report() -> tuple[bool, str]:
    for name in REQUIRED_MODULES:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any import failure is reported to the user
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return False, f"Missing module {name} ({why}): set the Python environment in Preferences"
    try:
        import torch
    except Exception:  # noqa: BLE001 - no torch: the numpy runtime runs
        return True, "Runtime: numpy, CPU (PyTorch not installed; it adds CUDA)"
    if torch.cuda.is_available():
        return True, f"Runtime: PyTorch {torch.__version__}, CUDA {torch.cuda.get_device_name(0)}"
    return True, f"Runtime: PyTorch {torch.__version__}, CPU ({torch.get_num_threads()} threads)"
