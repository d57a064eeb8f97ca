"""The whole pipeline on generated data, on the CPU, in a few minutes.

    python -m tools.demo                 # data in demo/data, runs in demo/spatial, demo/motion
    python -m tools.demo --seed 3        # another data set and another training seed

It runs the same commands a researcher runs on UCF101, at toy size: generate a synthetic
data set (colour = the spatial cue, vertical motion = the motion cue), train the spatial
stream, train the motion stream, and print the fusion table. Each stream alone can only
learn its own cue; the fusion should get both. Every command is printed before it runs,
and a summary at the end shows what each stream and the fusion got right, and where the
runs, their curves (PNG), score files and the fusion tables (OUT/fusion.json) are.

A second demo into the same --out replaces the first one's runs: the demo marks its --out
with demo.json and replaces only the runs in a folder so marked. It refuses, before any
work, an --out that holds other runs (say --out record, the streams' default folder).

The sizes are chosen so that the story is the same on every machine and seed: many small
test videos (about 70), since CPU training rounds differently on different CPUs (AVX2 vs
AVX512 kernels) and with different thread counts, and on a few dozen test videos that
alone moves top-1 by several points.
"""
import argparse
import json
import os
import shlex
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Toy sizes: 6 classes (3 colours x 2 motions), 40 videos per class of 8-16 frames at 48x40,
# 32-pixel crops, trained from scratch (no ImageNet weights on a machine without internet).
# Split 1 tests 72 videos, validates on 18, trains on 150. The real defaults (224 crops,
# 19 test frames...) stay the CLIs' defaults.
DATA = {"appearances": 3, "motions": 2, "videos_per_class": 40, "width": 48, "height": 40,
        "min_frames": 8, "max_frames": 16}
COMMON = ["--pretrained", "none", "--crop-size", "32", "--batch-size", "8", "--num-segments", "3",
          "--test-frames", "5", "--val-groups", "2", "--lr", "0.003", "--min-lr", "1e-5", "--device", "cpu"]


# The demo's mark on its --out: the runs in OUT/spatial and OUT/motion are the demo's own,
# so a later demo may replace them (--overwrite); without it the demo replaces no run.
MARKER = "demo.json"
RUNS = ("spatial", "motion")


SCORE_FILES = {"video_scores_best.pkl": "test scores of the model chosen on validation; the fusion reads these",
               "video_scores.pkl": "test scores of the last epoch",
               "video_scores_val.pkl": "validation scores of the chosen model: fusion.py --fit-weights-on"}


class DemoError(ValueError):
    """A reason not to start (exit status 2); the message names the folder and the fix."""


def sh(cmd):
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    with subprocess.Popen(cmd, cwd=ROOT) as step:
        try:
            code = step.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the step as well: let it stop and speak first
            code = step.wait()
    if code:
        raise subprocess.CalledProcessError(code, cmd)


def check_out(out, json_path):
    """Before any work: everything the demo writes can be written, and it replaces nothing it
    did not make (a finished run in OUT/spatial, say with --out record, the streams' default,
    or a data set in OUT/data that make_synthetic did not write). Returns whether OUT holds
    the demo's marker (its runs may then be replaced)."""
    import utils
    from dataloader.synthetic import MANAGED
    from dataloader.synthetic import MARKER as DATA_MARKER
    from engine.records import finished_files

    try:
        for path in (out, *(os.path.join(out, d) for d in ("data", *RUNS))):
            utils.check_writable(path, "--out", folder=True)
        if json_path:
            utils.check_output_file(json_path, "--json", (".json",))
    except ValueError as e:
        raise DemoError(str(e)) from None
    if os.path.isfile(os.path.join(out, MARKER)):
        return True
    others = sorted(set(os.listdir(out)) - {"data", *RUNS, "fusion.json"}) if os.path.isdir(out) else []
    if others:  # a run's own folder (args.json, checkpoint.pth), one's videos, a data root...
        raise DemoError(f"--out {out}: holds {', '.join(others[:3])}{', ...' if len(others) > 3 else ''}, which the "
                        "demo did not write; give an empty or new folder")
    for name in RUNS:
        run = os.path.join(out, name)
        if finished_files(run):
            raise DemoError(f"--out {out}: {run} holds a run the demo did not make (no {MARKER} in {out}), "
                            f"and the demo replaces only its own runs: give another --out, or move {run} away")
    data = os.path.join(out, "data")
    foreign = [m for m in MANAGED if os.path.exists(os.path.join(data, m))]
    if foreign and not os.path.isfile(os.path.join(data, DATA_MARKER)):
        raise DemoError(f"--out {out}: {data} holds {', '.join(foreign)}, not made by tools.make_synthetic "
                        f"(no {DATA_MARKER}): give another --out, or move that data away")
    return False


def make_data(py, data, seed):
    """Generate the data set unless `data` already holds this very one."""
    manifest = os.path.join(data, "synthetic.json")
    if os.path.isfile(manifest):
        with open(manifest) as f:
            old = json.load(f)
        if all(old.get(k) == v for k, v in (DATA | {"seed": seed}).items()):
            return
    cmd = [py, "-m", "tools.make_synthetic", data, "--seed", str(seed)]
    for k, v in DATA.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    sh(cmd + (["--overwrite"] if os.path.isfile(manifest) else []))


def summary(out):
    """{row: {"top1", "colour", "motion", "both"}} (in %) of each stream and two fusions:
    what each stream learned, which top-1 alone cannot show (each stream sees one cue)."""
    import numpy as np

    from dataloader.synthetic import cue_accuracy
    from engine.fusion import fuse_average, softmax
    from engine.scores import align, load_scores

    pair = align(*(load_scores(os.path.join(out, s, "video_scores_best.pkl")) for s in ("spatial", "motion")))
    rows = {"spatial stream": pair.S, "motion stream": pair.T,
            "fusion, average of raw scores": fuse_average(pair.S, pair.T),
            "fusion, average of softmax scores": fuse_average(softmax(pair.S), softmax(pair.T))}
    table = {}
    for name, scores in rows.items():
        f = {"classes": pair.spatial.classes, "scores": dict(zip(pair.videos, scores)),
             "labels": dict(zip(pair.videos, pair.labels.tolist()))}
        acc = cue_accuracy(f)
        table[name] = {"top1": 100 * float(np.mean(scores.argmax(axis=1) == pair.labels)),
                       **{k: 100 * v for k, v in acc.items()}}
    return table, len(pair.videos)


def print_summary(out):
    table, n = summary(out)
    print(f"\nWhat each stream learned, on {n} test videos (% whose predicted class has the right cue):")
    print(f"  {'':34s} {'top-1':>6s} {'colour':>7s} {'motion':>7s} {'both':>6s}")
    for name, r in table.items():
        print(f"  {name:34s} {r['top1']:6.1f} {r['colour']:7.1f} {r['motion']:7.1f} {r['both']:6.1f}")
    return table


def fusion_command(out):
    """fusion.py's command line for the demo's fusion table: scores of each stream's model
    chosen on the validation groups, not on test; the tables also go to OUT/fusion.json."""
    return ["fusion.py", "--spatial", os.path.join(out, "spatial", "video_scores_best.pkl"),
            "--motion", os.path.join(out, "motion", "video_scores_best.pkl"), "--normalize", "both",
            "--json", os.path.join(out, "fusion.json")]


def print_files(out, json_path=None):
    """Where to look next: the runs, their curves and score files, the fusion output, and
    the commands that redo the tables (the runs' own summaries scrolled away above)."""
    print(f"\nThe demo's files, in {out}:")
    print(f"  {os.path.join(out, 'data')}: the generated data set (synthetic.json describes it)")
    for name in RUNS:
        run = os.path.join(out, name)
        print(f"  {run}: the {name} run (records train.csv, val.csv, test.csv; checkpoints; args.json)")
        files = sorted(f for f in os.listdir(run) if f.endswith(".png")) if os.path.isdir(run) else []
        for f in files:
            print(f"    curves: {os.path.join(run, f)}")
        for f, what in SCORE_FILES.items():
            if os.path.isfile(os.path.join(run, f)):
                print(f"    scores: {os.path.join(run, f)} ({what})")
    print(f"  {os.path.join(out, 'fusion.json')}: the fusion tables above, as JSON")
    if json_path:
        print(f"  {json_path}: the table above ('what each stream learned'), as JSON")
    print("Redo the fusion tables:  python " + " ".join(shlex.quote(c) for c in fusion_command(out)))
    print("Per-epoch tables of both runs (--plots redraws the PNGs):  python -m tools.report "
          + " ".join(shlex.quote(os.path.join(out, name)) for name in RUNS))


def main(argv=None):
    from engine.arg_types import OneLineParser, int_up_to, seed_number, worker_count
    p = OneLineParser(prog="python -m tools.demo", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo", help="folder for the generated data and the runs")
    p.add_argument("--epochs", type=int_up_to(500, "the streams' default upper bound"), default=8,
                   help="epochs per stream")
    p.add_argument("--workers", type=worker_count(), default=1,
                   help="data-loading processes")
    p.add_argument("--seed", type=seed_number, default=0,
                   help="seed of the generated data and of the trainings")
    p.add_argument("--json", metavar="PATH", help="also write the summary table as JSON")
    args = p.parse_args(argv)
    out = os.path.abspath(args.out)
    data = os.path.join(out, "data")
    py = sys.executable
    try:
        own = check_out(out, args.json)
    except DemoError as e:
        print(f"tools.demo: error: {e}", file=sys.stderr)
        return 2
    import utils
    utils.save_json({"made_by": "tools.demo", "runs": list(RUNS)}, os.path.join(out, MARKER))
    # --overwrite only where the marker was there before this demo: the runs are the demo's
    # own (check_out refused any other finished run; a folder without one needs no --overwrite).
    overwrite = ["--overwrite"] if own else []
    # A SIGTERM (timeout, a scheduler) reaches the step too: wait for it to stop, as for Ctrl-C.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        make_data(py, data, args.seed)
        run = ["--data-root", data, "--epochs", str(args.epochs), "--workers", str(args.workers),
               "--seed", str(args.seed), *COMMON, *overwrite]
        sh([py, "spatial_cnn.py", *run, "--out", os.path.join(out, "spatial")])
        sh([py, "motion_cnn.py", *run, "--stack", "5", "--out", os.path.join(out, "motion")])
        sh([py, *fusion_command(out)])
    except subprocess.CalledProcessError as e:
        if e.returncode in (130, 143, -signal.SIGINT, -signal.SIGTERM):  # the step was stopped too, and said so
            print("demo: interrupted; run the same command again to redo it", file=sys.stderr)
            return 130
        print(f"demo: a step failed (exit status {e.returncode}); see its message above", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; run the same command again to redo it", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    table = print_summary(out)
    if args.json:
        utils.save_json(table, args.json)
    print_files(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
