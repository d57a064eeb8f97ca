"""Extract RGB frames and optical flow from UCF101 / HMDB51 videos, or your own videos in
class folders (two-stream layout).

    python -m tools.prepare_data --videos-dir UCF-101 --out data/ucf101 --workers 16
    python -m tools.prepare_data --videos-dir UCF-101 --out data/ucf101 --flow-backend torch   # TV-L1 on the GPU
    python -m tools.prepare_data --videos-dir my_videos --out data/mine --dataset folders --dry-run

Output under --out, the layout the training code reads:
    jpegs_256/<dir>/frame000001.jpg ...        RGB, resized to --width x --height (340x256)
    tvl1_flow/u/<dir>/frame000001.jpg ...      horizontal flow (positive = moving right)
    tvl1_flow/v/<dir>/frame000001.jpg ...      vertical flow (positive = moving down)
    prepare_info.json                          flow method, backend, size and bound used
<dir> is the video's folder name (`v_ApplyEyeMakeup_g01_c01`; HMDB51 names as is). N frames
give N-1 flow frames, computed on the resized grey frames and stored as grey JPEGs with bound
20 (dataloader/flow.py). The flow folder is called tvl1_flow even with --flow farneback: the
readers look for that name; prepare_info.json records the method.

--dataset folders reads VIDEOS/<class>/<video>.{avi,mp4,mkv,webm,mov} and also writes split
lists in the UCF101 format (OUT/ucfTrainTestlist), stratified per class, keeping name groups
(`_g08_`, --group-regex) on one side (dataloader/folders.py). The split is drawn and shown
before any frame is extracted, and refused at once where a class cannot be split.

Flow backends: opencv (OpenCV's CPU TV-L1 or Farneback in every worker) or torch (the batched
TV-L1 of dataloader/tvl1.py on --flow-device, fed pairs of several videos at once while the
workers decode and write; docs/flow.md). auto: torch where a CUDA GPU is, else opencv.
--shard K/N prepares the K-th of N disjoint parts of the videos, so several machines (or a
Slurm array) share a data set; the split lists are written by the run that finds every video
finished.

Resumable: a video is written to temporary folders and renamed when complete, so a run started
again skips finished videos and redoes the rest; settings that differ from what --out was made
with are refused.
"""
import argparse
import os
import re
import sys

import progress
import utils
from dataloader import folders
from dataloader.catalog import DATASETS, get_dataset
from dataloader.flow import FLOW_BACKENDS, FLOW_METHODS
from dataloader.layout import FLOW_COMPONENTS, FLOW_DIR, PREPARE_INFO, RGB_DIR
from dataloader.video import DEFAULT_SIZE
from engine.arg_types import OneLineParser, int_up_to, positive_int, seed_number, worker_count
from tools.prepare_flow import run_opencv, run_torch
from tools.prepare_plan import (base_info, check_info, count_frames, describe_time, list_sources, parse_shard,
                                select_sources, shard_of, split_plan, time_pairs)
from tools.prepare_videos import VideoJob, is_finished


def build_parser():
    p = OneLineParser(prog="python -m tools.prepare_data", description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--videos-dir", required=True,
                   help="folder holding <class>/<video> files (the extracted UCF-101 folder, HMDB51's, or yours)")
    p.add_argument("--out", required=True, help="output folder (gets jpegs_256/, tvl1_flow/u, tvl1_flow/v)")
    p.add_argument("--dataset", choices=DATASETS, default="ucf101",
                   help="ucf101 / hmdb51: the official videos; folders: your own <class>/<video>.{avi,mp4,mkv,webm,mov}, "
                        "for which UCF101-format split lists are written")
    p.add_argument("--flow", choices=FLOW_METHODS, default="tvl1",
                   help="tvl1 (the standard) or farneback (fast, lower quality, opencv backend only)")
    p.add_argument("--flow-backend", choices=("auto",) + FLOW_BACKENDS, default="auto",
                   help="who computes the flow: opencv in every worker, or torch (batched TV-L1) on --flow-device; "
                        "auto: torch where a CUDA GPU is, else opencv")
    p.add_argument("--flow-device", help="device of the torch backend (cuda, cuda:1, cpu); default: cuda if there "
                                         "is one, else cpu")
    p.add_argument("--flow-batch", type=int_up_to(4096, "frame pairs"), default=64,
                   help="torch backend: frame pairs computed at once (of several videos); lowered when memory runs out")
    p.add_argument("--workers", type=worker_count(low=1), default=os.cpu_count() or 1,
                   help="processes that decode and write (and, with opencv, compute the flow), one video each")
    p.add_argument("--shard", metavar="K/N", help="only the K-th of N disjoint parts of the videos (by name)")
    p.add_argument("--limit", type=positive_int, help="only the first N videos in sorted order")
    p.add_argument("--videos", nargs="+", metavar="NAME",
                   help="only these videos (as the split lists, the frame folders or the files name them)")
    side = int_up_to(8192, "a 32-pixel crop needs 32", low=32)
    p.add_argument("--width", type=side, default=DEFAULT_SIZE[0], help="frame width after resizing")
    p.add_argument("--height", type=side, default=DEFAULT_SIZE[1], help="frame height after resizing")
    p.add_argument("--dry-run", action="store_true",
                   help="show the plan (videos, split lists) and an estimated time from a few timed frame pairs; "
                        "write nothing")
    f = p.add_argument_group("split lists of your own videos (--dataset folders)")
    f.add_argument("--test-fraction", type=float, default=folders.DEFAULT_TEST_FRACTION,
                   help="share of each class's videos in the test lists")
    f.add_argument("--seed", type=seed_number, default=0, help="seed of the split; split N is drawn with (seed, N)")
    f.add_argument("--group-regex", default=folders.DEFAULT_GROUP_REGEX,
                   help="videos whose file names give the same match (its first group) stay on one side; '' for none")
    f.add_argument("--redraw-splits", action="store_true",
                   help="allow drawing the split lists of an existing --out again with other settings")
    return p


def choose_backend(args):
    """(backend, device): --flow-backend and --flow-device resolved, checked before any work."""
    backend, device = args.flow_backend, args.flow_device
    if backend != "opencv":
        import torch
        cuda = torch.cuda.is_available()
        backend = backend if backend != "auto" else ("torch" if cuda and args.flow == "tvl1" else "opencv")
        if backend == "torch":
            from dataloader.tvl1 import resolve_device
            return backend, resolve_device(device or ("cuda" if cuda else "cpu"))  # RuntimeError: no CUDA
    if device not in (None, "cpu"):
        raise ValueError(f"--flow-device {device}: the opencv backend runs on the CPU (use --flow-backend torch)")
    return "opencv", "cpu"


def check_options(args):
    if not os.path.exists(args.videos_dir):
        raise ValueError(f"--videos-dir {args.videos_dir}: not found")
    if not os.path.isdir(args.videos_dir):
        raise ValueError(f"--videos-dir {args.videos_dir}: is a file; expected the folder holding the class folders")
    if not args.out:
        raise ValueError("--out is empty: give the folder for the frames, the flow and the split lists")
    videos, out = os.path.abspath(args.videos_dir), os.path.abspath(args.out)
    if out == videos or out.startswith(videos + os.sep):
        raise ValueError(f"--out {args.out}: is inside --videos-dir {args.videos_dir}, where the frame folders "
                         "would look like classes; give a folder outside it")
    run = [f for f in ("args.json", "checkpoint.pth") if os.path.isfile(os.path.join(out, f))]
    if run:
        raise ValueError(f"--out {args.out}: holds a training run ({', '.join(run)}); give a folder of its own "
                         "for the data set")
    made = [d for d in (RGB_DIR, FLOW_DIR, PREPARE_INFO) if os.path.exists(os.path.join(videos, d))]
    if made:
        raise ValueError(f"--videos-dir {args.videos_dir}: holds {', '.join(made)}, so it is a prepared data folder, "
                         "not videos; train with --data-root on it, or give the folder of the class folders")
    if not 0 < args.test_fraction < 1:
        raise ValueError(f"--test-fraction must be between 0 and 1, not {args.test_fraction}")
    try:
        re.compile(args.group_regex)
    except re.error as e:
        raise ValueError(f"--group-regex is not a regular expression: {e}") from None
    if args.flow == "farneback" and args.flow_backend == "torch":
        raise ValueError("--flow farneback runs on the opencv backend only (the torch backend computes TV-L1)")
    if not args.dry_run:
        utils.check_writable(args.out, "--out")


def plan(args):
    """(sources of this run, all sources, info, backend, device, plan lines), or ValueError."""
    check_options(args)
    backend, device = choose_backend(args)
    spec = get_dataset(args.dataset)
    sources = select_sources(list_sources(args.videos_dir, spec), args.videos, args.limit)
    info, lines = base_info(args, backend, device), []
    if spec.writes_splits:
        info |= {"test_fraction": args.test_fraction, "seed": args.seed, "group_regex": args.group_regex,
                 "selection": {"limit": args.limit, "videos": sorted(args.videos) if args.videos else None}}
        lines = split_plan(sources, args, spec)  # FolderError (a ValueError) where a class cannot be split
    check_info(args.out, info, args.redraw_splits)
    mine = shard_of(sources, parse_shard(args.shard)) if args.shard else sources
    return mine, sources, info, backend, device, lines


def output_dirs(out):
    """The folders a run creates under --out, parents first."""
    return [out, os.path.join(out, RGB_DIR), os.path.join(out, FLOW_DIR)] + \
        [os.path.join(out, FLOW_DIR, c) for c in FLOW_COMPONENTS]


def remove_empty(dirs):
    """Remove those of `dirs` that are empty, children first (a run with nothing to show)."""
    for d in reversed(dirs):
        try:
            os.rmdir(d)
        except OSError:  # not empty, or not there
            pass


def summarize(done, skipped, failed):
    lines = [f"done: {len(done)}, skipped (already finished): {len(skipped)}, failed: {len(failed)}"]
    lines += [f"  failed: {r.name}: {r.error}" for r in failed]
    return "\n".join(lines)


def estimate(args, jobs, pairs, backend, device):
    """The dry run's estimate: a few timed frame pairs, scaled to every pair to compute."""
    per_pair = next((t for t in (time_pairs(s, args, backend, device) for _, s in jobs[:3]) if t), None)
    if per_pair is None:
        return "estimated time: unknown (no video with 3 readable frames to time)"
    parallel = args.workers if backend == "opencv" else 1
    return (f"estimated time: ~{describe_time(pairs * per_pair / parallel)} ({1 / per_pair:.2f} pairs/s measured on "
            f"{device} with {backend}{f', x {parallel} workers' if parallel > 1 else ''}; decoding and writing "
            "not included)")


def extract(args, jobs, estimated, backend, device):
    """Run the jobs with a progress bar in frame pairs. Returns (done, failed) Results."""
    done, failed = [], []
    total = sum(estimated.values())
    with progress.progress(total=total, unit="pair", desc="frame pairs", smoothing=0.05) as bar:
        workers = min(args.workers, len(jobs))
        runs = (run_opencv([j for j, _ in jobs], workers, args.flow, bar) if backend == "opencv"
                else run_torch([j for j, _ in jobs], workers, device, args.flow_batch, bar))
        for r in runs:
            (done if r.ok else failed).append(r)
            if not r.ok:
                bar.write(f"failed: {r.name}: {r.error}", file=sys.stderr)
            bar.total += max(r.frames - 1, 0) - estimated[r.name]  # the container's count was an estimate
            bar.set_postfix(videos=f"{len(done) + len(failed)}/{len(jobs)}")
    return done, failed


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        mine, sources, info, backend, device, lines = plan(args)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    skipped = [s.folder for s in mine if is_finished(args.out, s.folder)]
    todo = [s for s in mine if not is_finished(args.out, s.folder)]
    jobs = [(VideoJob(s.path, s.folder, args.out, args.width, args.height, args.flow), s) for s in todo]
    estimated = dict(zip((s.folder for s in todo), (max(n - 1, 0) for n in count_frames([s.path for s in todo]))))
    shard = f" (shard {args.shard} of {len(sources)})" if args.shard else ""
    print(f"{len(mine)} videos{shard}: {len(skipped)} already finished, {len(todo)} to prepare, ~{sum(estimated.values())} "
          f"frame pairs ({args.flow} with {backend} on {device}, {args.width}x{args.height}, "
          f"{min(args.workers, max(len(todo), 1))} workers)", file=sys.stderr)
    if args.dry_run:
        print(estimate(args, jobs, sum(estimated.values()), backend, device) if todo else "nothing to do")
        return 0
    new_dirs = [d for d in output_dirs(args.out) if not os.path.exists(d)]
    done, failed = [], []
    try:
        if todo:
            done, failed = extract(args, jobs, estimated, backend, device)
        else:
            print(f"nothing to do: every video{' of this shard' if args.shard else ''} is prepared in {args.out}",
                  file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        # prepare_info.json describes frames on disk: written once there are some; a run
        # whose every video failed leaves nothing behind.
        if done or skipped:
            utils.save_json(info, os.path.join(args.out, PREPARE_INFO))
        else:
            remove_empty(new_dirs)
    print(summarize(done, skipped, failed))
    if failed and not (done or skipped):
        print(f"error: none of the {len(failed)} videos could be prepared; nothing was written to {args.out}",
              file=sys.stderr)
        return 1
    if get_dataset(args.dataset).writes_splits:
        code = write_folder_splits(args, sources)
        if code:
            return code
    return 1 if failed else 0


def write_folder_splits(args, sources):
    """The UCF101-format lists of the videos whose frames are complete; with --shard only once
    every video of every shard is finished. Returns an exit status, or 0."""
    spec = get_dataset(args.dataset)
    ready = [s for s in sources if is_finished(args.out, s.folder)]
    if args.shard and len(ready) < len(sources):
        print(f"split lists not written yet: {len(sources) - len(ready)} videos of other shards are not finished; "
              "the run that finishes the last of them writes them", file=sys.stderr)
        return 0
    if len(ready) < len(sources):
        print(f"warning: {len(sources) - len(ready)} video(s) have no frames and are left out of the split lists",
              file=sys.stderr)
    splits_dir = spec.splits_dir(args.out)
    try:
        splits = folders.write_ucf101_lists(splits_dir, ready, args.test_fraction, args.seed, args.group_regex)
    except (ValueError, OSError) as e:
        print(f"error: no split lists written: {e}", file=sys.stderr)
        return 2
    train, test = splits[0]
    print(f"split lists: {len({s.cls for s in ready})} classes, split 1: {len(train)} train / {len(test)} test videos "
          f"(splits 1-{len(splits)}, --seed {args.seed}) -> {splits_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
