"""The data sets the toolkit knows, one entry each: where a data set's split lists are and how
they are read, how its validation set is held out, how its frame folders are named, what
tools/prepare_data.py reads and writes for it, and how dataloader/synthetic.py imitates it.

    spec = get_dataset(args.dataset)                 # ValueError listing the choices
    split = spec.read_split(spec.splits_dir(data_root), 1)
    holdout = spec.hold_out(split.train, split.classes, "auto")

Everything else asks here rather than comparing names. A new data set is one DatasetSpec in
CATALOG (with a reader in dataloader/splits.py if its lists have a new format) and a case in
tests/test_catalog.py.
"""
import json
import os
from dataclasses import dataclass
from typing import Callable

import utils
from dataloader.layout import PREPARE_INFO, UCF101_FOLDER_PREFIX
from dataloader.splits import (hold_out_actor_groups_or_videos, hold_out_source_films, load_hmdb51_split,
                               load_ucf101_split)

SPLITS = (1, 2, 3)  # the official lists come in three splits; the synthetic ones imitate them


@dataclass(frozen=True)
class SyntheticStyle:
    """How dataloader/synthetic.py names and lists a generated set in a data set's style."""
    class_name: Callable   # (colour, motion), e.g. ("Red", "Up") -> class name
    video_name: Callable   # (class, group, clip) -> video name; splits.video_group recovers the group
    write_lists: Callable  # (folder, classes, [(video, label, (in the test set of split 1, 2, 3))])


@dataclass(frozen=True)
class DatasetSpec:
    """One data set (module docstring)."""
    name: str                # what --dataset calls it
    splits_subdir: str       # its split-list folder under --data-root, when --splits-dir is not given
    read_split: Callable     # (splits dir, split number) -> splits.Split; raises SplitError
    hold_out: Callable       # (training entries, classes, --val-groups) -> splits.HoldOut
    folder_prefix: str       # a video's frame folder is this + its name in the lists
    video_extensions: tuple  # prepare_data reads VIDEOS/<class>/<video><extension>
    # prepare_data lists class folders of the user's own videos (dataloader/folders.py, names
    # normalised) and writes UCF101-format split lists, rather than reading a shipped archive.
    writes_splits: bool = False
    name_warning: Callable | None = None       # prepare_data: (file stems) -> a warning, or None if they look right
    synthetic: SyntheticStyle | None = None    # None: make_synthetic does not generate this data set

    def folder_for_video(self, video):
        """A video's frame folder as the data set's archives spell it: UCF101 folders carry the
        `v_` of the .avi files (`v_ApplyEyeMakeup_g01_c01`), HMDB51's do not."""
        return self.folder_prefix + video

    def splits_dir(self, data_root):
        return os.path.join(data_root, self.splits_subdir)


def _ucf101_name_warning(names):
    odd = [n for n in names if not n.startswith(UCF101_FOLDER_PREFIX)]
    if odd:
        return f"{len(odd)} video(s) not named v_<Class>_gXX_cYY (e.g. {odd[0]}); is this HMDB51? (--dataset hmdb51)"
    return None


def _write_ucf101_lists(folder, classes, videos):
    """classInd.txt, trainlist0N.txt and testlist0N.txt, with CRLF line ends as the originals."""
    def write(name, lines):
        utils.save_text("".join(line + "\r\n" for line in lines), os.path.join(folder, name))

    def line(video, label):
        return f"{classes[label]}/{UCF101_FOLDER_PREFIX}{video}.avi"

    write("classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(classes)])
    for s in SPLITS:
        write(f"trainlist0{s}.txt", [f"{line(v, y)} {y + 1}" for v, y, test in videos if not test[s - 1]])
        write(f"testlist0{s}.txt", [line(v, y) for v, y, test in videos if test[s - 1]])


def _write_hmdb51_lists(folder, classes, videos):
    """<class>_test_split<N>.txt: '<video>.avi 1' (train) or '... 2' (test), with the
    originals' trailing space."""
    for label, cls in enumerate(classes):
        for s in SPLITS:
            lines = [f"{v}.avi {2 if test[s - 1] else 1} \n" for v, y, test in videos if y == label]
            utils.save_text("".join(lines), os.path.join(folder, f"{cls}_test_split{s}.txt"))


UCF101 = DatasetSpec(
    name="ucf101", splits_subdir="ucfTrainTestlist", read_split=load_ucf101_split,
    hold_out=hold_out_actor_groups_or_videos, folder_prefix=UCF101_FOLDER_PREFIX, video_extensions=(".avi",),
    name_warning=_ucf101_name_warning,
    synthetic=SyntheticStyle(class_name=lambda colour, motion: colour + motion,                  # RedUp
                             video_name=lambda cls, g, c: f"{cls}_g{g:02d}_c{c:02d}",            # RedUp_g08_c01
                             write_lists=_write_ucf101_lists))

HMDB51 = DatasetSpec(
    name="hmdb51", splits_subdir="testTrainMulti_7030_splits", read_split=load_hmdb51_split,
    hold_out=hold_out_source_films, folder_prefix="", video_extensions=(".avi",),
    # The part before `_<class>_` is the source film, the group of splits.video_group.
    synthetic=SyntheticStyle(class_name=lambda colour, motion: f"{colour.lower()}_{motion.lower()}",  # red_up
                             video_name=lambda cls, g, c: f"film{g:02d}_{cls}_clip{c:02d}",      # film08_red_up_clip01
                             write_lists=_write_hmdb51_lists))

# The user's own videos in class folders. prepare_data writes UCF101-format lists for them, so
# they are read as UCF101's; names without actor groups get videos of every class held out.
# Not generated synthetically: make_synthetic --dataset ucf101 writes the same list format.
FOLDERS = DatasetSpec(
    name="folders", splits_subdir=UCF101.splits_subdir, read_split=load_ucf101_split,
    hold_out=hold_out_actor_groups_or_videos, folder_prefix=UCF101_FOLDER_PREFIX,
    video_extensions=(".avi", ".mp4", ".mkv", ".webm", ".mov"), writes_splits=True)

CATALOG = {spec.name: spec for spec in (UCF101, HMDB51, FOLDERS)}
DATASETS = tuple(CATALOG)  # the choices of --dataset
DEFAULT_SPLITS_SUBDIR = {name: spec.splits_subdir for name, spec in CATALOG.items()}


def detect_dataset(data_root):
    """The data set under `data_root`: the one tools/prepare_data.py recorded (prepare_info.json;
    `folders` for one's own videos), else the first whose split-list folder is there, else
    ucf101 (whose missing lists the reader then names)."""
    try:
        with open(os.path.join(data_root, PREPARE_INFO), encoding="utf-8") as f:
            recorded = json.load(f).get("dataset")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded in CATALOG:
        return recorded
    return next((n for n, spec in CATALOG.items() if os.path.isdir(spec.splits_dir(data_root))), UCF101.name)


def get_dataset(name):
    """The DatasetSpec called `name`; a ValueError naming the choices for any other name."""
    if name not in CATALOG:
        raise ValueError(f"unknown dataset '{name}' (choose from {', '.join(DATASETS)})")
    return CATALOG[name]
