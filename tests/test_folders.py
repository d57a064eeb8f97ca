"""Your own videos in class folders -> UCF101-format split lists (dataloader/folders.py and
tools.prepare_data --dataset folders), with hand-worked split examples."""
import os
import unicodedata
from collections import Counter

import pytest

from dataloader.catalog import FOLDERS
from dataloader.datasets import count_frames
from dataloader.folders import (FolderError, FolderVideo, list_class_videos, normalize_name, split_videos,
                                targets_for, video_group_key, video_name_in_class)
from dataloader.frame_dirs import open_layout
from dataloader.splits import load_ucf101_split
from own_videos import make_class_videos
from tools import prepare_data


def videos(spec):
    """spec: {class: [file stems]} -> FolderVideos (no files needed for the split)."""
    return [FolderVideo(f"{c}/{s}.mp4", c, video_name_in_class(c, s), s) for c in spec for s in spec[c]]


def test_names_are_normalised():
    assert normalize_name("clip 1.v2") == "clip_1.v2"
    assert normalize_name("a \t b\nc") == "a_b_c"
    assert normalize_name("a/b\\c") == "a_b_c"
    assert normalize_name(unicodedata.normalize("NFD", "café")) == "café" == unicodedata.normalize("NFC", "café")
    assert video_name_in_class("Tai_Chi", "clip 1") == "Tai_Chi_clip_1"
    assert video_name_in_class("Jump", "jump_g01_c01") == "jump_g01_c01"  # already carries its class
    assert video_group_key("v_Jump_g08_c01") == "g08" and video_group_key("clip 3") is None
    assert video_group_key("p7-take2", r"p(\d+)-") == "7"


def test_targets_by_hand():
    # floor(0.3 n + 1/2), at least 1, at most n - 1
    assert targets_for({"a": 10, "b": 2, "c": 3, "d": 5, "e": 7}, 0.3) == {"a": 3, "b": 1, "c": 1, "d": 2, "e": 2}
    assert targets_for({"a": 2, "b": 10}, 0.95) == {"a": 1, "b": 9}


@pytest.mark.parametrize("seed", range(5))
def test_stratified_without_groups(seed):
    vids = videos({"A": [f"a{i}" for i in range(10)], "B": [f"b{i}" for i in range(4)], "C": ["c0", "c1"]})
    train, test = split_videos(vids, 0.3, seed)
    assert Counter(v.cls for v in test) == {"A": 3, "B": 1, "C": 1}      # 3.5 -> 3, 1.7 -> 1, 1.1 -> 1
    assert sorted(train + test) == sorted(vids) and not set(train) & set(test)
    assert [v for v in vids if v in test] == test                           # input order kept


def test_deterministic_in_the_seed():
    vids = videos({"A": [f"a{i}" for i in range(10)], "B": [f"b{i}" for i in range(10)]})
    assert split_videos(vids, 0.3, 4) == split_videos(vids, 0.3, 4)
    assert len({tuple(v.name for v in split_videos(vids, 0.3, s)[1]) for s in range(6)}) > 1


def test_groups_by_hand():
    # Both classes hold groups g01, g02, g03 of 2 videos: targets 2 and 2 (6 * 0.3 = 1.8 -> 2).
    # The first group visited goes to test (deviation 2 + 2 -> 0); any other would raise it.
    spec = {c: [f"{c}_g0{g}_c0{k}" for g in (1, 2, 3) for k in (1, 2)] for c in ("Jump", "Run")}
    for seed in range(4):
        train, test = split_videos(videos(spec), 0.3, seed)
        assert Counter(v.cls for v in test) == {"Jump": 2, "Run": 2}
        assert len({video_group_key(v.stem) for v in test}) == 1


@pytest.mark.parametrize("seed", range(8))
def test_groups_never_straddle(seed):
    spec = {"A": [f"a_g{g:02d}_c{k}" for g in range(1, 8) for k in range(1 + g % 3)],
            "B": [f"b_g{g:02d}_c{k}" for g in range(3, 12) for k in range(1 + g % 2)] + ["b loose 1", "b loose 2"],
            "C": [f"c_g{g:02d}_c1" for g in range(1, 6)]}
    train, test = split_videos(videos(spec), 0.3, seed)
    train_groups = {video_group_key(v.stem) for v in train} - {None}
    test_groups = {video_group_key(v.stem) for v in test} - {None}
    assert not train_groups & test_groups
    assert {v.cls for v in train} == {v.cls for v in test} == {"A", "B", "C"}


def test_custom_and_no_group_regex():
    spec = {"A": ["p1-x", "p1-y", "p2-x", "p2-y"], "B": ["p1-z", "p2-z", "p3-z", "p3-w"]}
    train, test = split_videos(videos(spec), 0.3, 0, group_regex=r"^(p\d+)-")
    assert not {v.stem[:2] for v in train} & {v.stem[:2] for v in test}
    train, test = split_videos(videos(spec), 0.3, 0, group_regex="")
    assert Counter(v.cls for v in test) == {"A": 1, "B": 1}


def test_refusals():
    with pytest.raises(FolderError, match="at least 2 videos.*B"):
        split_videos(videos({"A": ["a1", "a2"], "B": ["b1"]}))
    # B's two videos are one group: B cannot be on both sides
    with pytest.raises(FolderError, match="class 'B' gets no"):
        split_videos(videos({"A": ["a1", "a2", "a3"], "B": ["x_g01_1", "x_g01_2"]}))
    with pytest.raises(FolderError, match="--test-fraction"):
        split_videos(videos({"A": ["a1", "a2"]}), 1.0)


def touch(root, *paths):
    for p in paths:
        os.makedirs(os.path.dirname(os.path.join(root, p)), exist_ok=True)
        open(os.path.join(root, p), "wb").close()


def test_listing_refuses_small_classes_and_clashes(tmp_path):
    touch(tmp_path / "one", "Jump/a.mp4", "Jump/b.avi", "Run/a.mkv", "Run/notes.txt")
    with pytest.raises(FolderError, match=r"at least 2 videos.*'Run' \(1\)"):
        list_class_videos(str(tmp_path / "one"))
    touch(tmp_path / "two", "Jump/my clip.mp4", "Jump/My_clip.avi", "Run/x.mp4", "Run/y.mp4")
    with pytest.raises(FolderError, match="both become video 'Jump_my_clip'"):
        list_class_videos(str(tmp_path / "two"))
    touch(tmp_path / "three", "Tai Chi/a.mp4", "Tai Chi/b.mp4", "tai_chi/c.mp4", "tai_chi/d.mp4")
    with pytest.raises(FolderError, match="both become class"):
        list_class_videos(str(tmp_path / "three"))
    touch(tmp_path / "four", "Jump/a.mp4", "Jump/b.WEBM", "Run/a.mov", "Run/.hidden.mp4", "Run/c.mp4")
    listed = list_class_videos(str(tmp_path / "four"))  # same file names in two classes are fine
    assert [(v.cls, v.name) for v in listed] == [("Jump", "Jump_a"), ("Jump", "Jump_b"), ("Run", "Run_a"), ("Run", "Run_c")]


COLOURS = {"Red Up": ("Red", "Up"), "Blue Down": ("Blue", "Down")}


def odd_names(cls, i):
    """Spaces, dots and Unicode; mp4 and avi mixed."""
    return [f"clip {i}.mp4", f"prise n°{i}.été.avi", f"v{i}..take 2.mp4"][i % 3]


def test_prepare_folders_end_to_end(tmp_path, capsys):
    made = make_class_videos(str(tmp_path / "videos"), COLOURS, per_class=3, frames=(6, 8), width=40, height=32,
                             names=odd_names)
    out = tmp_path / "data"
    assert prepare_data.main(["--videos-dir", str(tmp_path / "videos"), "--out", str(out), "--dataset", "folders",
                              "--flow", "farneback", "--workers", "1", "--width", "40", "--height", "32"]) == 0
    assert "split lists: 2 classes, split 1: 4 train / 2 test videos" in capsys.readouterr().out
    layout = open_layout("auto", str(out))
    for s in (1, 2, 3):
        split = load_ucf101_split(str(out / "ucfTrainTestlist"), s)
        assert split.classes == ["Blue_Down", "Red_Up"]
        assert Counter(y for _, y in split.test) == {0: 1, 1: 1}
        names = sorted(v for v, _ in split.train + split.test)
        assert names == sorted(f"{c}_{n}" for c in ("Blue_Down", "Red_Up")
                               for n in ("clip_0", "prise_n°1.été", "v2..take_2"))
        counts = count_frames(split.train + split.test, layout, "flow")
        assert all(n >= 5 for n in counts.values())
    # a second run finds every video finished and writes the same lists
    before = (out / "ucfTrainTestlist" / "testlist01.txt").read_text(encoding="utf-8")
    assert prepare_data.main(["--videos-dir", str(tmp_path / "videos"), "--out", str(out), "--dataset", "folders",
                              "--flow", "farneback", "--workers", "1", "--width", "40", "--height", "32"]) == 0
    assert (out / "ucfTrainTestlist" / "testlist01.txt").read_text(encoding="utf-8") == before
    assert sum(len(v) for v in made.values()) == 6


def test_prepare_folders_refuses_with_one_line(tmp_path, capsys):
    touch(tmp_path / "v", "Jump/a.mp4", "Jump/b.mp4", "Run/a.mp4")
    assert prepare_data.main(["--videos-dir", str(tmp_path / "v"), "--out", str(tmp_path / "o"),
                              "--dataset", "folders"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: class folders need at least 2 videos")
    assert not (tmp_path / "o" / "jpegs_256").exists()


@pytest.mark.parametrize("cls, stem, name", [
    ("Tai_Chi", "clip 1.v2", "Tai_Chi_clip_1.v2"),                       # the README's example
    ("ArmWrestling", "v_ArmWrestling_g01_c01", "ArmWrestling_g01_c01"),  # UCF101's own file names
    ("ArmWrestling", "ArmWrestling_g01_c01", "ArmWrestling_g01_c01"),
    ("armwrestling", "V_ArmWrestling_g01_c01", "ArmWrestling_g01_c01"),  # compared without case
    ("Run", "v_clip", "Run_v_clip"),                                     # 'v_' not followed by the class stays
    ("Run", "running fast", "Run_running_fast"),                         # a name starting with the class's letters
])
def test_video_names_in_class(cls, stem, name):
    assert video_name_in_class(cls, stem) == name
    assert FOLDERS.folder_for_video(video_name_in_class(cls, stem)) == "v_" + name
