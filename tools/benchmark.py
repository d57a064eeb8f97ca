"""Input-pipeline and training-throughput benchmark, side by side in one run.

    python -m tools.benchmark --stream motion --device cpu            # synthetic 340x256 set
    python -m tools.benchmark --data-root data/ucf101 --stream spatial --device cuda --workers 16 --batch-size 64

Measures, on the same videos and the same sample positions / crops / flips (the data sets come
from engine.data.build_data, as in training: tools/bench_data.py; the measurements are in
tools/bench_loader.py and tools/bench_model.py, the baseline in tools/bench_classic.py):

1. pipeline  the project's data pipeline alone: ClipDataset + engine.data.make_loader + the
             device-side flip/normalise (engine.loop.to_device -> to_network_input); also the
             same loader without the flip/normalise (uint8 batches: what the CPU must
             deliver when the flip/normalise runs on a GPU);
2. classic   a BASELINE written the way the original two-stream code loaded data (one PIL
             Image.open per frame, per-frame torchvision transforms in float, per-frame
             torch.cat for the flow stack, default collate), same workers, same items;
3. step      the model step alone (forward + backward + SGD step) on a batch already on the
             device, with the engine's AMP / channels_last choices;
4. train     end-to-end training with engine.loop.train_one_epoch over the real loader, and the
             fraction of the wall time spent waiting for the next batch;
5. eval      video-level evaluation with engine.loop.evaluate and the default test protocol;
6. projected UCF101 split-1 train-epoch (9537 videos) and test-pass (3783 videos) times.

With --decode gpu (CUDA only) the pipeline is the training scripts' --decode gpu path: the
workers deliver JPEG bytes (EncodedBatch, dataloader/encoded.py), the loader-only rate is
theirs, and to_device decodes on the GPU; it also measures the GPU decode rate alone
(decode_clips on batches already in memory, synchronised: gpu_decode_frames_per_s).

A "sample" is one training video item (K segments). Rates exclude warm-up batches (worker
start-up, first decodes, cuDNN autotuning). Prints a Markdown table, then one JSON line.
"""
import argparse
import json
import math
import os
import shutil
import sys

import torch

import utils
from dataloader.catalog import DATASETS
from dataloader.encoded import DECODE_CHOICES
from dataloader.layout import LAYOUTS
from engine.arg_types import seed_number, worker_count
from engine.data import check_decode
from engine.runtime import enable_huge_pages, pick_device, set_cpu_threads
from engine.streams import STREAMS, in_channels
from network.backbones import ARCHS, DEFAULT_ARCH
from network.model import build_model, build_optimizer
from tools.bench_data import build_sets, loop_config, prepare_data, uses_synthetic
from tools.bench_loader import feeding, measure_gpu_decode, measure_loaders
from tools.bench_model import measure_eval, measure_step, measure_train

UCF101_TRAIN_VIDEOS, UCF101_TEST_VIDEOS = 9537, 3783  # split 1


# ---------------------------------------------------------------------- options
def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m tools.benchmark",
        description="Benchmark the data pipeline against a classic PIL/torchvision baseline, the model "
                    "step, end-to-end training and evaluation; project UCF101 epoch times.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--data-root", help="frames and split lists as for training; unset: a synthetic set is "
                   "generated (see --synthetic)")
    d.add_argument("--synthetic", action="store_true",
                   help="generate a synthetic set in a temporary folder (the default when --data-root is missing)")
    d.add_argument("--frame-width", type=int, default=340, help="synthetic frame width (UCF101 dumps: 340)")
    d.add_argument("--frame-height", type=int, default=256, help="synthetic frame height (UCF101 dumps: 256)")
    d.add_argument("--synthetic-videos", type=int, default=10, help="synthetic videos per class (6 classes)")
    d.add_argument("--synthetic-frames", type=int, nargs=2, default=(24, 48), metavar=("MIN", "MAX"),
                   help="synthetic RGB frames per video")
    d.add_argument("--flow-texture", choices=("plain", "realistic"), default="realistic",
                   help="synthetic flow: realistic = JPEGs of the size and texture of real TV-L1 dumps (4-8 KB at "
                        "340x256); plain = the learning demo's flat flow with white noise")
    d.add_argument("--keep-data", action="store_true", help="keep the generated synthetic set (its path goes into the JSON as synthetic_data)")
    d.add_argument("--dataset", choices=DATASETS, default="ucf101", help="which split lists to read")
    d.add_argument("--splits-dir", help="split-list folder; unset: the standard one under the data root")
    d.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split number")
    d.add_argument("--layout", choices=LAYOUTS, default="auto",
                   help="frame layout; with the synthetic set, packed packs its frames first (tools.pack_frames)")

    s = p.add_argument_group("what to run")
    s.add_argument("--stream", choices=("spatial", "motion"), default="spatial", help="which stream's data and model")
    s.add_argument("--arch", choices=ARCHS, default=DEFAULT_ARCH, help="the model's backbone")
    s.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available")
    s.add_argument("--decode", choices=DECODE_CHOICES, default="cpu",
                   help="as the training scripts: cpu = the workers decode with OpenCV; gpu = the workers send JPEG "
                        "bytes and torchvision decodes them on the GPU (needs --device cuda); also measures the GPU "
                        "decode rate alone")
    s.add_argument("--workers", type=worker_count(), default=min(8, os.cpu_count() or 1),
                   help="data-loading processes (the same for the pipeline and the baseline)")
    s.add_argument("--batch-size", type=int, default=8, help="training videos per batch")
    s.add_argument("--crop-size", type=int, default=224, help="square crop fed to the network")
    s.add_argument("--num-segments", type=int, default=3, help="TSN segments K per training video")
    s.add_argument("--stack", type=int, default=10, help="flow frames L per position (motion: 2L channels)")
    s.add_argument("--batches", type=int, default=20,
                   help="timed batches for the data pipeline and for the baseline (each repeat)")
    s.add_argument("--repeats", type=int, default=1,
                   help="time pipeline and baseline this many times, alternating; the median rate counts "
                        "(steadier on a busy machine)")
    s.add_argument("--warmup", type=int, default=2, help="warm-up batches before each timing, not counted")
    s.add_argument("--step-batches", type=int, default=10, help="timed model steps on one device-resident batch")
    s.add_argument("--train-batches", type=int, default=10, help="timed end-to-end training batches")
    s.add_argument("--eval-videos", type=int, default=16,
                   help="videos for the evaluation rate, spread over the test list then the training list "
                        "(a small set has few test videos). One engine.loop.evaluate call, worker start-up included")
    s.add_argument("--test-batch-size", type=int, default=8, help="videos per evaluation batch (engine default)")
    s.add_argument("--test-frames", type=int, default=19, help="test positions per video (the default protocol)")
    s.add_argument("--test-crops", type=int, default=1, choices=(1, 3, 10), help="crops per test position")
    s.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 autocast (default: as the engine, on for CUDA with bf16, off for CPU)")
    s.add_argument("--threads", type=int,
                   help="intra-op threads of this process (torch.set_num_threads) during the run; default: "
                        "as the training scripts (on the CPU: the cores the workers leave free, at least 1)")
    s.add_argument("--target-samples-per-s", type=float,
                   help="sample rate the loader must feed, for workers_to_feed (e.g. a GPU's step rate when "
                        "measuring on a CPU); default: the model step rate measured in this run")
    s.add_argument("--seed", type=seed_number, default=0, help="seed for the items, crops, flips and the model")
    s.add_argument("--json", metavar="PATH", help="also write the JSON line to PATH")
    return p


# Upper bounds: a typo (an extra zero or three) must not run for days or allocate terabytes.
LIMITS = {"batch_size": 1024, "crop_size": 4096, "num_segments": 64, "stack": 64, "batches": 10_000, "repeats": 100,
          "warmup": 1000, "step_batches": 10_000, "train_batches": 10_000, "eval_videos": 100_000,
          "test_batch_size": 1024, "test_frames": 250, "synthetic_videos": 10_000, "frame_width": 4096,
          "frame_height": 4096}


def check_options(args):
    for name, limit in LIMITS.items():
        if not 1 <= getattr(args, name) <= limit:
            raise ValueError(f"--{name.replace('_', '-')} must be 1..{limit}, got {getattr(args, name)}")
    if args.target_samples_per_s is not None and not args.target_samples_per_s > 0:
        raise ValueError("--target-samples-per-s must be positive")
    if args.threads is not None and not 1 <= args.threads <= 1024:
        raise ValueError(f"--threads must be 1..1024, got {args.threads}")


# ------------------------------------------------------------------------ report
def markdown(r):
    k = r["num_segments"]
    rows = [
        ("data pipeline (the dataset + make_loader + to_device)", f"{r['pipeline_samples_per_s']:.1f}",
         "samples/s", f"{r['workers']} workers; {'flip/normalise' if r['decode'] == 'cpu' else 'decode, crop, flip/normalise'} on {r['device']} took "
         f"{100 * r['pipeline_transform_fraction']:.0f}% of the time"),
        ("data pipeline, loader only (what the workers deliver: uint8 clips, or JPEG bytes with --decode gpu)",
         f"{r['pipeline_uint8_samples_per_s']:.1f}", "samples/s",
         f"{r['pipeline_uint8_samples_per_s'] / r['classic_samples_per_s']:.2f}x the baseline"),
        ("classic baseline (PIL per frame, float transforms, default collate)",
         f"{r['classic_samples_per_s']:.1f}", "samples/s", "same workers, videos, positions, crops, flips"),
        ("speedup (pipeline / classic)", f"{r['speedup']:.2f}", "x", ""),
        ("bare JPEG decode of the same frames, one core (cv2.imdecode from memory)",
         f"{r['decode_frames_per_s']:.0f}", "frames/s", f"{r['mean_frame_bytes'] / 1000:.1f} KB per frame"),
        ("loader per worker (loader only / workers)", f"{r['loader_samples_per_s_per_worker']:.1f}", "samples/s",
         f"{r['loader_samples_per_s_per_worker'] * r['frames_per_sample']:.0f} frames/s "
         f"({r['frames_per_sample']:.1f} frames decoded per sample)"),
        ("decode efficiency (loader frames/s per worker / bare decode)", f"{r['decode_efficiency']:.2f}", "",
         "1.0 = the loader only decodes" if r["decode"] == "cpu" else
         "--decode gpu: the workers only read bytes (above 1: faster than a decoding worker)"),
        ("workers to feed the target rate", f"{r['workers_to_feed']}", "workers",
         f"target {r['target_samples_per_s']:.1f} samples/s"
         f"{' (given)' if r['target_given'] else ' (the model step here)'}"),
        ("model step alone (forward + backward, data on the device)", f"{r['step_samples_per_s']:.1f}",
         "samples/s", f"{r['step_samples_per_s'] * k:.0f} images/s; amp={r['amp']}"),
        ("end-to-end training (engine.loop.train_one_epoch)", f"{r['train_samples_per_s']:.1f}", "samples/s",
         f"waiting for data {100 * r['data_wait_fraction']:.1f}% of the wall time"),
        ("video-level evaluation (engine.loop.evaluate)", f"{r['eval_videos_per_s']:.2f}", "videos/s",
         f"{r['test_frames']} positions x {r['test_crops']} crop(s) per video"),
        ("projected UCF101 split-1 train epoch", f"{r['projected_epoch_s']:.0f}", "s",
         f"{UCF101_TRAIN_VIDEOS} videos = {r['projected_epoch_s'] / 60:.1f} min"),
        ("projected UCF101 split-1 test pass", f"{r['projected_test_s']:.0f}", "s",
         f"{UCF101_TEST_VIDEOS} videos = {r['projected_test_s'] / 60:.1f} min"),
    ]
    head = (f"{r['stream']} stream ({r['arch']}), {r['device']}, --decode {r['decode']}, {r['workers']} workers, batch "
            f"{r['batch_size']} x {k} segments, crop {r['crop_size']}, frames {r['frame_size']}, {r['layout']} layout")
    lines = [f"**{head}**", "", "| measurement | value | unit | notes |", "|---|---:|---|---|"]
    if r["decode"] == "gpu":
        rows.insert(5, ("GPU decode alone (decode_clips: batched decode_jpeg + crops, synchronised)",
                        f"{r['gpu_decode_frames_per_s']:.0f}", "frames/s", f"on {r['device']}"))
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def run(args):
    check_options(args)
    device = pick_device(args.device)
    check_decode(args.decode, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the engine
    spec = STREAMS[args.stream]
    modality = spec.modality
    loop = loop_config(args, device, modality)
    root = prepare_data(args)
    try:
        classes, train, test, classic = build_sets(args, spec, root)
        loaders = measure_loaders(args, train, classic, loop, device)
        gpu_decode_rate = measure_gpu_decode(args, train, device) if args.decode == "gpu" else None
        pipe_rate, classic_rate, batch = loaders.pop("pipeline"), loaders.pop("classic"), loaders.pop("batch")

        torch.manual_seed(args.seed)
        model = build_model(args.arch, len(classes), in_channels(spec, args.stack), device)
        optimizer = build_optimizer(model, spec.lr)
        step_rate = measure_step(model, optimizer, batch, device, args, loop)
        del batch
        train_rate, wait = measure_train(model, optimizer, train, device, args, loop)
        eval_rate = measure_eval(model, test, device, loop)
    finally:
        if uses_synthetic(args) and not args.keep_data:
            shutil.rmtree(root, ignore_errors=True)
    h, w = train.frame_size
    channels = 3 if modality == "rgb" else 2 * args.stack
    batch_mb = args.batch_size * args.num_segments * channels * args.crop_size ** 2 / 2 ** 20
    result = {
        "pipeline_samples_per_s": pipe_rate,
        "classic_samples_per_s": classic_rate,
        "speedup": pipe_rate / classic_rate,
        # the same loader without the flip/normalise (uint8 batches on the device; --decode gpu: the
        # EncodedBatches the workers deliver, not decoded)
        "pipeline_uint8_samples_per_s": loaders["uint8"],
        # share of the pipeline's timed pass spent in this process in to_device (flip/normalise; --decode gpu: and decode)
        "pipeline_transform_fraction": loaders["transform"],
        "step_samples_per_s": step_rate,
        # bare cv2.imdecode of the same frames (bytes in memory, one thread) vs the loader per worker
        # (with --decode gpu the workers read bytes only: the loader rate is theirs, not a decoding one)
        "decode_frames_per_s": loaders["decode"], "mean_frame_bytes": loaders["bytes"],
        "decode": args.decode, "gpu_decode_frames_per_s": gpu_decode_rate,  # None (null) with --decode cpu
        # frames the loader decodes per sample (K for RGB, K x L x 2 for flow, fewer where a
        # short video's stacks share frames); frames_per_sample_nominal: without sharing
        "frames_per_sample": loaders["frames"],
        "frames_per_sample_nominal": args.num_segments * (1 if modality == "rgb" else 2 * args.stack),
        **feeding(args, loaders["uint8"], loaders["decode"], loaders["frames"], step_rate),
        "train_samples_per_s": train_rate,
        "data_wait_fraction": wait,
        "eval_videos_per_s": eval_rate,
        "projected_epoch_s": UCF101_TRAIN_VIDEOS / train_rate,
        "projected_test_s": UCF101_TEST_VIDEOS / eval_rate,
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "stream": args.stream, "arch": args.arch, "workers": args.workers, "batch_size": args.batch_size,
        "crop_size": args.crop_size, "frame_size": f"{w}x{h}", "frame_width": w, "frame_height": h,
        "num_segments": args.num_segments, "stack": args.stack if modality == "flow" else 1,
        "amp": loop.amp, "channels_last": device.type == "cuda", "threads": torch.get_num_threads(),
        "test_frames": args.test_frames, "test_crops": args.test_crops,
        "batches": args.batches, "repeats": args.repeats, "train_batches": args.train_batches,
        "step_batches": args.step_batches, "eval_videos": len(test),
        # uint8 batches the pipeline can hold in flight: engine.data.make_loader's prefetch_factor x workers
        "pipeline_batch_mb": batch_mb,
        "pipeline_max_in_flight_batches": loaders["prefetch"] * args.workers,
        "pipeline_max_in_flight_mb": batch_mb * loaders["prefetch"] * args.workers,
        "target_given": args.target_samples_per_s is not None,
        "data": f"synthetic ({args.flow_texture} flow)" if uses_synthetic(args) else args.data_root,
        "layout": train.layout.name,
        "cpu_count": os.cpu_count(), "torch": torch.__version__,
    }
    if uses_synthetic(args) and args.keep_data:
        result["synthetic_data"] = root
    return result


def main(argv=None):
    enable_huge_pages()  # as the training scripts: what is measured is what they run
    args = build_parser().parse_args(argv)
    threads = torch.get_num_threads()
    try:
        if args.json:  # written at the end: fail now, not after the measurements
            utils.check_output_file(args.json, "--json", (".json",))
        if args.threads:
            torch.set_num_threads(args.threads)
        elif args.device == "cpu" or (args.device == "auto" and not torch.cuda.is_available()):
            set_cpu_threads(args.workers)
        result = run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    bad = [k for k, v in result.items() if isinstance(v, float) and not math.isfinite(v)]
    print(markdown(result))
    print()
    line = json.dumps(result)
    if args.json:
        utils.atomic_write(args.json, lambda f: f.write(line + "\n"), mode="w")
    print(line, flush=True)
    if bad:
        print(f"error: non-finite figures: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
