"""The options both stream CLIs share, defined once; a StreamSpec sets the defaults that
differ (learning rate, batch size) and adds --stack for the motion stream (the spatial
stream's stack is 1: one RGB frame a position)."""
import argparse
import os

import utils
from dataloader.encoded import DECODE_CHOICES
from dataloader.layout import LAYOUTS
from dataloader.catalog import DATASETS
from dataloader.splits import VAL_FRACTION
from engine.arg_types import (MAX_TIMEOUT_MINUTES, OneLineParser, in_range, auto_or_count, decay, int_up_to,
                              learning_rate, momentum_factor, non_negative_float, non_negative_int, positive_int,
                              probability, seed_number, shrink_factor, worker_count)
from engine.records import LAST_SCORES, finished_files
from network.backbones import ARCHS, DEFAULT_ARCH
from network.consensus import CONSENSUS

EPILOG = ("Sampling, consensus, flow encoding and the model-selection protocols are explained in "
          "docs/method.md; README.md walks through real-data usage.")


ORIGINAL_TEST_FRAMES, TSN_TEST_FRAMES = 19, 25  # test positions: the original two-stream scripts'; TSN's (with 10 crops)
MAX_TEST_FRAMES = 250


class StreamParser(OneLineParser):
    """Resolves the defaults that depend on other options right after parsing."""

    def parse_known_args(self, args=None, namespace=None):
        ns, rest = super().parse_known_args(args, namespace)
        if not hasattr(ns, "arch"):
            ns.arch = None  # not given: the checkpoint's with --resume, else DEFAULT_ARCH (engine.train)
        if getattr(ns, "test_frames", None) == "auto":
            # TSN's protocol is 25 positions x 10 crops; one centre crop keeps the original scripts' 19.
            ns.test_frames = TSN_TEST_FRAMES if ns.test_crops == 10 else ORIGINAL_TEST_FRAMES
        return ns, rest


def build_parser(spec):
    p = StreamParser(prog=spec.script, description=spec.description, epilog=EPILOG,
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=("auto",) + DATASETS, default="auto",
                   help="which split lists to read, and the name records and score files give the data. auto: "
                        "the checkpoint's with --resume / --evaluate, else what DATA_ROOT/prepare_info.json records "
                        "(folders for your own videos), else the data set whose split-list folder is in DATA_ROOT")
    d.add_argument("--data-root", default="data/ucf101",
                   help="folder holding the frames (jpegs_256/ and tvl1_flow/, or rawframes/) and the split lists")
    d.add_argument("--splits-dir", help="split-list folder (default: DATA_ROOT/ucfTrainTestlist or "
                   "DATA_ROOT/testTrainMulti_7030_splits)")
    d.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split number")
    d.add_argument("--layout", choices=LAYOUTS, default="auto",
                   help="frame layout: two-stream (jpegs_256, tvl1_flow/{u,v}), mmaction (rawframes) or packed (packed/, "
                        "written by python -m tools.pack_frames); auto detects, packs first")
    d.add_argument("--rgb-dir", help="RGB frame folder (default DATA_ROOT/jpegs_256)")
    d.add_argument("--flow-dir", help="flow folder with u/ and v/ (default DATA_ROOT/tvl1_flow)")
    d.add_argument("--frames-dir", help="mmaction rawframes folder (default DATA_ROOT/rawframes)")
    d.add_argument("--packed-dir", help="packed frames from tools.pack_frames (default DATA_ROOT/packed)")
    pct = f"{VAL_FRACTION * 100:g}%%"  # '%%': argparse formats help strings with %
    d.add_argument("--val-groups", type=auto_or_count, default="auto", metavar="auto|N",
                   help=f"validation set held out of the training list; the LR schedule and model_best follow it. "
                        f"auto: about {pct} of it: UCF101 the last round({VAL_FRACTION:g} x groups) actor groups "
                        f"(halves up, at least 1; g23-g25 in split 1), HMDB51 whole source films of every class, "
                        f"the last ones until {pct} of its clips; lists without actor groups (your own videos) the same "
                        "with single videos. N: the last N actor groups (HMDB51: the last N films of each class; "
                        "your own videos: N videos of each class). 0: no validation set (the schedule follows the "
                        "training loss, no model_best)")
    d.add_argument("--select-on-test", action="store_true",
                   help="the original two-stream scripts' protocol: schedule and pick model_best on the TEST split. Optimistic; the "
                        "records say so")
    d.add_argument("--check-data", action="store_true",
                   help="decode every frame of every listed video, print a summary, and exit without training")
    d.add_argument("--on-bad-frame", choices=("error", "skip"), default="error",
                   help="a missing/corrupt frame stops the run (error) or is replaced by the nearest readable "
                        "frame of the same video and counted (skip)")

    s = p.add_argument_group("sampling")
    s.add_argument("--num-segments", type=int_up_to(64, "TSN uses 3 to 7"), default=3, help="TSN segments K per training video")
    if spec.modality == "flow":
        s.add_argument("--stack", type=int_up_to(64, "the two-stream networks use 10, TSN 5"), default=10, help="consecutive flow frames L per position (2L channels)")
    else:
        p.set_defaults(stack=1)  # every stream has a stack; RGB reads one frame a position
    s.add_argument("--crop-size", type=positive_int, default=224, help="square crop fed to the network")
    s.add_argument("--test-frames", type=auto_or_count, default="auto", metavar="auto|N",
                   help=f"evenly spaced test positions per video; auto: {ORIGINAL_TEST_FRAMES} (the original two-stream scripts), or "
                        f"{TSN_TEST_FRAMES} with --test-crops 10 (TSN's protocol). A number given here wins")
    s.add_argument("--test-crops", type=int, default=1, choices=(1, 3, 10),
                   help="crops per test position: centre; 3 along the long side; TSN's corners+centre and flips")

    m = p.add_argument_group("model")
    # SUPPRESS: no "(default: None)" in --help; StreamParser resolves what was not given.
    m.add_argument("--arch", choices=ARCHS, default=argparse.SUPPRESS,
                   help=f"backbone, a torchvision network with its ImageNet weights (default: {DEFAULT_ARCH}; with "
                        "--resume or --evaluate: the checkpoint's)")
    m.add_argument("--consensus", choices=CONSENSUS, default="mean", help="segment consensus: mean, max or variance-weighted (docs/method.md)")
    m.add_argument("--pretrained", default="imagenet",
                   help="'imagenet' (torchvision's weights from the local cache), 'none', or a state-dict PATH")
    m.add_argument("--dropout", type=probability, default=0.5, help="dropout before the last layer")
    m.add_argument("--partial-bn", action="store_true",
                   help="TSN's partial BN: every BatchNorm but the first keeps its statistics and its scale/shift "
                        "fixed (not trained)")

    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=positive_int, default=500, help="upper bound; training stops earlier at --min-lr")
    o.add_argument("--batch-size", type=positive_int, default=spec.batch_size,
                   help="videos per step and per process (global batch = this x number of processes)")
    o.add_argument("--lr", type=learning_rate, default=spec.lr,
                   help="SGD learning rate (for N processes, consider scaling it by N)")
    o.add_argument("--momentum", type=momentum_factor, default=0.9, help="SGD momentum")
    o.add_argument("--weight-decay", type=decay, default=5e-4, help="SGD weight decay")
    o.add_argument("--lr-patience", type=non_negative_int, default=1, help="ReduceLROnPlateau patience (epochs), as the original two-stream scripts")
    o.add_argument("--lr-factor", type=shrink_factor, default=0.1, help="ReduceLROnPlateau factor")
    o.add_argument("--min-lr", type=non_negative_float, default=1e-6, help="stop once the LR falls below this")

    r = p.add_argument_group("run")
    r.add_argument("--out", default=os.path.join("record", spec.name), help="output folder for records, checkpoints, scores")
    r.add_argument("--resume", help="checkpoint to continue from (checkpoint.pth of a run)")
    r.add_argument("--start-epoch", type=non_negative_int, help="override the epoch to start at (default: after the checkpoint's)")
    r.add_argument("--evaluate", action="store_true",
                   help="only evaluate --resume's model on the test split and write OUT/video_scores.pkl; never "
                        "train. An existing OUT/video_scores.pkl is replaced only by the same evaluation (same "
                        "epoch, split, --test-frames, --test-crops) or with --overwrite")
    r.add_argument("--overwrite", action="store_true",
                   help="allow training (without --resume) into an --out that holds a finished run: its checkpoint, "
                        "records and score files are replaced when the new run's first epoch is saved (until "
                        "then they stay intact); with --evaluate, allow replacing OUT/video_scores.pkl")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available")
    r.add_argument("--decode", choices=DECODE_CHOICES, default="cpu",
                   help="where frames are decoded. cpu: each data worker decodes its JPEGs with OpenCV and sends "
                        "uint8 crops. gpu: the workers only read the JPEG bytes, and torchvision decodes them batched "
                        "on the GPU (nvJPEG), then crops; for when the CPU cores cannot decode as fast as the GPU "
                        "trains. Needs --device cuda and a torchvision built with GPU JPEG decoding")
    r.add_argument("--workers", type=worker_count(), default=min(8, os.cpu_count() or 1),
                   help="data-loading processes per GPU")
    r.add_argument("--test-batch-size", type=positive_int, default=8, help="videos per evaluation batch")
    r.add_argument("--seed", type=seed_number, default=0, help="seed for initialisation, shuffling and augmentation")
    r.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 autocast (default: on for CUDA, off for CPU)")
    r.add_argument("--compile", action="store_true", help="torch.compile the model")
    r.add_argument("--no-plots", action="store_true", help="do not redraw the PNG curves after each epoch")
    r.add_argument("--picture-dir", help="also copy each epoch's PNG curves and confusion matrix here (e.g. picture)")
    r.add_argument("--tensorboard", action="store_true",
                   help="also log per-epoch scalars to OUT/tensorboard (needs: pip install tensorboard)")
    r.add_argument("--dist-timeout", type=in_range(float, lambda v: 0 < v <= MAX_TIMEOUT_MINUTES,
                                                                f"in (0, {MAX_TIMEOUT_MINUTES}] (a week)"), default=30, help="minutes before a stuck distributed job fails")
    return p


def check_args(args):
    """Checks between options (each option's own range is checked by its type)."""
    if args.evaluate and not args.resume:
        raise ValueError("--evaluate needs --resume CHECKPOINT (the model to evaluate)")
    for name in ("batch_size", "epochs", "num_segments", "test_frames", "crop_size", "test_batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if args.stack < 1:
        raise ValueError("--stack must be at least 1")
    if args.test_frames > MAX_TEST_FRAMES:
        raise ValueError(f"--test-frames {args.test_frames}: at most {MAX_TEST_FRAMES} positions a video "
                         f"(TSN tests {TSN_TEST_FRAMES}, the original two-stream scripts {ORIGINAL_TEST_FRAMES})")
    trains = not (args.evaluate or args.check_data)
    if args.start_epoch is not None and args.start_epoch >= args.epochs and trains:
        raise ValueError(f"--start-epoch {args.start_epoch} is not below --epochs {args.epochs}: nothing to train")
    if args.min_lr > args.lr and trains and not args.resume:  # resumed: the checkpoint's LR counts (already_complete)
        raise ValueError(f"--min-lr {args.min_lr:g} is above --lr {args.lr:g}: training would stop after its first "
                         "epoch; lower --min-lr")


def check_paths(args):
    """The files an option names, before anything is read or written: --resume is a
    checkpoint file, --out is a folder, and no finished run in --out is replaced silently
    (a run continues only with --resume; --overwrite replaces it)."""
    if args.resume:
        if os.path.isdir(args.resume):
            inside = os.path.join(args.resume, "checkpoint.pth")
            hint = f" such as {inside}" if os.path.isfile(inside) else " (OUT/checkpoint.pth of a run)"
            raise ValueError(f"--resume {args.resume}: is a folder; expected a checkpoint file{hint}")
        if not os.path.isfile(args.resume):
            raise ValueError(f"--resume {args.resume}: no such file; expected a checkpoint (OUT/checkpoint.pth "
                             "or OUT/model_best.pth of a run)")
    check_input_folders(args)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out}: is a file; expected a folder for the run's records, "
                         "checkpoints and score files")
    if args.check_data:
        return
    utils.check_writable(args.out, "--out")
    if args.picture_dir:
        utils.check_writable(args.picture_dir, "--picture-dir")
    resumes_out = args.resume and os.path.isdir(args.out) and os.path.samefile(
        os.path.dirname(os.path.abspath(args.resume)), args.out)
    if args.overwrite and resumes_out and not args.evaluate:
        raise ValueError(f"--overwrite replaces the run in --out {args.out}, --resume {args.resume} continues it: "
                         "drop one of the two")
    if args.overwrite:
        return
    if args.evaluate:
        return  # check_evaluate_out, once the checkpoint's epoch is known
    found = finished_files(args.out)
    # --resume of a checkpoint in --out continues that run; any other run in --out is kept.
    if found and not resumes_out:
        ckpt = os.path.join(args.out, "checkpoint.pth")
        cont = f"continue it with --resume {ckpt}, " if os.path.isfile(ckpt) else ""
        raise ValueError(f"--out {args.out}: holds a finished run ({', '.join(found)}); {cont}train into a "
                         "new --out, or pass --overwrite to replace it")


def check_input_folders(args):
    """--data-root and the folder options name folders: a file there (or a missing data root
    with nothing else to read) is named now, not reported later as a missing split list."""
    # The frame-folder options are checked where the layout is opened (dataloader/frame_dirs.py).
    if args.splits_dir and os.path.exists(args.splits_dir):
        utils.check_input_folder(args.splits_dir, "--splits-dir", "the folder of the split lists")
    if os.path.exists(args.data_root) or not args.splits_dir:  # with --splits-dir a data root is optional
        utils.check_input_folder(args.data_root, "--data-root", "the data folder (frames, flow and split lists, "
                                 "as python -m tools.prepare_data writes it)")


SAME_SCORES = ("stream", "consensus", "dataset", "split", "epoch", "test_frames", "test_crops")


def check_evaluate_out(args, meta):
    """--evaluate writes OUT/video_scores.pkl. It may replace one only where the new file
    holds the same numbers (same stream, epoch, split and test protocol: evaluating a run's
    own checkpoint again), or with --overwrite; anything else would silently change what a
    finished run reported."""
    path = os.path.join(args.out, LAST_SCORES)
    if args.overwrite or not os.path.exists(path):
        return
    try:
        old = utils.load_pickle_safe(path).get("meta") or {}
    except (ValueError, AttributeError, OSError):
        old = {}
    differ = [k for k in SAME_SCORES if old.get(k) != meta.get(k)]
    if differ:
        raise ValueError(f"--out {args.out}: already holds {LAST_SCORES} of another evaluation (its "
                         + ", ".join(f"{k} {old.get(k)!r}" for k in differ) + "); --evaluate would replace it. "
                         "Give a new --out, or pass --overwrite to replace it")


def selection_protocol(args, validation=None):
    """How this run chooses its model and LR schedule, in words that go into args.json,
    the score files and the reports. `validation`: what was held out (StreamData.validation,
    '' for nothing); without it, what the options ask for."""
    if args.select_on_test:
        return "test (--select-on-test: model and LR schedule chosen on the test split; optimistic)"
    if validation is None and args.val_groups == "auto":
        validation = f"about {VAL_FRACTION:.0%} of the training list held out (--val-groups auto)"
    elif validation is None and args.val_groups != 0:
        validation = f"{args.val_groups} held-out actor groups of the training list"
    if validation:
        return f"val ({validation})"
    return "none (LR schedule on the training loss; no model selection)"
