"""Generate a small synthetic action data set in the real UCF101/HMDB51 on-disk layouts.

    from dataloader.synthetic import generate
    generate("data/synth")                       # 6 classes, 60 videos
    python -m tools.make_synthetic data/synth    # the same from the command line

Each class is an appearance cue x a motion cue (e.g. `RedUp`, `BlueDown`): the colour of a
large object, seen in every RGB frame but never in the flow, and its direction of motion, in
the flow only. Only a fusion of the two streams can tell all classes apart. How a video is
drawn, and its flow textures: dataloader/synthetic_render.py.

Classes are listed alphabetically, so labels agree between the UCF101-style lists
(classInd.txt) and the HMDB51 reader (which sorts the per-class files). How a data set's
classes, videos and split lists are spelled is its catalog entry's (dataloader/catalog.py,
DatasetSpec.synthetic); the data sets with one are SYNTHETIC_DATASETS.
"""
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

import utils
from dataloader.catalog import CATALOG, SPLITS, get_dataset
from dataloader.layout import (FLOW_DIR, FRAMES_DIR, RGB_DIR, mmaction_frame_name, mmaction_video_dir,
                               twostream_frame_name, twostream_video_dirs)
from dataloader.synthetic_render import COLOURS, FLOW_TEXTURES, MOTIONS, render_video

NUM_GROUPS = 25            # UCF101 actor groups g01..g25
GROUPS_PER_SPLIT = 7       # split s tests groups 7(s-1)+1 .. 7s, as UCF101
SYNTHETIC_DATASETS = tuple(name for name, spec in CATALOG.items() if spec.synthetic)  # ucf101, hmdb51
# Everything this tool writes under OUT; --overwrite removes only these.
MARKER = "synthetic.json"
MANAGED = tuple(dict.fromkeys((RGB_DIR, FLOW_DIR, FRAMES_DIR,
                               *(CATALOG[d].splits_subdir for d in SYNTHETIC_DATASETS), MARKER)))


def _style(dataset):
    """The catalog's SyntheticStyle of `dataset`. ValueError for a data set without one, naming
    a generated data set whose lists it reads (for `folders`: ucf101) if there is one."""
    if dataset in SYNTHETIC_DATASETS:
        return CATALOG[dataset].synthetic
    reader = CATALOG[dataset].read_split if dataset in CATALOG else None
    alike = [d for d in SYNTHETIC_DATASETS if CATALOG[d].read_split is reader]
    raise ValueError(f"dataset must be {' or '.join(SYNTHETIC_DATASETS)}, not {dataset}"
                     + (f" (--dataset {alike[0]} writes the split lists that {dataset} reads)" if alike else ""))


def class_specs(appearances=3, motions=2, dataset="ucf101"):
    """[(class name, colour name, motion name)] sorted by name (see the module docstring)."""
    name = _style(dataset).class_name
    return sorted((name(colour, motion), colour, motion) for colour in list(COLOURS)[:appearances]
                  for motion in MOTIONS[:motions])


def class_names(appearances=3, motions=2, dataset="ucf101"):
    """Class names, index = label: CamelCase (`RedUp`) for UCF101, `red_up` for HMDB51."""
    return [name for name, _, _ in class_specs(appearances, motions, dataset)]


def cue_accuracy(score_file):
    """For a video_scores.pkl of a synthetic set: the fraction of videos whose predicted
    class has the right colour, the right motion, and both. Top-1 hides what a stream learned
    (a perfect spatial stream still guesses the motion); the first two numbers show it.
    `both` is top-1 (the class is its colour and motion); it says whether a fusion got both cues."""
    specs = {name: (colour, motion) for appearances in range(1, len(COLOURS) + 1)
             for motions in range(1, len(MOTIONS) + 1) for dataset in SYNTHETIC_DATASETS
             for name, colour, motion in class_specs(appearances, motions, dataset)}
    classes = score_file["classes"]
    pairs = [(specs[classes[int(np.argmax(s))]], specs[classes[score_file["labels"][v]]])
             for v, s in score_file["scores"].items()]
    return {"colour": float(np.mean([p[0] == t[0] for p, t in pairs])),
            "motion": float(np.mean([p[1] == t[1] for p, t in pairs])),
            "both": float(np.mean([p == t for p, t in pairs]))}


def synthetic_video_name(dataset, cls, group, clip):
    """UCF101: `RedUp_g08_c01`; HMDB51: `film08_red_up_clip01` (the part before `_<class>_`
    is the source film, which dataloader.splits.video_group uses as the group)."""
    return _style(dataset).video_name(cls, group, clip)


def plan_videos(specs, videos_per_class, dataset):
    """[(video, class index, group, video index in class)]. Video i of n in a class gets
    group 1 + i*25//n, so every class spreads over the 25 groups and every split tests
    some videos of every class."""
    videos = []
    for label, (cls, _, _) in enumerate(specs):
        clips = {}
        for i in range(videos_per_class):
            group = 1 + i * NUM_GROUPS // videos_per_class
            clips[group] = clips.get(group, 0) + 1
            videos.append((synthetic_video_name(dataset, cls, group, clips[group]), label, group, i))
    return videos


def is_test_group(group, split):
    return GROUPS_PER_SPLIT * (split - 1) < group <= GROUPS_PER_SPLIT * split


def write_split_lists(out, dataset, classes, videos):
    """Write the three official-style splits in the data set's format (its catalog entry: UCF101
    files use CRLF like the originals, HMDB51 lines carry the originals' trailing space).
    Returns the folder written."""
    folder = get_dataset(dataset).splits_dir(out)
    _style(dataset).write_lists(folder, classes, [(v, y, tuple(is_test_group(g, s) for s in SPLITS))
                                                  for v, y, g, _ in videos])
    return folder


def _frame_paths(out, layout, dataset, cls, video):
    """Functions i -> path (1-based file numbers) for rgb, u, v, with their folders made."""
    folder = get_dataset(dataset).folder_for_video(video)
    if layout == "twostream":
        dirs = twostream_video_dirs(os.path.join(out, RGB_DIR), os.path.join(out, FLOW_DIR), folder)
        for d in dirs:
            os.makedirs(d, exist_ok=True)
        return [lambda i, d=d: os.path.join(d, twostream_frame_name(i + 1)) for d in dirs]
    d = mmaction_video_dir(os.path.join(out, FRAMES_DIR), cls, folder)
    os.makedirs(d, exist_ok=True)
    return [lambda i, s=s: os.path.join(d, mmaction_frame_name(s, i + 1)) for s in ("rgb", "u", "v")]


def _write_jpeg(path, image, quality):
    if not cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
        raise OSError(f"could not write {path}")


def _read_marker(out):
    try:
        with open(os.path.join(out, MARKER), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _clear_previous(out, overwrite):
    """Refuse to mix with an earlier data set; with overwrite, delete only what this tool
    made before (it leaves a marker file), never real data that happens to be in OUT."""
    existing = [m for m in MANAGED if os.path.exists(os.path.join(out, m))]
    if not existing:
        return
    if not overwrite:
        cut = "incomplete" in _read_marker(out)
        raise FileExistsError(f"{out} already holds {', '.join(existing)}"
                              + ("; it is a synthetic set cut short: pass --overwrite to write it again" if cut else
                                 "; choose an empty folder or pass --overwrite to replace an earlier synthetic set"))
    if not os.path.isfile(os.path.join(out, MARKER)):
        raise FileExistsError(f"{out} holds {', '.join(existing)} but no {MARKER}: not made by "
                              "this tool, refusing to delete it")
    for m in existing:
        path = os.path.join(out, m)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


MAX_VIDEOS_PER_CLASS, MAX_SIDE, MAX_FRAMES = 10_000, 4096, 10_000


def _check_options(appearances, motions, videos_per_class, width, height, min_frames, max_frames,
                   layout, dataset, quality, seed=0, flow_texture="plain"):
    if not 1 <= appearances <= len(COLOURS):
        raise ValueError(f"appearances must be 1..{len(COLOURS)}, not {appearances}")
    if not 1 <= motions <= len(MOTIONS):
        raise ValueError(f"motions must be 1..{len(MOTIONS)}, not {motions}")
    # The upper bounds keep a typo from filling the disk (or, for the frame size, the memory).
    if not 1 <= videos_per_class <= MAX_VIDEOS_PER_CLASS:
        raise ValueError(f"videos_per_class must be 1..{MAX_VIDEOS_PER_CLASS}, not {videos_per_class}")
    if not (32 <= width <= MAX_SIDE and 32 <= height <= MAX_SIDE):
        raise ValueError(f"frames must be 32x32 to {MAX_SIDE}x{MAX_SIDE}, not {width}x{height}")
    if not 2 <= min_frames <= max_frames <= MAX_FRAMES:
        raise ValueError(f"need 2 <= min_frames <= max_frames <= {MAX_FRAMES} (a flow frame needs two RGB frames), "
                         f"got {min_frames}..{max_frames}")
    if not 0 <= seed < 2 ** 32:
        raise ValueError(f"seed must be 0..{2 ** 32 - 1}, not {seed}")
    if layout not in ("twostream", "mmaction"):
        raise ValueError(f"layout must be twostream or mmaction, not {layout}")
    _style(dataset)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be 1..100, not {quality}")
    if flow_texture not in FLOW_TEXTURES:
        raise ValueError(f"flow_texture must be one of {', '.join(FLOW_TEXTURES)}, not {flow_texture}")


def generate(out, appearances=3, motions=2, videos_per_class=10, width=160, height=120,
             min_frames=16, max_frames=32, seed=0, layout="twostream", dataset="ucf101",
             quality=90, overwrite=False, verbose=True, flow_texture="plain"):
    """Write the data set under `out`; returns the manifest (also saved as out/synthetic.json).
    flow_texture: "plain" or "realistic" (module docstring); the manifest names it unless plain."""
    options = dict(appearances=appearances, motions=motions, videos_per_class=videos_per_class,
                   width=width, height=height, min_frames=min_frames, max_frames=max_frames,
                   seed=seed, layout=layout, dataset=dataset, quality=quality)
    if flow_texture != "plain":  # a default set's manifest stays as it was
        options["flow_texture"] = flow_texture
    _check_options(**options)
    utils.check_writable(out, None, folder=True)  # a ValueError now, not an OSError mid-way
    start = time.time()
    os.makedirs(out, exist_ok=True)
    _clear_previous(out, overwrite)
    # The marker first: a run cut short (Ctrl-C, a full disk) leaves a set this tool may replace
    # with --overwrite; it names no options, so nothing takes the partial set for a whole one.
    utils.save_json({"incomplete": "cut short while writing; generate it again with --overwrite"},
                    os.path.join(out, MARKER))
    specs = class_specs(appearances, motions, dataset)
    classes = [name for name, _, _ in specs]
    videos = plan_videos(specs, videos_per_class, dataset)
    total = 0
    # Creating thousands of small files dominates the run time; cv2.imwrite releases the
    # GIL, so a few threads overlap the file system waits. Files do not depend on the order.
    with ThreadPoolExecutor(max_workers=4) as pool:
        for video, label, group, index in videos:
            cls, colour, motion = specs[label]
            # One generator per video, keyed by the cue indices rather than the class index,
            # so a video does not change when other options (class count, order) change.
            key = [seed, list(COLOURS).index(colour), MOTIONS.index(motion), index]
            rng = np.random.default_rng(key)
            n = int(rng.integers(min_frames, max_frames + 1))
            rgb, u, v = render_video(rng, colour, motion, n, width, height, flow_texture)
            rgb_path, u_path, v_path = _frame_paths(out, layout, dataset, cls, video)
            jobs = [(rgb_path(i), cv2.cvtColor(rgb[i], cv2.COLOR_RGB2BGR)) for i in range(n)]  # cv2 wants BGR
            jobs += [(u_path(i), u[i]) for i in range(n - 1)] + [(v_path(i), v[i]) for i in range(n - 1)]
            list(pool.map(lambda job: _write_jpeg(*job, quality), jobs))
            total += n
    splits_dir = write_split_lists(out, dataset, classes, videos)
    manifest = dict(options, classes=classes, num_videos=len(videos), rgb_frames=total,
                    flow_frames=total - len(videos), splits_dir=os.path.basename(splits_dir))
    utils.save_json(manifest, os.path.join(out, MARKER))
    _warn_thin_splits(videos, classes)
    if verbose:
        print(f"make_synthetic: {len(classes)} classes ({', '.join(classes)}), {len(videos)} videos, "
              f"{total} RGB + {total - len(videos)} flow frames at {width}x{height}, {layout} layout "
              f"with {dataset} split lists -> {out} ({time.time() - start:.1f} s)")
    return manifest


def _warn_thin_splits(videos, classes):
    """Too few videos per class leave some split without train or test videos of a class."""
    for s in SPLITS:
        for label, cls in enumerate(classes):
            kinds = {is_test_group(g, s) for _, y, g, _ in videos if y == label}
            if kinds != {True, False}:
                print(f"make_synthetic: warning: split {s} has no {'test' if False in kinds else 'train'} "
                      f"video of class {cls}; use more --videos-per-class", file=sys.stderr)
                return
