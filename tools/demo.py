"""The whole pipeline on generated data, on the CPU, in a few minutes.

    python -m tools.demo                 # data in demo/data, runs in demo/spatial, demo/motion
    python -m tools.demo --seed 3        # another data set and another training seed

It runs the same commands a researcher runs on UCF101, at toy size: generate a synthetic
data set (colour = the spatial cue, vertical motion = the motion cue), train the spatial
stream, train the motion stream, and print the fusion table. Each stream alone can only
learn its own cue; the fusion should get both. Every command is printed before it runs,
and a summary at the end shows what each stream and the fusion got right.

The sizes are chosen so that the story is the same on every machine and seed: many small
test videos (about 70), since CPU training rounds differently on different CPUs (AVX2 vs
AVX512 kernels) and with different thread counts, and on a few dozen test videos that
alone moves top-1 by several points.
"""
import argparse
import json
import os
import shlex
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


def sh(cmd):
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo", help="folder for the generated data and the runs")
    p.add_argument("--epochs", type=int, default=8, help="epochs per stream")
    p.add_argument("--workers", type=int, default=1, help="data-loading processes")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data and of the trainings")
    p.add_argument("--json", metavar="PATH", help="also write the summary table as JSON")
    args = p.parse_args(argv)
    out = os.path.abspath(args.out)
    data = os.path.join(out, "data")
    py = sys.executable
    try:
        make_data(py, data, args.seed)
        run = ["--data-root", data, "--epochs", str(args.epochs), "--workers", str(args.workers),
               "--seed", str(args.seed), *COMMON]
        # --overwrite: a second demo replaces the first one's runs (the demo's own folders).
        sh([py, "spatial_cnn.py", *run, "--overwrite", "--out", os.path.join(out, "spatial")])
        sh([py, "motion_cnn.py", *run, "--stack", "5", "--overwrite", "--out", os.path.join(out, "motion")])
        # The scores of each stream's model chosen on the validation groups, not on test.
        sh([py, "fusion.py", "--spatial", os.path.join(out, "spatial", "video_scores_best.pkl"),
            "--motion", os.path.join(out, "motion", "video_scores_best.pkl"), "--normalize", "both"])
    except subprocess.CalledProcessError as e:
        print(f"demo: a step failed (exit status {e.returncode}); see its message above", file=sys.stderr)
        return 1
    table = print_summary(out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
