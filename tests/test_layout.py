"""dataloader/layout.py: the names on disk, shared by the readers and the writers, and the
FrameLayout interface every layout implements (the same frames of one video through each)."""
import os

import pytest

from dataloader.datasets import read_bytes
from dataloader.catalog import get_dataset
from dataloader.frame_dirs import FrameDirs, open_layout
from dataloader.layout import (FrameLayout, MMActionLayout, PackedLayout, TwoStreamLayout, mmaction_frame_name,
                               mmaction_video_dir, twostream_frame_name, twostream_video_dirs, video_from_folder)
from dataloader.synthetic import generate
from dataloader.video import MemoryLayout
from tools import pack_frames


def test_frame_names_are_one_based_and_padded():
    assert twostream_frame_name(1) == "frame000001.jpg"
    assert [mmaction_frame_name(s, 12) for s in ("rgb", "u", "v")] == \
        ["img_00012.jpg", "flow_x_00012.jpg", "flow_y_00012.jpg"]


def test_video_folders():
    assert get_dataset("ucf101").folder_for_video("Run_g01_c01") == "v_Run_g01_c01"
    assert get_dataset("hmdb51").folder_for_video("film01_run_clip01") == "film01_run_clip01"
    assert get_dataset("folders").folder_for_video("Tai_Chi_clip_1") == "v_Tai_Chi_clip_1"
    for video, dataset in (("Run_g01_c01", "ucf101"), ("film01_run_clip01", "hmdb51"), ("Tai_Chi_clip_1", "folders")):
        assert video_from_folder(get_dataset(dataset).folder_for_video(video)) == video
    assert twostream_video_dirs("R", "F", "v_x") == (os.path.join("R", "v_x"), os.path.join("F", "u", "v_x"),
                                                      os.path.join("F", "v", "v_x"))
    assert mmaction_video_dir("M", "Run", "x") == os.path.join("M", "Run", "x")


# ------------------------------------------------------------------ the FrameLayout interface
INTERFACE = {"require", "has", "num_frames", "frame_paths", "describe", "videos"}


def test_the_interface_names_every_method():
    assert FrameLayout.__abstractmethods__ == INTERFACE
    for method in INTERFACE:
        assert getattr(FrameLayout, method).__doc__, f"FrameLayout.{method} is not documented"


def test_frame_dirs_default_under_the_data_root():
    assert FrameDirs().under("D") == FrameDirs(*(os.path.join("D", n) for n in ("jpegs_256", "tvl1_flow",
                                                                                "rawframes", "packed")))
    assert FrameDirs(flow="F").under("D").flow == "F"


@pytest.fixture(scope="module")
def one_video(tmp_path_factory):
    """One synthetic video in every layout: twostream and mmaction folders (the same frames:
    the generator draws them from the cues, not the layout), packs, and memory."""
    root = tmp_path_factory.mktemp("layouts")
    opts = dict(appearances=1, motions=1, videos_per_class=1, width=40, height=32, min_frames=5, max_frames=7,
                verbose=False)
    generate(str(root / "ts"), layout="twostream", **opts)
    generate(str(root / "mm"), layout="mmaction", **opts)
    assert pack_frames.main(["--data-root", str(root / "ts"), "--out", str(root / "packs")]) == 0
    ts = open_layout("twostream", str(root / "ts"))
    video = "RedUp_g01_c01"
    n = ts.num_frames(video, "rgb")
    rgb, flow = ts.frame_paths(video, "rgb"), ts.frame_paths(video, "flow")
    memory = MemoryLayout(video, n, rgb={i: read_bytes(rgb(i)) for i in range(n)},
                          u={i: read_bytes(flow(i)[0]) for i in range(n - 1)},
                          v={i: read_bytes(flow(i)[1]) for i in range(n - 1)})
    packed = open_layout("packed", str(root), FrameDirs(packed=str(root / "packs")))
    return video, n, [ts, open_layout("auto", str(root / "mm")), packed, memory]


def test_every_layout_implements_the_interface_alike(one_video):
    video, n, layouts = one_video
    assert [type(x) for x in layouts] == [TwoStreamLayout, MMActionLayout, PackedLayout, MemoryLayout]
    assert len({x.name for x in layouts}) == 4
    for modality, count in (("rgb", n), ("flow", n - 1)):
        frames = None
        for layout in layouts:
            assert isinstance(layout, FrameLayout) and isinstance(layout.name, str)
            assert layout.require(modality) is None
            assert layout.has(video, modality)
            assert layout.num_frames(video, modality) == count, (layout.name, modality)
            assert layout.videos(modality) == [video]
            assert isinstance(layout.describe(modality), str)
            paths = layout.frame_paths(video, modality)
            # The same JPEG bytes, frame by frame (0-based): one source, or a (u, v) pair
            got = [tuple(bytes(read_bytes(s)) for s in paths(i)) if modality == "flow" else bytes(read_bytes(paths(i)))
                   for i in range(count)]
            assert all(got), (layout.name, modality)
            frames = frames or got
            assert got == frames, (layout.name, modality)


def test_a_missing_modality_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="jpegs_256"):
        TwoStreamLayout(str(tmp_path / "jpegs_256"), str(tmp_path / "tvl1_flow")).require("rgb")
    with pytest.raises(FileNotFoundError, match="pack_frames"):
        PackedLayout(str(tmp_path)).require("flow")
