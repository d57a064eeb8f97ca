"""The two loops: `train_one_epoch` and `evaluate` (video level), as in torchvision's
reference scripts. They take what they use, so the benchmark calls them as training does."""
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

import progress
import utils
from dataloader.datasets import ClipBatch
from dataloader.encoded import EncodedBatch, decode_clips
from dataloader.transforms import to_network_input
from engine.data import eval_shard, make_loader
from engine.runtime import SINGLE_PROCESS, all_reduce_sum, autocast


@dataclass(frozen=True)
class LoopConfig:
    """What the loops need beyond the model, data and device."""
    modality: str              # 'rgb' | 'flow': how uint8 clips become network input
    amp: bool = False          # bfloat16 autocast
    workers: int = 0           # evaluation's data-loading processes
    test_batch_size: int = 8   # videos per evaluation batch
    seed: int = 0              # evaluation loader's generator
    progress: bool = True      # tqdm bars (on the main process only)


class TrainingDiverged(RuntimeError):
    pass


@dataclass
class Evaluation:
    """What `evaluate` returns, for the whole set (every process gets all videos)."""
    row: dict            # the record row (Batch Time, Loss, Prec@1, Prec@5, Mean Class Acc), no Epoch
    scores: np.ndarray   # (V, C) float32 video scores, in the dataset's order
    labels: np.ndarray   # (V,) int64
    bad_frames: int      # frames replaced under --on-bad-frame skip


def to_device(batch, device, modality):
    """A ClipBatch -> (network input, labels) on the device; an EncodedBatch (--decode gpu) is
    decoded and cropped on the device first, then goes the same way. The flip mask stays on
    the CPU: reading it on the device would cost a sync per batch."""
    if isinstance(batch, EncodedBatch):
        clips = decode_clips(batch, device)  # (B, P, C, crop, crop) uint8, as a ClipBatch's clips
    else:
        clips = batch.clips.to(device, non_blocking=True)
    x = to_network_input(clips, torch.from_numpy(batch.flips), modality)  # a new tensor: clips were read
    if isinstance(batch, ClipBatch):
        batch.release()  # a data worker may reuse the batch's shared memory now
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    elif device.type == "cpu":
        # RGB clips arrive channels-last (dataloader/datasets.py); on a GPU that is the
        # model's layout already, on the CPU the model runs contiguous: as it always has.
        x = x.contiguous()
    return x, torch.from_numpy(batch.labels).to(device, non_blocking=True)


def train_one_epoch(model, loader, optimizer, device, epoch, cfg, info=SINGLE_PROCESS, stop=None):
    """One pass over the training set. Returns (the training record row, bad frames)."""
    model.train()
    batch_time, data_time = utils.AverageMeter(), utils.AverageMeter()
    sums = np.zeros(5)  # loss*n, correct@1, correct@5, n, bad frames
    end = time.perf_counter()
    bar = progress.progress(loader, desc=f"epoch {epoch} train", disable=not (cfg.progress and info.is_main),
                         mininterval=1)
    for step, batch in enumerate(bar):
        data_time.update(time.perf_counter() - end)
        x, label = to_device(batch, device, cfg.modality)
        with autocast(device, cfg.amp):
            out = model(x)
        loss = F.cross_entropy(out.float(), label)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise TrainingDiverged(f"the loss is {loss_value} at epoch {epoch}, step {step}: training diverged "
                                   "(try a lower --lr)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = label.shape[0]
        c1, c5 = utils.topk_correct(out.detach(), label, (1, 5))
        sums += (loss_value * n, c1, c5, n, batch.bad_frames)
        batch_time.update(time.perf_counter() - end)
        end = time.perf_counter()
        bar.set_postfix(loss=f"{sums[0] / sums[3]:.3f}", top1=f"{100 * sums[1] / sums[3]:.1f}")
        if stop is not None:
            stop.raise_if_set()
    loss_sum, c1, c5, n, bad = all_reduce_sum(sums.tolist(), device, info)
    row = {"Epoch": epoch, "Batch Time": round(batch_time.avg, 3), "Data Time": round(data_time.avg, 3),
           "Loss": round(loss_sum / n, 5), "Prec@1": round(100 * c1 / n, 4), "Prec@5": round(100 * c5 / n, 4),
           "lr": optimizer.param_groups[0]["lr"]}
    return row, int(bad)


@torch.no_grad()
def evaluate(model, dataset, device, cfg, info=SINGLE_PROCESS, desc="test"):
    """Video-level evaluation: every position (and crop) of a video in one batch, scores
    averaged per video. Each process scores its shard; the scores are gathered so that
    every process returns all videos, each exactly once.

    Returns an Evaluation.
    """
    model.eval()
    shard = eval_shard(dataset, info)
    # Short-lived loader: evaluation runs once per epoch, and idle persistent workers
    # would hold memory during training.
    loader = make_loader(shard, cfg.test_batch_size, device, min(cfg.workers, len(shard)), cfg.seed)
    indices, scores, bad = [], [], 0
    start = time.perf_counter()
    for batch in progress.progress(loader, desc=desc, disable=not (cfg.progress and info.is_main), mininterval=1):
        x, _ = to_device(batch, device, cfg.modality)
        with autocast(device, cfg.amp):
            s = model.video_scores(x)  # (B, C)
        scores.append(s.float())  # stays on the device: no sync per batch
        indices.append(batch.indices)
        bad += batch.bad_frames
    elapsed = time.perf_counter() - start
    local = (np.concatenate(indices), torch.cat(scores).cpu().numpy()) if scores else None
    parts = [local]
    if info.enabled:
        parts = [None] * info.world_size
        dist.all_gather_object(parts, local)
        bad = int(all_reduce_sum([bad], device, info)[0])
    parts = [p for p in parts if p is not None]  # a rank with an empty shard sends None
    all_idx = np.concatenate([p[0] for p in parts])
    all_scores = np.concatenate([p[1] for p in parts])
    if sorted(all_idx.tolist()) != list(range(len(dataset))):
        raise RuntimeError(f"evaluation scored {len(all_idx)} videos for {len(dataset)} in the set")
    ordered = np.empty_like(all_scores)
    ordered[all_idx] = all_scores
    labels = np.array([y for _, y in dataset.entries], dtype=np.int64)
    return Evaluation(eval_row(ordered, labels, elapsed / max(len(scores), 1)), ordered, labels, bad)


def eval_row(scores, labels, batch_time=0.0):
    """The evaluation record row from video-level scores (V, C) and labels (V,)."""
    m = utils.video_metrics(scores, labels)
    loss = F.cross_entropy(torch.from_numpy(scores), torch.from_numpy(labels)).item()
    return {"Batch Time": round(batch_time, 3), "Loss": round(loss, 5), "Prec@1": round(m["top1"], 4),
            "Prec@5": round(m["top5"], 4), "Mean Class Acc": round(m["mean_class_acc"], 4)}
