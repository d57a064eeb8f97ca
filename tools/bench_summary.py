"""One Markdown table from tools.benchmark JSON files, with the targets checked.

    python -m tools.bench_summary OUT/bench_*.json --out OUT/summary.md

A row per file (stream, --decode, the rates, the data-wait share, the projected UCF101
split-1 times) and whether each target holds: data wait < 10% of training, projected train
epoch <= 1 min (spatial) or <= 2 min (motion), projected test pass <= 2 min. A file that is
missing or unreadable (a benchmark that failed or timed out) is a row that says so.
"""
import argparse
import json
import sys

import utils

MAX_DATA_WAIT = 0.10
MAX_EPOCH_MIN = {"spatial": 1.0, "motion": 2.0}
MAX_TEST_MIN = 2.0

HEADER = ["file", "stream", "decode", "loader samples/s", "decode efficiency", "GPU decode frames/s",
          "step samples/s", "train samples/s", "data wait %", "eval videos/s", "projected epoch min",
          "projected test min", "wait < 10%", "epoch target", "test <= 2 min"]


def _num(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def _holds(ok):
    return "yes" if ok else "**no**"


def row(path):
    """The table row of one benchmark JSON file (its last line)."""
    try:
        with open(path) as f:
            r = json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError) as e:
        return [path, "-", "-", f"no result ({type(e).__name__}: the benchmark failed or timed out; see its log)"] \
            + ["-"] * (len(HEADER) - 4)
    epoch_min, test_min = r["projected_epoch_s"] / 60, r["projected_test_s"] / 60
    limit = MAX_EPOCH_MIN[r["stream"]]
    return [path, r["stream"], r.get("decode", "cpu"), _num(r["pipeline_uint8_samples_per_s"], 1),
            _num(r["decode_efficiency"], 2), _num(r.get("gpu_decode_frames_per_s"), 0),
            _num(r["step_samples_per_s"], 1), _num(r["train_samples_per_s"], 1),
            _num(100 * r["data_wait_fraction"], 1), _num(r["eval_videos_per_s"], 2), _num(epoch_min, 2),
            _num(test_min, 2), _holds(r["data_wait_fraction"] < MAX_DATA_WAIT),
            f"{_holds(epoch_min <= limit)} (<= {limit:g} min)", _holds(test_min <= MAX_TEST_MIN)]


def summary(paths):
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row(p)) + " |" for p in paths]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.bench_summary", description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", help="JSON files written by python -m tools.benchmark --json")
    p.add_argument("--out", help="also write the table to this Markdown file")
    args = p.parse_args(argv)
    if args.out:
        try:
            utils.check_output_file(args.out, "--out", (".md", ".markdown", ".txt"), args.files)
        except ValueError as e:
            p.error(str(e))
    text = summary(args.files)
    print(text, end="")
    if args.out:
        utils.atomic_write(args.out, lambda f: f.write(text), mode="w")
    return 0


if __name__ == "__main__":
    sys.exit(main())
