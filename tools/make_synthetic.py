"""Command line of the synthetic data generator (dataloader/synthetic.py).

    python -m tools.make_synthetic data/synth                      # 6 classes, 60 videos
    python -m tools.make_synthetic data/synth --layout mmaction --dataset hmdb51
"""
import os
import sys

import utils
from dataloader.synthetic import MANAGED, MAX_FRAMES, MAX_SIDE, MAX_VIDEOS_PER_CLASS, SYNTHETIC_DATASETS, generate
from engine.arg_types import OneLineParser, int_up_to, seed_number
from engine.console import one_line
from dataloader.synthetic_render import FLOW_TEXTURES


def build_parser():
    p = OneLineParser(
        prog="python -m tools.make_synthetic",
        description="Write a small synthetic two-stream data set (RGB frames, TV-L1-style flow, "
                    "split lists) in the real UCF101/HMDB51 layouts. Class = object colour "
                    "(seen by the RGB stream) x motion direction (seen only by the flow stream).")
    p.add_argument("out", help="output folder (data root for the training scripts)")
    side = int_up_to(MAX_SIDE, "pixels", low=32)
    frames = int_up_to(MAX_FRAMES, "RGB frames; a flow frame needs two", low=2)
    p.add_argument("--appearances", type=int, default=3,
                   help="number of object colours, 1..6: red, green, blue, yellow, magenta, cyan (default 3)")
    p.add_argument("--motions", type=int, default=2,
                   help="number of motion classes, 1..3: Up, Down, Side (left or right at random) (default 2)")
    p.add_argument("--videos-per-class", type=int_up_to(MAX_VIDEOS_PER_CLASS, "a typo would fill the disk"), default=10,
                   help="videos per class, spread over the 25 groups (default 10; at least 3 gives "
                        "every split train and test videos of every class)")
    p.add_argument("--width", type=side, default=160, help="frame width in px (default 160; 340 as UCF101 dumps)")
    p.add_argument("--height", type=side, default=120, help="frame height in px (default 120; 256 as UCF101 dumps)")
    p.add_argument("--min-frames", type=frames, default=16, help="fewest RGB frames per video (default 16)")
    p.add_argument("--max-frames", type=frames, default=32, help="most RGB frames per video (default 32); "
                   "each video has a random count in [min, max] and one flow frame fewer")
    p.add_argument("--seed", type=seed_number, default=0, help="random seed; the same seed writes identical files (default 0)")
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
        # Before anything is generated: OUT below a file, in a folder one cannot write, or
        # a folder of other things (a run, one's videos) that the data set would be mixed into.
        if not args.out:
            raise ValueError("OUT is empty: give the folder to write the data set to")
        utils.check_writable(args.out, "OUT", folder=True)
        foreign = sorted(set(os.listdir(args.out)) - set(MANAGED)) if os.path.isdir(args.out) else []
        if foreign:
            raise ValueError(f"OUT {args.out}: holds other files ({', '.join(foreign[:3])}"
                             f"{', ...' if len(foreign) > 3 else ''}); give an empty or new folder")
        generate(args.out, **options)
    except (ValueError, OSError) as e:  # OSError: a folder that cannot be made after all, a full disk
        print(f"{parser.prog}: error: {one_line(e)}", file=sys.stderr)  # one line: the usage says nothing about it
        return 2
    except KeyboardInterrupt:
        print(f"\n{parser.prog}: interrupted; {args.out} holds part of the data set: run the same command with "
              "--overwrite to write it whole", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
