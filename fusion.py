#!/usr/bin/env python
"""Fuse the video-level scores of the spatial (RGB) and motion (optical flow) streams.

Reads the `video_scores.pkl` files the two streams write and prints, for each pair of runs,
the video-level top-1 / top-5 of every fusion strategy and of each stream alone, as a
Markdown table (rows = strategies, one top1/top5 column group per pair):

    python fusion.py --spatial runs/spatial_mean/video_scores.pkl runs/spatial_var/video_scores.pkl \\
                     --motion runs/motion_mean/video_scores.pkl runs/motion_var/video_scores.pkl

Score files of the original two-stream code (a plain {video: scores} dict) carry no labels;
they are read with the split lists: --splits-dir DIR --split N [--dataset ucf101|hmdb51].
The strategies and their formulas are in docs/method.md ("Fusing the two streams"). Bad
input exits with status 2 and one line on stderr naming the file.

The weight of the spatial and motion stream can be fitted honestly, on validation scores
(each stream writes `video_scores_val.pkl` next to `video_scores_best.pkl`): with
`--fit-weights-on VAL_S.pkl VAL_M.pkl` (once per pair) the row `weighted (val) A:B` adds the
ratio of FIT_GRID with the best validation top-1, evaluated on the test files.

As a library: `fuse_score_files(spatial_paths, motion_paths, ...)` returns the same tables
(tools.study uses it); the strategies are plain numpy functions on (V, C) score matrices.
"""
import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from functools import partial

import numpy as np

import utils
from dataloader.splits import DATASETS, SplitError, load_split

NORMALISATIONS = ("none", "softmax")
DEFAULT_TOPK = 5
TOPK_METRICS = (1, 5)
EXAMPLES = 3  # how many video names an error message quotes


class FusionError(ValueError):
    """Bad input; the message names the file and the problem and fits on one line."""


# ---------------------------------------------------------------- fusion (pure numpy)
# S = spatial scores, T = motion scores, both (V, C): V videos, C classes.
def softmax(x):
    """Per-video softmax of (V, C) scores."""
    e = np.exp(x - x.max(axis=1, keepdims=True))  # shift by the max so exp cannot overflow
    return e / e.sum(axis=1, keepdims=True)  # (V, C)


def fuse_average(S, T):
    return (S + T) / 2  # (V, C)


def fuse_max(S, T):
    return np.maximum(S, T)  # (V, C)


def fuse_weighted(S, T, a, b):
    """(a*S + b*T) / (a + b); a is the spatial weight."""
    return (a * S + b * T) / (a + b)  # (V, C)


def _variance_weighted(S, T, vS, vT):
    """(vS*S + vT*T) / (vS + vT) with per-video weights vS, vT of shape (V, 1).

    A peaked score vector (high variance) means a confident stream, so it gets more say.
    A video where both weights are 0 (two flat vectors) falls back to the average
    instead of producing 0/0 = NaN.
    """
    total = vS + vT  # (V, 1)
    fused = (vS * S + vT * T) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, fused, (S + T) / 2)  # (V, C)


def _top_variance(X, k):
    """Variance of the k largest entries of each row of (V, C) X; k is capped at C."""
    k = min(k, X.shape[1])
    top = np.partition(X, X.shape[1] - k, axis=1)[:, X.shape[1] - k:]  # (V, k)
    return top.var(axis=1, keepdims=True)  # (V, 1)


def fuse_var(S, T):
    return _variance_weighted(S, T, S.var(axis=1, keepdims=True), T.var(axis=1, keepdims=True))


def fuse_var_topk(S, T, k):
    # Only the top of the vector matters for confidence; the long tail of
    # unlikely classes would otherwise dominate the variance.
    return _variance_weighted(S, T, _top_variance(S, k), _top_variance(T, k))


# Rows showing each stream alone, then the fusion strategies (names as in the seed notes).
STREAMS = {"spatial": lambda S, T: S, "motion": lambda S, T: T}
STRATEGIES = {
    "average": fuse_average,
    "max": fuse_max,
    "weighted 1:2": partial(fuse_weighted, a=1, b=2),
    "weighted 2:1": partial(fuse_weighted, a=2, b=1),
    f"var[top {DEFAULT_TOPK}]": partial(fuse_var_topk, k=DEFAULT_TOPK),
    "var": fuse_var,
}


def weight_name(a, b):
    return f"weighted {a:g}:{b:g}"


# ---------------------------------------------------------------- weights fitted on validation
# Spatial:motion ratios a:b with a, b in {1, 1.5, 2, 3}, one of them 1: from 1:3 to 3:1.
FIT_GRID = ((1, 1), (1.5, 1), (1, 1.5), (2, 1), (1, 2), (3, 1), (1, 3))


def fitted_name(a, b):
    return f"weighted (val) {a:g}:{b:g}"


def _distance_from_even(w):
    return abs(math.log(w[0] / w[1]))


def validation_top1(S_val, T_val, labels, grid=FIT_GRID, normalize="none"):
    """{(a, b): top-1 (%) of `weighted a:b` on the validation scores}, for each ratio of `grid`."""
    if any(not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0) for a, b in grid):
        raise ValueError(f"fusion weights must be positive numbers, got {list(grid)}")
    if normalize == "softmax":
        S_val, T_val = softmax(S_val), softmax(T_val)
    return {(a, b): float((fuse_weighted(S_val, T_val, a, b).argmax(axis=1) == labels).mean() * 100)
            for a, b in grid}


def fit_fusion_weight(S_val, T_val, labels, grid=FIT_GRID, normalize="none"):
    """The spatial:motion weight (a, b) of `grid` whose weighted fusion has the highest top-1
    on the validation scores S_val, T_val (V, C) with (V,) labels. Ties go to the ratio
    closest to 1:1 (smallest |log(a/b)|), then to the one listed first in `grid`."""
    return best_weight(validation_top1(S_val, T_val, labels, grid, normalize))


def best_weight(top1):
    """The (a, b) of {(a, b): validation top-1} with the highest top-1; ties as fit_fusion_weight."""
    return max(sorted(top1, key=_distance_from_even), key=top1.get)  # sorted and max keep the first of equals


def table_rows(topk=DEFAULT_TOPK, weights=()):
    """{row name: fn(S, T) -> (V, C)}: streams, STRATEGIES with var[top `topk`], then the
    extra 'weighted A:B' rows in the order given."""
    rows = dict(STREAMS)
    for name, fn in STRATEGIES.items():
        if name == f"var[top {DEFAULT_TOPK}]":
            name, fn = f"var[top {topk}]", partial(fuse_var_topk, k=topk)
        rows[name] = fn
    for a, b in weights:
        rows.setdefault(weight_name(a, b), partial(fuse_weighted, a=a, b=b))
    return rows


def fusion_table(S, T, labels, rows, normalize="none"):
    """{row name: metrics} for aligned (V, C) scores S, T and (V,) labels."""
    if normalize == "softmax":
        S, T = softmax(S), softmax(T)
    return {name: utils.video_metrics(fn(S, T), labels, TOPK_METRICS) for name, fn in rows.items()}


# ---------------------------------------------------------------- loading and checking
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


# ---------------------------------------------------------------- output
def pair_names(pairs, names=None):
    """Column group names: --names, else the runs' consensus from meta ('mean', 'var')."""
    if names:
        if len(names) != len(pairs):
            raise FusionError(f"--names gives {len(names)} names for {len(pairs)} pairs of files")
        if len(set(names)) != len(names):
            raise FusionError("--names: the names must differ")
        return list(names)
    out = []
    for i, p in enumerate(pairs):
        cs, cm = p.spatial.meta.get("consensus"), p.motion.meta.get("consensus")
        name = f"{cs}+{cm}" if cs and cm and cs != cm else str(cs or cm or f"run {i + 1}")
        base, n = name, 2
        while name in out:  # two pairs with the same consensus
            name, n = f"{base} #{n}", n + 1
        out.append(name)
    return out


def format_markdown(results, rows):
    """results: {pair name: {row: metrics}} -> Markdown table, one top1/top5 group per pair."""
    pairs = list(results)
    head = ["strategy"] + [f"{utils.md_cell(p)} {m}" for p in pairs for m in ("top1", "top5")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for row in rows:  # a row fitted for some pairs only has '-' in the others
        cells = [f"{results[p][row][m]:.2f}" if row in results[p] else "-" for p in pairs for m in ("top1", "top5")]
        lines.append("| " + " | ".join([utils.md_cell(row)] + cells) + " |")
    return "\n".join(lines)


def header_lines(pairs, names):
    lines = []
    for name, p in zip(names, pairs):
        line = (f"{name}: spatial {p.spatial.path} + motion {p.motion.path}: "
                f"{len(p.videos)} videos, {p.S.shape[1]} classes")
        if any(p.dropped):
            line += (f" (--intersect dropped {sum(p.dropped)} videos: {p.dropped[0]} only in the "
                     f"spatial file, {p.dropped[1]} only in the motion file)")
        lines.append(line)
    return lines


def _warn_swapped(pairs):
    for p in pairs:
        for f, role in ((p.spatial, "spatial"), (p.motion, "motion")):
            stream = f.meta.get("stream")
            if stream in ("spatial", "motion") and stream != role:
                print(f"fusion.py: warning: {f.path}: meta says stream '{stream}' but it was "
                      f"passed to --{role}", file=sys.stderr)


# ---------------------------------------------------------------- command line
def parse_weights(text):
    """'A:B' -> (A, B): spatial weight A, motion weight B."""
    try:
        a, b = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A:B (e.g. 1:1.5), got '{text}'") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b < 0 or a + b == 0:
        raise argparse.ArgumentTypeError(f"weights must be >= 0 and not both 0, got '{text}'")
    return a, b


def topk_arg(text):
    k = int(text)
    if k < 2:  # the variance of a single entry is always 0
        raise argparse.ArgumentTypeError(f"K must be at least 2, got {k}")
    return k


def build_parser():
    p = argparse.ArgumentParser(
        prog="fusion.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 ok, 2 bad arguments or bad input (one line on stderr).")
    p.add_argument("--spatial", nargs="+", required=True, metavar="PKL",
                   help="video_scores.pkl of the spatial (RGB) stream; several = several runs")
    p.add_argument("--motion", nargs="+", required=True, metavar="PKL",
                   help="video_scores.pkl of the motion (flow) stream, paired with --spatial by position")
    p.add_argument("--names", nargs="+", metavar="NAME",
                   help="column group name of each pair (default: the runs' consensus from meta)")
    p.add_argument("--weights", action="append", type=parse_weights, default=[], metavar="A:B",
                   help="add a row 'weighted A:B' = (A*spatial + B*motion)/(A+B); repeatable")
    p.add_argument("--fit-weights-on", nargs=2, action="append", metavar=("VAL_S", "VAL_M"),
                   help="validation score files (video_scores_val.pkl) of the spatial and motion run of a pair, "
                        "once per pair in the order of --spatial: adds the row 'weighted (val) A:B', the "
                        "spatial:motion ratio A:B that maximises validation top-1 (ratios 1:3 .. 3:1 of "
                        "{1, 1.5, 2, 3}; ties to the ratio closest to 1:1), evaluated on the test files")
    p.add_argument("--topk", type=topk_arg, default=DEFAULT_TOPK, metavar="K",
                   help=f"K of the var[top K] strategy (default {DEFAULT_TOPK}; capped at the class count)")
    p.add_argument("--normalize", choices=NORMALISATIONS + ("both",), default="none",
                   help="per-video softmax of each stream's scores before fusion: none (raw scores, "
                        "as the seed), softmax, or both (two tables)")
    p.add_argument("--intersect", action="store_true",
                   help="if the two files of a pair cover different videos, fuse the common ones "
                        "(default: error)")
    p.add_argument("--json", metavar="PATH",
                   help="also write {pair: {strategy: {top1, top5, mean_class_acc}}}; with "
                        "--normalize both the pair names get a suffix: 'mean [none]', 'mean [softmax]'")
    p.add_argument("--splits-dir", metavar="DIR",
                   help="split lists giving labels and classes for original-style plain-dict score files")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="split number (default 1)")
    p.add_argument("--dataset", choices=DATASETS, default="ucf101",
                   help="dataset of the split lists (default ucf101)")
    return p


@dataclass
class FusionResult:
    header: list   # one line per pair: its files, videos and classes
    rows: list     # strategy names, in table order
    tables: dict   # {normalisation: {pair name: {strategy: {top1, top5, mean_class_acc}}}}
    fits: dict = field(default_factory=dict)  # {normalisation: {pair name: (a, b) fitted on validation}}

    def markdown(self):
        """The header lines, then one Markdown table per normalisation; a fitted row
        'weighted (val) A:B' follows the others."""
        out = list(self.header)
        for norm, results in self.tables.items():
            label = "none (raw scores)" if norm == "none" else "softmax (per video, per stream)"
            rows = list(dict.fromkeys([*self.rows, *(r for table in results.values() for r in table)]))
            out += ["", f"normalisation: {label}", "", format_markdown(results, rows)]
        return "\n".join(out)

    def report(self):
        """{pair: {strategy: metrics}}; with two normalisations the pair names get a suffix."""
        both = len(self.tables) > 1
        return {f"{n} [{norm}]" if both else n: table
                for norm, results in self.tables.items() for n, table in results.items()}


def _validation_pair(pair, val_spatial, val_motion, intersect):
    """The aligned validation scores for fitting `pair`'s weight; refuses files that are not
    validation scores of the same classes, or that share videos with the test files."""
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


def _fit_header(name, val, fits, top1s):
    per_norm = ", ".join(f"{'raw' if norm == 'none' else norm} {fits[norm][0]:g}:{fits[norm][1]:g} "
                         f"(val top-1 {top1s[norm]:.2f})" for norm in fits)
    return (f"{name}: spatial:motion weight fitted on validation ({val.spatial.path} + {val.motion.path}, "
            f"{len(val.videos)} videos): {per_norm}")


def fuse_score_files(spatial, motion, names=None, weights=(), topk=DEFAULT_TOPK, normalize="none",
                     intersect=False, splits=None, fit_on=None, fit_grid=FIT_GRID):
    """Fuse each pair (spatial[i], motion[i]) of score files; FusionError on bad input.
    fit_on: one (validation spatial, validation motion) pair of score files per pair: adds
    the row 'weighted (val) A:B' with the weight fitted on them (fit_fusion_weight)."""
    if len(spatial) != len(motion):
        raise FusionError(f"{len(spatial)} --spatial files but {len(motion)} --motion files; "
                          "they are paired by position")
    for i, (s, m) in enumerate(zip(spatial, motion), 1):
        if os.path.exists(s) and os.path.exists(m) and os.path.samefile(s, m):
            raise FusionError(f"pair {i}: the same file {s} is given as --spatial and as --motion "
                              f"({m}); a pair fuses two different streams")
    if fit_on is not None and len(fit_on) != len(spatial):
        raise FusionError(f"--fit-weights-on given {len(fit_on)} times for {len(spatial)} pairs of files; "
                          "give it once per pair, in the order of --spatial")
    cache = {}  # a file shared by several pairs is read once

    def load(path):
        if path not in cache:
            cache[path] = load_scores(path, splits)
        return cache[path]

    pairs = [align(load(s), load(m), intersect) for s, m in zip(spatial, motion)]
    names = pair_names(pairs, names)
    _warn_swapped(pairs)
    rows = table_rows(topk, weights)
    norms = NORMALISATIONS if normalize == "both" else (normalize,)
    tables = {norm: {n: fusion_table(p.S, p.T, p.labels, rows, norm) for n, p in zip(names, pairs)}
              for norm in norms}
    header, fits = header_lines(pairs, names), {norm: {} for norm in norms}
    for name, pair, (val_s, val_m) in zip(names, pairs, fit_on or []):
        val = _validation_pair(pair, load(val_s), load(val_m), intersect)
        top1s = {}
        for norm in norms:  # fitted on validation only; the test scores are used to report it, never to choose
            grid_top1 = validation_top1(val.S, val.T, val.labels, fit_grid, norm)
            a, b = fits[norm][name] = best_weight(grid_top1)
            top1s[norm] = grid_top1[(a, b)]
            row = {fitted_name(a, b): partial(fuse_weighted, a=a, b=b)}
            metrics = fusion_table(pair.S, pair.T, pair.labels, row, norm)[fitted_name(a, b)]
            tables[norm][name][fitted_name(a, b)] = metrics | {"weights": [a, b], "val_top1": top1s[norm]}
        header.append(_fit_header(name, val, {norm: fits[norm][name] for norm in norms}, top1s))
    return FusionResult(header, list(rows), tables, fits if fit_on is not None else {})


def run(args):
    """Everything after argument parsing; raises FusionError on bad input."""
    splits = None
    if args.splits_dir:
        try:
            splits = load_split(args.dataset, args.splits_dir, args.split)
        except SplitError as e:
            raise FusionError(str(e)) from None
    result = fuse_score_files(args.spatial, args.motion, args.names, args.weights, args.topk, args.normalize,
                              args.intersect, splits, args.fit_weights_on)
    print(result.markdown())
    if args.json:
        try:
            utils.save_json(result.report(), args.json)
        except OSError as e:
            raise FusionError(f"{args.json}: cannot write ({e.strerror or e})") from None


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2); argparse already printed it
        return e.code if isinstance(e.code, int) else 2
    try:
        run(args)
    except FusionError as e:
        print(f"fusion.py: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
