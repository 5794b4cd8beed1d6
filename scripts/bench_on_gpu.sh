#!/usr/bin/env bash
# Time the model on a lent GPU machine in one call (docs/PERFORMANCE.md, GPU section):
#
#   OUT=$OUT bash scripts/bench_on_gpu.sh          # on the device; results come back in $OUT
#
# Runs `bench --device cuda` for the bundled model and the lite and paper presets: encoders, one
# step, whole reconstructions (landmarks given: the machine has no MediaPipe, so the astronaut's
# saved landmarks are used and detection is not timed) and a batch of $BATCH faces.
# Uses the machine's own python3 with PyTorch; nothing to carry.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_bench}; mkdir -p "$OUT"
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/nvidia-smi.csv"
PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} $PY -m glvd_core bench --device cuda \
  --config ${CONFIGS:-default lite paper} --runs "${RUNS:-50}" --batch "${BATCH:-64}" --json "$OUT/bench_cuda.json" \
  2>&1 | tee "$OUT/bench_cuda.log" | grep -v '^[][ {}]'
