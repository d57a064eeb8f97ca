"""Predict the action in video files with the trained spatial and/or motion stream.

    python -m tools.predict clip.mp4 --spatial record/spatial/model_best.pth --motion record/motion/model_best.pth

Each video is decoded with OpenCV and resized as tools.prepare_data does; flow is computed
with the method the motion checkpoint was trained on, only for the frame pairs its test
positions need; each stream scores the video with its checkpoint's test protocol and the
scores are fused (weighted A:B, 1:1 by default). Prints the top-k classes with both streams'
and the fused scores; --json writes the same. A bad video prints one line and the others are
still predicted; the exit status is 2 if anything failed. The logic is engine/predict.py.
"""
import argparse
import os
import sys

import utils
from engine.checkpoint import CheckpointError
from engine.fusion import NORMALISATIONS, parse_weights
from engine.predict import check_same_classes, load_stream, predict_video, prediction_record
from engine.runtime import pick_device
from dataloader.flow import FLOW_METHODS


def size_arg(text):
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT (e.g. 340x256), got '{text}'") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got '{text}'")
    return w, h


def build_parser():
    p = argparse.ArgumentParser(prog="python -m tools.predict", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (anything OpenCV decodes)")
    p.add_argument("--spatial", metavar="CKPT", help="spatial stream checkpoint (model_best.pth or checkpoint.pth)")
    p.add_argument("--motion", metavar="CKPT", help="motion stream checkpoint")
    p.add_argument("--weights", type=parse_weights, default=(1.0, 1.0), metavar="A:B",
                   help="fusion weights, spatial A : motion B")
    p.add_argument("--normalize", choices=NORMALISATIONS, default="none",
                   help="fuse raw scores (as fusion.py by default) or softmax-normalised ones")
    p.add_argument("--topk", type=int, default=5, help="classes to print per video")
    p.add_argument("--json", metavar="PATH", help="also write the predictions here")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available")
    p.add_argument("--flow", choices=FLOW_METHODS,
                   help="override the flow method (default: the one the motion checkpoint's data were made with)")
    p.add_argument("--size", type=size_arg, metavar="WxH",
                   help="override the frame size (default: the one the checkpoints' data were made with)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def format_record(rec, streams):
    lines = [f"{rec['video']}: {rec['prediction']}  ({rec['frames']} frames)"]
    header = ["rank", "class", "fused"] + [s for s in ("spatial", "motion") if s in streams]
    rows = [[str(t["rank"]), t["class"]] + [f"{t[k]:.4f}" for k in header[2:]] for t in rec["top"]]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        lines.append("  " + "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.spatial or args.motion):
        parser.error("give --spatial CKPT, --motion CKPT or both")
    if args.topk < 1:
        parser.error("--topk must be at least 1")
    try:
        device = pick_device(args.device)
        streams = [load_stream(path, device, name, args.flow, args.size)
                   for name, path in (("spatial", args.spatial), ("motion", args.motion)) if path]
        check_same_classes(streams)
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in streams:
        print(f"==> {s.describe()}", file=sys.stderr)
    classes, names = streams[0].classes, [s.name for s in streams]
    records, errors = [], []
    for path in args.videos:
        try:
            pred = predict_video(path, streams, device, progress=not args.no_progress)
        except (ValueError, OSError) as e:  # VideoError, DataError (frames smaller than a crop), files
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"error: {path}: {msg}", file=sys.stderr)
            errors.append({"video": path, "error": msg})
            continue
        for w in pred.warnings:
            print(f"warning: {path}: {w}", file=sys.stderr)
        rec = prediction_record(pred, classes, args.topk, args.weights, args.normalize)
        records.append(rec)
        print(format_record(rec, names), flush=True)
    if args.json:
        utils.save_json({"streams": {s.name: {"checkpoint": s.path, "arch": s.arch, "flow": s.flow, "size": list(s.size),
                                              "test_frames": s.test_frames, "test_crops": s.test_crops}
                                     for s in streams},
                         "classes": classes, "weights": list(args.weights), "normalize": args.normalize,
                         "videos": records, "errors": errors}, args.json)
        print(f"==> wrote {os.path.abspath(args.json)}", file=sys.stderr)
    return 2 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
