"""What tools.prepare_data will do, worked out before any frame is written: which videos (the
data set's files, --videos, --limit, --shard), which settings (refused where they differ from
what --out was made with), the split lists it will write for one's own videos (refused at once
where a class cannot be split), how many frame pairs, and how long that should take."""
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import cv2

from dataloader import folders
from dataloader.flow import BOUND, compute_flow_batch
from dataloader.layout import FLOW_DIR, PREPARE_INFO, RGB_DIR
from dataloader.splits import video_name
from dataloader.video import resize_frame

SAME_FRAMES = ("flow", "width", "height", "bound", "flow_backend")  # what the frames on disk are
SAME_SPLITS = ("test_fraction", "seed", "group_regex", "selection")  # what the written split lists are


class Source(NamedTuple):
    """One video file and its names."""
    path: str
    cls: str       # its class folder (normalised for one's own videos)
    name: str      # its name in the split lists
    folder: str    # its frame folders' name (v_<name> for UCF101-style data sets)
    stem: str      # the file name without its extension


# ---------------------------------------------------------------- which videos
def list_sources(videos_dir, spec):
    """Every video of the data set under videos_dir, sorted by class then name. ValueError when
    there is none, when two would share a frame folder, or (one's own videos) when the class
    folders cannot become a data set."""
    if spec.writes_splits:
        return [Source(v.path, v.cls, v.name, spec.folder_for_video(v.name), v.stem)
                for v in folders.list_class_videos(videos_dir, spec.video_extensions)]
    sources = []
    for cls in sorted(os.listdir(videos_dir)):
        cls_dir = os.path.join(videos_dir, cls)
        if os.path.isdir(cls_dir):
            for f in sorted(os.listdir(cls_dir)):
                if f.lower().endswith(spec.video_extensions):
                    stem = os.path.splitext(f)[0]
                    sources.append(Source(os.path.join(cls_dir, f), cls, video_name(f), stem, stem))
    if not sources:
        raise ValueError(f"no <class>/<video>{'|'.join(spec.video_extensions)} files in {videos_dir} "
                         f"(give the folder holding the class folders, e.g. UCF-101)")
    seen = {}
    for s in sources:
        if s.folder in seen:
            hint = ("" if spec.name == "folders" else f"; these are not {spec.name} names: for your own videos "
                    "pass --dataset folders")
            raise ValueError(f"two videos would share the output folder '{s.folder}': {seen[s.folder]} and "
                             f"{s.path}{hint}")
        seen[s.folder] = s.path
    if spec.name_warning and (warning := spec.name_warning([s.stem for s in sources])):
        print(f"warning: {warning}", file=sys.stderr)
    return sources


def _spellings(source):
    """The names --videos accepts for a video: its list name, its frame folder (what failure
    lines print), its file name and stem, each without regard to case."""
    base = os.path.basename(source.path)
    return {n.lower() for n in (source.name, source.folder, base, source.stem)}


def select_sources(sources, names=None, limit=None):
    """Subset by --videos (any spelling) then --limit. ValueError naming unknown names."""
    if names:
        wanted = {n.lower(): n for n in names}
        sources = [s for s in sources if _spellings(s) & wanted.keys()]
        known = set().union(*map(_spellings, sources)) if sources else set()
        missing = [n for k, n in wanted.items() if k not in known]
        if missing:
            raise ValueError("not found in --videos-dir: " + ", ".join(sorted(missing)))
    return sources[:limit] if limit is not None else sources


def parse_shard(text):
    """'K/N' -> (K, N), 1 <= K <= N."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text}: expected K/N, e.g. 1/4") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard {text}: K must be between 1 and N")
    return k, n


def shard_of(sources, shard):
    """The K-th of N parts of `sources` (shard = (K, N)): in the order of their frame-folder
    names, every N-th video from the K-th. The parts are disjoint, cover every video, differ in
    size by one at most, and are the same on every machine that lists the same videos."""
    k, n = shard
    ordered = sorted(sources, key=lambda s: s.folder.lower())
    return [s for i, s in enumerate(ordered) if i % n == k - 1]


# ---------------------------------------------------------------- settings
def read_info(out):
    try:
        with open(os.path.join(out, PREPARE_INFO), encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def check_info(out, info, redraw_splits=False):
    """Refuse to resume into an --out made with other settings: a mix of flow methods, sizes
    or backends in one folder would go unnoticed by readers, and split lists drawn again
    with other settings would silently change what earlier runs were trained and tested on."""
    old = read_info(out)
    if old is None:
        return
    old.setdefault("flow_backend", "opencv")  # folders made before there was a choice
    diff = [k for k in SAME_FRAMES if old.get(k) != info[k]]
    if diff:
        raise ValueError(f"{os.path.join(out, PREPARE_INFO)} was made with "
                         + ", ".join(f"{k}={old.get(k)}" for k in diff) + "; use the same settings or another --out")
    splits = [k for k in SAME_SPLITS if k in info and k in old and old[k] != info[k]]
    if splits and not redraw_splits:
        raise ValueError(f"{out}'s split lists were drawn with " + ", ".join(f"{k}={old[k]}" for k in splits)
                         + "; this run would draw them again with " + ", ".join(f"{k}={info[k]}" for k in splits)
                         + ", changing what runs trained on them were tested on. Use the same settings, another "
                         "--out, or --redraw-splits to draw them again knowingly")


# ---------------------------------------------------------------- the split lists of one's own videos
def split_plan(sources, args, spec):
    """The lines that show how the split lists will look (FolderError, raised before any
    extraction, where a class cannot be split)."""
    splits = folders.draw_splits(sources, args.test_fraction, args.seed, args.group_regex)
    classes = sorted({s.cls for s in sources})
    per_class = [sum(1 for s in sources if s.cls == c) for c in classes]
    groups = {folders.video_group_key(s.stem, args.group_regex) for s in sources} - {None} \
        if args.group_regex else set()
    lines = [f"split plan: {len(classes)} classes, {min(per_class)}-{max(per_class)} videos a class"
             + (f", {len(groups)} groups ({args.group_regex})" if groups else ", no groups")]
    index = {c: i for i, c in enumerate(classes)}
    for s, (train, test) in enumerate(splits, 1):
        held = spec.hold_out([(v.name, index[v.cls]) for v in train], classes, "auto")
        lines.append(f"  split {s}: {len(train) - len(held.val)} train / {len(held.val)} validation (auto) / "
                     f"{len(test)} test videos")
    return lines


# ---------------------------------------------------------------- how much work
def count_frames(paths, threads=16):
    """The frame counts the containers declare (an estimate for some formats; 0 if unknown)."""
    def count(path):
        cap = cv2.VideoCapture(path)
        try:
            return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0) if cap.isOpened() else 0
        finally:
            cap.release()
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(count, paths))


def time_pairs(source, args, backend, device, pairs=4):
    """Seconds per frame pair of the flow, measured on the first `pairs` pairs of a video
    (after one untimed pair, which pays for setting up); None if it has too few frames."""
    cap, grey = cv2.VideoCapture(source.path), []
    while len(grey) < pairs + 2:
        ok, frame = cap.read()
        if not ok:
            break
        grey.append(cv2.cvtColor(resize_frame(frame, args.width, args.height), cv2.COLOR_BGR2GRAY))
    cap.release()
    if len(grey) < 3:
        return None
    compute_flow_batch(grey[:1], grey[1:2], args.flow, backend, device)
    start = time.perf_counter()
    n = len(grey) - 2
    compute_flow_batch(grey[1:-1], grey[2:], args.flow, backend, device)
    return (time.perf_counter() - start) / n


def describe_time(seconds):
    h, m = divmod(int(seconds // 60), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {int(seconds % 60):02d} s"


def base_info(args, backend, device):
    info = {"flow": args.flow, "width": args.width, "height": args.height, "bound": BOUND, "dataset": args.dataset,
            "flow_dir": FLOW_DIR, "rgb_dir": RGB_DIR, "opencv": cv2.__version__, "flow_backend": backend,
            "flow_device": str(device)}
    if backend == "torch":
        import torch
        info["torch"] = torch.__version__
    return info
