"""Split lists in the formats of UCF101 and HMDB51, and the rules that hold out validation.

A split is a list of class names and (video name, 0-based label) pairs for train and test.
Video names follow the original two-stream code: the file name without `v_` and `.avi`,
e.g. `ApplyEyeMakeup_g01_c01` (UCF101) or `April_09_brush_hair_u_nm_np1_ba_goo_0` (HMDB51).
Which data set uses which reader and rule is said once, in dataloader/catalog.py; the
name-keyed `load_split`, `hold_out_validation`, DATASETS and DEFAULT_SPLITS_SUBDIR here
look it up there (for the modules that import them from here).
"""
import math
import os
import re
from dataclasses import dataclass, field

# --val-groups auto holds out about this fraction of the training list (docs/method.md, section 9).
VAL_FRACTION = 0.15


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


ACTOR_GROUP = re.compile(r"_(g\d+)_c\d+$")  # UCF101: v_ApplyEyeMakeup_g08_c01


def has_actor_groups(entries):
    """Whether every video is named like UCF101's `..._g08_c01` (actor group, clip)."""
    return all(ACTOR_GROUP.search(v) for v, _ in entries)


def video_group(video, class_name=None):
    """Actor group of a video: 'g08' for UCF101 names; for HMDB51 the source film
    (the part of the name before the class), so clips of one film stay together."""
    m = ACTOR_GROUP.search(video)
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


def auto_val_groups(num_groups, fraction=VAL_FRACTION):
    """How many of `num_groups` training groups --val-groups auto holds out: fraction x groups
    rounded half up, at least 1, and at least one group left to train on (0 below 2 groups).
    UCF101 split 1: 18 groups -> 2.7 -> 3 (g23-g25); 5 groups -> 0.75 -> 1."""
    if num_groups < 2:
        return 0
    return min(max(1, math.floor(fraction * num_groups + 0.5 + 1e-9)), num_groups - 1)  # 1e-9: 0.15 x 10 is 1.5


def hold_out_films_per_class(entries, classes, num_films="auto", fraction=VAL_FRACTION):
    """HMDB51: split training entries into (train, val) class by class, by whole source
    films, so that every class is in the validation set. Within a class the films sort by
    name and are taken from the last: `num_films` of them, or with 'auto' as many as it takes
    to hold at least `fraction` of the class's clips (at least one film). Every class keeps
    at least one film to train on ('auto' leaves a one-film class out of validation; a
    number that would take a class's last film is an error)."""
    if num_films == 0:
        return list(entries), []
    films = {}  # class -> {film: clip count}, in list order
    for v, y in entries:
        by_film = films.setdefault(y, {})
        by_film[video_group(v, classes[y])] = by_film.get(video_group(v, classes[y]), 0) + 1
    held = set()  # (class, film)
    for y, by_film in films.items():
        names = sorted(by_film)
        if num_films != "auto":
            if num_films >= len(names):
                raise SplitError(f"--val-groups {num_films} would leave class '{classes[y]}' no training videos "
                                 f"(it has {len(names)} source films in the training list)")
            held |= {(y, f) for f in names[-num_films:]}
            continue
        total, taken = sum(by_film.values()), 0
        for f in reversed(names[1:]):  # names[0] always stays in training
            if taken >= fraction * total:
                break
            held.add((y, f))
            taken += by_film[f]
    train = [(v, y) for v, y in entries if (y, video_group(v, classes[y])) not in held]
    val = [(v, y) for v, y in entries if (y, video_group(v, classes[y])) in held]
    return train, val


@dataclass
class HoldOut:
    train: list          # [(video, label)] left to train on
    val: list            # [(video, label)] held out for validation ([] = no validation set)
    description: str     # what was held out, in words for the records ('' if nothing)


def _per_class(entries, classes, val_groups, unit):
    """hold_out_films_per_class, described in `unit`s (source films, videos)."""
    train, val = hold_out_films_per_class(entries, classes, val_groups)
    if not val:
        return HoldOut(train, val, "")
    auto = val_groups == "auto"
    covered = len({y for _, y in val})
    films = f"{unit}s" if auto else f"{val_groups} {unit}{'s' if val_groups != 1 else ''}"
    return HoldOut(train, val, f"{films} of each class held out: {len(val)} of {len(entries)} training clips, "
                               f"{covered} of {len({y for _, y in entries})} classes"
                               + (f"; auto: about {VAL_FRACTION:.0%} of each class" if auto else ""))


def hold_out_source_films(entries, classes, val_groups="auto"):
    """HMDB51's rule: whole source films of every class, so every class is validated.
    'auto': about VAL_FRACTION of each class; a number: that many films per class; 0: none."""
    return _per_class(entries, classes, val_groups, "source film")


def hold_out_actor_groups_or_videos(entries, classes, val_groups="auto"):
    """The rule of UCF101-format lists: when every video is named by actor group (`_g08_c01`),
    the groups that sort last ('auto': about VAL_FRACTION of the groups; a number: that many);
    otherwise (your own videos, named without groups) videos of every class, as
    hold_out_source_films does with films. 0: no validation set."""
    if not has_actor_groups(entries):
        return _per_class(entries, classes, val_groups, "video")
    auto = val_groups == "auto"
    groups = sorted({video_group(v, classes[y]) for v, y in entries})
    n = auto_val_groups(len(groups)) if auto else val_groups
    train, val = hold_out_groups(entries, classes, n)
    if not val:
        return HoldOut(train, val, "")
    held = groups[-n:]
    names = held[0] if n == 1 else f"{held[0]}-{held[-1]}"
    return HoldOut(train, val, f"{n} held-out actor group{'s' if n != 1 else ''} of the training list: {names}"
                               + (f"; auto: {VAL_FRACTION:.0%} of {len(groups)} groups" if auto else ""))


# ------------------------------------------------------------------ by data-set name
def _catalog_entry(dataset):
    # The catalog is built from this module's readers and rules, so this module looks it up
    # only when called: importing it at the top would be circular.
    from dataloader.catalog import get_dataset
    try:
        return get_dataset(dataset)
    except ValueError as e:
        raise SplitError(str(e)) from None


def load_split(dataset, splits_dir, split):
    """The split of the data set named `dataset` (dataloader/catalog.py) read from `splits_dir`;
    SplitError for a bad list or an unknown name."""
    return _catalog_entry(dataset).read_split(splits_dir, split)


def __getattr__(name):
    """DATASETS (the names) and DEFAULT_SPLITS_SUBDIR ({name: split-list folder}) are the
    catalog's, read when first asked for (see _catalog_entry)."""
    if name in ("DATASETS", "DEFAULT_SPLITS_SUBDIR"):
        from dataloader import catalog
        return getattr(catalog, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def hold_out_validation(dataset, entries, classes, val_groups="auto"):
    """The validation set of a run (--val-groups) by the rule of the data set named `dataset`
    (dataloader/catalog.py): hold_out_actor_groups_or_videos or hold_out_source_films."""
    return _catalog_entry(dataset).hold_out(entries, classes, val_groups)
