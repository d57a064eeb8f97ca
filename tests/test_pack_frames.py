"""Packed frames (tools/pack_frames.py, dataloader/packed.py): the same pixels as the folders."""
import os

import numpy as np
import pytest
import torch

import utils
from dataloader.datasets import BadFrameError, ClipDataset, count_frames
from dataloader.layout import PackedLayout
from dataloader.frame_dirs import FrameDirs, open_layout
from dataloader.packed import MAGIC, PackError, PackFile
from dataloader.splits import load_split
from engine.train import main
from engine.streams import SPATIAL
from tiny import FAST, make_tiny_data
from tools import pack_frames
from dataloader.synthetic import generate


@pytest.fixture(scope="module")
def packed_root(tmp_path_factory):
    root = make_tiny_data(tmp_path_factory.mktemp("packed") / "data")
    assert pack_frames.main(["--data-root", str(root), "--workers", "2"]) == 0
    return root


def entries(root):
    return load_split("ucf101", str(root / "ucfTrainTestlist"), 1)


def assert_same_items(a, b, modality, split):
    """Train and test items read through layouts a and b are identical."""
    ca, cb = count_frames(split.train + split.test, a, modality), count_frames(split.train + split.test, b, modality)
    assert ca == cb
    kw = dict(stack=3, crop_size=32, num_segments=2, test_frames=3)
    for train, items in ((True, [(i, 1) for i in range(len(split.train))]), (False, range(len(split.test)))):
        videos = split.train if train else split.test
        da = ClipDataset(videos, ca, a, modality, train=train, **kw)
        db = ClipDataset(videos, cb, b, modality, train=train, **kw)
        for item in items:
            x, y = da[item], db[item]
            assert torch.equal(x[0], y[0]) and np.array_equal(x[1], y[1]) and x[2:] == y[2:]


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_packs_read_the_same_pixels_as_the_folders(packed_root, modality):
    packed = open_layout("auto", str(packed_root))
    assert isinstance(packed, PackedLayout)  # packs are preferred when present
    assert_same_items(open_layout("twostream", str(packed_root)), packed, modality, entries(packed_root))


def test_packs_from_the_mmaction_layout(tmp_path):
    root = tmp_path / "data"
    generate(root, appearances=2, motions=2, videos_per_class=2, width=40, height=36, min_frames=6,
             max_frames=9, seed=3, layout="mmaction", verbose=False)
    assert pack_frames.main(["--data-root", str(root), "--out", str(tmp_path / "packs")]) == 0
    packed = open_layout("packed", str(root), FrameDirs(packed=str(tmp_path / "packs")))
    for modality in ("rgb", "flow"):
        assert_same_items(open_layout("mmaction", str(root)), packed, modality, entries(root))


def test_pack_file_holds_the_jpeg_bytes_unchanged(packed_root):
    video = entries(packed_root).train[0][0]
    with open(packed_root / "packed" / "v" / f"{video}.pack", "rb") as f:
        raw = f.read()
    assert raw[:8] == MAGIC
    n = int(np.frombuffer(raw[8:16], "<u8")[0])
    offsets = np.frombuffer(raw[16:16 + 8 * (n + 1)], "<u8")
    folder = packed_root / "tvl1_flow" / "v" / f"v_{video}"
    assert n == len(list(folder.glob("*.jpg")))
    for i in range(n):
        assert raw[offsets[i]:offsets[i + 1]] == (folder / f"frame{i + 1:06d}.jpg").read_bytes()
    assert offsets[-1] == len(raw)


def test_pack_file_reads_each_frame_and_its_views_outlive_close(packed_root):
    """PackFile.read hands out views of the mapped pack: each equals the frame file's bytes,
    and closing the pack (PackCache evicts packs while a worker may still decode a frame)
    neither raises nor invalidates a view still held."""
    video = entries(packed_root).train[0][0]
    folder = packed_root / "jpegs_256" / f"v_{video}"
    files = sorted(folder.glob("*.jpg"))
    pack = PackFile(str(packed_root / "packed" / "rgb" / f"{video}.pack"))
    assert len(pack) == len(files)
    views = [pack.read(i) for i in range(len(pack))]
    pack.close()
    for view, path in zip(views, files):
        assert bytes(view) == path.read_bytes()


def test_rerun_skips_complete_packs_and_redoes_damaged_ones(tmp_path, capsys):
    root = make_tiny_data(tmp_path / "data", videos_per_class=2)
    assert pack_frames.main(["--data-root", str(root), "--modality", "rgb"]) == 0
    video = entries(root).train[0][0]
    pack = root / "packed" / "rgb" / f"{video}.pack"
    pack.write_bytes(pack.read_bytes()[:-10])  # a pack cut short (a copy interrupted by hand)
    with pytest.raises(PackError, match=f"{video}.pack: truncated"):
        count_frames(entries(root).train, open_layout("auto", str(root)), "rgb")
    capsys.readouterr()
    assert pack_frames.main(["--data-root", str(root), "--modality", "rgb"]) == 0
    assert "1 packs written, 7 already complete" in capsys.readouterr().err
    count_frames(entries(root).train, open_layout("auto", str(root)), "rgb")  # readable again
    assert sorted(p.name for p in pack.parent.iterdir()) == sorted(f"{v}.pack" for v, _ in entries(root).train + entries(root).test)


def test_missing_frame_file_is_reported_and_the_video_not_packed(tmp_path, capsys):
    root = make_tiny_data(tmp_path / "data", videos_per_class=2)
    video = entries(root).train[0][0]
    os.unlink(root / "jpegs_256" / f"v_{video}" / "frame000002.jpg")  # a gap: frame 2 of n
    assert pack_frames.main(["--data-root", str(root), "--modality", "rgb"]) == 1
    err = capsys.readouterr().err
    assert f"not packed: {video} (rgb)" in err and "frame000002.jpg" in err
    assert not (root / "packed" / "rgb" / f"{video}.pack").exists()
    assert len(list((root / "packed" / "rgb").glob("*.pack"))) == 7


def test_corrupt_frame_inside_a_pack_names_the_pack_and_frame(tmp_path):
    root = make_tiny_data(tmp_path / "data", videos_per_class=2)
    assert pack_frames.main(["--data-root", str(root), "--modality", "rgb"]) == 0
    split = entries(root)
    video = split.test[0][0]
    pack = root / "packed" / "rgb" / f"{video}.pack"
    raw = bytearray(pack.read_bytes())
    n = int(np.frombuffer(bytes(raw[8:16]), "<u8")[0])
    offsets = np.frombuffer(bytes(raw[16:16 + 8 * (n + 1)]), "<u8")
    raw[offsets[0]:offsets[1]] = b"\0" * int(offsets[1] - offsets[0])  # frame 1 is now garbage
    pack.write_bytes(bytes(raw))
    layout = open_layout("auto", str(root))
    ds = ClipDataset(split.test[:1], count_frames(split.test[:1], layout, "rgb"), layout, "rgb", train=False,
                     crop_size=32, test_frames=n, frame_size=(40, 48))
    with pytest.raises(BadFrameError, match=rf"{video}\.pack \(frame 1\)"):
        ds[0]


@pytest.mark.slow
def test_a_checkpoint_scores_the_same_from_packs_and_folders(packed_root, tmp_path):
    """Training and evaluation read packs transparently, also through forked data workers."""
    out = tmp_path / "run"
    argv = ["--data-root", str(packed_root), "--out", str(out), *FAST, "--epochs", "1", "--workers", "2"]
    assert main(SPATIAL, argv + ["--layout", "twostream"]) == 0
    folders = utils.load_pickle_safe(out / "video_scores.pkl")
    assert main(SPATIAL, argv + ["--evaluate", "--resume", str(out / "checkpoint.pth")]) == 0  # auto: packs
    packs = utils.load_pickle_safe(out / "video_scores.pkl")
    assert set(packs["scores"]) == set(folders["scores"])
    for video, s in folders["scores"].items():
        np.testing.assert_allclose(packs["scores"][video], s, rtol=1e-5, atol=1e-6)
