"""tools/benchmark.py's data: a synthetic set when no --data-root is given, and the data sets
built by engine.data.build_data from the stream script's own options, as a training run
builds them."""
import os
import tempfile

from dataloader.layout import PACKED_DIR
from dataloader.frame_dirs import open_layout
from engine.data import build_data
from engine.loop import LoopConfig
from engine.options import build_parser as stream_parser
from engine.runtime import SINGLE_PROCESS, default_amp
from tools.bench_classic import ClassicClipDataset
from tools.pack_frames import pack_video


def uses_synthetic(args):
    return args.synthetic or not args.data_root


def prepare_data(args):
    """The data root: --data-root, or a synthetic set generated in a temporary folder."""
    if not uses_synthetic(args):
        return args.data_root
    from dataloader.synthetic import generate
    root = tempfile.mkdtemp(prefix="benchmark-synthetic-")
    lo, hi = args.synthetic_frames
    options = dict(appearances=3, motions=2, videos_per_class=args.synthetic_videos, width=args.frame_width,
                   height=args.frame_height, min_frames=lo, max_frames=hi, seed=args.seed, verbose=False,
                   flow_texture=args.flow_texture)
    # In a spawned process: generating (OpenCV resizes and blurs large images) starts OpenCV's
    # thread pool, and data workers forked later from a process with that pool hung (futex).
    import multiprocessing
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(generate, (root,), options)
    if args.layout == "packed":  # one file per video and source, as python -m tools.pack_frames writes
        layout = open_layout("twostream", root, allow_packed=False)
        for modality in ("rgb", "flow"):
            for video in layout.videos(modality):
                pack_video(layout, video, modality, os.path.join(root, PACKED_DIR))
    return root


def stream_options(args, spec, root):
    """The stream script's own options for this data and protocol, parsed by its own parser,
    so that engine.data.build_data builds exactly what a training run would. No validation
    set: every training video is a training item."""
    argv = ["--data-root", root, "--dataset", args.dataset, "--split", str(args.split), "--layout", args.layout,
            "--val-groups", "0", "--crop-size", str(args.crop_size), "--num-segments", str(args.num_segments),
            "--test-frames", str(args.test_frames), "--test-crops", str(args.test_crops), "--seed", str(args.seed),
            "--decode", args.decode, "--arch", args.arch]
    if args.splits_dir:
        argv += ["--splits-dir", args.splits_dir]
    if spec.modality == "flow":
        argv += ["--stack", str(args.stack)]
    return stream_parser(spec).parse_args(argv)


def build_sets(args, spec, root):
    """(classes, training set, evaluation set, the classic baseline over the training set)."""
    data = build_data(stream_options(args, spec, root), spec, SINGLE_PROCESS)
    train = data.train
    # Spread over the test list, then the training list if more videos are asked for than
    # a small set has test videos (the rate depends on the protocol, not on the split).
    pool = data.test.entries + train.entries
    test = data.test.with_entries(pool[::max(1, len(pool) // args.eval_videos)][:args.eval_videos])
    classic = ClassicClipDataset(train.entries, train.counts, train.layout, train.modality, frame_size=train.frame_size,
                                 stack=args.stack, crop_size=args.crop_size, num_segments=args.num_segments,
                                 seed=args.seed)
    return data.classes, train, test, classic


def loop_config(args, device, modality):
    """The training loops' settings, as the training scripts would set them (no progress bars)."""
    amp = default_amp(device) if args.amp is None else args.amp
    return LoopConfig(modality, amp, args.workers, args.test_batch_size, args.seed, progress=False)
