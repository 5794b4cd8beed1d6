#!/usr/bin/env bash
# The scene writer's and panel's smoke test (blender_tests/test_smoke_any_blender.py, no torch)
# on the oldest and the newest supported Blender: bpy 4.2 LTS (Python 3.11, in .venv-bpy42) and
# bpy 5.3 (Python 3.13 through pyenv, in .venv-bpy53); the main suite runs it on 5.0.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv-bpy42/bin/python ] || "$PY" -m venv .venv-bpy42
.venv-bpy42/bin/python -m pip install -q --no-cache-dir "bpy==4.2.0" "numpy==1.26.4" "pytest==9.2.0"
.venv-bpy42/bin/python -m pytest -q -p no:cacheprovider blender_tests/test_smoke_any_blender.py
PY313=${PYTHON313:-python3.13}
[ -x .venv-bpy53/bin/python ] || PYENV_VERSION=${PYENV_VERSION_313:-3.13.0} "$PY313" -m venv .venv-bpy53
.venv-bpy53/bin/python -m pip install -q --no-cache-dir "bpy==5.3.0" "pytest==9.2.0"
.venv-bpy53/bin/python -m pytest -q -p no:cacheprovider blender_tests/test_smoke_any_blender.py
