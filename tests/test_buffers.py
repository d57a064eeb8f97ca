"""Whole batches decoded straight into one tensor (ClipDataset.__getitems__), and the data
workers' reused shared-memory buffers (dataloader/buffers.py)."""
import collections.abc
import dataclasses
import os

import cv2
import numpy as np
import pytest
import torch

from dataloader.buffers import BatchBuffers, release
from dataloader.datasets import ClipDataset, collate_clips, count_frames
from dataloader.sampling import EpochSampler
from dataloader.frame_dirs import open_layout
from dataloader.splits import load_split
from engine.data import make_loader
from tests.tiny import make_tiny_data

CROP = 32


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = make_tiny_data(tmp_path_factory.mktemp("tiny"))
    split = load_split("ucf101", str(root / "ucfTrainTestlist"), 1)
    return open_layout("auto", str(root)), split.train


def dataset(tiny, modality, train=True, **kw):
    layout, entries = tiny
    counts = count_frames(entries, layout, modality)
    return ClipDataset(entries, counts, layout, modality, stack=3, crop_size=CROP, num_segments=3, train=train,
                       test_frames=4, seed=5, **kw)


def decode_item(ds, item):
    """An item's clip computed independently: cv2 decodes of whole frames (BGR reversed to
    RGB), numpy crops, channels first; flow channels u_j, v_j. (P, C, crop, crop) uint8."""
    index, positions, boxes = ds._plan(item)
    video = ds.entries[index][0]
    n = ds.counts[video]
    paths_of = ds.layout.frame_paths(video, ds.modality)
    out = []
    for p in positions:
        if ds.modality == "rgb":
            frames = [cv2.imread(paths_of(int(p)), cv2.IMREAD_COLOR)[:, :, ::-1].transpose(2, 0, 1)]
        else:
            frames = [np.stack([cv2.imread(path, cv2.IMREAD_GRAYSCALE) for path in paths_of(min(int(p) + j, n - 1))])
                      for j in range(ds.span)]
        stacked = np.concatenate(frames)  # (C, H, W)
        out += [stacked[:, top:top + CROP, left:left + CROP] for top, left, _ in boxes]
    return np.stack(out)


@pytest.mark.parametrize("modality", ["rgb", "flow"])
@pytest.mark.parametrize("train", [True, False])
def test_a_batch_equals_its_items_and_an_independent_decode(tiny, modality, train):
    ds = dataset(tiny, modality, train=train, test_crops=1 if train else 3)
    items = [(i, 2) for i in (3, 0, 7)] if train else [3, 0, 7]
    batch = ds.__getitems__(items)
    singles = [ds[item] for item in items]
    p = 3 if train else 4 * 3
    assert batch.clips.shape == (3, p, 3 if modality == "rgb" else 6, CROP, CROP)
    for row, (item, single) in enumerate(zip(items, singles)):
        want = decode_item(ds, item)
        assert want.std() > 2  # textured frames (flow: noise on flat motion): a wrong crop or order shows
        assert np.array_equal(batch.clips[row].numpy(), want)
        assert torch.equal(single[0], batch.clips[row])
        assert np.array_equal(single[1], batch.flips[row])
        assert (single[2], single[3]) == (batch.labels[row], batch.indices[row])
    if train:  # one flip per video, drawn from its generator
        assert batch.flips.shape == (3, 3) and (batch.flips == batch.flips[:, :1]).all()
    collated = collate_clips(singles)
    assert torch.equal(collated.clips, batch.clips) and np.array_equal(collated.flips, batch.flips)
    assert collate_clips(batch) is batch  # the DataLoader's collate passes a built batch through


def test_buffers_are_reused_only_once_released():
    pool = BatchBuffers(keep=2)
    a = pool.take((2, 3, 4))
    a.fill_(7)
    b = pool.take((2, 3, 4))
    assert b.data_ptr() != a.data_ptr()  # a is still lent
    release(a)
    c = pool.take((2, 3, 4))
    assert c.data_ptr() == a.data_ptr() and c.shape == (2, 3, 4) and c.is_contiguous()
    d = pool.take((2, 3, 4))  # a (now c) and b lent: a new buffer; the pool forgets the oldest, a
    assert d.data_ptr() not in (a.data_ptr(), b.data_ptr())
    assert len(pool.pool) == 2
    release(a)  # forgotten: releasing it does not bring it back
    e = pool.take((2, 3, 4))
    assert e.data_ptr() not in (a.data_ptr(), b.data_ptr(), d.data_ptr())
    release(d)
    assert pool.take((1, 2)).data_ptr() == d.data_ptr()  # a smaller batch fits a free buffer


def loader_batches(ds, items, keep):
    """Batches of a real one-worker loader; with keep=False each is copied out and released
    (as engine.loop.to_device does), with keep=True all are held, never released."""
    sampler = EpochSampler(len(ds), seed=3)
    sampler.set_epoch(1)
    loader = make_loader(ds, 2, torch.device("cpu"), 1, seed=0, sampler=sampler)
    out, inodes = [], []
    for batch in loader:
        inodes.append(os.fstat(batch.clips.untyped_storage()._share_fd_cpu_()[0]).st_ino)
        if keep:
            out.append(batch)
        else:
            out.append(dataclasses.replace(batch, clips=batch.clips.clone()))
            batch.release()
    return out, inodes


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_a_worker_reuses_released_buffers_without_corrupting_batches(tiny, modality):
    ds = dataset(tiny, modality)
    released, inodes = loader_batches(ds, None, keep=False)
    assert len(released) >= 6
    assert len(set(inodes)) <= 4 < len(inodes)  # buffers came back (3 kept, plus the last batch's size)
    held, held_inodes = loader_batches(ds, None, keep=True)
    assert len(set(held_inodes)) == len(held_inodes)  # never released: never reused
    for a, b in zip(released, held):
        assert np.array_equal(a.indices, b.indices)
        want = ds.__getitems__([(i, 1) for i in a.indices.tolist()])
        assert torch.equal(a.clips, want.clips) and torch.equal(b.clips, want.clips)


def test_pinning_a_batch_releases_its_buffer(monkeypatch):
    """On CUDA the DataLoader's pin-memory thread pins each batch (torch's pin_memory utility,
    called here as that thread calls it), which must reach ClipBatch.pin_memory: the clips are
    copied (to pinned memory) and the worker's buffer is released at once. Pinning needs a
    GPU, so the copy is a plain clone here; what is tested is the release and the copy."""
    from torch.utils.data._utils.pin_memory import pin_memory as pin_as_the_loader_does
    from dataloader.buffers import FREE, LENT, _flag
    from dataloader.datasets import ClipBatch
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a, **k: self.clone())
    pool = BatchBuffers()
    clips = pool.take((2, 3, 4, 4))
    clips.copy_(torch.arange(clips.numel(), dtype=torch.uint8).view(clips.shape))
    batch = ClipBatch(clips, np.zeros((2, 3), bool), np.zeros(2, np.int64), np.arange(2), 0, lease=True)
    flag = _flag(clips.untyped_storage())
    assert flag[0] == LENT
    # Older torch releases pin tuples, sequences and mappings field by field before they look
    # for a pin_memory method: a ClipBatch must be none of them to reach its own in every release.
    assert not isinstance(batch, (tuple, collections.abc.Sequence, collections.abc.Mapping))
    pinned = pin_as_the_loader_does(batch)
    assert isinstance(pinned, ClipBatch)
    assert flag[0] == FREE and not pinned.lease
    assert torch.equal(pinned.clips, clips) and pinned.clips.data_ptr() != clips.data_ptr()
    pinned.release()  # a pinned batch has no buffer: releasing it again changes nothing
    assert pool.take((2, 3, 4, 4)).data_ptr() == clips.data_ptr()


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_what_training_sees_through_reused_buffers_is_exact(tiny, modality):
    """The training loader as the engine runs it (two persistent workers, three epochs,
    to_device releasing every batch): each network input equals the one computed in this
    process from the same items, while the workers reuse their buffers."""
    from engine.loop import to_device
    ds = dataset(tiny, modality)
    sampler = EpochSampler(len(ds), seed=7)
    loader = make_loader(ds, 3, torch.device("cpu"), 2, seed=0, sampler=sampler, persistent=True)
    inodes, batches = [], 0
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for batch in loader:
            inodes.append(os.fstat(batch.clips.untyped_storage()._share_fd_cpu_()[0]).st_ino)
            items = [(i, epoch) for i in batch.indices.tolist()]
            x, y = to_device(batch, torch.device("cpu"), modality)
            want_x, want_y = to_device(ds.__getitems__(items), torch.device("cpu"), modality)
            assert torch.equal(x, want_x) and torch.equal(y, want_y)
            batches += 1
    assert batches == 3 * len(loader)
    assert len(set(inodes)) <= 2 * 4 < len(inodes)  # two workers, a few buffers each, reused
