#!/usr/bin/env python
"""Fuse the video-level scores of the spatial (RGB) and motion (optical flow) streams.

Prints, for each pair of runs, the video-level top-1 / top-5 of every fusion strategy and of
each stream alone, as a Markdown table (one top1/top5 column group per pair):

    python fusion.py --spatial record/spatial/video_scores_best.pkl --motion record/motion/video_scores_best.pkl

--fit-weights-on VAL_S.pkl VAL_M.pkl (once per pair) adds the row 'weighted (val) A:B': the
spatial:motion weight fitted on validation scores, evaluated on the test files; --save-weights
W.json keeps it for `python -m tools.predict --fusion W.json`. Formulas: docs/method.md
("Fusing the two streams"); the library: engine/fusion.py, engine/fusion_fit.py, engine/scores.py.
"""
import argparse
import sys

from dataloader.splits import DATASETS, SplitError, load_split
from engine.fusion import DEFAULT_TOPK, NORMALISATIONS, fuse_score_files, parse_weights, write_report
from engine.fusion_fit import check_outputs, save_weights
from engine.scores import FusionError


def topk_arg(text):
    k = int(text)
    if k < 2:  # the variance of a single entry is always 0
        raise argparse.ArgumentTypeError(f"K must be at least 2, got {k}")
    return k


def build_parser():
    p = argparse.ArgumentParser(
        prog="fusion.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
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
                   help="validation score files (video_scores_val.pkl) of the spatial and motion run of a pair, once "
                        "per pair in the order of --spatial: adds the row 'weighted (val) A:B', the spatial:motion "
                        "ratio A:B that maximises validation top-1 (ratios 1:3 .. 3:1 of {1, 1.5, 2, 3}; ties to the "
                        "ratio closest to 1:1, with a warning), evaluated on the test files")
    p.add_argument("--save-weights", metavar="FILE", help="write the weight fitted by --fit-weights-on (one pair only) "
                   "as JSON for tools.predict --fusion FILE: weights, normalisation, validation figures, score files; "
                   "with --normalize both, the normalisation whose weight has the higher validation top-1 (raw on a tie)")
    p.add_argument("--topk", type=topk_arg, default=DEFAULT_TOPK, metavar="K", help=f"K of the var[top K] "
                   f"strategy (default {DEFAULT_TOPK}; the row is left out where K >= the class count: it is var then)")
    p.add_argument("--normalize", choices=NORMALISATIONS + ("both",), default="none", help="per-video softmax of "
                   "each stream's scores before fusion: none (raw scores, as the original two-stream scripts), softmax, or both (two tables)")
    p.add_argument("--intersect", action="store_true", help="if the two files of a pair cover different "
                   "videos, fuse the common ones (default: error)")
    p.add_argument("--json", metavar="PATH", help="also write {pair: {strategy: {top1, top5, mean_class_acc}}} (no "
                   "top5 with 5 classes or fewer); with --normalize both the pair names get a suffix: 'mean [none]'")
    p.add_argument("--splits-dir", metavar="DIR",
                   help="split lists giving labels and classes for original-style plain-dict score files")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="split number (default 1)")
    p.add_argument("--dataset", choices=DATASETS, default="ucf101", help="dataset of the split lists (default ucf101)")
    return p


def run(args):
    """Everything after argument parsing; raises FusionError on bad input (outputs: before any fusing)."""
    check_outputs(args.json, args.save_weights, len(args.spatial), args.fit_weights_on, [*args.spatial, *args.motion])
    try:
        splits = load_split(args.dataset, args.splits_dir, args.split) if args.splits_dir else None
    except SplitError as e:
        raise FusionError(str(e)) from None
    result = fuse_score_files(args.spatial, args.motion, args.names, args.weights, args.topk, args.normalize,
                              args.intersect, splits, args.fit_weights_on)
    for w in result.warnings:  # before the table, as they always came
        print(f"fusion.py: warning: {w}", file=sys.stderr)
    print(result.markdown())
    if args.json:
        write_report(result, args.json)
    if args.save_weights:
        print(f"fusion.py: {save_weights(next(iter(result.fitted.values())), args.save_weights)}", file=sys.stderr)


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2); argparse already printed it
        return e.code if isinstance(e.code, int) else 2
    try:
        run(args)
    except FusionError as e:
        for w in e.warnings:  # what the fusion found before the error
            print(f"fusion.py: warning: {w}", file=sys.stderr)
        print(f"fusion.py: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
