"""dataloader/catalog.py: one entry per data set (its split folder, reader, hold-out rule, folder
names, what prepare_data and make_synthetic do with it), each checked on small generated split
lists; the unknown-name error; and `--dataset folders` through engine.data.build_data.

A new data set: copy one of the test_<name>_entry tests below."""
import os

import pytest

from dataloader import catalog, splits
from dataloader.catalog import CATALOG, DATASETS, get_dataset
from dataloader.folders import FolderVideo, normalize_name, video_name_in_class, write_ucf101_lists
from engine.data import build_data
from engine.options import build_parser
from engine.runtime import SINGLE_PROCESS
from engine.streams import SPATIAL
from tiny import FAST, make_tiny_data


def write_lists(tmp_path, dataset, videos):
    """videos: [(video, label, (in the test set of split 1, 2, 3))] -> the lists, written as the
    synthetic generator writes them in `dataset`'s format; returns (spec, data root)."""
    spec = get_dataset(dataset)
    spec.synthetic.write_lists(spec.splits_dir(str(tmp_path)), CLASSES[dataset], videos)
    return spec, str(tmp_path)


CLASSES = {"ucf101": ["Jump", "Run"], "hmdb51": ["jump", "run"]}
TEST_IN_SPLIT_1 = (True, False, False)
TRAIN = (False, False, False)


def test_every_entry_is_complete_and_named_by_its_key():
    assert DATASETS == ("ucf101", "hmdb51", "folders")
    for name, spec in CATALOG.items():
        assert spec.name == name and spec.splits_subdir and callable(spec.read_split) and callable(spec.hold_out)
        assert all(e.startswith(".") for e in spec.video_extensions)
        assert get_dataset(name) is spec
    # the names the modules of before still import from dataloader.splits (fusion.py, tools/benchmark.py)
    assert splits.DATASETS == DATASETS and splits.DEFAULT_SPLITS_SUBDIR == catalog.DEFAULT_SPLITS_SUBDIR


def test_an_unknown_dataset_is_a_one_line_error_listing_the_choices():
    with pytest.raises(ValueError) as e:
        get_dataset("kinetics")
    assert str(e.value) == "unknown dataset 'kinetics' (choose from ucf101, hmdb51, folders)"
    with pytest.raises(splits.SplitError, match="kinetics.*ucf101, hmdb51, folders"):
        splits.load_split("kinetics", "anywhere", 1)
    with pytest.raises(AttributeError):
        splits.NO_SUCH_NAME  # noqa: B018 - the module's __getattr__ lets nothing else through


def test_ucf101_entry(tmp_path):
    # 2 classes x actor groups g01..g04; split 1 tests g01
    videos = [(f"{c}_g{g:02d}_c01", y, TEST_IN_SPLIT_1 if g == 1 else TRAIN)
              for g in range(1, 5) for y, c in enumerate(CLASSES["ucf101"])]
    spec, root = write_lists(tmp_path, "ucf101", videos)
    assert spec.name == "ucf101" and spec.splits_dir(root) == os.path.join(root, "ucfTrainTestlist")
    assert spec.read_split is splits.load_ucf101_split
    split = spec.read_split(spec.splits_dir(root), 1)
    assert split.classes == ["Jump", "Run"] and split.test == [("Jump_g01_c01", 0), ("Run_g01_c01", 1)]
    assert len(split.train) == 6
    # hold-out: whole actor groups, the last ones (3 groups, auto: 15% -> 1 -> g04)
    h = spec.hold_out(split.train, split.classes, "auto")
    assert h.val == [("Jump_g04_c01", 0), ("Run_g04_c01", 1)] and "actor group" in h.description
    assert h == splits.hold_out_validation("ucf101", split.train, split.classes, "auto")
    # names on disk and what prepare_data / make_synthetic do
    assert spec.folder_for_video("Jump_g01_c01") == "v_Jump_g01_c01"
    assert spec.video_extensions == (".avi",) and not spec.writes_splits
    assert spec.name_warning(["v_Jump_g01_c01"]) is None
    assert "is this HMDB51?" in spec.name_warning(["v_Jump_g01_c01", "film1_jump_0"])
    assert spec.synthetic.class_name("Red", "Up") == "RedUp"
    assert spec.synthetic.video_name("RedUp", 8, 1) == "RedUp_g08_c01"


def test_hmdb51_entry(tmp_path):
    # source films film1..film4 per class, one clip each; split 1 tests film1
    videos = [(f"film{f}_{c}_clip01", y, TEST_IN_SPLIT_1 if f == 1 else TRAIN)
              for y, c in enumerate(CLASSES["hmdb51"]) for f in range(1, 5)]
    spec, root = write_lists(tmp_path, "hmdb51", videos)
    assert spec.name == "hmdb51" and spec.splits_dir(root) == os.path.join(root, "testTrainMulti_7030_splits")
    assert spec.read_split is splits.load_hmdb51_split
    split = spec.read_split(spec.splits_dir(root), 1)
    assert split.classes == ["jump", "run"] and split.test == [("film1_jump_clip01", 0), ("film1_run_clip01", 1)]
    # hold-out: whole source films of every class (the last film, 1 of 3 clips >= 15%)
    h = spec.hold_out(split.train, split.classes, "auto")
    assert h.val == [("film4_jump_clip01", 0), ("film4_run_clip01", 1)] and "source film" in h.description
    assert h == splits.hold_out_validation("hmdb51", split.train, split.classes, "auto")
    assert spec.folder_for_video("film1_jump_clip01") == "film1_jump_clip01"
    assert spec.video_extensions == (".avi",) and not spec.writes_splits and spec.name_warning is None
    assert spec.synthetic.class_name("Red", "Up") == "red_up"
    assert spec.synthetic.video_name("red_up", 8, 1) == "film08_red_up_clip01"
    assert splits.video_group("film08_red_up_clip01", "red_up") == "film08"


def folder_videos(names):
    """{class: [file stems]} -> FolderVideos, as dataloader.folders.list_class_videos makes them."""
    return [FolderVideo(f"{c}/{s}.mp4", normalize_name(c), video_name_in_class(normalize_name(c), s), s)
            for c in names for s in names[c]]


def test_folders_entry(tmp_path):
    videos = folder_videos({"Jump": [f"clip {i}" for i in range(6)], "Tai Chi": [f"take {i}" for i in range(6)]})
    spec = get_dataset("folders")
    write_ucf101_lists(spec.splits_dir(str(tmp_path)), videos, seed=0)
    assert spec.name == "folders" and spec.splits_dir("D") == os.path.join("D", "ucfTrainTestlist")
    assert spec.read_split is splits.load_ucf101_split  # prepare_data writes UCF101-format lists
    split = spec.read_split(spec.splits_dir(str(tmp_path)), 1)
    assert split.classes == ["Jump", "Tai_Chi"] and len(split.train) == 8 and len(split.test) == 4
    # hold-out: names without actor groups -> videos of every class (the same as --dataset ucf101 gives)
    h = spec.hold_out(split.train, split.classes, 1)
    assert sorted(y for _, y in h.val) == [0, 1] and h.description.startswith("1 video of each class held out")
    assert h == get_dataset("ucf101").hold_out(split.train, split.classes, 1)
    assert spec.folder_for_video("Jump_clip_1") == "v_Jump_clip_1"
    assert spec.writes_splits and set(spec.video_extensions) == {".avi", ".mp4", ".mkv", ".webm", ".mov"}
    assert spec.synthetic is None and spec.name_warning is None


def test_make_synthetic_refuses_folders_naming_the_format_it_reads(tmp_path):
    from dataloader.synthetic import SYNTHETIC_DATASETS, generate
    assert SYNTHETIC_DATASETS == ("ucf101", "hmdb51")
    with pytest.raises(ValueError, match="not folders .*--dataset ucf101 writes the split lists that folders reads"):
        generate(str(tmp_path), dataset="folders", verbose=False)
    assert not os.listdir(tmp_path)


def test_training_data_of_dataset_folders(tmp_path):
    """--dataset folders: the UCF101-format lists of dataloader.folders.write_ucf101_lists under
    ucfTrainTestlist, read by engine.data.build_data with videos of every class validated."""
    root = make_tiny_data(tmp_path / "data")  # 4 classes x 6 videos, two-stream frames
    # Rename the frame folders as prepare_data --dataset folders names them: no actor groups.
    videos = []
    for cls in sorted(os.listdir(root / "jpegs_256")):
        old = cls[len("v_"):]
        name = old.replace("_g", "_take").replace("_c01", "")  # RedUp_g05_c01 -> RedUp_take05
        for d in ("jpegs_256", "tvl1_flow/u", "tvl1_flow/v"):
            os.rename(root / d / cls, root / d / f"v_{name}")
        videos.append(FolderVideo(f"{name}.avi", old.split("_")[0], name, name))
    write_ucf101_lists(str(root / "ucfTrainTestlist"), videos, seed=1)

    def data(dataset):
        args = build_parser(SPATIAL).parse_args(["--data-root", str(root), "--dataset", dataset, *FAST])
        return build_data(args, SPATIAL, SINGLE_PROCESS)

    folders = data("folders")
    assert len(folders.classes) == 4
    assert len(folders.train) + len(folders.val) + len(folders.test) == 24
    assert sorted(y for _, y in folders.val.entries) == [0, 1, 2, 3]  # --val-groups 1: one video of each class
    assert folders.validation.startswith("1 video of each class held out")
    ucf = data("ucf101")  # the same lists read as UCF101's: the same sets
    for name in ("train", "val", "test"):
        assert getattr(folders, name).entries == getattr(ucf, name).entries


def test_no_module_compares_data_set_names():
    """Data-set names are looked up in the catalog, never compared (`dataset == "ucf101"`)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("tests", "data")]
        for f in (f for f in files if f.endswith(".py")):
            with open(os.path.join(folder, f), encoding="utf-8") as fh:
                found += [f"{f}:{i}" for i, line in enumerate(fh, 1) if "dataset == " in line]
    assert found == []
