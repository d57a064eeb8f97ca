"""Datasets that turn (video, label) entries into uint8 clips.

Workers decode JPEGs with OpenCV and crop with integer slicing; everything in float
happens later on the device (dataloader/transforms.py). Each item is

    clip  (P, C, crop, crop) uint8   P = K segments (train) or N positions x crops (test)
    flip  (P,) bool                  mirror this image (done on the device)
    label int, index int, bad int    bad = frames replaced under --on-bad-frame skip

Training randomness comes from a generator seeded by (seed, epoch, index): a sample is the
same whichever worker draws it, and a resumed run sees the same data."""
import copy
import dataclasses

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from dataloader import buffers
from dataloader.sampling import (random_crop_box, sample_test_positions, sample_train_positions,
                                 stack_indices, test_crop_boxes)


class DataError(ValueError):
    """The data on disk does not match what the split lists or options need."""


class BadFrameError(DataError):
    """A frame is missing or unreadable (under --on-bad-frame error)."""


def _describe(names, limit=5):
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def count_frames(entries, layout, modality, min_frames=1):
    """{video: frame count} for every entry, read from the folders.

    Raises DataError naming the missing or empty videos, before any training starts.
    """
    layout.require(modality)
    missing = [v for v, _ in entries if not layout.has(v, modality)]
    absent = set(missing)
    counts = {v: layout.num_frames(v, modality) for v, _ in entries if v not in absent}
    empty = [v for v, n in counts.items() if n < min_frames]
    if missing or empty:
        how = [f"{len(missing)} without a folder" if missing else "",
               f"{len(empty)} with an empty one" if empty else ""]
        raise DataError(f"{len(missing) + len(empty)} of {len(entries)} videos in the split have no {modality} frames "
                        f"under {layout.describe(modality)} ({', '.join(h for h in how if h)}): "
                        f"{_describe(missing + empty)}")
    return counts


def read_bytes(path):
    """The bytes of a frame file, or of a PackedFrame (a memoryview; None if unreadable)."""
    if not isinstance(path, str):
        return path.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def decode_flag(modality):
    """OpenCV's decoding flag for a modality's frames. RGB comes straight from the decoder
    (IMREAD_COLOR_RGB), not as a reversed view of BGR, so that crops of it are row copies."""
    return cv2.IMREAD_COLOR_RGB if modality == "rgb" else cv2.IMREAD_GRAYSCALE


def read_frame(path, color):
    """Decode one JPEG (a file path, or a PackedFrame): (H, W, 3) RGB or (H, W) grayscale
    uint8, or None if unreadable."""
    flag = decode_flag("rgb" if color else "flow")
    if isinstance(path, str):
        return cv2.imread(path, flag)
    data = path.read()
    return None if data is None or len(data) == 0 else cv2.imdecode(np.frombuffer(data, np.uint8), flag)


class ClipDataset(Dataset):
    def __init__(self, entries, counts, layout, modality, *, stack=1, crop_size=224, train=True,
                 num_segments=3, test_frames=19, test_crops=1, seed=0, on_bad_frame="error",
                 frame_size=None):
        self.entries, self.counts, self.layout = entries, counts, layout
        self.modality, self.train = modality, train
        self.span = stack if modality == "flow" else 1
        self.crop, self.num_segments = crop_size, num_segments
        self.test_frames, self.test_crops = test_frames, test_crops
        self.seed, self.on_bad_frame = seed, on_bad_frame
        self._buffers = None  # a data worker's BatchBuffers, made in the worker
        self.frame_size = tuple(frame_size or self.probe_frame_size())
        h, w = self.frame_size
        if h < crop_size or w < crop_size:
            raise DataError(f"frames are {w}x{h} but --crop-size is {crop_size}: "
                            f"lower --crop-size or use larger frames")

    def __len__(self):
        return len(self.entries)

    def with_entries(self, entries):
        """This dataset (layout, protocol, frame size) over other entries counted in self.counts."""
        other = copy.copy(self)
        other.entries, other._buffers = list(entries), None
        return other

    def probe_frame_size(self):
        """(H, W) of the first readable frame of the first video; every frame must match it."""
        video = self.entries[0][0]
        paths_of = self.layout.frame_paths(video, self.modality)
        for i in range(self.counts[video]):
            path = paths_of(i)
            img = read_frame(path[0] if isinstance(path, tuple) else path, color=False)
            if img is not None:
                return img.shape[:2]
            if self.on_bad_frame != "skip":
                raise BadFrameError(f"{path}: cannot decode frame {i + 1} of '{video}' "
                                    "(fix the file, or pass --on-bad-frame skip)")
        raise BadFrameError(f"'{video}': no readable {self.modality} frame")

    # -- decoding ------------------------------------------------------------------
    def read_channels(self, paths_of, i):
        """The channels of frame i: [RGB image] or [u, v]; None if any is unreadable or not
        of the data set's frame size. (Called once a frame: kept to few calls.)"""
        paths = paths_of(i)
        chans = [read_frame(paths, True)] if self.modality == "rgb" else [read_frame(p, False) for p in paths]
        for img in chans:
            if img is None or img.shape[:2] != self.frame_size:
                return None
        return chans

    def _load_frame(self, video, paths_of, i, n, read=None):
        """(channels of frame i, 0); under --on-bad-frame skip, (those of the nearest readable
        frame, nearest earlier first, 1). `read(paths_of, i)` reads a frame or gives None:
        read_channels here, the JPEG bytes in dataloader/encoded.py: one rule for both."""
        read = read or self.read_channels
        chans = read(paths_of, i)
        if chans is not None:
            return chans, 0
        bad = paths_of(i)
        if self.on_bad_frame != "skip":
            raise BadFrameError(
                f"{bad}: missing, corrupt, or not {self.frame_size[1]}x{self.frame_size[0]} (frame {i + 1} of "
                f"'{video}'); fix the file, run --check-data, or pass --on-bad-frame skip")
        for d in range(1, n):
            for j in (i - d, i + d):
                if 0 <= j < n and (chans := read(paths_of, j)) is not None:
                    return chans, 1
        raise BadFrameError(f"'{video}': no readable {self.modality} frame at all (first: {bad})")

    # -- items --------------------------------------------------------------------
    def _plan(self, item):
        """(index, positions, boxes [(top, left, flip)]) of an item: what it reads and crops."""
        h, w = self.frame_size
        if self.train:
            index, epoch = item
            rng = np.random.default_rng([self.seed, epoch, index])
            n = self.counts[self.entries[index][0]]
            positions = sample_train_positions(n, self.num_segments, self.span, rng)
            top, left = random_crop_box(h, w, self.crop, rng)
            return index, positions, [(top, left, bool(rng.random() < 0.5))]  # one crop and flip per video
        n = self.counts[self.entries[item][0]]
        return item, sample_test_positions(n, self.test_frames, self.span), test_crop_boxes(h, w, self.crop, self.test_crops)

    def item_frames(self, item):
        """The frames an item reads, each once, in order: paths (or PackedFrames) for RGB,
        (u, v) pairs for flow. For measuring the decoding of exactly what the loader decodes."""
        index, positions, _ = self._plan(item)
        video = self.entries[index][0]
        n = self.counts[video]
        paths_of = self.layout.frame_paths(video, self.modality)
        frames = dict.fromkeys(i for p in positions.tolist() for i in stack_indices(p, self.span, n))
        return [paths_of(i) for i in frames]

    def _fill(self, plan, clip):
        """Decode and crop the item of `plan` into clip, uint8 (P, crop, crop, 3) for RGB,
        (P, 2L, crop, crop) for flow (see _memory_shape). Returns the number of frames
        replaced under --on-bad-frame skip."""
        index, positions, boxes = plan
        video = self.entries[index][0]
        n = self.counts[video]
        paths_of = self.layout.frame_paths(video, self.modality)
        c = self.crop
        rgb = self.modality == "rgb"
        nb = len(boxes)
        # Speed: every crop is written once, straight from the decoded frame into its place
        # in the clip (no per-frame stacks of whole frames, no second copy), and a frame used
        # twice in one item (clamped stacks, repeated positions of short videos) is decoded
        # once. Nothing is kept between items.
        decoded, bad = {}, 0
        for pi, p in enumerate(positions.tolist()):
            for k in [k for k in decoded if k < p]:  # positions are sorted: earlier frames are done
                del decoded[k]
            for j, i in enumerate(stack_indices(p, self.span, n)):
                if i not in decoded:
                    decoded[i] = self._load_frame(video, paths_of, i, n)
                chans, b = decoded[i]
                bad += b
                for bi, (top, left, _) in enumerate(boxes):
                    dst = clip[pi * nb + bi]
                    if rgb:  # (c, c, 3) rows of the (h, w, 3) frame
                        dst[...] = chans[0][top:top + c, left:left + c]
                    else:    # channels u_j, v_j at 2j, 2j + 1
                        dst[2 * j] = chans[0][top:top + c, left:left + c]
                        dst[2 * j + 1] = chans[1][top:top + c, left:left + c]
        return bad

    def _memory_shape(self, plan):
        """The shape an item is decoded into. RGB is stored channels-last, (P, c, c, 3), as the
        decoder writes it: a crop is then 224 row copies instead of a transposing copy that
        cost 37 us a frame (a sixth of its decoding). The clip handed out is a permuted view,
        (P, 3, c, c), equal in every element; the device turns it into the layout the model
        wants (engine.loop.to_device). Flow frames are planes already: (P, 2L, c, c)."""
        _, positions, boxes = plan
        p = len(positions) * len(boxes)
        return (p, self.crop, self.crop, 3) if self.modality == "rgb" else (p, 2 * self.span, self.crop, self.crop)

    def _as_clips(self, t):
        """(..., P, C, c, c) view of a tensor of (..., *_memory_shape)."""
        return t.movedim(-1, -3) if self.modality == "rgb" else t

    @staticmethod
    def _flips(plan):
        _, positions, boxes = plan
        return [flip for _ in positions for _, _, flip in boxes]

    def __getitem__(self, item):
        plan = self._plan(item)
        clip = np.empty(self._memory_shape(plan), np.uint8)
        bad = self._fill(plan, clip)
        index = plan[0]
        return (self._as_clips(torch.from_numpy(clip)), np.array(self._flips(plan), dtype=bool),
                self.entries[index][1], index, bad)

    def __getitems__(self, items):
        """A whole batch (the DataLoader's call when a dataset has it): the items are decoded
        straight into one batch tensor, so no item arrays are allocated and collation copies
        nothing. In a data worker that tensor is a shared-memory buffer the worker reuses
        once the consumer releases it (dataloader/buffers.py). Equal to collating __getitem__."""
        plans = [self._plan(item) for item in items]
        shape = (len(plans),) + self._memory_shape(plans[0])
        if torch.utils.data.get_worker_info() is None:  # this process consumes the batch itself
            clips, lease = torch.empty(shape, dtype=torch.uint8), False
        else:
            if self._buffers is None:
                self._buffers = buffers.BatchBuffers()
            clips, lease = self._buffers.take(shape), True
        out = clips.numpy()
        bad = sum(self._fill(plan, out[b]) for b, plan in enumerate(plans))
        return ClipBatch(self._as_clips(clips), np.array([self._flips(p) for p in plans], dtype=bool),
                         np.array([self.entries[p[0]][1] for p in plans], dtype=np.int64),
                         np.array([p[0] for p in plans], dtype=np.int64), bad, lease)


@dataclasses.dataclass(frozen=True)
class ClipBatch:
    """A batch of ClipDataset items (ClipDataset.__getitems__, or collate_clips of items).
    P = positions per video (K segments in training, test positions x crops in evaluation).

    Not a tuple on purpose: older torch releases (2023's, for one) pin a (named) tuple field by
    field before they look for a pin_memory method. That would skip ClipBatch.pin_memory: the
    worker's buffer would never be released, and release() would write into the pinned copy."""
    clips: torch.Tensor      # (B, P, C, H, W) uint8
    flips: np.ndarray        # (B, P) bool: mirror this position (flow: and invert u)
    labels: np.ndarray       # (B,) int64
    indices: np.ndarray      # (B,) int64: the items' indices in their dataset
    bad_frames: int          # frames replaced under --on-bad-frame skip
    lease: bool = False      # clips are in a data worker's reusable buffer (dataloader/buffers.py)

    def release(self):
        """Say that `clips` will not be read again (its data was copied out): a data worker
        may then reuse the memory. A no-op for batches without a lease."""
        if self.lease:
            buffers.release(self.clips)

    def pin_memory(self):
        """The DataLoader's pin-memory thread calls this: copy the clips to pinned memory and
        release the worker's buffer at once."""
        pinned = dataclasses.replace(self, clips=self.clips.pin_memory(), lease=False)
        self.release()
        return pinned


def collate_clips(items):
    """ClipDataset items -> one ClipBatch.

    Only the clips travel from a worker as a tensor (in shared memory); the small fields
    travel as numpy arrays, pickled by value. Each tensor a worker returns costs its own
    shared-memory segment and file-descriptor handover: with four small ones per batch
    that was a third of the loader's per-batch overhead (measured: 9 vs 6 ms per batch)."""
    if isinstance(items, ClipBatch):  # ClipDataset.__getitems__ built it already
        return items
    clips = default_collate([it[0] for it in items])  # in a worker: written straight to shared memory
    flips = np.stack([it[1] for it in items])
    labels = np.array([it[2] for it in items], dtype=np.int64)
    indices = np.array([it[3] for it in items], dtype=np.int64)
    return ClipBatch(clips, flips, labels, indices, sum(it[4] for it in items))
