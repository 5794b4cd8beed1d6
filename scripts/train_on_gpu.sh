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
make_set() {  # DIR SCENES SEED: a 3-view 256 px dataset, made once per machine
  if [ ! -f "$1/.complete" ]; then
    rm -rf "$1"
    # one thread per worker process: with the default, 16 workers ran at 41 instead of 92 images/s
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $PY -m glvd_core make-data --out "$1" --scenes "$2" --views 3 --seed "$3" --size 256
    if [ "$1" = data/train ] && [ -f .gpu/landmarks_detected.tar ]; then tar -xf .gpu/landmarks_detected.tar; fi
    touch "$1/.complete"
  fi
  DATA+=("$1")
  RECIPE+="make-data --scenes $2 --views 3 --seed $3 --size 256; "
}
DATA=(); RECIPE=""
make_set data/train 2000 1000
if [ -f .gpu/landmarks_detected.tar ]; then RECIPE+="detect-landmarks (data/train); "; fi
if [ "$EXTRA_SCENES" -gt 0 ]; then make_set data/train_x "$EXTRA_SCENES" 20000; fi
echo "data ready after $(( $(date +%s) - t0 )) s"
left=$($PY -c "print(max(0.5, $MIN - ($(date +%s) - $t0) / 60 - 0.6))")
if [ -f runs/gpu/last.pt ]; then START=(--resume); else START=(--init "$INIT"); fi
$PY -m glvd_core train --config lite --data "${DATA[@]}" --out runs/gpu "${START[@]}" --quiet \
  --time-limit "$left" --ckpt-every 500 --set "$@"
ck=model.pt; [ -f runs/gpu/model.pt ] || ck=last.pt
$PY scripts/ship_model.py --run runs/gpu --checkpoint $ck --fp16 --out "$OUT/glvd_gpu.pt" \
  --set keypoint_warmup=5 iterations=12 \
  --data-recipe "${RECIPE%; }"
cp runs/gpu/metrics.jsonl runs/gpu/config.json "$OUT/"
echo "call done after $(( $(date +%s) - t0 )) s"
