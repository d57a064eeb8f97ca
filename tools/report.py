"""Per-run records (CSV, score files) as Markdown tables (the original two-stream scripts' style) and PNG curves.

    python -m tools.report record/spatial                       # per-epoch tables + summary
    python -m tools.report runs/spatial_mean runs/spatial_max runs/spatial_var --plots
    python -m tools.report runs/* --summary-only --output report.md

Each run's numbers are read verbatim from its train.csv / val.csv / test.csv. The reported
epoch of a run is chosen by that run's own selection protocol (args.json 'selection'):
the best validation top-1 when the run has a val.csv, the best test top-1 only for runs
trained with --select-on-test (flagged as optimistic), else the last epoch. The tables
always say which protocol chose each number.

--plots (re)draws, in each run folder (and --picture-dir), train_<stream>_<consensus>.png,
test_<stream>_<consensus>.png and confusion_<stream>_<consensus>.png. The engine redraws them
after every epoch (engine/plots.py); the tables come from engine/tables.py.
"""
import argparse
import sys

import utils
from engine.plots import picture_paths, plot_run
from engine.records import RecordError, load_run
from engine.tables import build_report

PROG = "tools.report"


# ---------------------------------------------------------------- command line
def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Exit status: 0 ok, 2 bad arguments or a folder without records.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="the --out folder of a spatial_cnn.py / motion_cnn.py run")
    p.add_argument("--plots", action="store_true", help="also (re)draw each run's PNG curves and confusion matrix")
    p.add_argument("--picture-dir", metavar="DIR", help="with --plots: also copy the PNGs here")
    p.add_argument("--summary-only", action="store_true", help="only the side-by-side summary, no per-epoch tables")
    p.add_argument("--output", metavar="FILE", help="also write the report to FILE (Markdown)")
    return p


def check_outputs(args):
    """Fail before anything is printed or written where --output or --picture-dir cannot be
    written (ValueError naming the option, the path and why)."""
    if args.picture_dir and not args.plots:
        raise ValueError(f"--picture-dir {args.picture_dir} copies the PNGs that --plots draws: add --plots")
    if args.output:
        utils.check_output_file(args.output, "--output", (".md", ".markdown", ".txt"))
    if args.plots and args.picture_dir:
        utils.check_writable(args.picture_dir, "--picture-dir", folder=True)


def check_pictures(runs):
    """--plots draws into each run folder: fail before the report where a PNG cannot be written
    there (a folder in its place, a run folder one cannot write to)."""
    for run in runs:
        for path in picture_paths(run):
            try:
                utils.check_writable(path, None, folder=False)
            except ValueError as e:
                raise ValueError(f"--plots draws the PNGs into each run folder, and cannot: {e}; leave out "
                                 "--plots, or copy the run to a folder you can write and report that") from None


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed by argparse
        return e.code if isinstance(e.code, int) else 2
    try:
        check_outputs(args)
        runs = []
        for d in args.runs:
            runs.append(load_run(d))
            for warning in runs[-1].warnings:  # malformed lines: left out of the tables
                print(f"{PROG}: warning: {warning}", file=sys.stderr)
        if args.plots:
            check_pictures(runs)
        text = build_report(runs, epochs=not args.summary_only)
    except (RecordError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(text, end="")
    try:  # checked above; what can still fail here is the disk (full, gone)
        if args.output:
            utils.save_text(text, args.output)
        if args.plots:
            for run in runs:
                for path in plot_run(run.path, args.picture_dir, force=True):
                    print(f"wrote {path}")
    except OSError as e:
        print(f"{PROG}: error: could not write {e.filename or args.output}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
