"""Extract RGB frames and optical flow from UCF101 / HMDB51 videos, or your own videos in
class folders (two-stream layout).

    python -m tools.prepare_data --videos-dir UCF-101 --out data/ucf101 --workers 8
    python -m tools.prepare_data --videos-dir my_videos --out data/mine --dataset folders

--dataset folders reads VIDEOS/<class>/<video>.{avi,mp4,mkv,webm,mov} and also writes split
lists in the UCF101 format (OUT/ucfTrainTestlist: classInd.txt, trainlist0N.txt,
testlist0N.txt), stratified per class and keeping name groups (`_g08_`, --group-regex) on one
side (dataloader/folders.py). Names are normalised (whitespace -> '_') and frame folders are
`v_<name>`, as UCF101's.

Output under --out, the layout the training code reads:
    jpegs_256/<dir>/frame000001.jpg ...        RGB, resized to --width x --height (340x256)
    tvl1_flow/u/<dir>/frame000001.jpg ...      horizontal flow (positive = moving right)
    tvl1_flow/v/<dir>/frame000001.jpg ...      vertical flow (positive = moving down)
    prepare_info.json                          flow method, size and bound used
<dir> is the video file name without `.avi` (`v_ApplyEyeMakeup_g01_c01`; HMDB51 names as is).
N frames give N-1 flow frames. Flow is computed on the resized grayscale frames and stored
as grayscale JPEG with bound 20 (dataloader/flow.py: q = round(255 * (clip(f, -20, 20) + 20) / 40),
so 127.5, stored as 128, means no motion). The flow folder is called tvl1_flow even with
--flow farneback, because that is the name readers look for; prepare_info.json records the
method.

Speed (measured on a 2-core machine shared with other jobs, one worker, OpenCV 5.0 with one
thread, 30-frame synthetic 340x256 video with texture and motion; CPU time per frame pair):
    tvl1       ~1100-1400 ms flow alone (up to ~1700 ms on smoother content)
    farneback  ~20-30 ms flow alone, ~30-40 ms with decoding + JPEG writing
TV-L1 is ~50x slower: UCF101's ~2.5 M frame pairs are ~5 weeks of one core, so use many
workers/machines (or --flow farneback for a quick, lower-quality start).

Resuming: each video is written to `.tmp-<dir>` folders beside its three final folders and
renamed when complete (flow u, v first, RGB last). A video counts as finished only when all
three final folders exist, so a run started again skips finished videos and redoes the rest
(deleting any leftover temporary or partial folders first).
"""
import argparse
import json
import os
import re
import shutil
import sys
import time
from multiprocessing import get_context
from typing import NamedTuple

import cv2
from tqdm import tqdm

import utils
from dataloader import folders
from dataloader.catalog import DATASETS, get_dataset
from dataloader.flow import BOUND, FLOW_METHODS, compute_flow, quantize_flow, tvl1
from dataloader.layout import (FLOW_COMPONENTS, FLOW_DIR, PREPARE_INFO, RGB_DIR, twostream_frame_name,
                               twostream_video_dirs)
from dataloader.splits import video_name
from dataloader.video import DEFAULT_SIZE, JPEG_PARAMS, resize_frame

# FLOW_DIR is tvl1_flow also for farneback: readers look for this name.
INFO_FILE = PREPARE_INFO
TMP_PREFIX = ".tmp-"


class VideoJob(NamedTuple):
    """One video to prepare (what a worker process receives)."""
    src: str        # path of the .avi
    name: str       # output folder name (file name without .avi)
    out: str        # --out
    width: int
    height: int
    flow: str       # "tvl1" or "farneback"


class Result(NamedTuple):
    name: str
    ok: bool
    frames: int
    error: str
    seconds: float


# ---------------------------------------------------------------- pure helpers

def final_dirs(out, name):
    """The three folders of one video, in the order they are renamed (RGB last)."""
    rgb, u, v = twostream_video_dirs(os.path.join(out, RGB_DIR), os.path.join(out, FLOW_DIR), name)
    return [u, v, rgb]


def tmp_dir(final):
    """`.tmp-<dir>` beside `final`: the same file system, so the rename is atomic."""
    parent, name = os.path.split(final)
    return os.path.join(parent, TMP_PREFIX + name)


def is_finished(out, name):
    return all(os.path.isdir(d) for d in final_dirs(out, name))


def _key(name):
    """Match names with or without `v_` / `.avi`, case-insensitively."""
    return video_name(name).lower()


def list_videos(videos_dir, dataset="ucf101"):
    """Sorted paths of `<videos_dir>/<class>/<video>.avi` (UCF101's and HMDB51's layout; the
    extensions, and the warning for names unlike the data set's, are from its catalog entry).

    Raises ValueError when nothing is found or two videos would share an output folder."""
    spec = get_dataset(dataset)
    paths = []
    for cls in sorted(os.listdir(videos_dir)):
        cls_dir = os.path.join(videos_dir, cls)
        if os.path.isdir(cls_dir):
            paths += [os.path.join(cls_dir, f) for f in os.listdir(cls_dir)
                      if f.lower().endswith(spec.video_extensions)]
    paths.sort()
    if not paths:
        raise ValueError(f"no <class>/<video>{'|'.join(spec.video_extensions)} files in {videos_dir} "
                         f"(give the folder holding the class folders, e.g. UCF-101)")
    seen = {}
    for p in paths:
        name = os.path.splitext(os.path.basename(p))[0]
        if name in seen:
            raise ValueError(f"two videos would share the output folder '{name}': {seen[name]} and {p}")
        seen[name] = p
    if spec.name_warning and (warning := spec.name_warning(list(seen))):
        print(f"warning: {warning}", file=sys.stderr)
    return paths


def select_videos(paths, names=None, limit=None):
    """Subset by --videos (any spelling) then --limit. Raises ValueError for unknown names."""
    if names:
        wanted = {_key(n): n for n in names}
        paths = [p for p in paths if _key(p) in wanted]
        missing = set(wanted) - {_key(p) for p in paths}
        if missing:
            raise ValueError("not found in --videos-dir: " + ", ".join(sorted(wanted[k] for k in missing)))
    return paths[:limit] if limit is not None else paths


# ---------------------------------------------------------------- per worker

def _init_worker(flow):
    """Pool initializer: one OpenCV thread per process (the pool already uses every core;
    more threads would only fight over them), and build the TV-L1 object once here."""
    cv2.setNumThreads(1)
    if flow == "tvl1":
        tvl1()


def _write(path, image):
    if not cv2.imwrite(path, image, JPEG_PARAMS):  # the quality tools.predict re-encodes with
        raise OSError(f"cannot write {path}")


def _extract(job, rgb_tmp, u_tmp, v_tmp):
    """Decode, resize, write RGB and flow JPEGs frame by frame (only two frames in memory).
    Returns the number of RGB frames."""
    cap = cv2.VideoCapture(job.src)
    if not cap.isOpened():
        raise ValueError("OpenCV cannot open the video")
    prev_gray, n = None, 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            frame = resize_frame(frame, job.width, job.height)
            _write(os.path.join(rgb_tmp, twostream_frame_name(n)), frame)
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            if prev_gray is not None:
                flow = compute_flow(prev_gray, gray, job.flow)
                _write(os.path.join(u_tmp, twostream_frame_name(n - 1)), quantize_flow(flow[..., 0]))
                _write(os.path.join(v_tmp, twostream_frame_name(n - 1)), quantize_flow(flow[..., 1]))
            prev_gray = gray
    finally:
        cap.release()
    if n < 2:
        raise ValueError(f"only {n} frame(s) could be read (need 2 for flow)")
    return n


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)


def prepare_video(job):
    """Prepare one video; never raises (a worker exception would end the whole run).
    Returns a Result; on failure nothing of the video is left behind."""
    start = time.time()
    finals = final_dirs(job.out, job.name)
    tmps = [tmp_dir(d) for d in finals]
    try:
        # Leftovers of an interrupted run: temp folders, or some final folders without the
        # others (killed between renames). The video is not finished, so redo it all.
        for d in tmps + finals:
            _remove(d)
        for d in tmps:
            os.makedirs(d)
        n = _extract(job, *[tmps[2], tmps[0], tmps[1]])
        # u, v first and RGB last: RGB's folder appearing is what marks the video finished.
        for t, d in zip(tmps, finals):
            os.rename(t, d)
        return Result(job.name, True, n, "", time.time() - start)
    except Exception as e:  # noqa: BLE001 - report any failure and go on with the others
        for d in tmps:
            _remove(d)
        return Result(job.name, False, 0, f"{type(e).__name__}: {e}", time.time() - start)


# ---------------------------------------------------------------- the run

def check_info(out, info):
    """Refuse to resume into an --out made with other settings (a mix of flow methods or
    frame sizes in one folder would go unnoticed by readers)."""
    path = os.path.join(out, INFO_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            old = json.load(f)
        keys = ("flow", "width", "height", "bound")
        diff = [k for k in keys if old.get(k) != info[k]]
        if diff:
            raise ValueError(f"{path} was made with " + ", ".join(f"{k}={old.get(k)}" for k in diff)
                             + "; use the same settings or another --out")


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


def run_jobs(jobs, workers, flow):
    """Yield Results as videos finish. One worker runs in this process (no pool to start)."""
    if not jobs:
        return
    if workers <= 1:
        _init_worker(flow)
        yield from map(prepare_video, jobs)
        return
    # spawn, not fork: forking a process whose OpenCV thread pool is already running can
    # deadlock the children.
    with get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(flow,)) as pool:
        yield from pool.imap_unordered(prepare_video, jobs, chunksize=1)


def summarize(done, skipped, failed):
    lines = [f"done: {len(done)}, skipped (already finished): {len(skipped)}, failed: {len(failed)}"]
    lines += [f"  failed: {r.name}: {r.error}" for r in failed]
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m tools.prepare_data",
        description="Extract RGB frames and optical flow (two-stream layout) from UCF101/HMDB51 videos. "
                    "Resumes: run it again after an interruption.")
    p.add_argument("--videos-dir", required=True,
                   help="folder holding <class>/<video>.avi (the extracted UCF-101 folder, or HMDB51's)")
    p.add_argument("--out", required=True, help="output folder (gets jpegs_256/, tvl1_flow/u, tvl1_flow/v)")
    p.add_argument("--dataset", choices=DATASETS, default="ucf101",
                   help="ucf101 / hmdb51: the official videos (name checks, prepare_info.json); folders: your own "
                        "<class>/<video>.{avi,mp4,mkv,webm,mov}, and write UCF101-format split lists (default: ucf101)")
    p.add_argument("--test-fraction", type=float, default=folders.DEFAULT_TEST_FRACTION,
                   help="folders: share of each class's videos in the test lists (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="folders: seed of the split; split N of the lists is drawn with (seed, N) (default: 0)")
    p.add_argument("--group-regex", default=folders.DEFAULT_GROUP_REGEX,
                   help="folders: videos whose file names give the same match (its first group) stay on one side "
                        "of the split; '' for none (default: %(default)s, UCF101's _g08_)")
    p.add_argument("--flow", choices=FLOW_METHODS, default="tvl1",
                   help="tvl1 (OpenCV DualTVL1, the standard, slow) or farneback (fast, lower quality); "
                        "the folder is still called tvl1_flow (default: tvl1)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="parallel processes, one video each (default: all cores, %(default)s here)")
    p.add_argument("--limit", type=int, default=None, help="only the first N videos in sorted order")
    p.add_argument("--videos", nargs="+", metavar="NAME",
                   help="only these videos (with or without v_ and .avi, e.g. ApplyEyeMakeup_g01_c01)")
    p.add_argument("--width", type=int, default=DEFAULT_SIZE[0], help="frame width after resizing (default: %(default)s)")
    p.add_argument("--height", type=int, default=DEFAULT_SIZE[1], help="frame height after resizing (default: %(default)s)")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not os.path.isdir(args.videos_dir):
        parser.error(f"--videos-dir not found: {args.videos_dir}")
    for opt in ("workers", "width", "height"):
        if getattr(args, opt) < 1:
            parser.error(f"--{opt} must be at least 1")
    if args.limit is not None and args.limit < 0:
        parser.error("--limit must be >= 0")
    try:
        re.compile(args.group_regex)
    except re.error as e:
        parser.error(f"--group-regex is not a regular expression: {e}")
    info = {"flow": args.flow, "width": args.width, "height": args.height, "bound": BOUND,
            "dataset": args.dataset, "flow_dir": FLOW_DIR, "rgb_dir": RGB_DIR, "opencv": cv2.__version__}
    spec = get_dataset(args.dataset)
    try:
        if spec.writes_splits:
            listed = folders.list_class_videos(args.videos_dir, spec.video_extensions)
            by_path = {v.path: v for v in listed}
            paths = select_videos([v.path for v in listed], args.videos, args.limit)
            names = [spec.folder_for_video(by_path[p].name) for p in paths]
            info |= {"test_fraction": args.test_fraction, "seed": args.seed, "group_regex": args.group_regex}
            if not 0 < args.test_fraction < 1:
                raise ValueError(f"--test-fraction must be between 0 and 1, not {args.test_fraction}")
        else:
            paths = select_videos(list_videos(args.videos_dir, args.dataset), args.videos, args.limit)
            names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
        check_info(args.out, info)
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ValueError(f"--out {args.out}: is a file; expected a folder for the frames")
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    finished = {n for n in names if is_finished(args.out, n)}
    skipped = [n for n in names if n in finished]
    jobs = [VideoJob(p, n, args.out, args.width, args.height, args.flow)
            for p, n in zip(paths, names) if n not in finished]
    print(f"{len(paths)} videos: {len(skipped)} already finished, {len(jobs)} to prepare "
          f"({args.flow}, {args.width}x{args.height}, {min(args.workers, max(len(jobs), 1))} workers)",
          file=sys.stderr)

    done, failed = [], []
    new_dirs = [d for d in output_dirs(args.out) if not os.path.exists(d)]
    try:
        with tqdm(total=len(jobs), unit="video", dynamic_ncols=True) as bar:
            for r in run_jobs(jobs, min(args.workers, len(jobs)), args.flow):
                (done if r.ok else failed).append(r)
                if not r.ok:
                    bar.write(f"failed: {r.name}: {r.error}", file=sys.stderr)
                bar.update()
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        # prepare_info.json describes frames on disk: written once there are some; a run
        # whose every video failed leaves nothing behind.
        if done or skipped:
            utils.save_json(info, os.path.join(args.out, INFO_FILE))
        else:
            remove_empty(new_dirs)
    print(summarize(done, skipped, failed))
    if failed and not (done or skipped):
        print(f"error: none of the {len(failed)} videos could be prepared; nothing was written to {args.out}",
              file=sys.stderr)
        return 1
    if spec.writes_splits:
        ready = [by_path[p] for p, n in zip(paths, names) if is_finished(args.out, n)]
        try:
            write_folder_splits(args, spec, ready, len(paths) - len(ready))
        except (ValueError, OSError) as e:
            print(f"error: no split lists written: {e}", file=sys.stderr)
            return 2
    return 1 if failed else 0


def write_folder_splits(args, spec, videos, missing):
    """The UCF101-format lists of the videos whose frames are complete, in the data set's folder."""
    splits_dir = spec.splits_dir(args.out)
    if missing:
        print(f"warning: {missing} video(s) have no frames and are left out of the split lists", file=sys.stderr)
    splits = folders.write_ucf101_lists(splits_dir, videos, args.test_fraction, args.seed, args.group_regex)
    classes = sorted({v.cls for v in videos})
    train, test = splits[0]
    print(f"split lists: {len(classes)} classes, split 1: {len(train)} train / {len(test)} test videos "
          f"(splits 1-{len(splits)}, --seed {args.seed}) -> {splits_dir}")


if __name__ == "__main__":
    sys.exit(main())
