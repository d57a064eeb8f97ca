"""The whole pipeline on generated data, on the CPU, in a few minutes.

    python -m tools.demo                 # data in demo/data, runs in demo/spatial, demo/motion

It runs the same commands a researcher runs on UCF101, at toy size: generate a synthetic
data set (colour = the spatial cue, vertical motion = the motion cue), train the spatial
stream, train the motion stream, and print the fusion table. Each stream alone can only
learn its own cue; the fusion should get both. Every command is printed before it runs.
"""
import argparse
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Toy sizes: 64x48 frames and 48-pixel crops, trained from scratch (no ImageNet weights
# on a machine without internet). The real defaults (224 crops, 19 test frames...) stay
# the CLIs' defaults.
COMMON = ["--pretrained", "none", "--crop-size", "48", "--batch-size", "8", "--num-segments", "3",
          "--test-frames", "5", "--val-groups", "2", "--lr", "0.01", "--min-lr", "1e-5", "--device", "cpu"]


def sh(cmd):
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def print_cue_accuracy(out):
    """What each stream learned: top-1 cannot show it, since each stream sees one cue only."""
    import utils
    from dataloader.synthetic import cue_accuracy
    print("\nWhat each stream learned (test videos whose predicted class has the right cue):")
    for stream in ("spatial", "motion"):
        acc = cue_accuracy(utils.load_pickle_safe(os.path.join(out, stream, "video_scores_best.pkl")))
        print(f"  {stream:8s} colour {100 * acc['colour']:5.1f}%   motion {100 * acc['motion']:5.1f}%")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo", help="folder for the generated data and the runs")
    p.add_argument("--epochs", type=int, default=8, help="epochs per stream")
    p.add_argument("--workers", type=int, default=1, help="data-loading processes")
    args = p.parse_args(argv)
    out = os.path.abspath(args.out)
    data = os.path.join(out, "data")
    py = sys.executable
    try:
        if not os.path.isfile(os.path.join(data, "synthetic.json")):
            sh([py, "-m", "tools.make_synthetic", data, "--width", "64", "--height", "48", "--videos-per-class", "16"])
        run = ["--data-root", data, "--epochs", str(args.epochs), "--workers", str(args.workers), *COMMON]
        sh([py, "spatial_cnn.py", *run, "--out", os.path.join(out, "spatial")])
        sh([py, "motion_cnn.py", *run, "--stack", "5", "--out", os.path.join(out, "motion")])
        # The scores of each stream's model chosen on the validation groups, not on test.
        sh([py, "fusion.py", "--spatial", os.path.join(out, "spatial", "video_scores_best.pkl"),
            "--motion", os.path.join(out, "motion", "video_scores_best.pkl"), "--normalize", "both"])
        print_cue_accuracy(out)
    except subprocess.CalledProcessError as e:
        print(f"demo: a step failed (exit status {e.returncode}); see its message above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
