"""tools/benchmark.py's input-pipeline measurements: the project's loader (what
engine.data.make_loader and engine.loop.to_device build) against the classic baseline
(tools/bench_classic.py) on the same items, and both against the bare JPEG-decode rate of
the very frames they read."""
import math
import statistics
import time

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from dataloader.datasets import decode_flag, read_bytes
from dataloader.sampling import EpochSampler
from dataloader.encoded import EncodedBatch, collate_encoded, decode_clips
from engine.data import make_loader
from engine.loop import to_device


class ItemSampler(Sampler):
    """Yields a given list of (index, epoch) items; the list can be swapped between passes
    of a loader with persistent workers (warm-up pass, then the timed pass)."""

    def __init__(self, items=()):
        self.items = list(items)

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)


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
