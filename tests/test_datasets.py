"""Tests of dataloader/layout.py and dataloader/datasets.py on tiny frame folders.

Frames are constant images so that JPEG (lossless on flat images) keeps their values and a
decoded clip tells which frame it came from: RGB frame i and flow u frame i hold 8*i,
flow v frame i holds 8*i + 4.
"""
import os

import cv2
import numpy as np
import pytest
import torch

from dataloader.datasets import BadFrameError, ClipDataset, DataError, collate_clips, count_frames
from dataloader.sampling import EpochSampler
from dataloader.layout import MMActionLayout, TwoStreamLayout
from dataloader.frame_dirs import FrameDirs, open_layout
from engine.data import make_loader

H, W, CROP = 24, 32, 16


def gray(value, h=H, w=W, color=False):
    img = np.full((h, w), value, np.uint8)
    return np.repeat(img[:, :, None], 3, axis=2) if color else img


def u_val(i):
    return 8 * i


def v_val(i):
    return 8 * i + 4


def write_twostream(root, videos):
    """videos: {video: (n_rgb, n_flow)} in the two-stream layout under root."""
    for video, (n_rgb, n_flow) in videos.items():
        rgb = os.path.join(root, "jpegs_256", f"v_{video}")
        u = os.path.join(root, "tvl1_flow", "u", f"v_{video}")
        v = os.path.join(root, "tvl1_flow", "v", f"v_{video}")
        for d in (rgb, u, v):
            os.makedirs(d, exist_ok=True)
        for i in range(n_rgb):
            assert cv2.imwrite(os.path.join(rgb, f"frame{i + 1:06d}.jpg"), gray(8 * i, color=True))
        for i in range(n_flow):
            assert cv2.imwrite(os.path.join(u, f"frame{i + 1:06d}.jpg"), gray(u_val(i)))
            assert cv2.imwrite(os.path.join(v, f"frame{i + 1:06d}.jpg"), gray(v_val(i)))
    return TwoStreamLayout(os.path.join(root, "jpegs_256"), os.path.join(root, "tvl1_flow"))


def write_mmaction(root, videos):
    for video, (n_rgb, n_flow) in videos.items():
        d = os.path.join(root, "rawframes", video.split("_")[0], f"v_{video}")
        os.makedirs(d, exist_ok=True)
        for i in range(n_rgb):
            assert cv2.imwrite(os.path.join(d, f"img_{i + 1:05d}.jpg"), gray(8 * i, color=True))
        for i in range(n_flow):
            assert cv2.imwrite(os.path.join(d, f"flow_x_{i + 1:05d}.jpg"), gray(u_val(i)))
            assert cv2.imwrite(os.path.join(d, f"flow_y_{i + 1:05d}.jpg"), gray(v_val(i)))
    return MMActionLayout(os.path.join(root, "rawframes"))


def expected_flow(position, stack, n):
    """(2*stack,) channel values of a flow sample: u1, v1, ..., clamped at the last frame."""
    vals = []
    for j in range(stack):
        i = min(position + j, n - 1)
        vals += [u_val(i), v_val(i)]
    return np.array(vals)


def assert_constant(clip, values, tol=1):
    """clip (P, C, h, w) uint8 is constant per (P, C) with the given values (P, C)."""
    c = clip.numpy().astype(np.int64)
    want = np.asarray(values)[:, :, None, None]
    assert np.abs(c - want).max() <= tol, (c[:, :, 0, 0], want[:, :, 0, 0])


def rgb_index(clip):
    """Frame index of each RGB sample of a clip made of constant frames 8*i."""
    return np.rint(clip.numpy().astype(np.float64).mean(axis=(1, 2, 3)) / 8).astype(int)


def make_ds(layout, entries, modality, **kw):
    counts = count_frames(entries, layout, modality)
    kw.setdefault("crop_size", CROP)
    return ClipDataset(entries, counts, layout, modality, **kw)


@pytest.fixture
def twostream(tmp_path):
    layout = write_twostream(str(tmp_path), {"Archery_g01_c01": (13, 12), "Short_g01_c01": (5, 4),
                                             "Long_g02_c01": (30, 30)})
    return layout, tmp_path


# ------------------------------------------------------------------ motion and RGB samples
def test_flow_stack_order_u1_v1_u2_v2(twostream):
    layout, _ = twostream
    ds = make_ds(layout, [("Archery_g01_c01", 4)], "flow", stack=5, train=False, test_frames=2)
    clip, flip, label, index, bad = ds[0]
    # 12 flow frames, span 5: 8 usable positions; test positions floor(2), floor(6)
    assert clip.shape == (2, 10, CROP, CROP) and clip.dtype == torch.uint8
    assert_constant(clip, [expected_flow(2, 5, 12), expected_flow(6, 5, 12)])
    # first channels by hand: u of frame 2, v of frame 2, u of frame 3
    assert list(clip[0, :3, 0, 0]) == [16, 20, 24]
    assert (label, index, bad) == (4, 0, 0)
    assert not flip.any()


def test_flow_stack_clamped_in_short_video(twostream):
    layout, _ = twostream
    ds = make_ds(layout, [("Short_g01_c01", 0)], "flow", stack=5, train=False, test_frames=3)
    clip = ds[0][0]
    # 4 flow frames: frames 0, 1, 2, 3, 3 -> u 0, 8, 16, 24, 24 and v 4, 12, 20, 28, 28
    want = [0, 4, 8, 12, 16, 20, 24, 28, 24, 28]
    assert clip.shape == (3, 10, CROP, CROP)
    assert_constant(clip, [want] * 3)


def test_rgb_channels_are_rgb_not_bgr(tmp_path):
    d = tmp_path / "jpegs_256" / "v_Red_g01_c01"
    d.mkdir(parents=True)
    red_bgr = np.zeros((H, W, 3), np.uint8)
    red_bgr[:, :, 2] = 255  # OpenCV writes BGR: this is pure red
    for i in range(3):
        assert cv2.imwrite(str(d / f"frame{i + 1:06d}.jpg"), red_bgr)
    layout = TwoStreamLayout(str(tmp_path / "jpegs_256"), str(tmp_path / "tvl1_flow"))
    clip = make_ds(layout, [("Red_g01_c01", 0)], "rgb", train=False, test_frames=2)[0][0]
    assert clip.shape == (2, 3, CROP, CROP)
    c = clip.numpy().astype(int)
    assert (c[:, 0] > 235).all()
    assert (c[:, 1:] < 20).all()


def test_rgb_test_positions_pick_hand_computed_frames(twostream):
    layout, _ = twostream
    ds = make_ds(layout, [("Long_g02_c01", 0)], "rgb", train=False, test_frames=3)
    # 30 frames, 3 positions: floor(5), floor(15), floor(25)
    assert rgb_index(ds[0][0]).tolist() == [5, 15, 25]


# ------------------------------------------------------------------ counting frames
def test_count_frames_per_modality(tmp_path):
    layout = write_twostream(str(tmp_path), {"A_g01_c01": (6, 5), "B_g01_c01": (4, 3)})
    # one v frame fewer than u: the flow count is what both have
    os.remove(os.path.join(tmp_path, "tvl1_flow", "v", "v_A_g01_c01", "frame000005.jpg"))
    entries = [("A_g01_c01", 0), ("B_g01_c01", 1)]
    layout = TwoStreamLayout(layout.rgb_dir, layout.flow_dir)
    assert count_frames(entries, layout, "rgb") == {"A_g01_c01": 6, "B_g01_c01": 4}
    assert count_frames(entries, layout, "flow") == {"A_g01_c01": 4, "B_g01_c01": 3}


def test_count_frames_missing_videos_named(twostream):
    layout, _ = twostream
    entries = [("Archery_g01_c01", 0), ("Nope_g01_c01", 1), ("Gone_g02_c03", 1)]
    with pytest.raises(DataError) as e:
        count_frames(entries, layout, "rgb")
    msg = str(e.value)
    assert "2 of 3" in msg and "Nope_g01_c01" in msg and "Gone_g02_c03" in msg
    assert "Archery_g01_c01" not in msg


def test_count_frames_missing_flow_only_in_v(twostream):
    layout, root = twostream
    os.makedirs(root / "tvl1_flow" / "u" / "v_Extra_g01_c01")
    layout = TwoStreamLayout(layout.rgb_dir, layout.flow_dir)
    with pytest.raises(DataError, match="Extra_g01_c01"):
        count_frames([("Extra_g01_c01", 0)], layout, "flow")


def test_count_frames_empty_folder(twostream):
    layout, root = twostream
    os.makedirs(root / "jpegs_256" / "v_Empty_g03_c01")
    layout = TwoStreamLayout(layout.rgb_dir, layout.flow_dir)
    with pytest.raises(DataError) as e:
        count_frames([("Archery_g01_c01", 0), ("Empty_g03_c01", 0)], layout, "rgb")
    assert "Empty_g03_c01" in str(e.value) and "Archery_g01_c01" not in str(e.value)


def test_layout_case_insensitive_names(tmp_path):
    layout = write_twostream(str(tmp_path), {"HandStandPushups_g01_c01": (2, 1)})
    assert layout.has("HandstandPushups_g01_c01", "rgb")
    assert layout.has("HandStandPushups_g01_c01", "flow")
    assert count_frames([("HandstandPushups_g01_c01", 0)], layout, "rgb") == {"HandstandPushups_g01_c01": 2}


# ------------------------------------------------------------------ bad frames
@pytest.fixture
def bad_rgb(tmp_path):
    layout = write_twostream(str(tmp_path), {"Bad_g01_c01": (10, 6)})
    rgb = tmp_path / "jpegs_256" / "v_Bad_g01_c01"
    (rgb / "frame000005.jpg").write_bytes(b"")                                  # index 4: empty
    (rgb / "frame000008.jpg").write_bytes(b"not a jpeg" + np.random.default_rng(0).bytes(400))  # index 7
    (tmp_path / "tvl1_flow" / "u" / "v_Bad_g01_c01" / "frame000003.jpg").write_bytes(b"")  # flow index 2
    return layout, rgb, tmp_path


def test_bad_rgb_frames_error_names_file(bad_rgb):
    layout, rgb, _ = bad_rgb
    ds = make_ds(layout, [("Bad_g01_c01", 0)], "rgb", train=False, test_frames=10)
    with pytest.raises(BadFrameError) as e:
        ds[0]
    assert str(rgb / "frame000005.jpg") in str(e.value)


def test_corrupt_frame_error_names_file(bad_rgb):
    layout, rgb, _ = bad_rgb
    ds = make_ds(layout, [("Bad_g01_c01", 0)], "rgb", train=False, test_frames=5)
    # positions floor((i + .5) * 2) = 1, 3, 5, 7, 9: index 7 is the corrupt file, 4 is not read
    with pytest.raises(BadFrameError) as e:
        ds[0]
    assert str(rgb / "frame000008.jpg") in str(e.value)


def test_bad_rgb_frames_skip_uses_nearest(bad_rgb):
    layout, _, _ = bad_rgb
    ds = make_ds(layout, [("Bad_g01_c01", 0)], "rgb", train=False, test_frames=10, on_bad_frame="skip")
    clip, _, _, _, bad = ds[0]
    # index 4 -> nearest readable is 3 (looked at first), index 7 -> 6
    assert rgb_index(clip).tolist() == [0, 1, 2, 3, 3, 5, 6, 6, 8, 9]
    assert bad == 2


def test_bad_flow_frame_error_and_skip(bad_rgb):
    layout, _, root = bad_rgb
    entries = [("Bad_g01_c01", 0)]
    ds = make_ds(layout, entries, "flow", stack=5, train=False, test_frames=1)
    with pytest.raises(BadFrameError) as e:
        ds[0]
    assert str(root / "tvl1_flow" / "u" / "v_Bad_g01_c01" / "frame000003.jpg") in str(e.value)
    ds = make_ds(layout, entries, "flow", stack=5, train=False, test_frames=1, on_bad_frame="skip")
    clip, _, _, _, bad = ds[0]
    # 6 flow frames, span 5: 2 usable positions, test position floor(1) = 1 -> frames 1..5,
    # frame 2 unreadable -> frame 1 (both u and v)
    want = np.concatenate([expected_flow(1, 1, 6), expected_flow(1, 1, 6), expected_flow(3, 3, 6)])
    assert_constant(clip, [want])
    assert bad == 1


def test_frame_of_wrong_size_is_bad(tmp_path):
    layout = write_twostream(str(tmp_path), {"Odd_g01_c01": (4, 1)})
    path = tmp_path / "jpegs_256" / "v_Odd_g01_c01" / "frame000003.jpg"
    assert cv2.imwrite(str(path), gray(16, h=H + 8, w=W, color=True))
    ds = make_ds(layout, [("Odd_g01_c01", 0)], "rgb", train=False, test_frames=4)
    with pytest.raises(BadFrameError, match="frame000003.jpg"):
        ds[0]


def test_crop_larger_than_frames(twostream):
    layout, _ = twostream
    with pytest.raises(DataError, match="crop"):
        make_ds(layout, [("Archery_g01_c01", 0)], "rgb", crop_size=H + 1)
    make_ds(layout, [("Archery_g01_c01", 0)], "rgb", crop_size=H)  # exactly the frame height is fine


# ------------------------------------------------------------------ training items
def test_train_items_deterministic_and_in_segments(twostream):
    layout, _ = twostream
    entries = [("Archery_g01_c01", 1), ("Long_g02_c01", 2)]
    ds = make_ds(layout, entries, "rgb", train=True, num_segments=3, seed=7)
    again = make_ds(layout, entries, "rgb", train=True, num_segments=3, seed=7)
    seen, flips = [], set()
    for epoch in range(30):
        clip, flip, label, index, bad = ds[(1, epoch)]
        assert clip.shape == (3, 3, CROP, CROP) and clip.dtype == torch.uint8
        assert (label, index, bad) == (2, 1, 0)
        assert flip.shape == (3,) and len(set(flip.tolist())) == 1  # one flip for the whole video
        idx = rgb_index(clip)
        for k in range(3):                     # 30 frames: segments [0,10) [10,20) [20,30)
            assert 10 * k <= idx[k] < 10 * (k + 1)
        c2, f2, *_ = again[(1, epoch)]
        assert torch.equal(clip, c2) and np.array_equal(flip, f2)
        seen.append(tuple(idx))
        flips.add(bool(flip[0]))
    assert len(set(seen)) > 20                 # positions change from epoch to epoch
    assert flips == {True, False}
    other_seed = make_ds(layout, entries, "rgb", train=True, num_segments=3, seed=8)
    assert [tuple(rgb_index(other_seed[(1, e)][0])) for e in range(30)] != seen


def test_train_flow_items_in_segments(twostream):
    layout, _ = twostream
    ds = make_ds(layout, [("Long_g02_c01", 0)], "flow", stack=10, train=True, num_segments=3)
    for epoch in range(15):
        clip = ds[(0, epoch)][0]
        assert clip.shape == (3, 20, CROP, CROP)
        starts = np.rint(clip[:, 0].numpy().astype(float).mean(axis=(1, 2)) / 8).astype(int)
        # 30 flow frames, span 10: 21 usable positions -> segments [0,7) [7,14) [14,21)
        for k, (lo, hi) in enumerate([(0, 7), (7, 14), (14, 21)]):
            assert lo <= starts[k] < hi
        assert_constant(clip, [expected_flow(int(p), 10, 30) for p in starts])


def test_test_item_shapes_and_crops(twostream):
    layout, _ = twostream
    ds = make_ds(layout, [("Archery_g01_c01", 0)], "rgb", train=False, test_frames=4, test_crops=10)
    clip, flip, *_ = ds[0]
    assert clip.shape == (40, 3, CROP, CROP)
    assert flip.tolist() == ([False] * 5 + [True] * 5) * 4
    ds = make_ds(layout, [("Archery_g01_c01", 0)], "flow", stack=3, train=False, test_frames=2, test_crops=3)
    clip, flip, *_ = ds[0]
    assert clip.shape == (6, 6, CROP, CROP) and not flip.any()


def test_dataloader_with_epoch_sampler(twostream):
    layout, _ = twostream
    entries = [("Archery_g01_c01", 0), ("Short_g01_c01", 1), ("Long_g02_c01", 2)]
    ds = make_ds(layout, entries, "flow", stack=2, train=True)
    sampler = EpochSampler(len(ds), seed=1)
    sampler.set_epoch(4)
    # Real worker processes: the clips come back through shared memory, the rest by value.
    loader = torch.utils.data.DataLoader(ds, batch_size=2, sampler=sampler, num_workers=2, collate_fn=collate_clips)
    batches = list(loader)
    indices = np.concatenate([b.indices for b in batches]).tolist()
    assert sorted(indices) == [0, 1, 2]
    assert np.concatenate([b.labels for b in batches]).tolist() == [entries[i][1] for i in indices]
    assert batches[0].clips.shape == (2, 3, 4, CROP, CROP) and batches[0].clips.dtype == torch.uint8
    for b in batches:
        assert b.flips.dtype == bool and b.labels.dtype == b.indices.dtype == np.int64 and b.bad_frames == 0
        for row, i in enumerate(b.indices.tolist()):
            clip, flip, *_ = ds[(i, 4)]
            assert torch.equal(b.clips[row], clip) and np.array_equal(b.flips[row], flip)


# ------------------------------------------------------------------ EpochSampler
def test_epoch_sampler_permutations():
    s = EpochSampler(10, seed=3)
    e0 = list(s)
    assert all(ep == 0 for _, ep in e0) and sorted(i for i, _ in e0) == list(range(10))
    s.set_epoch(1)
    e1 = list(s)
    assert all(ep == 1 for _, ep in e1) and sorted(i for i, _ in e1) == list(range(10))
    assert [i for i, _ in e0] != [i for i, _ in e1]
    same = EpochSampler(10, seed=3)
    assert list(same) == e0
    assert len(s) == 10
    assert [i for i, _ in EpochSampler(5, seed=3, shuffle=False)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("size", [10, 7])
def test_epoch_sampler_two_ranks(size):
    r0, r1 = (EpochSampler(size, seed=5, rank=r, world_size=2) for r in (0, 1))
    for epoch in (0, 1):
        r0.set_epoch(epoch)
        r1.set_epoch(epoch)
        a, b = [i for i, _ in r0], [i for i, _ in r1]
        assert len(a) == len(b) == len(r0) == (size + 1) // 2
        assert set(a) | set(b) == set(range(size))
        if size % 2 == 0:
            assert not set(a) & set(b)
        else:
            # one index is repeated to pad the last rank; everything else is disjoint
            assert len(a) + len(b) == size + 1 and len(set(a) & set(b)) == 1
            assert len(set(a)) == len(a) and len(set(b)) == len(b)


# ------------------------------------------------------------------ mmaction layout and detection
def test_mmaction_layout_reads_the_same(tmp_path):
    videos = {"Archery_g01_c01": (13, 12), "Short_g01_c01": (5, 4)}
    two = write_twostream(str(tmp_path / "a"), videos)
    mm = write_mmaction(str(tmp_path / "b"), videos)
    entries = [("Archery_g01_c01", 0), ("Short_g01_c01", 1)]
    for modality in ("rgb", "flow"):
        assert count_frames(entries, mm, modality) == count_frames(entries, two, modality)
        d1 = make_ds(two, entries, modality, stack=5, train=False, test_frames=3)
        d2 = make_ds(mm, entries, modality, stack=5, train=False, test_frames=3)
        for i in range(2):
            assert torch.equal(d1[i][0], d2[i][0])
    clip = make_ds(mm, entries, "flow", stack=5, train=False, test_frames=1)[1][0]
    assert_constant(clip, [[0, 4, 8, 12, 16, 20, 24, 28, 24, 28]])


def test_open_layout_detection(tmp_path):
    write_twostream(str(tmp_path / "ts"), {"A_g01_c01": (2, 1)})
    write_mmaction(str(tmp_path / "mm"), {"A_g01_c01": (2, 1)})
    assert isinstance(open_layout("auto", str(tmp_path / "ts")), TwoStreamLayout)
    assert isinstance(open_layout("auto", str(tmp_path / "mm")), MMActionLayout)
    assert isinstance(open_layout("mmaction", str(tmp_path / "mm")), MMActionLayout)
    explicit = open_layout("twostream", str(tmp_path / "nowhere"),
                           FrameDirs(rgb=str(tmp_path / "ts" / "jpegs_256")))
    assert explicit.has("A_g01_c01", "rgb")
    with pytest.raises(FileNotFoundError) as e:
        open_layout("auto", str(tmp_path / "empty"))
    msg = str(e.value)
    for word in (str(tmp_path / "empty"), "jpegs_256", "tvl1_flow", "rawframes"):
        assert word in msg
    with pytest.raises(FileNotFoundError, match="rawframes"):
        open_layout("mmaction", str(tmp_path / "ts"))
    with pytest.raises(ValueError, match="bogus"):
        open_layout("bogus", str(tmp_path / "ts"))


def test_twostream_layout_requires_the_modality_folder(tmp_path):
    write_twostream(str(tmp_path), {"A_g01_c01": (2, 1)})
    import shutil
    shutil.rmtree(tmp_path / "tvl1_flow")
    layout = open_layout("auto", str(tmp_path))
    assert count_frames([("A_g01_c01", 0)], layout, "rgb") == {"A_g01_c01": 2}
    with pytest.raises(FileNotFoundError, match="tvl1_flow"):
        count_frames([("A_g01_c01", 0)], layout, "flow")


def test_data_workers_never_reconfigure_opencv_threads_they_inherited():
    """Seen in this suite (py-spy): a data worker forked from a process that had run OpenCV's
    thread pool hung for good in cv2.setNumThreads(1), waiting for the parent's pool threads,
    which a forked child does not have. So the loader sets one OpenCV thread in the parent,
    before the workers fork, and the workers inherit it without touching the pool."""
    cv2.setNumThreads(2)
    try:
        loader = make_loader(list(range(4)), 2, torch.device("cpu"), 2, 0)
        assert loader.worker_init_fn is None  # nothing runs in a worker before it loads
        assert cv2.getNumThreads() == 1       # what the workers inherit: one decoding thread each
        assert make_loader(list(range(4)), 2, torch.device("cpu"), 0, 0) is not None
    finally:
        cv2.setNumThreads(1)
