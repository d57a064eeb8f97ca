"""Packed frames: the JPEG files of one video (one of rgb, u, v) in one file.

A UCF101 dump is ~7 million small files. On a disk where every open and seek is slow (the
original two-stream scripts' case), reading a training sample means 3 (RGB) or 60 (flow) file opens scattered
over the disk; from a pack it is one open per video (kept open) and contiguous reads.
`python -m tools.pack_frames` writes the packs; `open_layout` then reads them transparently.

File format (little-endian):
    8 bytes   magic b"TSNPACK2"
    uint64    n, the number of frames
    uint64    n + 1 offsets from the start of the file: frame i is bytes [off[i], off[i + 1])
    uint64    the sources record: the total size in bytes of the n frame files packed ...
    int64     ... and their latest modification time (st_mtime_ns), as they were when packed
    ...       the JPEG bytes of frames 1..n, unchanged

The sources record lets pack_frames tell a pack whose frame files changed since (a frame
fixed or replaced) from one that is up to date, at the cost of a stat() per frame file.
Packs written by older code (magic b"TSNPACK1") are the same without the record; they stay
readable, and their `source` is None.
"""
import mmap
import os
from collections import OrderedDict

import numpy as np

import utils

MAGIC = b"TSNPACK2"
MAGIC_V1 = b"TSNPACK1"  # older code's packs: no sources record
SUFFIX = ".pack"
SOURCES = {"rgb": ("rgb",), "flow": ("u", "v")}  # the packs of a video, per modality


class PackError(ValueError):
    pass


def write_pack(path, frames, source):
    """Write the byte strings `frames` as a pack at `path`, atomically (temporary file, then
    rename), so that an interrupted packing never leaves a pack that looks complete.
    `source`: (total bytes, latest st_mtime_ns) of the frame files (the sources record)."""
    sizes = np.array([len(f) for f in frames], dtype=np.uint64)
    header = len(MAGIC) + 8 + 8 * (len(frames) + 1) + 16
    offsets = header + np.concatenate([[0], np.cumsum(sizes)]).astype(np.uint64)

    def write(f):
        f.write(MAGIC)
        f.write(np.array(len(frames), "<u8").tobytes())
        f.write(offsets.astype("<u8").tobytes())
        f.write(np.array(source[0], "<u8").tobytes() + np.array(source[1], "<i8").tobytes())
        for frame in frames:
            f.write(frame)

    utils.atomic_write(path, write)


class PackFile:
    """An open pack: len() frames, read(i) -> the JPEG bytes of frame i (0-based); `source`:
    the sources record (total bytes, latest st_mtime_ns), None for an older code's pack.

    The file is memory-mapped: read(i) is a view of the page cache, no system call and no
    copy (os.pread cost 4-7 us a frame, 5% of decoding a flow frame). Forked data workers
    share the mapping. A pack must not be changed in place while it is open (pack_frames
    replaces packs by renaming, which is safe): reading a truncated mapping kills the
    process with SIGBUS."""

    def __init__(self, path):
        self.path = path
        fd = os.open(path, os.O_RDONLY)
        try:
            # Python ints, not numpy: read() indexes them once a frame
            self.offsets = self._read_header(fd).tolist()
            self._map = memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_READ))
        finally:
            os.close(fd)  # the mapping keeps the file

    def _read_header(self, fd):
        head = os.pread(fd, len(MAGIC) + 8, 0)
        if len(head) < len(MAGIC) + 8 or head[:len(MAGIC)] not in (MAGIC, MAGIC_V1):
            raise PackError(f"{self.path}: not a frame pack (bad header); re-run python -m tools.pack_frames")
        n = int(np.frombuffer(head[len(MAGIC):], "<u8")[0])
        record = 16 if head[:len(MAGIC)] == MAGIC else 0
        raw = os.pread(fd, 8 * (n + 1) + record, len(MAGIC) + 8)
        whole = len(raw) == 8 * (n + 1) + record
        offsets = np.frombuffer(raw[:8 * (n + 1)], "<u8").astype(np.int64) if whole else None
        self.source = None
        if whole and record:
            self.source = (int(np.frombuffer(raw[-16:-8], "<u8")[0]), int(np.frombuffer(raw[-8:], "<i8")[0]))
        size = os.fstat(fd).st_size
        if offsets is None or offsets[-1] != size or np.any(np.diff(offsets) < 0) \
                or offsets[0] != len(MAGIC) + 8 + len(raw):
            raise PackError(f"{self.path}: truncated or corrupt pack (index does not match the file size "
                            f"{size}); delete it and re-run python -m tools.pack_frames")
        return offsets

    def __len__(self):
        return len(self.offsets) - 1

    def read(self, i):
        """Frame i's JPEG bytes: a read-only memoryview into the mapped pack."""
        return self._map[self.offsets[i]:self.offsets[i + 1]]

    def close(self):
        # Views handed out may still be alive (a frame being decoded): dropping the reference
        # unmaps the file once the last of them is gone, where mmap.close() would raise.
        self._map = None


class PackCache:
    """The packs this process has open, at most `size` (least recently used closed first)."""

    def __init__(self, size=64):
        self.size = size
        self._open = OrderedDict()

    def get(self, path):
        pack = self._open.get(path)
        if pack is not None:  # the common case, once a frame: cheap
            self._open.move_to_end(path)
            return pack
        pack = self._open[path] = PackFile(path)
        while len(self._open) > self.size:
            self._open.popitem(last=False)[1].close()
        return pack

    def __getstate__(self):  # mappings do not travel to spawned processes: they reopen
        return {"size": self.size, "_open": OrderedDict()}


class PackedFrame:
    """Frame i of a pack: what a layout's frame_paths() returns for packed data."""

    __slots__ = ("cache", "path", "index")

    def __init__(self, cache, path, index):
        self.cache, self.path, self.index = cache, path, index

    def read(self):
        """The JPEG bytes (a memoryview, see PackFile.read), or None if the pack cannot be read
        or has no such frame."""
        try:
            pack = self.cache.get(self.path)
            return pack.read(self.index) if 0 <= self.index < len(pack) else None
        except (OSError, PackError):
            return None

    def __str__(self):
        return f"{self.path} (frame {self.index + 1})"

    __repr__ = __str__
