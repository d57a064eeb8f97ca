"""The weighted fusion's spatial:motion weight: fitted on validation scores, said how sure it
is, and carried from fusion.py to tools.predict in a weights file.

`fit_fusion_weight` takes, from a grid of ratios, the one with the best validation top-1; the
test scores report it, never choose it (engine/fusion.py `fuse_score_files`). A small
validation set makes that choice fragile, so `fit_pair` also returns warnings: several ratios
tied, few validation videos per class. `fusion.py --save-weights` writes one pair's fit
(`save_weights`) and `tools.predict --fusion` reads it back (`read_weights`) and checks it
against the checkpoints (`checkpoint_warnings`). The weighted fusion and the softmax it may
run on live here, as the fitting needs them; engine/fusion.py re-exports them.
"""
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

import utils
from engine.scores import FusionError

WEIGHTS_FORMAT = "two-stream-fusion-weights/1"
MIN_VAL_PER_CLASS = 5  # fewer validation videos in a class: one video moves top-1 by whole points
NORM_WORDS = {"none": "raw", "softmax": "softmax"}


def softmax(x):
    """Per-video softmax of (V, C) scores."""
    e = np.exp(x - x.max(axis=1, keepdims=True))  # shift by the max so exp cannot overflow
    return e / e.sum(axis=1, keepdims=True)  # (V, C)


def fuse_weighted(S, T, a, b):
    """(a*S + b*T) / (a + b); a is the spatial weight."""
    return (a * S + b * T) / (a + b)  # (V, C)


# ---------------------------------------------------------------- the grid
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


# ---------------------------------------------------------------- one pair's fit
@dataclass
class Fit:
    val: object                 # the aligned validation Pair (engine/scores.py)
    test: object                # the aligned test Pair the weight is reported on
    top1: dict = field(default_factory=dict)     # {normalisation: {(a, b): validation top-1}}
    weights: dict = field(default_factory=dict)  # {normalisation: (a, b)}
    test_top1: dict = field(default_factory=dict)  # {normalisation: test top-1 of the fitted weight}


def fit_pair(name, test, val, norms, grid=FIT_GRID):
    """(Fit, warnings) of one pair: the weight per normalisation, fitted on `val` only."""
    fit, warnings = Fit(val, test), []
    for norm in norms:
        top1 = fit.top1[norm] = validation_top1(val.S, val.T, val.labels, grid, norm)
        a, b = fit.weights[norm] = best_weight(top1)
        tied = sum(t == top1[(a, b)] for t in top1.values())
        if tied == len(top1):
            warnings.append(f"{name}: every one of the {tied} ratios gets the same validation top-1 "
                            f"{top1[(a, b)]:.2f} on {NORM_WORDS[norm]} scores: the validation scores cannot "
                            f"choose a weight, {a:g}:{b:g} (the closest to 1:1) was taken")
        elif tied > 1:
            warnings.append(f"{name}: the fitted weight {a:g}:{b:g} ({NORM_WORDS[norm]} scores) is a tie: {tied} "
                            f"of the {len(top1)} ratios reach the best validation top-1 {top1[(a, b)]:.2f}; "
                            "the one closest to 1:1 was taken")
    counts = np.bincount(val.labels, minlength=val.S.shape[1])  # (C,) validation videos per class
    if counts.min() < MIN_VAL_PER_CLASS:
        missing = int((counts == 0).sum())
        none = f"; {missing} of them with none" if missing else ""
        warnings.append(f"{name}: the weight is fitted on {len(val.videos)} validation videos for {len(counts)} "
                        f"classes (fewest in a class: {counts.min()}{none}); with under {MIN_VAL_PER_CLASS} a class "
                        f"one video moves the validation top-1 by {100 / len(val.videos):.1f} points: take the "
                        "fitted weight as a rough guess")
    return fit, warnings


# ---------------------------------------------------------------- the weights file
def check_outputs(json_path, weights_path, pairs, fit_on, inputs=()):
    """fusion.py's outputs, refused before any score file is read: paths that cannot be
    written or would replace an input (`inputs`: the test score files; the `fit_on` pairs
    count too) or a file of another kind, and a --save-weights that would not get one fitted
    weight to save."""
    inputs = [*inputs, *(path for pair in fit_on or [] for path in pair)]
    if json_path and weights_path and os.path.abspath(json_path) == os.path.abspath(weights_path):
        raise FusionError(f"--json and --save-weights name the same file {json_path}: give each its own")
    try:
        for option, path in (("--json", json_path), ("--save-weights", weights_path)):
            if path:
                utils.check_output_file(path, option, (".json",), inputs)
    except ValueError as e:
        raise FusionError(str(e)) from None
    if weights_path and not fit_on:
        raise FusionError(f"--save-weights {weights_path} needs --fit-weights-on VAL_S VAL_M: it saves the "
                          "spatial:motion weight fitted on validation scores")
    if weights_path and pairs != 1:
        raise FusionError(f"--save-weights {weights_path} saves the weight of one pair of runs, but {pairs} pairs "
                          "were given; run fusion.py once per pair to save each")


def choose_normalisation(fit):
    """(normalisation, why): the only one fitted, or (--normalize both) the one whose fitted
    weight has the higher validation top-1, raw on a tie: chosen on validation, like the weight."""
    if len(fit.weights) == 1:
        return next(iter(fit.weights)), None
    best = {norm: fit.top1[norm][w] for norm, w in fit.weights.items()}
    norm = "softmax" if best["softmax"] > best["none"] else "none"
    return norm, (f"--normalize both: {NORM_WORDS[norm]} scores, the higher validation top-1 (raw "
                  f"{best['none']:.2f}, softmax {best['softmax']:.2f}; raw on a tie)")


def weights_record(fit):
    """The JSON of `fusion.py --save-weights`: what tools.predict --fusion needs and where it came from."""
    norm, why = choose_normalisation(fit)
    a, b = fit.weights[norm]
    val, test = fit.val, fit.test
    streams = {}
    for role in ("spatial", "motion"):
        f = getattr(val, role)
        streams[role] = {"validation": os.path.abspath(f.path), "test": os.path.abspath(getattr(test, role).path),
                         "epoch": f.meta.get("epoch"), "dataset": f.meta.get("dataset"), "split": f.meta.get("split")}
    record = {"format": WEIGHTS_FORMAT, "strategy": "weighted", "normalize": norm, "weights": [a, b],
              "classes": val.spatial.classes, "num_classes": int(val.S.shape[1]), "streams": streams,
              "validation": {"top1": fit.top1[norm][(a, b)], "videos": len(val.videos),
                             "grid": {f"{x:g}:{y:g}": t for (x, y), t in fit.top1[norm].items()}},
              "test": {"top1": fit.test_top1[norm], "videos": len(test.videos),
                       "note": "reported on the test files, never used to choose"}}
    if why:
        record["normalize_choice"] = why
    return record


def save_weights(fit, path):
    """Write `fit`'s weights file atomically; returns the line fusion.py prints."""
    record = weights_record(fit)
    try:
        utils.save_json(record, path)
    except OSError as e:
        raise FusionError(f"--save-weights {path}: cannot write ({e.strerror or e})") from None
    return f"wrote {path}: {describe(record)}; predict with it: python -m tools.predict --fusion {path} ..."


def _bad(path, why):
    return FusionError(f"--fusion {path}: {why}; expected the JSON file of fusion.py --save-weights")


def read_weights(path):
    """A weights file written by save_weights, checked; FusionError in one line otherwise."""
    if os.path.isdir(path):
        raise FusionError(f"--fusion {path}: is a folder; expected the JSON file of fusion.py --save-weights")
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        raise FusionError(f"--fusion {path}: no such file (write one with fusion.py --fit-weights-on VAL_S VAL_M "
                          "--save-weights FILE)") from None
    except (OSError, ValueError) as e:
        raise _bad(path, f"not readable as JSON ({type(e).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != WEIGHTS_FORMAT:
        raise _bad(path, "not a fusion weights file")
    w = record.get("weights")
    if (not isinstance(w, list) or len(w) != 2 or not all(isinstance(x, (int, float)) and math.isfinite(x) and x > 0
                                                          for x in w)):
        raise _bad(path, f"its weights {w!r} are not two positive numbers")
    if record.get("normalize") not in NORM_WORDS:
        raise _bad(path, f"its normalisation {record.get('normalize')!r} is not one of {', '.join(NORM_WORDS)}")
    val, classes, streams = record.get("validation"), record.get("classes"), record.get("streams", {})
    if not (isinstance(val, dict) and isinstance(val.get("top1"), (int, float)) and isinstance(val.get("videos"), int)):
        raise _bad(path, "no validation figures (validation top1 and videos)")
    if not (classes is None or isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise _bad(path, "its classes are not a list of names")
    if not (isinstance(streams, dict) and all(isinstance(v, dict) for v in streams.values())):
        raise _bad(path, "its streams are not a {stream: {...}} record")
    return record


def describe(record, path=None):
    """'weighted 1:2 on softmax scores, fitted on validation (val top-1 80.00, 24 videos)[ from W.json]'."""
    (a, b), val = record["weights"], record["validation"]
    return (f"weighted {a:g}:{b:g} on {NORM_WORDS[record['normalize']]} scores, fitted on validation "
            f"(val top-1 {val['top1']:.2f}, {val['videos']} videos)"
            + (f" from {path}" if path else ""))


def checkpoint_warnings(record, path, checkpoints):
    """Warnings where the weights file was fitted for other runs than `checkpoints` = {stream:
    (checkpoint path, classes, epoch)}; FusionError where it was fitted on other classes."""
    classes = record.get("classes")
    for stream, (ckpt, ck_classes, _) in checkpoints.items():
        if classes is not None and list(classes) != list(ck_classes):
            i = next((i for i, (x, y) in enumerate(zip(classes, ck_classes)) if x != y),
                     min(len(classes), len(ck_classes)))
            raise FusionError(f"--fusion {path}: fitted on score files of other classes than --{stream} {ckpt} "
                              f"({len(classes)} vs {len(ck_classes)} classes, first difference at class {i + 1}); "
                              "fit the weights on these checkpoints' validation scores")
    out = []
    for stream, (ckpt, _, epoch) in checkpoints.items():
        info = (record.get("streams") or {}).get(stream) or {}
        val = info.get("validation")
        if isinstance(val, str) and os.path.dirname(os.path.abspath(ckpt)) != os.path.dirname(val):
            out.append(f"--fusion {path}: its weight was fitted on {val}, not on the validation scores of the run "
                       f"of --{stream} {ckpt}: a weight fitted for other models")
        elif info.get("epoch") is not None and epoch is not None and info["epoch"] != epoch:
            out.append(f"--fusion {path}: its weight was fitted on the validation scores of epoch {info['epoch']}, "
                       f"but --{stream} {ckpt} holds epoch {epoch} (model_best.pth is the fitted one)")
    return out
