#!/usr/bin/env bash
# Train the default model on a lent GPU machine, one call at a time (each call under its limit).
#
#   scripts/train_on_gpu.sh MINUTES [FIELD=VALUE ...]
#
# Every call: makes the synthetic data if this machine lacks it (data/train: the bundled model's
# 2,000 scenes, seed 1000, with the detector landmarks from .gpu/landmarks_detected.tar when
# present; data/train_x: EXTRA_SCENES more, seed 20000), then trains runs/gpu for MINUTES —
# resuming runs/gpu/last.pt when there is one, else starting from $INIT (default: the bundled
# model) — and leaves the current weights in $OUT/glvd_gpu.pt (fp16, < 16 MiB) with the metrics.
# Needs: .gpu/ict_face_model.npz (copy of ../shared/data/ict_facekit/ict_face_model.npz).
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:?minutes}; shift
OUT=${OUT:-runs/gpu_out}; mkdir -p "$OUT"
export GLVD_ICT_PATH=$PWD/.gpu/ict_face_model.npz PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
EXTRA_SCENES=${EXTRA_SCENES:-3000}
INIT=${INIT:-glvd_core/assets/glvd_default.pt}
t0=$(date +%s)
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
if [ ! -f data/train/.complete ]; then
  rm -rf data/train
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $PY -m glvd_core make-data --out data/train --scenes 2000 --views 3 --seed 1000 --size 256
  [ -f .gpu/landmarks_detected.tar ] && tar -xf .gpu/landmarks_detected.tar
  touch data/train/.complete
fi
DATA=(data/train)
if [ "$EXTRA_SCENES" -gt 0 ]; then
  if [ ! -f data/train_x/.complete ]; then
    rm -rf data/train_x
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $PY -m glvd_core make-data --out data/train_x --scenes "$EXTRA_SCENES" --views 3 --seed 20000 --size 256
    touch data/train_x/.complete
  fi
  DATA+=(data/train_x)
fi
echo "data ready after $(( $(date +%s) - t0 )) s"
left=$(python3 -c "print(max(0.5, $MIN - ($(date +%s) - $t0) / 60 - 0.6))")
if [ -f runs/gpu/last.pt ]; then START=(--resume); else START=(--init "$INIT"); fi
$PY -m glvd_core train --config lite --data "${DATA[@]}" --out runs/gpu "${START[@]}" --quiet \
  --time-limit "$left" --ckpt-every 500 --set "$@"
ck=model.pt; [ -f runs/gpu/model.pt ] || ck=last.pt
$PY scripts/ship_model.py --run runs/gpu --checkpoint $ck --fp16 --out "$OUT/glvd_gpu.pt" \
  --set keypoint_warmup=5 iterations=12 \
  --data-recipe "make-data --scenes 2000 --views 3 --seed 1000 --size 256; detect-landmarks; make-data --scenes $EXTRA_SCENES --views 3 --seed 20000 --size 256"
cp runs/gpu/metrics.jsonl runs/gpu/config.json "$OUT/"
echo "call done after $(( $(date +%s) - t0 )) s"
