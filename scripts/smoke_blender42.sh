#!/usr/bin/env bash
# Smoke test on Blender 4.2 LTS (blender_version_min): the bpy 4.2 module in .venv-bpy42.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv-bpy42/bin/python ] || "$PY" -m venv .venv-bpy42
.venv-bpy42/bin/python -m pip install -q "bpy==4.2.0" "numpy==1.26.4" "pytest==9.2.0"
.venv-bpy42/bin/python -m pytest -q -p no:cacheprovider blender_tests/test_smoke_any_blender.py
