"""Command line of the synthetic data generator (dataloader/synthetic.py).

    python -m tools.make_synthetic data/synth                      # 6 classes, 60 videos
    python -m tools.make_synthetic data/synth --layout mmaction --dataset hmdb51
"""
import argparse
import sys

import utils
from dataloader.synthetic import SYNTHETIC_DATASETS, generate
from dataloader.synthetic_render import FLOW_TEXTURES


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m tools.make_synthetic",
        description="Write a small synthetic two-stream data set (RGB frames, TV-L1-style flow, "
                    "split lists) in the real UCF101/HMDB51 layouts. Class = object colour "
                    "(seen by the RGB stream) x motion direction (seen only by the flow stream).")
    p.add_argument("out", help="output folder (data root for the training scripts)")
    p.add_argument("--appearances", type=int, default=3,
                   help="number of object colours, 1..6: red, green, blue, yellow, magenta, cyan (default 3)")
    p.add_argument("--motions", type=int, default=2,
                   help="number of motion classes, 1..3: Up, Down, Side (left or right at random) (default 2)")
    p.add_argument("--videos-per-class", type=int, default=10,
                   help="videos per class, spread over the 25 groups (default 10; at least 3 gives "
                        "every split train and test videos of every class)")
    p.add_argument("--width", type=int, default=160, help="frame width in px (default 160; 340 as UCF101 dumps)")
    p.add_argument("--height", type=int, default=120, help="frame height in px (default 120; 256 as UCF101 dumps)")
    p.add_argument("--min-frames", type=int, default=16, help="fewest RGB frames per video (default 16)")
    p.add_argument("--max-frames", type=int, default=32, help="most RGB frames per video (default 32); "
                   "each video has a random count in [min, max] and one flow frame fewer")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes identical files (default 0)")
    p.add_argument("--layout", choices=("twostream", "mmaction"), default="twostream",
                   help="twostream: jpegs_256/ + tvl1_flow/{u,v}/; mmaction: rawframes/<Class>/<video>/ "
                        "(default twostream)")
    p.add_argument("--dataset", choices=SYNTHETIC_DATASETS, default="ucf101",
                   help="naming and split lists: ucf101 (ucfTrainTestlist/, RedUp, v_ folders) or hmdb51 "
                        "(testTrainMulti_7030_splits/, red_up) (default ucf101)")
    p.add_argument("--flow-texture", choices=FLOW_TEXTURES, default="plain",
                   help="plain: the object's velocity, 0 elsewhere, white noise (the learning demo's data); "
                        "realistic: smooth camera-like fields, soft edges and blob noise, JPEGs of the size of "
                        "real TV-L1 dumps (4-8 KB at 340x256), for benchmarks (default plain)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality 1..100 (default 90)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a synthetic data set written earlier into OUT (never other data)")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k != "out"}
    try:
        # Before anything is generated: OUT below a file, or in a folder one cannot write.
        utils.check_writable(args.out, "OUT", folder=True)
        generate(args.out, **options)
    except (ValueError, FileExistsError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)  # one line: the usage says nothing about it
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
