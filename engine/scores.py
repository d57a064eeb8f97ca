"""Reading and checking the per-video score files that fusion reads.

A score file is the engine's `video_scores*.pkl` ({"scores", "labels", "classes", "meta"},
engine/records.py `score_file`) or the original two-stream code's plain {video: scores}
dict, which carries no labels and is labelled from the split lists. Pickles are read with
a restricted unpickler (utils.load_pickle_safe): a score file never runs code. Bad input
raises FusionError, whose one-line message names the file.
"""
import os
from dataclasses import dataclass, field

import numpy as np

import utils

EXAMPLES = 3  # how many video names an error message quotes


class FusionError(ValueError):
    """Bad input; the message names the file and the problem and fits on one line."""
    # What fusion had to say before the error (e.g. a swapped-stream warning): a command
    # prints them first, as it would have had the fusion gone through.
    warnings = ()


@dataclass
class ScoreFile:
    path: str
    videos: list          # (V,) names as written in the file
    scores: np.ndarray    # (V, C) float64
    labels: np.ndarray    # (V,) int64, 0-based
    classes: list = None  # (C,) class names, None if the file does not say
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self):
        return self.scores.shape[1]


def _examples(names):
    names = list(names)
    more = ", ..." if len(names) > EXAMPLES else ""
    return ", ".join(names[:EXAMPLES]) + more


def _read_pickle(path):
    if os.path.isdir(path):
        inside = [f for f in ("video_scores_best.pkl", "video_scores.pkl") if os.path.isfile(os.path.join(path, f))]
        hint = f" such as {os.path.join(path, inside[0])}" if inside else " (OUT/video_scores_best.pkl of a run)"
        raise FusionError(f"{path}: is a folder; expected a score file{hint}")
    if not os.path.isfile(path):
        raise FusionError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise FusionError(f"{path}: the file is empty")
    try:
        return utils.load_pickle_safe(path)
    except utils.UnsafePickleError as e:
        raise FusionError(f"{e} (refused: loading this pickle would run code)") from None
    except ValueError as e:
        raise FusionError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - corrupt pickles can raise LookupError, AttributeError, ...
        raise FusionError(f"{path}: not a readable score pickle ({type(e).__name__}: {e})") from None


def _score_matrix(path, raw):
    """{video: (C,) scores} -> names, (V, C) float64; checks shapes and finiteness."""
    if not raw:
        raise FusionError(f"{path}: the file holds no videos")
    videos, rows = list(raw), []
    for v in videos:
        if not isinstance(v, str):
            raise FusionError(f"{path}: not a score file (video name {v!r} is not a string)")
        try:
            a = np.asarray(raw[v], dtype=np.float64)
        except (TypeError, ValueError):
            raise FusionError(f"{path}: not a score file (scores of '{v}' are not numbers)") from None
        if a.ndim == 2 and a.shape[0] == 1:  # a (1, C) row sliced from a batch
            a = a[0]
        if a.ndim != 1 or a.size == 0:
            raise FusionError(f"{path}: not a score file (scores of '{v}' have shape {a.shape}, "
                              "expected one score per class)")
        if rows and a.size != rows[0].size:
            raise FusionError(f"{path}: score vectors differ in length ({rows[0].size} for "
                              f"'{videos[0]}', {a.size} for '{v}')")
        rows.append(a)
    scores = np.stack(rows)  # (V, C)
    bad = ~np.isfinite(scores).all(axis=1)  # (V,)
    if bad.any():
        raise FusionError(f"{path}: {int(bad.sum())} videos have NaN or inf scores "
                          f"(e.g. {_examples(np.asarray(videos)[bad])})")
    lower = {v.lower() for v in videos}
    if len(lower) != len(videos):
        raise FusionError(f"{path}: some video names differ only in case")
    return videos, scores


def _check_labels(path, videos, labels, num_classes):
    """{video: int} -> (V,) int64, every label in 0..C-1."""
    missing = [v for v in videos if v not in labels]
    if missing:
        raise FusionError(f"{path}: no label for {len(missing)} videos (e.g. {_examples(missing)})")
    out = []
    for v in videos:
        y = labels[v]
        if isinstance(y, bool) or not isinstance(y, (int, np.integer)) or not 0 <= y < num_classes:
            raise FusionError(f"{path}: label of '{v}' is {y!r}, not a class index 0..{num_classes - 1}")
        out.append(int(y))
    return np.asarray(out, dtype=np.int64)


def _labels_from_split(path, videos, splits):
    """Labels of an original-style file from the test list, matching names case-insensitively
    (UCF101 writes HandStandPushups in file names but HandstandPushups in classInd)."""
    test = {v.lower(): y for v, y in splits.test}
    unknown = [v for v in videos if v.lower() not in test]
    if unknown:
        raise FusionError(f"{path}: {len(unknown)} videos are not in the test list "
                          f"{splits.files[-1] if splits.files else ''} (e.g. {_examples(unknown)}); wrong --split?")
    return np.asarray([test[v.lower()] for v in videos], dtype=np.int64)


def load_scores(path, splits=None):
    """Read one score file: the engine's {"scores", "labels", "classes", "meta"} dict, or
    the original code's plain {video: scores} dict, labelled from `splits` (a Split)."""
    data = _read_pickle(path)
    if not isinstance(data, dict):
        raise FusionError(f"{path}: not a score file (holds a {type(data).__name__}, expected a dict "
                          "with 'scores' and 'labels' or a {video: scores} dict)")
    if "scores" in data:
        if not isinstance(data["scores"], dict) or not isinstance(data.get("labels"), dict):
            raise FusionError(f"{path}: not a score file ('scores' and 'labels' must be dicts keyed by video)")
        videos, scores = _score_matrix(path, data["scores"])
        labels = _check_labels(path, videos, data["labels"], scores.shape[1])
        classes = data.get("classes")
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    else:  # original two-stream format: no labels inside
        videos, scores = _score_matrix(path, data)
        if splits is None:
            raise FusionError(f"{path}: a plain {{video: scores}} dict (original two-stream format) "
                              "has no labels; pass --splits-dir DIR --split N [--dataset ucf101|hmdb51]")
        labels, classes, meta = _labels_from_split(path, videos, splits), list(splits.classes), {}
    if classes is not None:
        if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
            raise FusionError(f"{path}: not a score file ('classes' must be a list of names)")
        if len(classes) != scores.shape[1]:
            raise FusionError(f"{path}: {len(classes)} class names but {scores.shape[1]} scores per video")
        classes = list(classes)
    return ScoreFile(path, videos, scores, labels, classes, meta)


@dataclass
class Pair:
    spatial: ScoreFile
    motion: ScoreFile
    videos: list          # (V,) common videos, in the spatial file's order
    S: np.ndarray         # (V, C)
    T: np.ndarray         # (V, C)
    labels: np.ndarray    # (V,)
    dropped: tuple = (0, 0)  # (spatial-only, motion-only) videos left out by --intersect


def _check_classes(spatial, motion):
    if spatial.num_classes != motion.num_classes:
        raise FusionError(f"{motion.path}: {motion.num_classes} classes, but {spatial.path} "
                          f"has {spatial.num_classes}")
    if spatial.classes is None or motion.classes is None:
        return
    a, b = [c.lower() for c in spatial.classes], [c.lower() for c in motion.classes]
    if a != b:
        i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        what = "class order differs" if sorted(a) == sorted(b) else "class names differ"
        raise FusionError(f"{motion.path}: {what} from {spatial.path} (class {i} is "
                          f"'{motion.classes[i]}' here, '{spatial.classes[i]}' there)")


def align(spatial, motion, intersect=False):
    """Pair up the videos of two score files (names match case-insensitively)."""
    _check_classes(spatial, motion)
    s_index = {v.lower(): i for i, v in enumerate(spatial.videos)}
    m_index = {v.lower(): i for i, v in enumerate(motion.videos)}
    only_s = [spatial.videos[i] for k, i in s_index.items() if k not in m_index]
    only_m = [motion.videos[i] for k, i in m_index.items() if k not in s_index]
    if (only_s or only_m) and not intersect:
        raise FusionError(
            f"{spatial.path} and {motion.path} cover different videos: {len(only_s)} missing from "
            f"the motion file{f' (e.g. {_examples(only_s)})' if only_s else ''}, {len(only_m)} missing "
            f"from the spatial file{f' (e.g. {_examples(only_m)})' if only_m else ''}; "
            "pass --intersect to fuse the common videos")
    common = [k for k in s_index if k in m_index]
    if not common:
        raise FusionError(f"{spatial.path} and {motion.path} have no video in common")
    si = np.asarray([s_index[k] for k in common])  # (V,)
    mi = np.asarray([m_index[k] for k in common])  # (V,)
    labels, m_labels = spatial.labels[si], motion.labels[mi]
    wrong = np.nonzero(labels != m_labels)[0]
    if wrong.size:
        eg = ", ".join(f"{spatial.videos[si[j]]}: {labels[j]} vs {m_labels[j]}" for j in wrong[:EXAMPLES])
        raise FusionError(f"{motion.path}: labels disagree with {spatial.path} for {wrong.size} "
                          f"videos (e.g. {eg})")
    return Pair(spatial, motion, [spatial.videos[i] for i in si], spatial.scores[si],
                motion.scores[mi], labels, (len(only_s), len(only_m)))


def validation_pair(pair, val_spatial, val_motion, intersect):
    """The aligned validation scores for fitting `pair`'s weight; refuses files that are not
    validation scores of the same classes, or that share videos with the test files."""
    check_validation_order(val_spatial, val_motion)
    for f in (val_spatial, val_motion):
        if f.meta.get("subset") == "test":
            raise FusionError(f"{f.path}: holds test scores (meta subset 'test'); fit the weights on "
                              "validation scores (video_scores_val.pkl)")
    val = align(val_spatial, val_motion, intersect)
    _check_classes(pair.spatial, val.spatial)
    shared = {v.lower() for v in val.videos} & {v.lower() for v in pair.videos}
    if shared:
        raise FusionError(f"{val.spatial.path}: {len(shared)} of its videos are also in the test files "
                          f"{pair.spatial.path}, {pair.motion.path} (e.g. {_examples(sorted(shared))}); the "
                          "weights must be fitted on videos held out of training, not on test videos")
    return val


def check_validation_order(val_spatial, val_motion):
    """--fit-weights-on VAL_S VAL_M: two different files, each of the stream its place says.
    Unlike the test files (only warned about: fused all the same), swapped validation files
    are refused: they would silently fit the inverse ratio."""
    s, m = val_spatial.path, val_motion.path
    if val_spatial is val_motion or (os.path.exists(s) and os.path.exists(m) and os.path.samefile(s, m)):
        raise FusionError(f"--fit-weights-on {s} {m}: the same file twice; give the spatial run's validation "
                          "scores, then the motion run's")
    streams = (val_spatial.meta.get("stream"), val_motion.meta.get("stream"))
    if streams == ("motion", "spatial"):
        raise FusionError(f"--fit-weights-on {s} {m}: swapped: {s} holds motion scores and {m} spatial ones "
                          f"(meta 'stream'); give the spatial file first: --fit-weights-on {m} {s}")
    for f, role in ((val_spatial, "spatial"), (val_motion, "motion")):
        stream = f.meta.get("stream")
        if stream in ("spatial", "motion") and stream != role:
            raise FusionError(f"--fit-weights-on {s} {m}: {f.path} holds {stream} scores (meta 'stream') but is "
                              f"given as the {role} one; the order is VAL_S (spatial) then VAL_M (motion)")


def swapped_warnings(pairs):
    """A warning for each file of `pairs` whose meta names the other stream than the one it
    was passed as (fused all the same: two runs of one stream may be fused on purpose), and
    FusionError for a pair whose two files are both the other stream's (a swap: every table
    row would be labelled the wrong way round)."""
    out = []
    for p in pairs:
        if (p.spatial.meta.get("stream"), p.motion.meta.get("stream")) == ("motion", "spatial"):
            raise FusionError(f"--spatial {p.spatial.path} holds motion scores and --motion {p.motion.path} spatial "
                              "ones (meta 'stream'): swapped; give each file to its stream's option")
        for f, role in ((p.spatial, "spatial"), (p.motion, "motion")):
            stream = f.meta.get("stream")
            if stream in ("spatial", "motion") and stream != role:
                out.append(f"{f.path}: meta says stream '{stream}' but it was passed to --{role}")
    return out
