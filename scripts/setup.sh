#!/usr/bin/env bash
# Create .venv in the repo root with the pinned dependencies and glvd_core installed (editable).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then  # torch 2.13.0's CPU wheel and mediapipe 0.10.21 exist here for 3.11 only
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    echo "setup.sh: needs Python 3.11 (found: $("$PY" --version 2>&1 || echo "no $PY")); run it as PYTHON=python3.11 bash scripts/setup.sh" >&2
    exit 1
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --no-cache-dir --upgrade pip
.venv/bin/python -m pip install -q --no-cache-dir -r requirements.txt
.venv/bin/python -m pip install -q --no-cache-dir --no-deps -r requirements-nodeps.txt
.venv/bin/python -m pip install -q --no-cache-dir --no-deps --no-build-isolation -e .
.venv/bin/python -c "import torch, numpy, cv2, bpy, glvd_core; print('setup ok: torch', torch.__version__, '| numpy', numpy.__version__, '| bpy', bpy.app.version_string, '| cuda', torch.cuda.is_available())"
