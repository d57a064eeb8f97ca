"""Predict the action in video files with the trained spatial and/or motion stream.

    python -m tools.predict clip.mp4 --spatial record/spatial/model_best.pth --motion record/motion/model_best.pth

Each video is decoded with OpenCV and resized as tools.prepare_data does; flow is computed
with the method the motion checkpoint was trained on, only for the frame pairs its test
positions need (by OpenCV, or on a GPU by the torch TV-L1: --flow-backend); each stream
scores the video with its checkpoint's test protocol and the scores are fused: weighted A:B,
1:1 by default, or the weight fusion.py fitted on validation scores (--fusion W.json, from
fusion.py --fit-weights-on VAL_S VAL_M --save-weights W.json). Prints the top-k classes
with both streams' and the fused scores; --json writes the same. A bad video prints one line
and the others are still predicted; the exit status is 2 if anything failed, 130 when
interrupted (Ctrl-C; nothing is written then). The logic is engine/predict.py.
"""
import argparse
import os
import sys

import utils
from dataloader.flow import FLOW_BACKENDS, FLOW_METHODS
from engine.arg_types import Once
from engine.checkpoint import CheckpointError
from engine.fusion import NORMALISATIONS, parse_weights
from engine.fusion_fit import NORM_WORDS, checkpoint_warnings, describe, read_weights
from engine.predict import (check_same_classes, choose_flow_backend, fitting_hint, load_stream, predict_video,
                            prediction_record)
from engine.runtime import pick_device


MAX_SIDE = 8192  # the largest frames OpenCV's resize is asked for here


def size_arg(text):
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT (e.g. 340x256), got '{text}'") from None
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise argparse.ArgumentTypeError(f"each side must be 1..{MAX_SIDE}, got '{text}'")
    return w, h


def build_parser():
    # Defaults are written into the help texts: ArgumentDefaultsHelpFormatter would add
    # "(default: None)" to options whose default is "what the checkpoint says".
    p = argparse.ArgumentParser(prog="python -m tools.predict", description=__doc__.split("\n\n")[0],
                                epilog="Exit status: 0 ok, 2 bad input (one line on stderr each), 130 interrupted.")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (anything OpenCV decodes)")
    p.add_argument("--spatial", metavar="CKPT", action=Once, help="spatial stream checkpoint (model_best.pth or checkpoint.pth)")
    p.add_argument("--motion", metavar="CKPT", action=Once, help="motion stream checkpoint")
    p.add_argument("--fusion", metavar="W.json", action=Once, help="fuse with the weight and normalisation that fusion.py "
                   "--fit-weights-on VAL_S VAL_M --save-weights W.json fitted on validation scores; not together "
                   "with --weights or --normalize (refused: the file says both)")
    p.add_argument("--weights", type=parse_weights, metavar="A:B",
                   help="fusion weights, spatial A : motion B (default: 1:1)")
    p.add_argument("--normalize", choices=NORMALISATIONS,
                   help="fuse raw scores (none, the default, as fusion.py) or softmax-normalised ones")
    p.add_argument("--topk", type=int, default=5, help="classes to print per video (default: %(default)s)")
    p.add_argument("--json", metavar="PATH", help="also write the predictions here (checked before any video is read)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the streams run (default: auto, cuda if available)")
    p.add_argument("--flow", choices=FLOW_METHODS,
                   help="override the flow method (default: the one the motion checkpoint's data were made with)")
    p.add_argument("--flow-backend", choices=("auto",) + FLOW_BACKENDS, default="auto",
                   help="who computes the flow: opencv (on the CPU, as tools.prepare_data), torch (the TV-L1 of "
                        "dataloader/tvl1.py on --device, batched; TV-L1 only) or auto (the default: torch on a CUDA "
                        "device when the flow is TV-L1, else opencv)")
    p.add_argument("--size", type=size_arg, metavar="WxH",
                   help="override the frame size (default: the one the checkpoints' data were made with)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def format_record(rec, streams):
    lines = [f"{rec['video']}: {rec['prediction']}  ({rec['frames']} frames)"]
    header = ["rank", "class", "fused"] + [s for s in ("spatial", "motion") if s in streams]
    rows = [[str(t["rank"]), t["class"]] + [f"{t[k]:.4f}" for k in header[2:]] for t in rec["top"]]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        lines.append("  " + "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def fusion_settings(args, streams, record):
    """(weights, normalisation, the line that says which, warnings) of this run's fusion."""
    normalize = args.normalize or "none"
    if len(streams) == 1:
        return (1.0, 1.0), normalize, f"no fusion: the {streams[0].name} stream alone", []
    if record is not None:
        found = checkpoint_warnings(record, args.fusion, {s.name: (s.path, s.classes, s.epoch) for s in streams})
        return tuple(record["weights"]), record["normalize"], f"fusion: {describe(record, args.fusion)}", found
    weights = args.weights or (1.0, 1.0)
    line = (f"fusion: weighted {weights[0]:g}:{weights[1]:g} on {NORM_WORDS[normalize]} scores "
            f"({'--weights' if args.weights else 'the default'})")
    hint = None if args.weights else fitting_hint(streams)
    return weights, normalize, line, [hint] if hint else []


def setup(args):
    """Everything checked before the first video is read: (device, streams, flow backend, fusion)."""
    if args.fusion and (args.weights or args.normalize):
        raise ValueError(f"--fusion {args.fusion} sets the weights and the normalisation it was fitted with; drop "
                         "--weights / --normalize, or drop --fusion to fuse with your own")
    if args.fusion and not (args.spatial and args.motion):
        raise ValueError(f"--fusion {args.fusion} fuses the two streams: give both --spatial and --motion")
    if args.json:
        utils.check_output_file(args.json, "--json", (".json",),
                                [*args.videos, args.spatial, args.motion, args.fusion])
    record = read_weights(args.fusion) if args.fusion else None
    device = pick_device(args.device)
    streams = [load_stream(path, device, name, args.flow, args.size)
               for name, path in (("spatial", args.spatial), ("motion", args.motion)) if path]
    check_same_classes(streams)
    backend, flow_line = choose_flow_backend(args.flow_backend, device, streams)
    return device, streams, (backend, flow_line), fusion_settings(args, streams, record)


def run(args, done):
    try:
        device, streams, (backend, flow_line), (weights, normalize, fusion_line, fusion_warnings) = setup(args)
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in streams:
        print(f"==> {s.describe()}", file=sys.stderr)
    warnings = [w for s in streams for w in s.warnings] + fusion_warnings
    for line in [flow_line, fusion_line]:
        if line:
            print(f"==> {line}", file=sys.stderr)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    classes, names = streams[0].classes, [s.name for s in streams]
    records, errors = [], []
    for path in args.videos:
        try:
            pred = predict_video(path, streams, device, not args.no_progress, backend)
        except (ValueError, OSError) as e:  # VideoError, DataError (frames smaller than a crop), files
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"error: {path}: {msg}", file=sys.stderr)
            errors.append({"video": path, "error": msg})
            done.append(path)
            continue
        for w in pred.warnings:
            print(f"warning: {path}: {w}", file=sys.stderr)
        rec = prediction_record(pred, classes, args.topk, weights, normalize)
        records.append(rec)
        done.append(path)
        print(format_record(rec, names), flush=True)
    if args.json:
        utils.save_json({"streams": {s.name: {"checkpoint": s.path, "arch": s.arch, "flow": s.flow, "size": list(s.size),
                                              "test_frames": s.test_frames, "test_crops": s.test_crops}
                                     | ({"flow_backend": backend} if s.flow else {}) for s in streams},
                         "classes": classes, "weights": list(weights), "normalize": normalize,
                         "fusion": fusion_line, "videos": records, "errors": errors}, args.json)
        print(f"==> wrote {os.path.abspath(args.json)}", file=sys.stderr)
    return 2 if errors else 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.spatial or args.motion):
        parser.error("give --spatial CKPT, --motion CKPT or both")
    if args.topk < 1:
        parser.error("--topk must be at least 1")
    done = []  # the videos finished, for the interruption's message
    try:
        return run(args, done)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; --json is written last and atomically
        written = f"; {args.json} not written" if args.json else ""
        print(f"interrupted after {len(done)} of {len(args.videos)} videos{written}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
