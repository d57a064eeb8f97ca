"""Your own data set: videos in class folders -> split lists in the UCF101 format.

    VIDEOS/<class>/<video>.{avi,mp4,mkv,webm,mov}      any class names, any count

`list_class_videos` finds the videos and gives every class and video a name that the split
lists and the frame folders can carry (`normalize_name`: no whitespace or path separators,
Unicode in NFC); a video's name starts with its class (`video_name_in_class`), so two classes
may hold files of the same name; `split_videos` draws a stratified, group-aware train/test split;
`write_ucf101_lists` writes classInd.txt, trainlist0N.txt and testlist0N.txt, which both
streams (`--dataset folders`, or `ucf101`) and fusion.py read. Used by
`python -m tools.prepare_data --dataset folders`.

Split rule (docs/method.md, "Your own videos"): a class of n videos gets
t = clamp(floor(F * n + 1/2), 1, n - 1) test videos (F = --test-fraction), so every class is
on both sides. Videos whose names carry a group (`_g08_`, or what --group-regex matches) are
moved as whole groups, so no group straddles train and test: the groups are visited in an
order shuffled with --seed, and a group goes to test when that brings the classes' test
counts closer to their targets (sum over its classes of |test_c - t_c| strictly drops). A
video without a group is a group of its own, so without groups the split is exact: the first
t videos of each class in the shuffled order.
"""
import os
import re
import unicodedata
from collections import Counter, defaultdict
from typing import NamedTuple

import numpy as np

import utils
from dataloader.catalog import FOLDERS

VIDEO_EXTENSIONS = FOLDERS.video_extensions  # the catalog's entry lists them
DEFAULT_GROUP_REGEX = r"_(g\d+)_"   # UCF101's actor groups: v_ApplyEyeMakeup_g08_c01
DEFAULT_TEST_FRACTION = 0.3
NUM_SPLITS = 3                      # trainlist01..03, as UCF101; split s is drawn with (seed, s)
_ODD = re.compile(r"[\s/\\\x00-\x1f\x7f]+")


class FolderError(ValueError):
    """The class folders cannot become a data set; the message says which files and why."""


class FolderVideo(NamedTuple):
    path: str        # the video file
    cls: str         # class name as written in the lists (normalised folder name)
    name: str        # video name as written in the lists and frame folders (normalised stem)
    stem: str        # the file name without extension, as on disk (what --group-regex reads)


def normalize_name(name):
    """A name the UCF101 lists can carry: Unicode NFC (macOS writes NFD), and every run of
    whitespace, path separators or control characters replaced by one '_'. Dots, case and
    other Unicode letters stay: 'Tai Chi/clip 1.v2.mp4' -> class 'Tai_Chi', video 'clip_1.v2'."""
    return _ODD.sub("_", unicodedata.normalize("NFC", name))


def video_name_in_class(cls, stem):
    """The video's name in the lists: '<class>_<stem>', normalised, unless the stem already
    starts with '<class>_', after UCF101's 'v_' prefix if it has one (UCF101-style names keep
    their name): ('Tai_Chi', 'clip 1.v2') -> 'Tai_Chi_clip_1.v2'; ('ArmWrestling',
    'v_ArmWrestling_g01_c01') -> 'ArmWrestling_g01_c01' (frame folder v_ArmWrestling_g01_c01).
    All frame folders share one directory, so names must differ across classes."""
    name = normalize_name(stem)
    prefix = FOLDERS.folder_prefix  # 'v_': UCF101's file names carry it, its list names do not
    if name.lower().startswith((prefix + cls + "_").lower()):
        name = name[len(prefix):]
    return name if name.lower().startswith(cls.lower() + "_") else f"{cls}_{name}"


def _clash_key(name):
    return name.lower()  # frame folders and split lists are matched case-insensitively


def list_class_videos(videos_dir, extensions=VIDEO_EXTENSIONS):
    """Every `<videos_dir>/<class>/<video>.<ext>`, sorted by class then video.

    Refuses (FolderError) no class folder, a class folder with fewer than 2 videos (a class
    needs a training and a test video), and names that clash after normalisation (two
    classes; two videos, e.g. 'a b.mp4' and 'A_b.avi' in one class)."""
    if not os.path.isdir(videos_dir):
        raise FolderError(f"--videos-dir not found: {videos_dir}")
    classes = sorted(e for e in os.listdir(videos_dir)
                     if not e.startswith(".") and os.path.isdir(os.path.join(videos_dir, e)))
    if not classes:
        raise FolderError(f"no class folders in {videos_dir} (expected {videos_dir}/<class>/<video>"
                          f"{'|'.join(extensions)})")
    videos, few, seen_cls, seen_vid = [], [], {}, {}
    for folder in classes:
        cls = normalize_name(folder)
        if _clash_key(cls) in seen_cls:
            raise FolderError(f"class folders '{seen_cls[_clash_key(cls)]}' and '{folder}' both become class "
                              f"'{cls}' (names are compared without case, whitespace becomes '_'); rename one")
        seen_cls[_clash_key(cls)] = folder
        cls_dir = os.path.join(videos_dir, folder)
        files = sorted(f for f in os.listdir(cls_dir) if not f.startswith(".")
                       and f.lower().endswith(extensions) and os.path.isfile(os.path.join(cls_dir, f)))
        if len(files) < 2:
            few.append(f"'{folder}' ({len(files)})")
        for f in files:
            stem = os.path.splitext(f)[0]
            path = os.path.join(cls_dir, f)
            if not stem:
                raise FolderError(f"{path}: the file name has no name before the extension")
            name = video_name_in_class(cls, stem)
            if _clash_key(name) in seen_vid:
                raise FolderError(f"'{seen_vid[_clash_key(name)]}' and '{path}' both become video '{name}' "
                                  "(names are compared without case and extension, whitespace becomes '_'); "
                                  "rename one")
            seen_vid[_clash_key(name)] = path
            videos.append(FolderVideo(path, cls, name, stem))
    if few:
        raise FolderError(f"class folders need at least 2 videos (one to train, one to test): {', '.join(few)} "
                          f"in {videos_dir}; add videos or remove the folder")
    return videos


def video_group_key(stem, group_regex=DEFAULT_GROUP_REGEX):
    """The group a file name carries: the regex's first group (or whole match), else None."""
    m = re.search(group_regex, stem)
    if not m:
        return None
    return m.group(1) if m.groups() else m.group(0)


def targets_for(counts, test_fraction):
    """{class: number of test videos}: floor(F * n + 1/2) clamped to 1 .. n - 1."""
    return {c: min(max(int(np.floor(test_fraction * n + 0.5)), 1), n - 1) for c, n in counts.items()}


def split_videos(videos, test_fraction=DEFAULT_TEST_FRACTION, seed=0, group_regex=DEFAULT_GROUP_REGEX):
    """(train, test): FolderVideos (or any items with .cls, .name, .stem) in input order.

    Stratified per class and group-aware (module docstring); deterministic in `seed`.
    Raises FolderError for a class with fewer than 2 videos, or when the groups leave a
    class entirely on one side."""
    if not 0 < test_fraction < 1:
        raise FolderError(f"--test-fraction must be between 0 and 1, not {test_fraction}")
    counts = Counter(v.cls for v in videos)
    few = sorted(c for c, n in counts.items() if n < 2)
    if few:
        raise FolderError(f"classes need at least 2 videos (one to train, one to test): {', '.join(few)}")
    targets = targets_for(counts, test_fraction)
    groups = defaultdict(list)  # key -> indices; a video without a group is its own
    for i, v in enumerate(videos):
        g = video_group_key(v.stem, group_regex) if group_regex else None
        groups[("group", g) if g is not None else ("video", v.name)].append(i)
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    in_test, taken = set(), Counter()
    for k in (keys[j] for j in order):
        size = Counter(videos[i].cls for i in groups[k])
        before = sum(abs(taken[c] - targets[c]) for c in size)
        after = sum(abs(taken[c] + n - targets[c]) for c, n in size.items())
        if after < before:
            in_test.update(groups[k])
            taken.update(size)
    for c in sorted(counts):
        if not 0 < taken[c] < counts[c]:
            side = "test" if taken[c] else "training"
            names = sorted({str(k[1]) for k in keys for i in groups[k] if videos[i].cls == c})
            raise FolderError(f"class '{c}' gets no {side} video: its {counts[c]} videos are in groups "
                              f"{', '.join(names[:5])} that also hold other classes' videos or are too big; "
                              "change --seed, --test-fraction or --group-regex (or --group-regex '' for no groups)")
    train = [v for i, v in enumerate(videos) if i not in in_test]
    test = [v for i, v in enumerate(videos) if i in in_test]
    return train, test


def ucf101_list_lines(classes, train, test):
    """(classInd, trainlist, testlist) lines; a video is written `<Class>/v_<name>.avi` as in
    UCF101, whatever its container, and its frame folder is `v_<name>`."""
    label = {c: i + 1 for i, c in enumerate(classes)}
    ind = [f"{i + 1} {c}" for i, c in enumerate(classes)]
    trainlist = [f"{v.cls}/{FOLDERS.folder_for_video(v.name)}.avi {label[v.cls]}" for v in train]
    testlist = [f"{v.cls}/{FOLDERS.folder_for_video(v.name)}.avi" for v in test]
    return ind, trainlist, testlist


def draw_splits(videos, test_fraction=DEFAULT_TEST_FRACTION, seed=0, group_regex=DEFAULT_GROUP_REGEX,
                num_splits=NUM_SPLITS):
    """[(train, test)] of split s = 1 .. num_splits, drawn with seed [seed, s]; writes nothing,
    so that an impossible split is refused before any frame is extracted (FolderError)."""
    if len({v.cls for v in videos}) < 2:
        raise FolderError(f"{len({v.cls for v in videos})} class(es) ({', '.join(sorted({v.cls for v in videos}))}): "
                          "a classifier needs at least 2 class folders")
    return [split_videos(videos, test_fraction, [seed, s], group_regex) for s in range(1, num_splits + 1)]


def write_ucf101_lists(splits_dir, videos, test_fraction=DEFAULT_TEST_FRACTION, seed=0,
                       group_regex=DEFAULT_GROUP_REGEX, num_splits=NUM_SPLITS):
    """Draw `num_splits` splits (draw_splits) and write classInd.txt, trainlist0s.txt and
    testlist0s.txt under `splits_dir`, each atomically. Returns [(train, test)] per split."""
    classes = sorted({v.cls for v in videos})
    splits = draw_splits(videos, test_fraction, seed, group_regex, num_splits)
    for s, (train, test) in enumerate(splits, 1):
        ind, trainlist, testlist = ucf101_list_lines(classes, train, test)
        utils.save_text("".join(ln + "\n" for ln in trainlist), os.path.join(splits_dir, f"trainlist0{s}.txt"))
        utils.save_text("".join(ln + "\n" for ln in testlist), os.path.join(splits_dir, f"testlist0{s}.txt"))
    utils.save_text("".join(ln + "\n" for ln in ind), os.path.join(splits_dir, "classInd.txt"))
    return splits
