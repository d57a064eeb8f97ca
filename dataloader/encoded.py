"""--decode gpu: the data workers gather JPEG bytes, the device decodes them.

With --decode cpu the workers decode every frame with OpenCV (dataloader/datasets.py), and
on a GPU machine the CPU cores can be what limits training. Here a worker only reads each
frame's bytes (the files or packs, as ClipDataset would), checks the JPEG header (frame
size), and sends the batch's bytes as ONE uint8 tensor with offsets. The main process then
decodes them with torchvision's batched `decode_jpeg` on the device (nvJPEG on CUDA; the
same call on the CPU runs libjpeg-turbo, which the tests use), crops, and returns the uint8
clips (B, P, C, crop, crop) that ClipDataset would have built: same items, positions, crops,
flips and channel order (RGB; flow u_j, v_j at 2j, 2j + 1). to_network_input does the rest.

Decoders round differently (IDCT, chroma upsampling): pixels may differ from OpenCV's by a
grey level or two, never in which frame, crop or channel they come from.
"""
import re
from typing import NamedTuple

import numpy as np
import torch
import torchvision
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

from dataloader.datasets import BadFrameError, ClipDataset, read_bytes
from dataloader.sampling import stack_indices

DECODE_CHOICES = ("cpu", "gpu")  # --decode: OpenCV in the data workers (datasets.py), or torchvision here


# ------------------------------------------------------------------ JPEG header
_STANDALONE = {0x01, *range(0xD0, 0xD8)}           # markers without a length field
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (0xC4 DHT, 0xC8 JPG, 0xCC DAC are not)


def jpeg_size(data):
    """(height, width) from a JPEG's frame header, or None if `data` is not a JPEG (or is cut
    before its header). Reads a few markers, decodes nothing: a worker learns here what
    ClipDataset learns by decoding, whether a frame has the data set's size."""
    if not data or data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        if marker in _SOF:
            return (int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")) \
                if i + 9 <= len(data) else None
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


# ------------------------------------------------------------------ items and batches
class EncodedItem(NamedTuple):
    """One video's frames as JPEG bytes (a worker builds it; collate_encoded batches them).
    Q = positions, G = images per position (RGB 1; flow 2L: u1, v1, ..., uL, vL), nb = crops."""
    jpegs: list              # distinct images of the item, bytes-like (packs: memoryviews)
    names: list              # their files (str), for error messages
    slots: np.ndarray        # (Q, G) int64: index into jpegs of image g of position q
    boxes: np.ndarray        # (nb, 2) int64: (top, left) of each crop
    flips: np.ndarray        # (Q * nb,) bool, position-major as ClipDataset
    label: int
    index: int
    bad: int                 # frames replaced under --on-bad-frame skip
    frame_size: tuple        # (H, W) every image must have
    crop: int
    color: bool              # RGB images (3 channels) or grey flow components (1)


class EncodedBatch(NamedTuple):
    """A batch of EncodedItems: what crosses from a worker to the main process under --decode
    gpu. Only `data` is a tensor (one shared-memory segment); the rest travels by value."""
    data: torch.Tensor       # (N,) uint8: the JPEG bytes of every image, concatenated
    offsets: np.ndarray      # (F + 1,) int64: image f is data[offsets[f]:offsets[f + 1]]
    slots: np.ndarray        # (B, Q, G) int64: the image of (sample, position, channel group)
    boxes: np.ndarray        # (B, nb, 2) int64: crop corners (top, left)
    flips: np.ndarray        # (B, P) bool, P = Q x nb: mirror this position (flow: and invert u)
    labels: np.ndarray       # (B,) int64
    indices: np.ndarray      # (B,) int64: the items' indices in their dataset
    bad_frames: int          # frames replaced under --on-bad-frame skip
    names: list              # (F,) str: image f's file, for error messages
    frame_size: tuple        # (H, W)
    crop: int
    color: bool


class EncodedClipDataset(ClipDataset):
    """ClipDataset's items (same sampling, crops, flips, bad-frame rule) as JPEG bytes.

    A frame is bad when its bytes are missing, are not a JPEG, or its header gives another
    size than the data set's (what ClipDataset finds by decoding); --on-bad-frame then acts
    as in ClipDataset. Bytes that pass the header check but do not decode are found on the
    device (decode_clips), which raises naming the file: fix it, or run --check-data."""

    # Items one by one through collate_encoded: ClipDataset's batch-at-once decoding
    # (__getitems__) does not apply to bytes. (The DataLoader and Subset skip a None.)
    __getitems__ = None

    def _read_image(self, path):
        data = read_bytes(path)
        return data if data and jpeg_size(data) == self.frame_size else None

    def read_encoded(self, paths_of, i):
        """[(bytes, name)] of frame i: one RGB image or the (u, v) pair; None if any is bad."""
        paths = paths_of(i)
        paths = paths if isinstance(paths, tuple) else (paths,)
        images = [(self._read_image(p), str(p)) for p in paths]
        return None if any(data is None for data, _ in images) else images

    def __getitem__(self, item):
        plan = self._plan(item)
        index, positions, boxes = plan
        video, label = self.entries[index]
        n = self.counts[video]
        paths_of = self.layout.frame_paths(video, self.modality)
        jpegs, names, slots, bad = [], [], [], 0
        stored = {}  # frame index -> (its images' indices in jpegs, bad): a frame used twice is read once
        for p in positions:
            row = []
            for i in stack_indices(int(p), self.span, n):
                if i not in stored:
                    images, b = self._load_frame(video, paths_of, i, n, read=self.read_encoded)
                    stored[i] = (list(range(len(jpegs), len(jpegs) + len(images))), b)
                    jpegs += [data for data, _ in images]
                    names += [name for _, name in images]
                where, b = stored[i]
                row += where
                bad += b
            slots.append(row)
        flips = np.array(self._flips(plan), dtype=bool)
        corners = np.array([(top, left) for top, left, _ in boxes], dtype=np.int64).reshape(-1, 2)
        return EncodedItem(jpegs, names, np.array(slots, dtype=np.int64), corners, flips, label, index, bad,
                           self.frame_size, self.crop, self.modality == "rgb")


def _byte_tensor(size):
    """An empty (size,) uint8 tensor; in a data worker, in shared memory already (as
    default_collate allocates), so that the batch is not copied again to cross processes."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(size, dtype=torch.uint8)
    elem = torch.empty(0, dtype=torch.uint8)
    return elem.new(elem._typed_storage()._new_shared(size, device="cpu")).resize_(size)


def collate_encoded(items):
    """EncodedItems -> one EncodedBatch: the bytes of all images in one tensor."""
    jpegs = [data for it in items for data in it.jpegs]
    offsets = np.zeros(len(jpegs) + 1, dtype=np.int64)
    np.cumsum([len(data) for data in jpegs], out=offsets[1:])
    data = _byte_tensor(int(offsets[-1]))
    flat = data.numpy()
    for d, start, end in zip(jpegs, offsets[:-1], offsets[1:]):
        flat[start:end] = np.frombuffer(d, np.uint8)
    first = np.cumsum([0] + [len(it.jpegs) for it in items[:-1]])  # each item's first image
    head = items[0]
    return EncodedBatch(data, offsets, np.stack([it.slots + f for it, f in zip(items, first)]),
                        np.stack([it.boxes for it in items]), np.stack([it.flips for it in items]),
                        np.array([it.label for it in items], dtype=np.int64),
                        np.array([it.index for it in items], dtype=np.int64), sum(it.bad for it in items),
                        [name for it in items for name in it.names], head.frame_size, head.crop, head.color)


# ------------------------------------------------------------------ decoding on the device
def _reason(error):
    """The decoder's own words: torchvision prefixes libjpeg's message with its source line."""
    last = (str(error).strip().splitlines() or [type(error).__name__])[-1]
    return re.sub(r"^decode_jpeg, \S+:\d+, ", "", last)


def _first_undecodable(jpegs, names, mode, device):
    """(name, error) of the first image that does not decode alone: on the CPU first (no
    device state to spoil), then on the device. (None, None) if each decodes alone."""
    for where in dict.fromkeys([torch.device("cpu"), device]):
        for jpeg, name in zip(jpegs, names):
            try:
                decode_jpeg(jpeg, mode=mode, device=where)
            except RuntimeError as e:
                return name, e
    return None, None


def decode_frames(batch, device):
    """The batch's images decoded on `device` in one batched call: (F, c, H, W) uint8, c = 3
    (RGB) or 1 (flow). Raises BadFrameError naming the file that does not decode or whose
    size is not the data set's."""
    bounds = batch.offsets.tolist()
    jpegs = [batch.data[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    mode = ImageReadMode.RGB if batch.color else ImageReadMode.GRAY
    try:
        images = decode_jpeg(jpegs, mode=mode, device=device)
    except RuntimeError:
        name, error = _first_undecodable(jpegs, batch.names, mode, device)
        if name is None:
            raise
        raise BadFrameError(f"{name}: cannot be decoded as a JPEG ({_reason(error)}); "
                            "fix or re-extract the file and run --check-data") from None
    h, w = batch.frame_size
    for image, name in zip(images, batch.names):
        if tuple(image.shape[-2:]) != (h, w):
            raise BadFrameError(f"{name}: decodes to {image.shape[-1]}x{image.shape[-2]}, but the data set's frames "
                                f"are {w}x{h}; re-extract it at {w}x{h} and run --check-data")
    return torch.stack(images)


def crop_clips(frames, batch):
    """frames (F, c, H, W) -> clips (B, Q * nb, G * c, crop, crop): position q, crop k of a
    sample is its G images cropped at box k, channels in image order. One gather."""
    dev, c = frames.device, batch.crop
    slots = torch.from_numpy(batch.slots).to(dev)             # (B, Q, G)
    boxes = torch.from_numpy(batch.boxes).to(dev)             # (B, nb, 2)
    span = torch.arange(c, device=dev)
    rows = boxes[:, :, 0, None] + span                        # (B, nb, crop)
    cols = boxes[:, :, 1, None] + span                        # (B, nb, crop)
    image = slots[:, :, None, :, None, None, None]            # (B, Q, 1, G, 1, 1, 1)
    channel = torch.arange(frames.shape[1], device=dev)[:, None, None]  # (c, 1, 1)
    y = rows[:, None, :, None, None, :, None]                 # (B, 1, nb, 1, 1, crop, 1)
    x = cols[:, None, :, None, None, None, :]                 # (B, 1, nb, 1, 1, 1, crop)
    out = frames[image, channel, y, x]                        # (B, Q, nb, G, c, crop, crop)
    b, q, nb, g, ch = out.shape[:5]
    return out.reshape(b, q * nb, g * ch, c, c)


def decode_clips(batch, device):
    """An EncodedBatch -> uint8 clips (B, P, C, crop, crop) on `device`, laid out as ClipDataset's."""
    return crop_clips(decode_frames(batch, torch.device(device)), batch)


def check_gpu_decode(device):
    """Raise ValueError, saying what to do, unless torchvision decodes JPEGs on `device`:
    decodes one tiny JPEG there, before any training starts."""
    tiny = encode_jpeg(torch.zeros(3, 16, 16, dtype=torch.uint8))
    try:
        decode_jpeg([tiny], mode=ImageReadMode.RGB, device=device)
        torch.cuda.synchronize(device)
    except (RuntimeError, NotImplementedError, AssertionError) as e:
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"--decode gpu: torchvision {torchvision.__version__} cannot decode JPEGs on {device} "
                         f"({detail}); install the CUDA build of torchvision that matches torch {torch.__version__} "
                         "(GPU JPEG decoding, nvJPEG), or use --decode cpu") from None
