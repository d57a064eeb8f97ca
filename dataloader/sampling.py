"""Where in a video the network looks (pure functions on frame counts), and in which order
training visits the videos (EpochSampler).

A position p is the 0-based index of the first frame of a sample; a sample spans `span`
frames (1 for RGB, L for a flow stack), so the usable positions are 0 .. n - span
(at least position 0, even for a video shorter than the span: indices are clamped).
"""
import math

import numpy as np
import torch


def usable_positions(num_frames, span):
    return max(num_frames - span + 1, 1)


def sample_train_positions(num_frames, num_segments, span, rng):
    """TSN training: split the usable range into K equal segments, one random position
    in each. A video with fewer usable positions than segments repeats positions.
    Returns (K,) int64."""
    usable = usable_positions(num_frames, span)
    # Segment edges floor(k * usable / K), computed as np.linspace does (k * step, the last
    # edge exactly `usable`) but in plain Python: the loader calls this for every item.
    step = usable / num_segments
    edges = [math.floor(k * step) for k in range(num_segments)] + [usable]  # K + 1
    lo = [min(e, usable - 1) for e in edges[:-1]]
    hi = [max(e, low + 1) for e, low in zip(edges[1:], lo)]  # exclusive; a segment shorter than one frame keeps lo
    return rng.integers(lo, hi)


def sample_test_positions(num_frames, num_positions, span):
    """Testing: N evenly spaced positions, each at the centre of its 1/N of the usable
    range (TSN's protocol). Returns (N,) int64; repeats positions in short videos."""
    usable = usable_positions(num_frames, span)
    return np.floor((np.arange(num_positions) + 0.5) * usable / num_positions).astype(np.int64)


def stack_indices(position, span, num_frames):
    """Frame indices of one sample: span consecutive frames from `position`, clamped to the
    last frame of a short video. Returns a list of `span` ints (the loader calls this for
    every position of every item: plain Python is several times faster than numpy here)."""
    last = num_frames - 1
    return [min(position + j, last) for j in range(span)]


# ---------------------------------------------------------------- spatial crops
def random_crop_box(height, width, crop, rng):
    """Top-left corner of a random crop x crop window."""
    return int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))


def test_crop_boxes(height, width, crop, num_crops):
    """Test-time crops as (top, left, flip) triples.

    1: the centre. 3: three crops along the long side (start, centre, end), centred on the
    short side. 10: the four corners and the centre (TSN), each also flipped.
    """
    cy, cx = (height - crop) // 2, (width - crop) // 2
    if num_crops == 1:
        return [(cy, cx, False)]
    if num_crops == 3:
        if width >= height:
            return [(cy, 0, False), (cy, cx, False), (cy, width - crop, False)]
        return [(0, cx, False), (cy, cx, False), (height - crop, cx, False)]
    if num_crops == 10:
        five = [(0, 0), (0, width - crop), (height - crop, 0), (height - crop, width - crop), (cy, cx)]
        return [(y, x, False) for y, x in five] + [(y, x, True) for y, x in five]
    raise ValueError(f"--test-crops must be 1, 3 or 10, not {num_crops}")


class EpochSampler(torch.utils.data.Sampler):
    """Training order: a fresh shuffle each epoch from (seed, epoch), sharded over
    processes like DistributedSampler. Yields (index, epoch) so that workers, even
    persistent ones, know the epoch for their per-sample generators."""

    def __init__(self, size, seed, rank=0, world_size=1, shuffle=True):
        self.size, self.seed, self.rank, self.world = size, seed, rank, world_size
        self.shuffle, self.epoch = shuffle, 0
        self.per_rank = -(-size // world_size)  # ceil: pad by repeating, as DistributedSampler

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.per_rank

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        order += order[: self.per_rank * self.world - self.size]
        return iter([(i, self.epoch) for i in order[self.rank::self.world]])
