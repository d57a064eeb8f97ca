"""Input-pipeline and training-throughput benchmark, side by side in one run.

    python -m tools.benchmark --stream motion --device cpu            # synthetic 340x256 set
    python -m tools.benchmark --data-root data/ucf101 --stream spatial --device cuda --workers 16 --batch-size 64

Measures, on the same videos and the same sample positions / crops / flips:

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
import io
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms

import utils
from dataloader.datasets import EpochSampler, count_frames, decode_flag, read_bytes
from dataloader.encoded import DECODE_CHOICES, EncodedBatch, collate_encoded, decode_clips
from dataloader.layout import LAYOUTS, PACKED_DIR, open_layout
from dataloader.sampling import random_crop_box, sample_train_positions, stack_indices
from dataloader.splits import DATASETS, DEFAULT_SPLITS_SUBDIR, load_split
from dataloader.transforms import FLOW_MEAN, FLOW_STD, RGB_MEAN, RGB_STD
from engine.data import check_decode, dataset_class, make_loader
from engine.loop import LoopConfig, evaluate, to_device, train_one_epoch
from engine.runtime import autocast, default_amp, enable_huge_pages, pick_device, set_cpu_threads
from engine.streams import STREAMS, in_channels
from network.backbones import ARCHS, DEFAULT_ARCH
from network.model import build_model
from tools.pack_frames import pack_video

UCF101_TRAIN_VIDEOS, UCF101_TEST_VIDEOS = 9537, 3783  # split 1


# ------------------------------------------------------------------- the baseline
class ClassicClipDataset(Dataset):
    """BASELINE ONLY - not used for training. Training items loaded the way the original
    two-stream code did: one PIL `Image.open` per frame, per-frame torchvision transforms
    (crop, flip, ToTensor, Normalize) in float, the flow stack built by per-frame torch.cat,
    float items through the default collate.

    It draws the same positions, crop and flip as ClipDataset for an (index, epoch) item
    (same generator, same calls in the same order), and applies what the project applies
    (flow u -> 255 - u when mirrored, channel order u1, v1, ..., uL, vL, the same
    normalisation), so its output is the project's network input, computed the old way.
    Item: (clip float32 (K, C, crop, crop), label, index).
    """

    INVERT_U = True  # the tests switch it off to show that the comparison catches a missing inversion

    def __init__(self, entries, counts, layout, modality, *, frame_size, stack=10, crop_size=224,
                 num_segments=3, seed=0):
        self.entries, self.counts, self.layout, self.modality = entries, counts, layout, modality
        self.span = stack if modality == "flow" else 1
        self.crop, self.num_segments, self.seed = crop_size, num_segments, seed
        self.frame_size = tuple(frame_size)
        if modality == "rgb":
            self.normalize = transforms.Normalize(RGB_MEAN, RGB_STD)
        else:
            self.normalize = transforms.Normalize([FLOW_MEAN], [FLOW_STD])

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, item):
        index, epoch = item
        rng = np.random.default_rng([self.seed, epoch, index])  # as ClipDataset
        video, label = self.entries[index]
        n = self.counts[video]
        paths_of = self.layout.frame_paths(video, self.modality)
        h, w = self.frame_size
        c = self.crop
        positions = sample_train_positions(n, self.num_segments, self.span, rng)
        top, left = random_crop_box(h, w, c, rng)
        flip = bool(rng.random() < 0.5)
        ops = [transforms.Lambda(lambda im: TF.crop(im, top, left, c, c))]
        if flip:
            ops.append(transforms.RandomHorizontalFlip(p=1.0))
        ops.append(transforms.ToTensor())
        per_frame = transforms.Compose(ops)
        segments = []
        for p in positions:
            if self.modality == "rgb":
                with open_image(paths_of(int(p))) as im:
                    segments.append(self.normalize(per_frame(im.convert("RGB"))))
                continue
            stack = None
            for i in stack_indices(int(p), self.span, n):
                u_path, v_path = paths_of(int(i))
                with open_image(u_path) as im:
                    u = per_frame(im.convert("L"))
                with open_image(v_path) as im:
                    v = per_frame(im.convert("L"))
                if flip and self.INVERT_U:
                    u = 1.0 - u  # a mirrored flow field points the other way horizontally
                uv = torch.cat([self.normalize(u), self.normalize(v)])
                stack = uv if stack is None else torch.cat([stack, uv])
            segments.append(stack)
        return torch.stack(segments), label, index


# ---------------------------------------------------------------------- helpers
def open_image(path):
    """PIL image of a frame file, or of a PackedFrame's bytes (--layout packed)."""
    return Image.open(path if isinstance(path, str) else io.BytesIO(path.read()))


class ItemSampler(Sampler):
    """Yields a given list of (index, epoch) items; the list can be swapped between passes
    of a loader with persistent workers (warm-up pass, then the timed pass)."""

    def __init__(self, items=()):
        self.items = list(items)

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


class WaitTimer:
    """Wraps a loader; adds up the time spent waiting in next(), i.e. waiting for data."""

    def __init__(self, loader):
        self.loader, self.wait = loader, 0.0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        it = iter(self.loader)
        while True:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                self.wait += time.perf_counter() - t
                return
            self.wait += time.perf_counter() - t
            yield batch


def training_items(size, seed, count):
    """The first `count` (index, epoch) items of the training order, epoch after epoch."""
    items, epoch = [], 0
    sampler = EpochSampler(size, seed)
    while len(items) < count:
        sampler.set_epoch(epoch)
        items.extend(sampler)
        epoch += 1
    return items[:count]


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release(loader):
    """Stop a loader's persistent workers now (they would otherwise hold CPU memory and
    compete with the next measurement until garbage-collected)."""
    it = getattr(loader, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()
    loader._iterator = None


def time_loader(loader, sampler, warm_items, timed_items, consume, device, on_start=None):
    """Samples/s of one timed pass over `timed_items`, after a full warm-up pass through
    the same (persistent) workers. The timed pass starts with empty queues, so its time
    includes filling the pipeline (conservative)."""
    sampler.items = warm_items
    for batch in loader:
        consume(batch)
    synchronize(device)
    sampler.items = timed_items
    if on_start:
        on_start()
    start, n = time.perf_counter(), 0
    for batch in loader:
        n += consume(batch).shape[0]
    synchronize(device)
    return n, time.perf_counter() - start


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
    s.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
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
    s.add_argument("--seed", type=int, default=0, help="seed for the items, crops, flips and the model")
    s.add_argument("--json", metavar="PATH", help="also write the JSON line to PATH")
    return p


def check_options(args):
    for name in ("batch_size", "crop_size", "num_segments", "stack", "batches", "repeats", "warmup",
                 "step_batches", "train_batches", "eval_videos", "test_batch_size", "test_frames"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if args.workers < 0:
        raise ValueError("--workers must be 0 or more")
    if args.target_samples_per_s is not None and not args.target_samples_per_s > 0:
        raise ValueError("--target-samples-per-s must be positive")
    if args.threads is not None and args.threads < 1:
        raise ValueError("--threads must be at least 1")


# ------------------------------------------------------------------------- data
def uses_synthetic(args):
    return args.synthetic or not args.data_root


def prepare_data(args):
    """The data root: --data-root, or a synthetic set generated in a temporary folder."""
    if not uses_synthetic(args):
        return args.data_root
    from dataloader.synthetic import generate
    root = tempfile.mkdtemp(prefix="benchmark-synthetic-")
    lo, hi = args.synthetic_frames
    options = dict(appearances=3, motions=2, videos_per_class=args.synthetic_videos, width=args.frame_width,
                   height=args.frame_height, min_frames=lo, max_frames=hi, seed=args.seed, verbose=False,
                   flow_texture=args.flow_texture)
    # In a spawned process: generating (OpenCV resizes and blurs large images) starts OpenCV's
    # thread pool, and data workers forked later from a process with that pool hung (futex).
    import multiprocessing
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(generate, (root,), options)
    if args.layout == "packed":  # one file per video and source, as python -m tools.pack_frames writes
        layout = open_layout("twostream", root, allow_packed=False)
        for modality in ("rgb", "flow"):
            for video in layout.videos(modality):
                pack_video(layout, video, modality, os.path.join(root, PACKED_DIR))
    return root


def build_sets(args, root, modality):
    splits_dir = args.splits_dir or os.path.join(root, DEFAULT_SPLITS_SUBDIR[args.dataset])
    split = load_split(args.dataset, splits_dir, args.split)
    layout = open_layout(args.layout, root)
    # Spread over the test list, then the training list if more videos are asked for than
    # a small set has test videos (the rate depends on the protocol, not on the split).
    pool = split.test + split.train
    step = max(1, len(pool) // args.eval_videos)
    test_entries = pool[::step][:args.eval_videos]
    counts = count_frames(split.train + test_entries, layout, modality)
    common = dict(stack=args.stack, crop_size=args.crop_size, num_segments=args.num_segments,
                  test_frames=args.test_frames, test_crops=args.test_crops, seed=args.seed)
    kind = dataset_class(args.decode)
    train = kind(split.train, counts, layout, modality, train=True, **common)
    test = kind(test_entries, counts, layout, modality, train=False, frame_size=train.frame_size, **common)
    classic = ClassicClipDataset(split.train, counts, layout, modality, frame_size=train.frame_size,
                                 stack=args.stack, crop_size=args.crop_size, num_segments=args.num_segments,
                                 seed=args.seed)
    return split.classes, train, test, classic


def loop_config(args, device, modality):
    """The training loops' settings, as the training scripts would set them (no progress bars)."""
    amp = default_amp(device) if args.amp is None else args.amp
    return LoopConfig(modality, amp, args.workers, args.test_batch_size, args.seed, progress=False)


# ------------------------------------------------------------------- measurements
def measure_loaders(args, train, classic, loop, device):
    """{pipeline, uint8 (the same loader without flip/normalise), classic: samples/s;
    transform: share of the pipeline's time spent in _to_device in this process; prefetch:
    the loader's prefetch factor; batch: a batch on the device for the model step}."""
    b = args.batch_size
    warm_n, timed_n = args.warmup * b, args.batches * b
    items = training_items(len(train), args.seed, (warm_n + timed_n) * args.repeats)
    pipe_sampler, classic_sampler = ItemSampler(), ItemSampler()
    pipe = make_loader(train, b, device, args.workers, args.seed, sampler=pipe_sampler, persistent=True)
    old = DataLoader(classic, batch_size=b, sampler=classic_sampler, num_workers=args.workers,
                     pin_memory=pipe.pin_memory, persistent_workers=args.workers > 0,
                     prefetch_factor=pipe.prefetch_factor if args.workers > 0 else None)
    kept = {"transform_s": 0.0, "prefetch": pipe.prefetch_factor or 0}

    def pipe_consume(batch):
        t = time.perf_counter()
        x, y = to_device(batch, device, loop.modality)
        kept["batch"] = (x, y)
        kept["transform_s"] += time.perf_counter() - t
        return x

    def touch(x):
        if device.type == "cpu":
            # A batch arrives as shared memory not yet mapped into this process; the network
            # would fault its pages in when reading it. Touch one value per 4 KiB page so that
            # the batch is as resident as the pipeline's output (which to_network_input wrote).
            flat = x.as_strided((x.numel(),), (1,), x.storage_offset())  # dense; RGB clips are a permuted view
            flat[::4096 // x.element_size()].sum()
        return x

    def uint8_consume(batch):  # the loader alone: uint8 clips on the device, no flip/normalise
        labels = torch.from_numpy(batch.labels).to(device, non_blocking=True)
        if isinstance(batch, EncodedBatch):  # --decode gpu: JPEG bytes, which stay on the CPU for decode_jpeg
            touch(batch.data)
            return labels
        x = touch(batch.clips.to(device, non_blocking=True))
        batch.release()  # as to_device: done with the worker's buffer (on a GPU the pin thread releases it)
        return x

    def classic_consume(batch):
        batch[1].to(device, non_blocking=True)
        return touch(batch[0].to(device, non_blocking=True))

    rates = {"pipeline": [], "uint8": [], "classic": [], "transform": [], "decode": [], "frames": [], "bytes": []}
    try:
        for r in range(args.repeats):  # alternate, so that a change of machine load hits both
            chunk = items[r * (warm_n + timed_n):(r + 1) * (warm_n + timed_n)]
            warm, timed = chunk[:warm_n], chunk[warm_n:]
            n, wall = time_loader(pipe, pipe_sampler, warm, timed, pipe_consume, device,
                                  on_start=lambda: kept.update(transform_s=0.0))
            rates["pipeline"].append(n / wall)
            rates["transform"].append(kept["transform_s"] / wall)
            # The bare decode of the timed items' frames right beside the loader that decodes them
            decode_rate, frame_bytes, frames = measure_decode(train, timed)
            rates["decode"].append(decode_rate)
            rates["bytes"].append(frame_bytes)
            rates["frames"].append(frames / len(timed))
            n, wall = time_loader(pipe, pipe_sampler, warm, timed, uint8_consume, device)
            rates["uint8"].append(n / wall)
            n, wall = time_loader(old, classic_sampler, warm, timed, classic_consume, device)
            rates["classic"].append(n / wall)
    finally:
        release(pipe)
        release(old)
    result = {k: statistics.median(v) for k, v in rates.items()}
    return result | {"prefetch": kept["prefetch"], "batch": kept["batch"]}


def measure_decode(train, items):
    """Bare JPEG decoding of the frames `items` read, on one core: (frames/s, mean bytes per
    frame, frames). cv2.imdecode of bytes already in memory (no file opens, no crops), one
    thread, with the flags the loader's workers use. A frame an item uses twice (clamped
    stacks of short videos) counts once, as the loader decodes it once. Median of 3 passes."""
    frames = [f for item in items for pair in train.item_frames(item)
              for f in (pair if isinstance(pair, tuple) else (pair,))]
    data = [np.frombuffer(read_bytes(f), np.uint8) for f in frames]
    flag = decode_flag(train.modality)
    # One thread: this one (OpenCV decodes a JPEG in the calling thread). cv2.setNumThreads is
    # not touched here: changing OpenCV's pool in this process hung data workers forked later.
    for d in data[:20]:  # warm-up
        cv2.imdecode(d, flag)
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        for d in data:
            cv2.imdecode(d, flag)
        rates.append(len(data) / (time.perf_counter() - start))
    return statistics.median(rates), float(np.mean([len(d) for d in data])), len(data)


def measure_gpu_decode(args, train, device):
    """Frames/s of dataloader.encoded.decode_clips on the device (batched decode + crops),
    synchronised, on EncodedBatches of training items gathered beforehand (pinned on CUDA, as
    the loader delivers them): the device's decode rate without any loader. A frame is one
    JPEG: an RGB frame, or one flow component (u or v), as in decode_frames_per_s."""
    b = args.batch_size
    items = training_items(len(train), args.seed, (args.warmup + args.batches) * b)
    batches = [collate_encoded([train[i] for i in items[k:k + b]]) for k in range(0, len(items), b)]
    if device.type == "cuda":
        batches = [batch._replace(data=batch.data.pin_memory()) for batch in batches]
    for batch in batches[:args.warmup]:
        decode_clips(batch, device)
    synchronize(device)
    timed = batches[args.warmup:]
    start = time.perf_counter()
    for batch in timed:
        decode_clips(batch, device)
    synchronize(device)
    return sum(len(batch.offsets) - 1 for batch in timed) / (time.perf_counter() - start)


def feeding(args, uint8_rate, decode_rate, frames_per_sample, step_rate):
    """The loader against the decode limit and the model: {loader samples/s per worker,
    decode efficiency (its frames/s per worker over bare decode frames/s), target samples/s,
    workers to feed it}."""
    per_worker = uint8_rate / max(1, args.workers)  # --workers 0: the main process is the one worker
    target = args.target_samples_per_s or step_rate
    return {"loader_samples_per_s_per_worker": per_worker,
            "decode_efficiency": per_worker * frames_per_sample / decode_rate, "target_samples_per_s": target,
            "workers_to_feed": math.ceil(target / per_worker)}


def train_step(model, optimizer, x, y, device, amp):
    with autocast(device, amp):
        out = model(x)
    loss = F.cross_entropy(out.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()  # as train_one_epoch: one host sync per step


def measure_step(model, optimizer, batch, device, args, loop):
    x, y = batch
    model.train()
    for _ in range(args.warmup):
        train_step(model, optimizer, x, y, device, loop.amp)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.step_batches):
        train_step(model, optimizer, x, y, device, loop.amp)
    synchronize(device)
    return args.step_batches * x.shape[0] / (time.perf_counter() - start)


def measure_train(model, optimizer, train, device, args, loop):
    """(samples/s, fraction of the wall time spent waiting for data) of engine.loop.train_one_epoch."""
    b = args.batch_size
    offset = (args.warmup + args.batches) * b * args.repeats  # items the loader timing did not use
    items = training_items(len(train), args.seed, offset + (args.warmup + args.train_batches) * b)[offset:]
    sampler = ItemSampler(items[:args.warmup * b])
    loader = make_loader(train, b, device, args.workers, args.seed, sampler=sampler, persistent=True)
    try:
        train_one_epoch(model, loader, optimizer, device, 0, loop)  # warm-up
        synchronize(device)
        sampler.items = items[args.warmup * b:]
        timed = WaitTimer(loader)
        start = time.perf_counter()
        train_one_epoch(model, timed, optimizer, device, 1, loop)
        synchronize(device)
        wall = time.perf_counter() - start
    finally:
        release(loader)
    return len(sampler.items) / wall, timed.wait / wall


def measure_eval(model, test, device, loop):
    """Videos/s of engine.loop.evaluate (its own short-lived loader, worker start-up included),
    after a warm-up evaluation of one batch of videos."""
    warm = type(test)(test.entries[:loop.test_batch_size], test.counts, test.layout, test.modality,
                      stack=test.span, crop_size=test.crop, train=False, test_frames=test.test_frames,
                      test_crops=test.test_crops, frame_size=test.frame_size)
    evaluate(model, warm, device, loop, desc="warm-up")
    synchronize(device)
    start = time.perf_counter()
    evaluate(model, test, device, loop, desc="benchmark")
    synchronize(device)
    return len(test) / (time.perf_counter() - start)


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
        classes, train, test, classic = build_sets(args, root, modality)
        loaders = measure_loaders(args, train, classic, loop, device)
        gpu_decode_rate = measure_gpu_decode(args, train, device) if args.decode == "gpu" else None
        pipe_rate, classic_rate, batch = loaders.pop("pipeline"), loaders.pop("classic"), loaders.pop("batch")

        torch.manual_seed(args.seed)
        model = build_model(args.arch, len(classes), in_channels(spec, args.stack), device)
        optimizer = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=0.9, weight_decay=5e-4)
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
