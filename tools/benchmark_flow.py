"""TV-L1 flow benchmark: OpenCV's CPU estimator and the PyTorch one side by side, in one run.

    python -m tools.benchmark_flow                                   # 340x256, cpu, batch 1 and 8
    python -m tools.benchmark_flow --sizes 340x256,96x72 --batch-sizes 1,8,32 --threads 2
    python -m tools.benchmark_flow --device cuda --backends opencv,torch --batch-sizes 1,8,32,128
    python -m tools.benchmark_flow --video vtest.avi --pairs 8        # real footage, resized

On the same frame pairs (tools/flow_scenes.py scenes, or consecutive frames of --video turned
grey and resized), for every size it measures:

1. speed: pairs/s of the OpenCV backend (one pair at a time) and of the torch backend at each
   batch size (pairs solved together: tvl1_flow's max_batch) on --device, each run over the
   same --pairs pairs; the runs alternate (one of
   each per repeat, the order rotating) and a cell is the median of --repeats; torch runs one
   untimed warm-up first; peak GPU memory per batch size on CUDA;
2. agreement of the torch flow with OpenCV's: mean end-point error, its 95th percentile, the
   share of pixels within 0.5 px, and the photometric warp error ratio (torch / OpenCV; frame
   t+1 warped back onto frame t with the flow, bilinear, mean absolute difference over pixels
   whose source point lies in the image); on scenes also each method's error to the true flow.

Both libraries get --threads threads (torch.set_num_threads, cv2.setNumThreads). Prints a
table, then one JSON line: {"flow_pairs_per_s": [{"backend", "device", "batch", "size",
"threads", "pairs_per_s"}, ...], "agreement": [...], "peak_gpu_mb": [...], ...}.
"""
import json
import os
import platform
import statistics
import sys
import time

import cv2
import numpy as np
import torch

from dataloader import tvl1
from dataloader.flow import FLOW_BACKENDS, compute_flow_batch
from engine.arg_types import OneLineParser, int_up_to, seed_number
from tools.flow_scenes import make_pair, parse_size


# ---------------------------------------------------------------- agreement
def warp_error(prev, nxt, flow):
    """Mean |next(x + flow(x)) - prev(x)| (bilinear) over pixels x whose point x + flow(x)
    lies in the image: how well the flow explains the second frame."""
    h, w = prev.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    warped = cv2.remap(nxt.astype(np.float32), mx, my, cv2.INTER_LINEAR)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return float(np.abs(warped - prev.astype(np.float32))[inside].mean())


def agreement(flow, ref, prevs, nexts):
    """How closely flow (N, H, W, 2) follows ref over all pixels of all pairs: mean and 95th
    percentile of the end-point error, share within 0.5 px, and the ratio of the mean warp
    errors (flow's / ref's; below 1: flow explains the frames better)."""
    epe = np.hypot(flow[..., 0] - ref[..., 0], flow[..., 1] - ref[..., 1])
    ours = np.mean([warp_error(a, b, f) for a, b, f in zip(prevs, nexts, flow)])
    theirs = np.mean([warp_error(a, b, f) for a, b, f in zip(prevs, nexts, ref)])
    return {"epe_mean": float(epe.mean()), "epe_p95": float(np.percentile(epe, 95)),
            "within_0_5": float(np.mean(epe <= 0.5)), "warp_error": float(ours),
            "warp_error_ref": float(theirs), "warp_ratio": float(ours / theirs)}


# ---------------------------------------------------------------- material
def scene_pairs(n, width, height, seed):
    """n flow_scenes pairs: (prevs, nexts, true flows)."""
    pairs = [make_pair(width, height, seed + i) for i in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs], np.stack([p[2] for p in pairs])


def video_pairs(path, n, width, height, step=7):
    """n pairs of consecutive frames (t, t + 1) every `step` frames of a video, grey, resized
    to width x height (INTER_AREA)."""
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        print(f"python -m tools.benchmark_flow: error: --video {path}: OpenCV cannot open it as a video", file=sys.stderr)
        raise SystemExit(2)
    prevs, nexts, last, index = [], [], None, 0
    while len(prevs) < n:
        ok, frame = cap.read()
        if not ok:
            break
        grey = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (width, height),
                          interpolation=cv2.INTER_AREA)
        if last is not None and (index - 1) % step == 0:
            prevs.append(last)
            nexts.append(grey)
        last, index = grey, index + 1
    if not prevs:
        print(f"python -m tools.benchmark_flow: error: --video {path}: no frame pairs in it", file=sys.stderr)
        raise SystemExit(2)
    return prevs, nexts, None


# ---------------------------------------------------------------- timing
def run_backend(backend, batch, prevs, nexts, device):
    """Flow of all pairs (N, H, W, 2). opencv: compute_flow_batch (one pair at a time);
    torch: tvl1_flow in chunks of exactly `batch` pairs, frames to the device and back
    included (compute_flow_batch would pick its own chunks)."""
    if backend == "opencv":
        return compute_flow_batch(prevs, nexts, backend="opencv")
    flow = tvl1.tvl1_flow(tvl1.grey_frames(prevs, device), tvl1.grey_frames(nexts, device),
                          max_batch=batch).cpu().numpy()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return flow


def measure(configs, prevs, nexts, device, repeats):
    """{config: (median seconds, flow, peak GPU MB or None)}; configs (backend, batch) run
    alternately, the order rotating each repeat."""
    cuda = str(device).startswith("cuda")
    times, flows, peaks = {c: [] for c in configs}, {}, {}
    for backend, batch in configs:  # warm-up: allocator, kernels, OpenCV's first call
        run_backend(backend, batch, prevs[:batch], nexts[:batch], device)
    for r in range(repeats):
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        for backend, batch in order:
            if cuda and backend == "torch":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            flows[backend, batch] = run_backend(backend, batch, prevs, nexts, device)
            times[backend, batch].append(time.perf_counter() - t0)
            if cuda and backend == "torch":
                peaks[backend, batch] = torch.cuda.max_memory_allocated() / 2 ** 20
    return {c: (statistics.median(times[c]), flows[c], peaks.get(c)) for c in configs}


# ---------------------------------------------------------------- main
def cpu_name():
    """The CPU's model name and core count (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return f"{names[0]}, {len(names)} cores"
    except (OSError, IndexError):
        return platform.processor() or platform.machine()


MAX_PAIRS = 10_000


def parse_args(argv=None):
    parser = OneLineParser(prog="python -m tools.benchmark_flow", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="340x256", help="WIDTHxHEIGHT[,WIDTHxHEIGHT...]")
    parser.add_argument("--batch-sizes", default="1,8", help="torch batch sizes, e.g. 1,8,32")
    parser.add_argument("--backends", default="opencv,torch", help=",".join(FLOW_BACKENDS))
    parser.add_argument("--device", default="cpu", help="the torch backend's device (cpu, cuda)")
    parser.add_argument("--pairs", type=int_up_to(MAX_PAIRS, "minutes of TV-L1 already"), default=8,
                        help="pairs per run (at least the largest batch size)")
    parser.add_argument("--threads", type=int_up_to(1024, "threads"), default=torch.get_num_threads(),
                        help="threads for both libraries (default: torch's current number)")
    parser.add_argument("--repeats", type=int_up_to(100, "repeats"), default=3)
    parser.add_argument("--seed", type=seed_number, default=0)
    parser.add_argument("--video", help="take pairs of consecutive frames of this video instead")
    args = parser.parse_args(argv)
    try:
        args.sizes = [parse_size(s) for s in args.sizes.split(",")]
    except ValueError as e:
        parser.error(f"--sizes: {e}")
    try:
        args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        parser.error(f"--batch-sizes takes integers (e.g. 1,8,32), got '{args.batch_sizes}'")
    if not all(1 <= b <= MAX_PAIRS for b in args.batch_sizes):
        parser.error(f"--batch-sizes: each must be 1..{MAX_PAIRS}")
    if "torch" in args.backends.split(",") and args.pairs < max(args.batch_sizes):
        parser.error(f"--pairs {args.pairs} is below the largest of --batch-sizes ({max(args.batch_sizes)}): "
                     "that batch would time fewer pairs than it holds")
    if args.video and not os.path.isfile(args.video):
        what = "is a folder" if os.path.isdir(args.video) else "no such file"
        parser.error(f"--video {args.video}: {what}; expected a video file")
    args.backends = args.backends.split(",")
    if not set(args.backends) <= set(FLOW_BACKENDS):
        parser.error(f"--backends: choose from {', '.join(FLOW_BACKENDS)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device")
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    configs = ([("opencv", 1)] if "opencv" in args.backends else []) + \
              ([("torch", b) for b in args.batch_sizes] if "torch" in args.backends else [])
    machine = cpu_name() + (f", {torch.cuda.get_device_name(args.device)}"
                            if args.device.startswith("cuda") else "")
    print(f"threads {args.threads}, torch device {args.device} ({machine}), "
          f"torch {torch.__version__}, OpenCV {cv2.__version__}, {args.repeats} repeats")
    speed, agree, peaks = [], [], []
    for width, height in args.sizes:
        n = max(args.pairs, max(args.batch_sizes) if "torch" in args.backends else 1)
        prevs, nexts, truth = (video_pairs(args.video, n, width, height) if args.video
                               else scene_pairs(n, width, height, args.seed))
        n = len(prevs)
        size = f"{width}x{height}"
        results = measure(configs, prevs, nexts, args.device, args.repeats)
        print(f"\n{size}, {n} pairs ({'video ' + args.video if args.video else 'flow_scenes'})")
        print("| backend | device | batch | pairs/s | s/pair | peak GPU MB |")
        print("|---|---|---|---|---|---|")
        for (backend, batch), (seconds, flow, peak) in results.items():
            device = "cpu" if backend == "opencv" else args.device
            rate = n / seconds
            speed.append(dict(backend=backend, device=device, batch=batch, size=size,
                              threads=args.threads, pairs_per_s=round(rate, 4)))
            if peak is not None:
                peaks.append(dict(batch=batch, size=size, peak_gpu_mb=round(peak, 1)))
            print(f"| {backend} | {device} | {batch if backend == 'torch' else '-'} | "
                  f"{rate:.3f} | {1 / rate:.3f} | {'-' if peak is None else f'{peak:.0f}'} |")
        if ("opencv", 1) in results and len(configs) > 1:
            ref = results["opencv", 1][1]
            torch_flow = results[configs[-1]][1]
            a = agreement(torch_flow, ref, prevs, nexts)
            line = (f"torch vs opencv: EPE mean {a['epe_mean']:.4f} px, p95 {a['epe_p95']:.4f} px, "
                    f"{100 * a['within_0_5']:.2f} % within 0.5 px, warp error "
                    f"{a['warp_error']:.3f} vs {a['warp_error_ref']:.3f} (ratio {a['warp_ratio']:.4f})")
            if truth is not None:
                to_truth = lambda f: float(np.hypot(*(f - truth).transpose(3, 0, 1, 2)).mean())
                a["epe_to_truth"] = {"torch": to_truth(torch_flow), "opencv": to_truth(ref)}
                line += (f"; EPE to the true flow: torch {a['epe_to_truth']['torch']:.3f}, "
                         f"opencv {a['epe_to_truth']['opencv']:.3f}")
            print(line)
            agree.append(dict(size=size, pairs=n, material=args.video or "flow_scenes", **a))
        rates = {(s["backend"], s["batch"]): s["pairs_per_s"] for s in speed if s["size"] == size}
        if ("opencv", 1) in rates:
            for b in (b for (k, b) in rates if k == "torch"):
                print(f"torch batch {b} / opencv: {rates['torch', b] / rates['opencv', 1]:.2f}x")
    print(json.dumps({"flow_pairs_per_s": speed, "agreement": agree, "peak_gpu_mb": peaks,
                      "threads": args.threads, "device": args.device, "machine": machine}))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\npython -m tools.benchmark_flow: interrupted; nothing was written", file=sys.stderr)
        sys.exit(130)
