#!/usr/bin/env bash
# Create .venv in the repo root with the pinned dependencies and glvd_core installed (editable).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -r requirements-nodeps.txt
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
.venv/bin/python -c "import torch, numpy, cv2, bpy, glvd_core; print('setup ok: torch', torch.__version__, '| numpy', numpy.__version__, '| bpy', bpy.app.version_string, '| cuda', torch.cuda.is_available())"
