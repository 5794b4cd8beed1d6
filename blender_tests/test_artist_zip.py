"""The artist's install: the linux-x64 zip, Install from Disk into a fresh profile, Reconstruct.

Each supported Blender runs in a virtual environment that holds only its ``bpy`` (and what bpy
pulls in): no torch, no OpenCV, no Pillow, no MediaPipe, no scipy, no glvd_core. Each bpy
installs to about 1 GB, so by default an environment lives only for its own test and pip keeps
no copy of the wheel: the five together would not fit on CI's disk beside ``.venv``. Set
``GLVD_BLENDER_VENVS`` to a folder to keep them there between runs.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
KEEP_VENVS = os.environ.get("GLVD_BLENDER_VENVS")
PHOTO = ROOT / "docs" / "examples" / "astronaut.png"
# Blender -> (Python, what its venv holds): 4.2 LTS, 4.5 LTS, 5.0 on Python 3.11; 5.2 LTS and
# 5.3 on 3.13. 4.2 LTS bundles numpy 1.24.3 (its bpy on PyPI pulls a newer one).
BLENDERS = {
    "4.2.0": ("3.11", ["bpy==4.2.0", "numpy==1.24.3"]),
    "4.5.15": ("3.11", ["bpy==4.5.15"]),
    "5.0.1": ("3.11", ["bpy==5.0.1"]),
    "5.2.4": ("3.13", ["bpy==5.2.4"]),
    "5.3.0": ("3.13", ["bpy==5.3.0"]),
}


def _python(version: str) -> list[str]:
    if version == "3.13":
        return ["env", "PYENV_VERSION=3.13.0", "python3.13"]
    return [f"python{version}"]


def _venv(blender: str, venv: Path) -> Path:
    py, reqs = BLENDERS[blender]
    python = venv / "bin" / "python"
    marker = venv / "glvd-requirements.txt"
    if not (python.is_file() and marker.is_file() and marker.read_text() == "\n".join(reqs)):
        subprocess.run(_python(py) + ["-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-cache-dir", *reqs], check=True)
        marker.write_text("\n".join(reqs))
    return python


@pytest.fixture(scope="module")
def linux_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_extension.py"), "--platform", "linux-x64",
                    "--out", str(out)], check=True, capture_output=True)
    return next(out.glob("glvd-*-linux-x64.zip"))


def _smoke(python: Path, zip_path: Path, tmp_path: Path, name: str) -> dict:
    out = tmp_path / f"{name}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "GLVD_"))}
    p = subprocess.run([str(python), str(ROOT / "scripts" / "zip_smoke.py"), str(zip_path), str(PHOTO), str(out)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def reference(linux_zip, tmp_path_factory):
    """The same zip in the development environment, where torch is installed: the reference
    path (the model in torch)."""
    r = _smoke(Path(sys.executable), linux_zip, tmp_path_factory.mktemp("ref"), "reference")
    assert r["runtime"].startswith("Runtime: PyTorch")
    return r


@pytest.mark.slow
@pytest.mark.parametrize("blender", list(BLENDERS))
def test_the_zip_alone_reconstructs_in_every_supported_blender(blender, linux_zip, reference, tmp_path):
    venv = Path(KEEP_VENVS) / f"bpy-{blender}" if KEEP_VENVS else tmp_path / "venv"
    try:
        r = _smoke(_venv(blender, venv), linux_zip, tmp_path, blender)
    finally:
        if not KEEP_VENVS:
            shutil.rmtree(venv, ignore_errors=True)
    assert r["blender"].split()[0] == blender and r["python"].startswith(BLENDERS[blender][0])  # "4.5.15 LTS"
    if blender == "4.2.0":
        assert r["numpy"] == "1.24.3"  # what Blender 4.2 LTS bundles
    assert r["runtime_ok"] and r["runtime"].startswith("Runtime: numpy, CPU"), r["runtime"]
    assert r["status"].startswith("Done in")
    assert r["shape_keys"] == reference["shape_keys"] and r["texture"] and "GLVD Camera 0" in r["cameras"]
    # the numpy runtime's mesh is the torch runtime's, in the scene
    assert np.abs(np.array(r["vertices_m"]) - np.array(reference["vertices_m"])).max() < 1e-4
