#!/usr/bin/env bash
# One-go GPU check (for a session with a lent GPU; at most ~9.5 min).
# First the optical flow: tools/benchmark_flow.py on 128 textured 340x256 pairs, the torch TV-L1 on
# CUDA at batch 8, 32 and 128 against OpenCV's CPU TV-L1 on every core: pairs/s, peak GPU memory,
# and the agreement with OpenCV on the same pairs ($OUT/flow.log, $OUT/flow.json; the target is
# >= 175 pairs/s, and mean EPE <= 0.15 px, p95 <= 0.5 px, >= 97% within 0.5 px, warp ratio <= 1.03).
# Then the input pipeline: a 340x256 synthetic set (once; kept in $DATA, packed), then tools/benchmark.py for
# both streams on CUDA with --decode cpu (OpenCV in the workers) and --decode gpu (JPEG bytes
# from the workers, decoded on the GPU): 16 workers, bf16 autocast (--amp), channels_last
# (the engine's choice on CUDA), a training slice with its data-wait share, and the
# 19-position evaluation rate. Writes $OUT/bench_<stream>_<decode>.json (logs beside them)
# and $OUT/summary.md (tools/bench_summary.py: the table and the targets). Each benchmark
# call has its own timeout; one that fails does not stop the others. Builds and installs
# nothing. Run from anywhere:
#     OUT=/some/dir bash tools/gpu_check.sh
# PY names the Python that holds the CUDA build of PyTorch (default: python3). It needs
# torchvision and OpenCV >= 4.10 (cv2.IMREAD_COLOR_RGB); the script stops at once, saying so,
# if they are missing, before spending minutes on data. A newer OpenCV can be put first on
# PYTHONPATH (pip install --target DIR opencv-python-headless) without touching the install.
set -u -o pipefail
PY="${PY:-python3}"
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
WORKERS="${WORKERS:-16}"
DATA="${DATA:-/tmp/gpu_check_data}"
LIMIT="${LIMIT:-75}"   # seconds per benchmark call: 120 (flow) + 150 (data) + 4 x 75 = 570 s at most
FLOW_LIMIT="${FLOW_LIMIT:-120}"
cd "$(dirname "$0")/.."

{
  date
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3
  "$PY" -c "import sys, os, torch, torchvision, cv2; print('python', sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'opencv', cv2.__version__, 'cuda', torch.version.cuda, 'cpus', os.cpu_count())"
  df -h /dev/shm 2>&1 | tail -1   # DataLoader batches travel through shared memory
  free -g | head -2
} 2>&1 | tee "$OUT/env.txt"

if ! "$PY" -c "import torch, torchvision, cv2; cv2.IMREAD_COLOR_RGB; assert torch.cuda.is_available(), 'no CUDA device'" 2>>"$OUT/env.txt"; then
  echo "gpu_check: $PY lacks what the benchmark needs (see the end of $OUT/env.txt): a CUDA device, a CUDA build of torch with" \
       "torchvision, and OpenCV >= 4.10" | tee -a "$OUT/env.txt"
  exit 2
fi

# 1. Optical flow (the longest part is OpenCV's reference flow of the 128 pairs on the CPU cores).
rc=0
rm -f "$OUT/flow.json"
timeout "$FLOW_LIMIT" "$PY" -m tools.benchmark_flow --device cuda --backends opencv,torch --sizes 340x256 \
    --batch-sizes 8,32,128 --pairs 128 --repeats 1 --threads "$(nproc)" > "$OUT/flow.log" 2>&1 \
  && tail -n 1 "$OUT/flow.log" > "$OUT/flow.json" || { echo "flow: failed (exit $?), see $OUT/flow.log"; rc=1; }
cat "$OUT/flow.log" | grep -v '^{' | tail -n 20

# 2. The input pipeline and the model.
if ! grep -q '"flow_texture": "realistic"' "$DATA/synthetic.json" 2>/dev/null; then
  rm -rf "$DATA"
  # 6 classes x 30 videos, 24-48 frames: ~180 videos, ~6.5k RGB + 6.3k x 2 flow JPEGs
  timeout 150 "$PY" -m tools.make_synthetic "$DATA" --width 340 --height 256 \
      --videos-per-class 30 --min-frames 24 --max-frames 48 --flow-texture realistic 2>&1 | tee "$OUT/make_synthetic.log"
fi
# Packs (one file per video and source; the layout training prefers when present): the
# loader's fast path. A few seconds.
[ -d "$DATA/packed" ] || timeout 60 "$PY" -m tools.pack_frames --data-root "$DATA" --workers 8 2>&1 | tail -2 | tee "$OUT/pack_frames.log"

# Spatial: batch 64 (3 x 64 = 192 images per step). Motion: batch 32, the motion stream's default
# (a classic float batch of 32 motion videos is 385 MB; prefetch 2 x 16 workers of them must fit
# in /dev/shm). Eval: the default protocol (19 positions, 1 crop), 160 videos.
COMMON=(--data-root "$DATA" --layout packed --device cuda --amp --workers "$WORKERS" --crop-size 224 --test-frames 19
        --warmup 3 --step-batches 30 --eval-videos 160 --test-batch-size 8 --repeats 1 --train-batches 30)
for decode in cpu gpu; do
  for stream in spatial motion; do
    if [ "$stream" = spatial ]; then size=(--batch-size 64 --batches 30); else size=(--batch-size 32 --batches 15); fi
    name="bench_${stream}_${decode}"
    rm -f "$OUT/$name.json"  # a result of an earlier run must not pass for this one
    timeout "$LIMIT" "$PY" -m tools.benchmark --stream "$stream" --decode "$decode" "${size[@]}" "${COMMON[@]}" \
        --json "$OUT/$name.json" > "$OUT/$name.log" 2>&1 || { echo "$name: failed (exit $?), see $OUT/$name.log"; rc=1; }
    tail -n 20 "$OUT/$name.log"
  done
done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>&1 | tail -1 >> "$OUT/env.txt"
"$PY" -m tools.bench_summary "$OUT"/bench_{spatial,motion}_{cpu,gpu}.json --out "$OUT/summary.md" || rc=1
ls -l "$OUT"
exit $rc
