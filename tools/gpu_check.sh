#!/usr/bin/env bash
# One-go GPU check of the input pipeline (for a session with a lent GPU; ~3-5 min, at most ~8).
# Generates a 340x256 synthetic set, runs tools/benchmark.py for both streams on CUDA with
# realistic settings, and writes the JSON lines to $OUT/bench_spatial.json and
# $OUT/bench_motion.json (logs beside them). Run from the repository root:
#     OUT=/some/dir bash tools/gpu_check.sh
set -u -o pipefail
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
WORKERS="${WORKERS:-16}"
DATA="${DATA:-/tmp/gpu_check_data}"
cd "$(dirname "$0")/.."

{
  date
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3
  python -c "import torch, os; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cpus', os.cpu_count())"
  df -h /dev/shm 2>&1 | tail -1   # DataLoader batches travel through shared memory
  free -g | head -2
} | tee "$OUT/env.txt"

if ! grep -q '"flow_texture": "realistic"' "$DATA/synthetic.json" 2>/dev/null; then
  rm -rf "$DATA"
  # 6 classes x 30 videos, 24-48 frames: ~180 videos, ~6.5k RGB + 6.3k x 2 flow JPEGs
  timeout 150 python -m tools.make_synthetic "$DATA" --width 340 --height 256 \
      --videos-per-class 30 --min-frames 24 --max-frames 48 --flow-texture realistic 2>&1 | tee "$OUT/make_synthetic.log"
fi

# Spatial: batch 64 (3 x 64 = 192 images per step). Motion: batch 32, the motion stream's default
# (a classic float batch of 32 motion videos is 385 MB; prefetch 4 x 16 workers of them must fit
# in /dev/shm). Eval: the default protocol (19 positions, 1 crop), 160 videos.
COMMON=(--data-root "$DATA" --device cuda --workers "$WORKERS" --crop-size 224
        --warmup 3 --step-batches 30 --eval-videos 160 --test-batch-size 8)
rc=0
timeout 160 python -m tools.benchmark --stream spatial --batch-size 64 --batches 40 --repeats 2 \
    --train-batches 30 "${COMMON[@]}" --json "$OUT/bench_spatial.json" 2>&1 | tee "$OUT/bench_spatial.log" || rc=1
timeout 160 python -m tools.benchmark --stream motion --batch-size 32 --batches 20 --repeats 2 \
    --train-batches 30 "${COMMON[@]}" --json "$OUT/bench_motion.json" 2>&1 | tee "$OUT/bench_motion.log" || rc=1
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>&1 | tail -1 >> "$OUT/env.txt"
ls -l "$OUT"
exit $rc
