"""The training engine shared by both streams.

spatial_cnn.py and motion_cnn.py only say what differs (a StreamSpec); everything else -
options, data, model, the train / evaluate loop, records and checkpoints - lives here once.
Plain functions in the style of torchvision's reference scripts: `train_one_epoch`,
`evaluate`, and `main` tying them together.
"""
import argparse
import datetime
import json
import math
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

import utils
from dataloader.check import check_frames
from dataloader.datasets import ClipDataset, DataError, EpochSampler, collate_clips, count_frames
from dataloader.layout import LAYOUTS, open_layout
from dataloader.splits import DATASETS, DEFAULT_SPLITS_SUBDIR, SplitError, hold_out_groups, load_split
from dataloader.transforms import to_network_input
from network.consensus import CONSENSUS
from network.init import PretrainedWeightsError
from network.model import TSN, build_backbone
from tools import report

CHECKPOINT_FORMAT = "two-stream-tsn/1"
TRAIN_COLUMNS = ["Epoch", "Batch Time", "Data Time", "Loss", "Prec@1", "Prec@5", "lr"]
EVAL_COLUMNS = ["Epoch", "Batch Time", "Loss", "Prec@1", "Prec@5", "Mean Class Acc"]


@dataclass(frozen=True)
class StreamSpec:
    """What differs between the two streams."""
    name: str          # 'spatial' | 'motion': records, checkpoints, score files
    modality: str      # 'rgb' | 'flow'
    lr: float          # the seed's learning rates
    batch_size: int    # and batch sizes
    description: str


class CheckpointError(ValueError):
    pass


class TrainingDiverged(RuntimeError):
    pass


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived; the run stops after the current step."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalFlag:
    """Remember a first SIGINT/SIGTERM instead of dying mid-write; a second SIGINT
    interrupts at once. The training loop polls `raise_if_set` after every step."""

    def __init__(self):
        self.signum = None
        self.previous = {}

    def install(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n==> {signal.Signals(signum).name}: stopping after the current step", file=sys.stderr, flush=True)

    def raise_if_set(self):
        if self.signum is not None:
            raise StopRequested(self.signum)


# ------------------------------------------------------------------------- options
def build_parser(spec):
    p = argparse.ArgumentParser(description=spec.description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=DATASETS, default="ucf101", help="which split lists to read")
    d.add_argument("--data-root", default="data/ucf101",
                   help="folder holding the frames (jpegs_256/ and tvl1_flow/, or rawframes/) and the split lists")
    d.add_argument("--splits-dir", help="split-list folder (default: DATA_ROOT/ucfTrainTestlist or "
                   "DATA_ROOT/testTrainMulti_7030_splits)")
    d.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split number")
    d.add_argument("--layout", choices=LAYOUTS, default="auto",
                   help="frame layout: two-stream (jpegs_256, tvl1_flow/{u,v}), mmaction (rawframes) or packed (packed/, "
                        "written by python -m tools.pack_frames); auto detects, packs first")
    d.add_argument("--rgb-dir", help="RGB frame folder (default DATA_ROOT/jpegs_256)")
    d.add_argument("--flow-dir", help="flow folder with u/ and v/ (default DATA_ROOT/tvl1_flow)")
    d.add_argument("--frames-dir", help="mmaction rawframes folder (default DATA_ROOT/rawframes)")
    d.add_argument("--packed-dir", help="packed frames from tools.pack_frames (default DATA_ROOT/packed)")
    d.add_argument("--val-groups", type=int, default=3,
                   help="hold out the last N actor groups of the training list as a validation set; the LR "
                        "schedule and model_best follow it. 0: no validation set (the schedule follows the "
                        "training loss, no model_best)")
    d.add_argument("--select-on-test", action="store_true",
                   help="the seed's protocol: schedule and pick model_best on the TEST split. Optimistic; the "
                        "records say so")
    d.add_argument("--check-data", action="store_true",
                   help="decode every frame of every listed video, print a summary, and exit without training")
    d.add_argument("--on-bad-frame", choices=("error", "skip"), default="error",
                   help="a missing/corrupt frame stops the run (error) or is replaced by the nearest readable "
                        "frame of the same video and counted (skip)")

    s = p.add_argument_group("sampling")
    s.add_argument("--num-segments", type=int, default=3, help="TSN segments K per training video")
    if spec.modality == "flow":
        s.add_argument("--stack", type=int, default=10, help="consecutive flow frames L per position (2L channels)")
    s.add_argument("--crop-size", type=int, default=224, help="square crop fed to the network")
    s.add_argument("--test-frames", type=int, default=19,
                   help="evenly spaced test positions per video (19: the seed, 25: TSN)")
    s.add_argument("--test-crops", type=int, default=1, choices=(1, 3, 10),
                   help="crops per test position: centre; 3 along the long side; TSN's corners+centre and flips")

    m = p.add_argument_group("model")
    m.add_argument("--consensus", choices=CONSENSUS, default="mean", help="segment consensus (REFERENCE §3)")
    m.add_argument("--pretrained", default="imagenet",
                   help="'imagenet' (torchvision's weights from the local cache), 'none', or a state-dict PATH")
    m.add_argument("--dropout", type=float, default=0.5, help="dropout before the last layer")
    m.add_argument("--partial-bn", action="store_true", help="freeze BatchNorm statistics but the first (TSN)")

    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=500, help="upper bound; training stops earlier at --min-lr")
    o.add_argument("--batch-size", type=int, default=spec.batch_size,
                   help="videos per step and per process (global batch = this x number of processes)")
    o.add_argument("--lr", type=float, default=spec.lr,
                   help="SGD learning rate (for N processes, consider scaling it by N)")
    o.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    o.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay")
    o.add_argument("--lr-patience", type=int, default=1, help="ReduceLROnPlateau patience (epochs), as the seed")
    o.add_argument("--lr-factor", type=float, default=0.1, help="ReduceLROnPlateau factor")
    o.add_argument("--min-lr", type=float, default=1e-6, help="stop once the LR falls below this")

    r = p.add_argument_group("run")
    r.add_argument("--out", default=os.path.join("record", spec.name), help="output folder for records, checkpoints, scores")
    r.add_argument("--resume", help="checkpoint to continue from (checkpoint.pth of a run)")
    r.add_argument("--start-epoch", type=int, help="override the epoch to start at (default: after the checkpoint's)")
    r.add_argument("--evaluate", action="store_true",
                   help="only evaluate --resume's model on the test split and write video_scores.pkl; never train")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available")
    r.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="data-loading processes per GPU")
    r.add_argument("--test-batch-size", type=int, default=8, help="videos per evaluation batch")
    r.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling and augmentation")
    r.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 autocast (default: on for CUDA, off for CPU)")
    r.add_argument("--compile", action="store_true", help="torch.compile the model")
    r.add_argument("--no-plots", action="store_true", help="do not redraw the PNG curves after each epoch")
    r.add_argument("--picture-dir", help="also copy each epoch's PNG curves and confusion matrix here (e.g. picture)")
    r.add_argument("--tensorboard", action="store_true",
                   help="also log per-epoch scalars to OUT/tensorboard (needs: pip install tensorboard)")
    r.add_argument("--dist-timeout", type=float, default=30, help="minutes before a stuck distributed job fails")
    return p


def check_args(args):
    if args.evaluate and not args.resume:
        raise CheckpointError("--evaluate needs --resume CHECKPOINT (the model to evaluate)")
    for name in ("batch_size", "epochs", "num_segments", "test_frames", "crop_size", "test_batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if getattr(args, "stack", 1) < 1:
        raise ValueError("--stack must be at least 1")


# -------------------------------------------------------------- distributed, device
@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0


def init_distributed(args):
    """Join the torchrun job if there is one (NCCL on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    # A dead peer makes collectives fail after the timeout instead of hanging forever.
    dist.init_process_group("nccl" if use_cuda else "gloo",
                            timeout=datetime.timedelta(minutes=args.dist_timeout))
    return info


def pick_device(choice, info):
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda, but PyTorch sees no CUDA GPU (use --device cpu)")
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def enable_huge_pages():
    """Let PyTorch back large CPU tensors with transparent huge pages (its THP_MEM_ALLOC_ENABLE,
    pytorch/pytorch#93888). A CPU batch of flow is ~100 MB written fresh every step; with
    4 KiB pages most of that time goes to page faults (4x slower here). PyTorch reads the
    variable at its first CPU allocation, so this must run before any tensor exists; it
    does nothing where the kernel has THP switched off or the user set the variable."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            if "[never]" in f.read():
                return
    except OSError:  # not Linux
        return
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def set_cpu_threads(workers, info):
    """On the CPU, leave the data workers their cores: oversubscribed OpenMP threads spin
    against the workers and a training step gets several times slower."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores // info.world_size - workers))


# --------------------------------------------------------------------------- data
@dataclass
class Data:
    classes: list
    train: ClipDataset
    val: ClipDataset | None
    test: ClipDataset
    train_sampler: EpochSampler


@dataclass
class Run:
    """One training run: its fixed context and the state that changes epoch by epoch."""
    args: argparse.Namespace
    spec: StreamSpec
    info: DistInfo
    device: torch.device
    data: Data
    model: TSN
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    identity: dict
    history: dict = field(default_factory=lambda: {"train": [], "val": [], "test": []})
    best: dict | None = None
    start_epoch: int = 0


def build_data(args, spec, info):
    """Read the split, hold out validation groups, check every video exists (before any
    training starts), and build the datasets."""
    splits_dir = args.splits_dir or os.path.join(args.data_root, DEFAULT_SPLITS_SUBDIR[args.dataset])
    split = load_split(args.dataset, splits_dir, args.split)
    train_entries, val_entries = hold_out_groups(split.train, split.classes, args.val_groups)
    layout = open_layout(args.layout, args.data_root, args.rgb_dir, args.flow_dir, args.frames_dir, args.packed_dir)
    stack = getattr(args, "stack", 1)
    counts = count_frames(train_entries + val_entries + split.test, layout, spec.modality)
    common = dict(stack=stack, crop_size=args.crop_size, num_segments=args.num_segments,
                  test_frames=args.test_frames, test_crops=args.test_crops, seed=args.seed,
                  on_bad_frame=args.on_bad_frame)
    test = ClipDataset(split.test, counts, layout, spec.modality, train=False, **common)
    common["frame_size"] = test.frame_size
    train = ClipDataset(train_entries, counts, layout, spec.modality, train=True, **common)
    val = ClipDataset(val_entries, counts, layout, spec.modality, train=False, **common) if val_entries else None
    sampler = EpochSampler(len(train), args.seed, info.rank, info.world_size)
    return Data(split.classes, train, val, test, sampler)


def _worker_init(_):
    import cv2
    cv2.setNumThreads(1)  # one decoding thread per worker process; the workers are the parallelism


def make_loader(dataset, batch_size, args, device, sampler=None, workers=None, persistent=False):
    workers = args.workers if workers is None else workers
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=persistent and workers > 0, drop_last=False,
        prefetch_factor=2 if workers > 0 else None, worker_init_fn=_worker_init, collate_fn=collate_clips,
        # A private generator: creating loader iterators must not consume the global torch
        # RNG (dropout uses it), or a resumed run would diverge from an uninterrupted one.
        generator=torch.Generator().manual_seed(args.seed))


def eval_shard(dataset, info):
    """This process's share of an evaluation set: every video exactly once across ranks."""
    return Subset(dataset, range(info.rank, len(dataset), info.world_size)) if info.enabled else dataset


# -------------------------------------------------------------------------- model
def build_model(args, spec, num_classes, device):
    in_channels = 3 if spec.modality == "rgb" else 2 * args.stack
    # Resuming or evaluating loads every weight from the checkpoint: no ImageNet file needed.
    pretrained = "none" if args.resume else args.pretrained
    backbone = build_backbone(num_classes, in_channels, args.dropout, pretrained)
    model = TSN(backbone, args.consensus, args.partial_bn).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def model_identity(args, spec, num_classes):
    """What a checkpoint must match to be loaded into this run."""
    return {"stream": spec.name, "arch": "resnet18", "num_classes": num_classes,
            "in_channels": 3 if spec.modality == "rgb" else 2 * args.stack}


# ---------------------------------------------------------------- train, evaluate
def _autocast(device, enabled):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _to_device(batch, device, modality):
    """A collate_clips batch -> (network input, labels) on the device."""
    clip, flip, label = batch[0], torch.from_numpy(batch[1]), torch.from_numpy(batch[2])
    clip = clip.to(device, non_blocking=True)
    x = to_network_input(clip, flip, modality)  # flip stays on the CPU: no device sync to read it
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
    return x, label.to(device, non_blocking=True)


def _all_reduce_sum(values, device, info):
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if info.enabled:
        dist.all_reduce(t)
    return t.tolist()


def sync_buffers(model, info):
    """Give every process rank 0's BatchNorm statistics. DDP broadcasts buffers only at
    the start of each forward, so after the last step they differ per process; without
    this each process would evaluate a slightly different model than the one saved."""
    if info.enabled:
        for buf in model.buffers():
            dist.broadcast(buf, 0)


def train_one_epoch(model, loader, optimizer, device, epoch, args, spec, info, stop=None):
    """One pass over the training set. Returns the seed's training record row."""
    model.train()
    batch_time, data_time = utils.AverageMeter(), utils.AverageMeter()
    sums = np.zeros(5)  # loss*n, correct@1, correct@5, n, bad frames
    end = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch} train", disable=not info.is_main, dynamic_ncols=True, mininterval=1)
    for step, batch in enumerate(bar):
        data_time.update(time.perf_counter() - end)
        x, label = _to_device(batch, device, spec.modality)
        with _autocast(device, args.amp):
            out = model(x)
        loss = F.cross_entropy(out.float(), label)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise TrainingDiverged(f"the loss is {loss_value} at epoch {epoch}, step {step}: training diverged "
                                   f"(try a lower --lr); {args.out}/checkpoint.pth still holds the last good epoch")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = label.shape[0]
        c1, c5 = utils.topk_correct(out.detach(), label, (1, 5))
        sums += (loss_value * n, c1, c5, n, batch[4])
        batch_time.update(time.perf_counter() - end)
        end = time.perf_counter()
        bar.set_postfix(loss=f"{sums[0] / sums[3]:.3f}", top1=f"{100 * sums[1] / sums[3]:.1f}")
        if stop is not None:
            stop.raise_if_set()
    loss_sum, c1, c5, n, bad = _all_reduce_sum(sums.tolist(), device, info)
    row = {"Epoch": epoch, "Batch Time": round(batch_time.avg, 3), "Data Time": round(data_time.avg, 3),
           "Loss": round(loss_sum / n, 5), "Prec@1": round(100 * c1 / n, 4), "Prec@5": round(100 * c5 / n, 4),
           "lr": optimizer.param_groups[0]["lr"]}
    return row, int(bad)


@torch.no_grad()
def evaluate(model, dataset, device, args, spec, info, desc):
    """Video-level evaluation: every position (and crop) of a video in one batch, scores
    averaged per video. Each process scores its shard; the scores are gathered so that
    every process returns all videos, each exactly once.

    Returns (row without Epoch, scores (V, C) float32 in dataset order, labels (V,), bad frames).
    """
    model.eval()
    shard = eval_shard(dataset, info)
    # Short-lived loader: evaluation runs once per epoch, and idle persistent workers
    # would hold memory during training.
    loader = make_loader(shard, args.test_batch_size, args, device, workers=min(args.workers, len(shard)))
    indices, scores, bad = [], [], 0
    start = time.perf_counter()
    for batch in tqdm(loader, desc=desc, disable=not info.is_main, dynamic_ncols=True, mininterval=1):
        x, _ = _to_device(batch, device, spec.modality)
        with _autocast(device, args.amp):
            s = model.video_scores(x)  # (B, classes)
        scores.append(s.float())  # stays on the device: no sync per batch
        indices.append(batch[3])
        bad += batch[4]
    elapsed = time.perf_counter() - start
    num_batches = max(len(scores), 1)
    local = (np.concatenate(indices), torch.cat(scores).cpu().numpy()) if scores else None
    parts = [local]
    if info.enabled:
        parts = [None] * info.world_size
        dist.all_gather_object(parts, local)
        bad = int(_all_reduce_sum([bad], device, info)[0])
    parts = [p for p in parts if p is not None]  # a rank with an empty shard sends None
    all_idx = np.concatenate([p[0] for p in parts])
    all_scores = np.concatenate([p[1] for p in parts])
    if sorted(all_idx.tolist()) != list(range(len(dataset))):
        raise RuntimeError(f"evaluation scored {len(all_idx)} videos for {len(dataset)} in the set")
    scores = np.empty_like(all_scores)
    scores[all_idx] = all_scores
    labels = np.array([y for _, y in dataset.entries], dtype=np.int64)
    return video_metrics(scores, labels, elapsed / num_batches), scores, labels, bad


def video_metrics(scores, labels, batch_time=0.0):
    """The evaluation record row from video-level scores (V, C) and labels (V,)."""
    s, y = torch.from_numpy(scores), torch.from_numpy(labels)
    top1, top5 = utils.accuracy(s, y, (1, 5))
    mca = utils.mean_class_accuracy(scores.argmax(1), labels, scores.shape[1])
    return {"Batch Time": round(batch_time, 3), "Loss": round(F.cross_entropy(s, y).item(), 5),
            "Prec@1": round(top1, 4), "Prec@5": round(top5, 4), "Mean Class Acc": round(mca, 4)}


# ------------------------------------------------------------------ records, files
def score_file(dataset, scores, classes, meta):
    """The video_scores.pkl payload that fusion.py reads."""
    labels = np.array([y for _, y in dataset.entries])
    cm = utils.confusion_matrix(scores.argmax(1), labels, len(classes))
    return {"scores": {v: scores[i].astype(np.float32) for i, (v, _) in enumerate(dataset.entries)},
            "labels": {v: int(y) for v, y in dataset.entries},
            "classes": list(classes), "confusion": cm, "meta": meta}


def write_records(out, history):
    utils.save_csv(history["train"], TRAIN_COLUMNS, os.path.join(out, "train.csv"))
    utils.save_csv(history["test"], EVAL_COLUMNS, os.path.join(out, "test.csv"))
    if history["val"]:
        utils.save_csv(history["val"], EVAL_COLUMNS, os.path.join(out, "val.csv"))


def selection_protocol(args):
    if args.select_on_test:
        return "test (seed protocol: model and LR schedule chosen on the test split; optimistic)"
    if args.val_groups > 0:
        return f"val ({args.val_groups} held-out actor groups of the training list)"
    return "none (LR schedule on the training loss; no model selection)"


def print_row(stage, epoch, total, row):
    print(f"==> Epoch:[{epoch}/{total}][{stage} stage]")
    timing = f"Time [{row['Batch Time']}]" + (f" Data [{row['Data Time']}]" if "Data Time" in row else "")
    print(timing)
    print(f"Loss [{row['Loss']}] Prec@1 [{row['Prec@1']}] Prec@5 [{row['Prec@5']}]"
          + (f" Mean class [{row['Mean Class Acc']}]" if "Mean Class Acc" in row else ""))
    if "lr" in row:
        print(f"LR {row['lr']}")
    print(flush=True)


def restore(path, model, optimizer, scheduler, identity, device):
    """Load a checkpoint into model/optimizer/scheduler after checking it fits this run."""
    ckpt = utils.load_checkpoint(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a checkpoint of this tool")
    for key, want in identity.items():
        if ckpt["identity"].get(key) != want:
            raise CheckpointError(f"{path}: checkpoint has {key} = {ckpt['identity'].get(key)!r}, but this run "
                                  f"needs {want!r} (a checkpoint of another stream, data set or stack size?)")
    model.load_state_dict(ckpt["model"])
    if optimizer is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
    if "torch_rng" in ckpt:
        torch.set_rng_state(ckpt["torch_rng"])
        if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], device)
    return ckpt


def checkpoint_payload(run, epoch):
    """Plain types and tensors only, so that it loads with weights_only=True."""
    return {"format": CHECKPOINT_FORMAT, "identity": run.identity, "classes": list(run.data.classes),
            "epoch": epoch, "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "best": run.best, "history": run.history,
            "args": json.loads(json.dumps(vars(run.args))), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None}


# ---------------------------------------------------------------------------- main
def main(spec, argv=None):
    enable_huge_pages()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(spec).parse_args(argv)
    stop = SignalFlag()
    stop.install()
    try:
        return run(spec, args, stop)
    except (DataError, SplitError, PretrainedWeightsError, CheckpointError, TrainingDiverged, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a missing path, or a full disk while writing (the previous file is kept)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (StopRequested, KeyboardInterrupt) as e:
        print(resume_hint(spec, args, argv), file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    except RuntimeError as e:
        if not (dist.is_initialized() and lost_peer(e)):
            raise
        print(lost_peer_message(e), file=sys.stderr)
        if dist.get_rank() == 0:  # only rank 0 writes checkpoints
            print(resume_hint(spec, args, argv), file=sys.stderr)
        return 1
    finally:
        stop.restore()
        if dist.is_initialized():
            dist.destroy_process_group()


def lost_peer(e):
    """A collective failed because another process of the job died or stopped responding
    (gloo raises a RuntimeError that names its transport, NCCL a DistError)."""
    return isinstance(e, dist.DistError) or "gloo" in str(e)


def lost_peer_message(e):
    """One line instead of a traceback that does not say which process is gone."""
    rank, world = dist.get_rank(), dist.get_world_size()
    others = [r for r in range(world) if r != rank]
    who = f"rank {others[0]}" if len(others) == 1 else "another rank (of " + ", ".join(map(str, others)) + ")"
    detail = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return (f"error: rank {rank}: {who} stopped responding or died; the job stops "
            f"(its log, or torchrun's summary on its node, says why). {detail}")


def resume_hint(spec, args, argv):
    """What to type to continue. The last finished epoch's checkpoint is already on disk
    (written atomically), and an epoch replays identically, so resuming from it gives the
    same result as a run that was never stopped."""
    ckpt = os.path.join(args.out, "checkpoint.pth")
    if not os.path.isfile(ckpt):
        return "==> stopped before the first epoch finished: nothing to resume, start again"
    keep, skip = [], False
    for a in argv:  # drop an earlier --resume
        if skip:
            skip = False
            continue
        if a == "--resume":
            skip = True
            continue
        if not a.startswith("--resume="):
            keep.append(a)
    script = "spatial_cnn.py" if spec.name == "spatial" else "motion_cnn.py"
    return ("==> stopped; the last finished epoch is in " + ckpt + ". Resume with:\n  python " + script + " "
            + " ".join(shlex.quote(a) for a in keep + ["--resume", ckpt]))


def run(spec, args, stop=None):
    check_args(args)
    info = init_distributed(args)
    device = pick_device(args.device, info)
    if args.amp is None:
        args.amp = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        set_cpu_threads(args.workers, info)
    torch.manual_seed(args.seed + info.rank)  # same init everywhere (DDP broadcasts rank 0's anyway)

    data = build_data(args, spec, info)
    if args.check_data:
        sets = {"train": data.train, "val": data.val, "test": data.test}
        bad = check_frames({k: v for k, v in sets.items() if v is not None}, args.workers)
        return 1 if bad else 0
    classes = data.classes
    model = build_model(args, spec, len(classes), device)
    identity = model_identity(args, spec, len(classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", patience=args.lr_patience,
                                                           factor=args.lr_factor)
    if info.is_main:
        print(f"==> {spec.name} stream: {len(data.train)} train / {len(data.val) if data.val else 0} val / "
              f"{len(data.test)} test videos, {len(classes)} classes, device {device}"
              + (f" x {info.world_size} processes" if info.enabled else ""))
        print(f"==> model selection: {selection_protocol(args)}", flush=True)

    run = Run(args, spec, info, device, data, model, optimizer, scheduler, identity)
    if args.resume:
        ckpt = restore(args.resume, model, None if args.evaluate else optimizer, scheduler, identity, device)
        run.history, run.best, run.start_epoch = ckpt["history"], ckpt["best"], ckpt["epoch"] + 1
    if args.start_epoch is not None:
        run.start_epoch = args.start_epoch
    if args.evaluate:
        return evaluate_only(run, run.start_epoch - 1)

    train_model = model
    if args.compile:
        train_model = torch.compile(train_model)
    if info.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None)
    train_loader = make_loader(data.train, args.batch_size, args, device, sampler=data.train_sampler, persistent=True)
    if info.is_main:
        os.makedirs(args.out, exist_ok=True)
        utils.save_json(vars(args) | {"stream": spec.name, "selection": selection_protocol(args)},
                        os.path.join(args.out, "args.json"))
    tb = report.tensorboard_writer(args.out) if args.tensorboard and info.is_main else None
    try:
        train_epochs(run, train_model, train_loader, stop, tb)
    finally:
        if tb is not None:
            tb.close()
    return 0


def train_epochs(run, train_model, train_loader, stop, tb):
    """The epoch loop: train, evaluate, schedule, save; stop at --epochs or --min-lr."""
    args, spec, info, device, data = run.args, run.spec, run.info, run.device, run.data
    for epoch in range(run.start_epoch, args.epochs):
        data.train_sampler.set_epoch(epoch)
        row, bad = train_one_epoch(train_model, train_loader, run.optimizer, device, epoch, args, spec, info, stop)
        sync_buffers(run.model, info)
        run.history["train"].append(row)
        evals = {}
        for name, dataset in (("val", data.val), ("test", data.test)):
            if dataset is not None:
                erow, scores, _, ebad = evaluate(run.model, dataset, device, args, spec, info, f"epoch {epoch} {name}")
                evals[name] = (erow, scores)
                run.history[name].append({"Epoch": epoch, **erow})
                bad += ebad
        run.best, improved = update_best(run.best, evals, row, epoch, args)
        run.scheduler.step(schedule_loss(evals, row, args))
        if info.is_main:
            print_row("training", epoch, args.epochs, row)
            for name in evals:
                print_row("validation" if name == "val" else "test", epoch, args.epochs, evals[name][0])
            if bad:
                print(f"==> {bad} unreadable frames were replaced by their nearest readable neighbour (--on-bad-frame skip)")
            save_epoch(run, epoch, improved, evals)
            draw(args, tb, epoch, row, evals)
        lr = run.optimizer.param_groups[0]["lr"]
        if lr < args.min_lr:
            if info.is_main:
                print(f"==> the learning rate {lr:g} fell below --min-lr {args.min_lr:g}: training stops")
            break


def draw(args, tb, epoch, row, evals):
    """Curves (PNG) and TensorBoard scalars of the records so far."""
    if not args.no_plots:
        try:
            report.plot_run(args.out, args.picture_dir)
        except Exception as e:  # a picture must never stop a training
            print(f"==> warning: could not draw the curves: {e}", file=sys.stderr)
    if tb is not None:
        report.tensorboard_log(tb, epoch, {"train": row, **{n: evals[n][0] for n in evals}})


def schedule_loss(evals, train_row, args):
    """The loss ReduceLROnPlateau follows: validation, test (seed protocol) or training."""
    if args.select_on_test:
        return evals["test"][0]["Loss"]
    if "val" in evals:
        return evals["val"][0]["Loss"]
    return train_row["Loss"]


def update_best(best, evals, train_row, epoch, args):
    """model_best follows validation top-1 (or test top-1 under --select-on-test); equal
    top-1 goes to the lower loss, since small validation sets tie often."""
    name = "test" if args.select_on_test else "val"
    if name not in evals:
        return best, False
    top1, loss = evals[name][0]["Prec@1"], evals[name][0]["Loss"]
    if best is None or (top1, -loss) > (best["top1"], -best["loss"]):
        return {"split": name, "top1": top1, "loss": loss, "epoch": epoch}, True
    return best, False


def save_epoch(run, epoch, improved, evals):
    """Records, checkpoint and score files of one finished epoch; each written atomically."""
    out, data = run.args.out, run.data
    # The checkpoint first: if writing it fails (full disk), the records still match the
    # previous checkpoint, which stays intact.
    payload = checkpoint_payload(run, epoch)
    utils.save_torch(payload, os.path.join(out, "checkpoint.pth"))
    write_records(out, run.history)
    test_row, test_scores = evals["test"]
    meta = score_meta(run.args, run.spec, epoch, test_row)
    utils.save_pickle(score_file(data.test, test_scores, data.classes, meta), os.path.join(out, "video_scores.pkl"))
    if improved:
        utils.save_torch(payload, os.path.join(out, "model_best.pth"))
        utils.save_pickle(score_file(data.test, test_scores, data.classes, meta | {"best": run.best}),
                          os.path.join(out, "video_scores_best.pkl"))


def score_meta(args, spec, epoch, row):
    return {"stream": spec.name, "consensus": args.consensus, "epoch": epoch, "split": args.split,
            "dataset": args.dataset, "top1": row["Prec@1"], "top5": row["Prec@5"],
            "mean_class_acc": row["Mean Class Acc"], "selection": selection_protocol(args),
            "test_frames": args.test_frames, "test_crops": args.test_crops}


def evaluate_only(run, epoch):
    """--evaluate: score the test split with the checkpoint's model; train nothing, touch no
    checkpoint or record, write video_scores.pkl for this protocol."""
    args, data = run.args, run.data
    row, scores, _, _ = evaluate(run.model, data.test, run.device, args, run.spec, run.info, "test")
    if run.info.is_main:
        print_row("test", epoch, args.epochs, row)
        meta = score_meta(args, run.spec, epoch, row) | {"evaluated_from": args.resume}
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, "video_scores.pkl")
        utils.save_pickle(score_file(data.test, scores, data.classes, meta), path)
        print(f"==> wrote {path}")
    return 0
