"""Official split lists of UCF101 and HMDB51.

A split is a list of class names and (video name, 0-based label) pairs for train and test.
Video names follow the original two-stream code: the file name without `v_` and `.avi`,
e.g. `ApplyEyeMakeup_g01_c01` (UCF101) or `April_09_brush_hair_u_nm_np1_ba_goo_0` (HMDB51).
"""
import os
import re
from dataclasses import dataclass, field

DATASETS = ("ucf101", "hmdb51")
# Where the lists sit under --data-root when --splits-dir is not given.
DEFAULT_SPLITS_SUBDIR = {"ucf101": "ucfTrainTestlist", "hmdb51": "testTrainMulti_7030_splits"}


class SplitError(ValueError):
    """A split list is missing or malformed; the message names the file and line."""


@dataclass
class Split:
    classes: list                      # class names, index = label
    train: list                        # [(video, label)]
    test: list                         # [(video, label)]
    files: list = field(default_factory=list)  # the list files read, for messages


def video_name(path):
    """'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi' -> 'ApplyEyeMakeup_g08_c01'."""
    name = os.path.splitext(os.path.basename(path.replace("\\", "/")))[0]
    return name[2:] if name.startswith("v_") else name


def video_group(video, class_name=None):
    """Actor group of a video: 'g08' for UCF101 names; for HMDB51 the source film
    (the part of the name before the class), so clips of one film stay together."""
    m = re.search(r"_(g\d+)_c\d+$", video)
    if m:
        return m.group(1)
    if class_name and f"_{class_name}_" in video:
        return video.split(f"_{class_name}_")[0]
    return video


def _read_lines(path):
    if not os.path.isfile(path):
        raise SplitError(f"split list not found: {path}")
    with open(path, encoding="utf-8-sig") as f:  # utf-8-sig: tolerate a BOM
        lines = [(i, ln.strip()) for i, ln in enumerate(f, 1)]  # strip() also drops CR
    lines = [(i, ln) for i, ln in lines if ln]
    if not lines:
        raise SplitError(f"{path}: the file is empty")
    return lines


def _add_once(seen, video, where):
    """Record where a video was listed; a second listing is an error naming both places."""
    if video in seen:
        raise SplitError(f"{where}: video '{video}' is listed twice (first at {seen[video]})")
    seen[video] = where


def load_ucf101_split(splits_dir, split):
    """Read classInd.txt, trainlist0N.txt and testlist0N.txt from `splits_dir`."""
    if split not in (1, 2, 3):
        raise SplitError(f"UCF101 has splits 1, 2 and 3, not {split}")
    ind_path = os.path.join(splits_dir, "classInd.txt")
    classes = []
    for lineno, line in _read_lines(ind_path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(classes) + 1:
            raise SplitError(f"{ind_path}:{lineno}: expected '<{len(classes) + 1}> <ClassName>', got '{line}'")
        classes.append(parts[1])
    # Class folders are matched case-insensitively: classInd says HandstandPushups while
    # the file names say HandStandPushups.
    index = {c.lower(): i for i, c in enumerate(classes)}

    def parse(path, labelled):
        entries, seen = [], {}
        for lineno, line in _read_lines(path):
            parts = line.split()
            where = f"{path}:{lineno}"
            if len(parts) not in ((2,) if labelled else (1, 2)):  # test lines may carry a label
                raise SplitError(f"{where}: expected '<Class>/v_<video>.avi{' <label>' if labelled else ''}', got '{line}'")
            folder = parts[0].replace("\\", "/").split("/")[0] if "/" in parts[0] else None
            video = video_name(parts[0])
            cls = folder or video.split("_")[0]
            if cls.lower() not in index:
                raise SplitError(f"{where}: unknown class '{cls}' (not in {ind_path})")
            label = index[cls.lower()]
            if len(parts) == 2:
                if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(classes):
                    raise SplitError(f"{where}: label '{parts[1]}' is not a class number 1..{len(classes)}")
                if int(parts[1]) - 1 != label:
                    raise SplitError(f"{where}: label {parts[1]} disagrees with class folder '{cls}' "
                                     f"(classInd gives {label + 1})")
            _add_once(seen, video, where)
            entries.append((video, label))
        return entries

    train_path = os.path.join(splits_dir, f"trainlist0{split}.txt")
    test_path = os.path.join(splits_dir, f"testlist0{split}.txt")
    return Split(classes, parse(train_path, True), parse(test_path, False),
                 [ind_path, train_path, test_path])


def load_hmdb51_split(splits_dir, split):
    """Read every <class>_test_split<N>.txt (lines '<video>.avi <id>', 1 train, 2 test, 0 unused)."""
    if split not in (1, 2, 3):
        raise SplitError(f"HMDB51 has splits 1, 2 and 3, not {split}")
    if not os.path.isdir(splits_dir):
        raise SplitError(f"split folder not found: {splits_dir}")
    suffix = f"_test_split{split}.txt"
    # Labels follow the sorted class names (as mmaction2's label map), not the file names:
    # 'climb' < 'climb_stairs' although 'climb_stairs_test...' < 'climb_test...'.
    classes = sorted(f[: -len(suffix)] for f in os.listdir(splits_dir) if f.endswith(suffix))
    if not classes:
        raise SplitError(f"{splits_dir}: no '*{suffix}' files (HMDB51 split lists)")
    files = [os.path.join(splits_dir, c + suffix) for c in classes]
    train, test, seen = [], [], {}
    for label, path in enumerate(files):
        for lineno, line in _read_lines(path):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise SplitError(f"{path}:{lineno}: expected '<video>.avi <0|1|2>', got '{line}'")
            video = video_name(parts[0])
            _add_once(seen, video, f"{path}:{lineno}")
            if parts[1] != "0":
                (train if parts[1] == "1" else test).append((video, label))
    return Split(classes, train, test, files)


def load_split(dataset, splits_dir, split):
    if dataset == "ucf101":
        return load_ucf101_split(splits_dir, split)
    if dataset == "hmdb51":
        return load_hmdb51_split(splits_dir, split)
    raise SplitError(f"unknown dataset '{dataset}' (choose from {', '.join(DATASETS)})")


def hold_out_groups(entries, classes, num_groups):
    """Split training entries into (train, val) by whole actor groups: the `num_groups`
    groups that sort last go to validation, so no group straddles the two sets."""
    if num_groups <= 0:
        return list(entries), []
    groups = sorted({video_group(v, classes[y]) for v, y in entries})
    if num_groups >= len(groups):
        raise SplitError(f"--val-groups {num_groups} would leave no training videos "
                         f"(the training list has {len(groups)} groups)")
    held = set(groups[-num_groups:])
    train = [(v, y) for v, y in entries if video_group(v, classes[y]) not in held]
    val = [(v, y) for v, y in entries if video_group(v, classes[y]) in held]
    return train, val
