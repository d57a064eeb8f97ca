"""tools.study's closing steps: the fusion tables of each consensus's spatial and motion
runs (with the weight fitted on their validation scores), and the report of every run."""
import os
import shlex
import sys

import utils
from engine.fusion import fuse_score_files
from engine.plots import plot_run
from engine.records import VAL_SCORES, RecordError, load_run, score_path
from engine.scores import FusionError
from engine.tables import build_report
from tools.study_jobs import finished


def fusion_inputs(jobs):
    """[(consensus, spatial pkl, motion pkl, spatial val pkl, motion val pkl)] for each consensus
    with both streams finished, and notes saying which score file stands for each run. A val
    pkl (the selected model's validation scores) is None where the run has none."""
    done = {(j.stream, j.consensus): j for j in jobs if finished(j.out)}
    pairs, notes = [], []
    for consensus in dict.fromkeys(j.consensus for j in jobs):
        runs = [done.get((s, consensus)) for s in ("spatial", "motion")]
        if None in runs:
            continue
        paths, vals = [], []
        for job in runs:
            path, best = score_path(job.out)
            val = os.path.join(job.out, VAL_SCORES)
            vals.append(val if best and os.path.isfile(val) else None)
            selection = load_run(job.out).selection
            notes.append(f"- {job.name}: {os.path.basename(path)} = "
                         + (f"the model selected by {selection}" if best else
                            "the LAST epoch: the run has no video_scores_best.pkl (no validation set: "
                            "--val-groups 0 without --select-on-test)"))
            paths.append(path)
        pairs.append((consensus, *paths, *vals))
    if pairs and fit_on(pairs) is None:
        notes.append("- no weight fitted on validation: a run has no " + VAL_SCORES + " (no validation set)")
    elif pairs:
        notes.append(f"- the row 'weighted (val) A:B': the spatial:motion weight fitted on each pair's {VAL_SCORES}")
    return pairs, notes


def fit_on(pairs):
    """fusion.py's --fit-weights-on pairs, if every pair has its validation scores."""
    return [(p[3], p[4]) for p in pairs] if all(p[3] and p[4] for p in pairs) else None


def fusion_argv(pairs, study_dir):
    fit = [a for pair in fit_on(pairs) or [] for a in ("--fit-weights-on", *pair)]
    return (["--spatial", *[p[1] for p in pairs], "--motion", *[p[2] for p in pairs],
             "--names", *[p[0] for p in pairs], "--normalize", "both", *fit,
             "--json", os.path.join(study_dir, "fusion.json")])


def run_fusion(pairs, notes, study_dir):
    """fusion.py's tables into STUDY_DIR/fusion.md (and fusion.json); returns its exit status."""
    argv = fusion_argv(pairs, study_dir)  # the same tables from the command line, for the record
    try:
        result = fuse_score_files([p[1] for p in pairs], [p[2] for p in pairs], names=[p[0] for p in pairs],
                                  normalize="both", fit_on=fit_on(pairs))
        for w in result.warnings:  # on stderr, as fusion.py prints them
            print(f"fusion.py: warning: {w}", file=sys.stderr)
        utils.save_json(result.report(), os.path.join(study_dir, "fusion.json"))
        body, rc = result.markdown(), 0
    except (FusionError, OSError) as e:
        for w in getattr(e, "warnings", ()):  # found before a FusionError
            print(f"fusion.py: warning: {w}", file=sys.stderr)
        body, rc = f"fusion.py: error: {' '.join(str(e).split())}", 1
    text = "\n".join(["# fusion", "", f"$ python fusion.py {shlex.join(argv)}", "", "score files:", *notes, "",
                      body]).rstrip() + "\n"
    utils.atomic_write(os.path.join(study_dir, "fusion.md"), lambda f: f.write(text), mode="w")
    print(text, flush=True)
    return rc


def run_report(jobs, study_dir):
    """Report (and PNGs) of every run with records, into STUDY_DIR/report.md."""
    runs = []
    for job in jobs:
        try:
            runs.append(load_run(job.out))
        except RecordError:
            continue  # never started, or failed before its first epoch
        try:
            plot_run(job.out)  # redraws only what the engine has not drawn already
        except Exception as e:  # noqa: BLE001 - a picture must not cost the report
            print(f"tools.study: warning: could not draw {job.name}'s pictures: {e}", file=sys.stderr)
    if not runs:
        return
    text = build_report(runs)
    utils.atomic_write(os.path.join(study_dir, "report.md"), lambda f: f.write(text), mode="w")
    print(text, flush=True)
