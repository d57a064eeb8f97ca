"""Fusing the video-level scores of the spatial (RGB) and motion (optical flow) streams.

The strategies are plain numpy functions on (V, C) score matrices; their formulas are in
docs/method.md ("Fusing the two streams"). The spatial:motion weight can be fitted honestly
on validation scores (engine/fusion_fit.py, re-exported here): the test scores report it,
never choose it. `fuse_score_files` reads pairs of score files (engine/scores.py) and returns
the tables that fusion.py prints and tools.study writes. Nothing here prints.

With 5 classes or fewer every video is in its top 5, so a pair's top-5 is 100 by definition:
its tables and JSON leave top-5 out. var[top K] with K >= the class count is var itself, so
that row is left out too; a header line says what was left out and why.
"""
import argparse
import math
import os
from dataclasses import dataclass, field
from functools import partial

import numpy as np

import utils
from engine.fusion_fit import (FIT_GRID, best_weight, fit_fusion_weight, fit_pair, fitted_name,  # noqa: F401
                               fuse_weighted, softmax, validation_top1)
from engine.records import top5_meaningful
from engine.scores import FusionError, align, load_scores, swapped_warnings, validation_pair

NORMALISATIONS = ("none", "softmax")
DEFAULT_TOPK = 5
TOPK_METRICS = (1, 5)


# ---------------------------------------------------------------- fusion (pure numpy)
# S = spatial scores, T = motion scores, both (V, C): V videos, C classes.
def fuse_average(S, T):
    return (S + T) / 2  # (V, C)


def fuse_max(S, T):
    return np.maximum(S, T)  # (V, C)


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


# Rows showing each stream alone, then the fusion strategies (names as in the original two-stream scripts' result tables).
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


def parse_weights(text):
    """'A:B' -> (A, B): spatial weight A, motion weight B. An argparse type (fusion.py and
    tools.predict --weights): bad text raises argparse.ArgumentTypeError."""
    try:
        a, b = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A:B (e.g. 1:1.5), got '{text}'") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b < 0 or a + b == 0:
        raise argparse.ArgumentTypeError(f"weights must be >= 0 and not both 0, got '{text}'")
    return a, b


# ---------------------------------------------------------------- tables
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


def pair_rows(rows, num_classes, topk=DEFAULT_TOPK):
    """`rows` for a pair of `num_classes` classes: var[top K] left out where K >= the class
    count (its top K is then the whole vector: the row would repeat var)."""
    return {name: fn for name, fn in rows.items() if not (name == f"var[top {topk}]" and topk >= num_classes)}


def fusion_table(S, T, labels, rows, normalize="none"):
    """{row name: metrics} for aligned (V, C) scores S, T and (V,) labels; no top-5 where
    C <= 5 (it is 100 by definition)."""
    if normalize == "softmax":
        S, T = softmax(S), softmax(T)
    top5 = top5_meaningful(S.shape[1])
    return {name: {k: v for k, v in utils.video_metrics(fn(S, T), labels, TOPK_METRICS).items() if top5 or k != "top5"}
            for name, fn in rows.items()}


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
    """results: {pair name: {row: metrics}} -> Markdown table, one top1/top5 group per pair
    (top1 only for a pair without top-5)."""
    pairs = list(results)
    # a pair of 5 classes or fewer has no top5 column (fusion_table left it out)
    cols = {p: [m for m in ("top1", "top5") if all(m in v for v in results[p].values())] for p in pairs}
    head = ["strategy"] + [f"{utils.md_cell(p)} {m}" for p in pairs for m in cols[p]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for row in rows:  # a row fitted for some pairs only has '-' in the others
        cells = [f"{results[p][row][m]:.2f}" if row in results[p] else "-" for p in pairs for m in cols[p]]
        lines.append("| " + " | ".join([utils.md_cell(row)] + cells) + " |")
    return "\n".join(lines)


def header_lines(pairs, names, topk=DEFAULT_TOPK):
    lines = []
    for name, p in zip(names, pairs):
        line = (f"{name}: spatial {p.spatial.path} + motion {p.motion.path}: "
                f"{len(p.videos)} videos, {p.S.shape[1]} classes")
        if any(p.dropped):
            line += (f" (--intersect dropped {sum(p.dropped)} videos: {p.dropped[0]} only in the "
                     f"spatial file, {p.dropped[1]} only in the motion file)")
        lines.append(line)
        left_out = ([] if top5_meaningful(p.S.shape[1]) else ["top-5 (every video is in its top 5)"]) + (
            [f"var[top {topk}] (with K >= the class count it is var)"] if topk >= p.S.shape[1] else [])
        if left_out:
            lines.append(f"{name}: {p.S.shape[1]} classes, not shown: {'; '.join(left_out)}")
    return lines


def _fit_header(name, fit):
    per_norm = ", ".join(f"{'raw' if norm == 'none' else norm} {a:g}:{b:g} (val top-1 {fit.top1[norm][(a, b)]:.2f})"
                         for norm, (a, b) in fit.weights.items())
    return (f"{name}: spatial:motion weight fitted on validation ({fit.val.spatial.path} + {fit.val.motion.path}, "
            f"{len(fit.val.videos)} videos): {per_norm}")


# ---------------------------------------------------------------- score files -> tables
@dataclass
class FusionResult:
    header: list   # one line per pair: its files, videos and classes
    rows: list     # strategy names, in table order
    tables: dict   # {normalisation: {pair name: {strategy: {top1, top5, mean_class_acc}}}}
    fits: dict = field(default_factory=dict)  # {normalisation: {pair name: (a, b) fitted on validation}}
    warnings: list = field(default_factory=list)  # e.g. a file passed as the other stream; fused all the same
    fitted: dict = field(default_factory=dict)  # {pair name: engine.fusion_fit.Fit}, what --save-weights saves

    def markdown(self):
        """The header lines, then one Markdown table per normalisation; a fitted row
        'weighted (val) A:B' follows the others."""
        out = list(self.header)
        for norm, results in self.tables.items():
            label = "none (raw scores)" if norm == "none" else "softmax (per video, per stream)"
            rows = [r for r in dict.fromkeys([*self.rows, *(r for table in results.values() for r in table)])
                    if any(r in table for table in results.values())]  # var[top K] may be left out everywhere
            out += ["", f"normalisation: {label}", "", format_markdown(results, rows)]
        return "\n".join(out)

    def report(self):
        """{pair: {strategy: metrics}}; with two normalisations the pair names get a suffix."""
        both = len(self.tables) > 1
        return {f"{n} [{norm}]" if both else n: table
                for norm, results in self.tables.items() for n, table in results.items()}


def write_report(result, path):
    """fusion.py --json: result.report(), atomically; FusionError when it cannot be written."""
    try:
        utils.save_json(result.report(), path)
    except OSError as e:
        raise FusionError(f"{path}: cannot write ({e.strerror or e})") from None


def fuse_score_files(spatial, motion, names=None, weights=(), topk=DEFAULT_TOPK, normalize="none",
                     intersect=False, splits=None, fit_on=None, fit_grid=FIT_GRID):
    """Fuse each pair (spatial[i], motion[i]) of score files; FusionError on bad input.
    fit_on: one (validation spatial, validation motion) pair of score files per pair: adds
    the row 'weighted (val) A:B' with the weight fitted on them (fit_fusion_weight).
    Warnings are returned (FusionResult.warnings, or FusionError.warnings when a later
    check fails), not printed."""
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
    warnings = swapped_warnings(pairs)
    rows = table_rows(topk, weights)
    norms = NORMALISATIONS if normalize == "both" else (normalize,)
    tables = {norm: {n: fusion_table(p.S, p.T, p.labels, pair_rows(rows, p.S.shape[1], topk), norm)
                     for n, p in zip(names, pairs)} for norm in norms}
    header, fits, fitted = header_lines(pairs, names, topk), {norm: {} for norm in norms}, {}
    try:
        for name, pair, (val_s, val_m) in zip(names, pairs, fit_on or []):
            val = validation_pair(pair, load(val_s), load(val_m), intersect)
            # fitted on validation only; the test scores are used to report it, never to choose
            fitted[name], found = fit_pair(name, pair, val, norms, fit_grid)
            fit = fitted[name]
            warnings += found
            for norm, (a, b) in fit.weights.items():
                fits[norm][name] = (a, b)
                row = {fitted_name(a, b): partial(fuse_weighted, a=a, b=b)}
                metrics = fusion_table(pair.S, pair.T, pair.labels, row, norm)[fitted_name(a, b)]
                fit.test_top1[norm] = metrics["top1"]
                tables[norm][name][fitted_name(a, b)] = metrics | {"weights": [a, b], "val_top1": fit.top1[norm][(a, b)]}
            header.append(_fit_header(name, fit))
    except FusionError as e:
        e.warnings = warnings
        raise
    return FusionResult(header, list(rows), tables, fits if fit_on is not None else {}, warnings, fitted)
