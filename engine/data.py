"""A run's data: the split lists, the held-out validation groups, the three datasets and
their loaders. Every listed video is checked to exist before any training starts."""
import sys
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Subset

from dataloader.buffers import PREFETCH_FACTOR
from dataloader.datasets import ClipDataset, DataError, collate_clips, count_frames
from dataloader.sampling import EpochSampler
from dataloader.encoded import EncodedClipDataset, check_gpu_decode, collate_encoded
from dataloader.catalog import DATASETS, detect_dataset, get_dataset
from dataloader.frame_dirs import FrameDirs, open_layout


@dataclass
class StreamData:
    classes: list
    train: ClipDataset
    val: ClipDataset | None
    test: ClipDataset
    train_sampler: EpochSampler
    validation: str = ""  # what was held out for validation, in words ('' = no validation set)


def resolve_dataset(args, ckpt=None):
    """args.dataset: as given, else the checkpoint's, else what the data root holds."""
    if args.dataset not in DATASETS:  # 'auto' (argparse allows nothing else)
        saved = ((ckpt or {}).get("args") or {}).get("dataset")
        args.dataset = saved if saved in DATASETS else detect_dataset(args.data_root)


def build_data(args, spec, info):
    """Read the split, hold out validation groups, count every video's frames (a missing
    video fails here, not hours later) and build the datasets."""
    resolve_dataset(args)  # where the caller has not (engine.train resolves it with the checkpoint first)
    dataset = get_dataset(args.dataset)
    split = dataset.read_split(args.splits_dir or dataset.splits_dir(args.data_root), args.split)
    if len(split.classes) < 2:
        raise DataError(f"{', '.join(split.files[:1])}: the split lists name {len(split.classes)} class(es) "
                        f"({', '.join(split.classes)}); a classifier needs at least 2")
    holdout = dataset.hold_out(split.train, split.classes, args.val_groups)
    train_entries, val_entries = holdout.train, holdout.val
    dirs = FrameDirs(args.rgb_dir, args.flow_dir, args.frames_dir, args.packed_dir)
    layout = open_layout(args.layout, args.data_root, dirs)
    unread = dirs.unread(layout.name, spec.modality)
    if unread:
        raise DataError(f"{', '.join(unread)}: not read by the {spec.name} stream with the {layout.name} layout "
                        f"(it reads {layout.describe(spec.modality)}); drop the option, or choose the layout with --layout")
    counts = count_frames(train_entries + val_entries + split.test, layout, spec.modality)
    stack = args.stack
    short = [n for n in counts.values() if n < stack] if spec.modality == "flow" else []
    if short and info.is_main:
        print(f"==> warning: --stack {stack} is longer than the flow of {len(short)} of {len(counts)} videos "
              f"(shortest: {min(short)} frames); their stacks repeat frames. Lower --stack to avoid it",
              file=sys.stderr, flush=True)
    common = dict(stack=args.stack, crop_size=args.crop_size, num_segments=args.num_segments,
                  test_frames=args.test_frames, test_crops=args.test_crops, seed=args.seed,
                  on_bad_frame=args.on_bad_frame)
    kind = dataset_class(getattr(args, "decode", "cpu"))
    test = kind(split.test, counts, layout, spec.modality, train=False, **common)
    common["frame_size"] = test.frame_size
    train = kind(train_entries, counts, layout, spec.modality, train=True, **common)
    val = kind(val_entries, counts, layout, spec.modality, train=False, **common) if val_entries else None
    if info.is_main and not (args.evaluate or args.check_data):  # once the data are known good
        for warning in validation_warnings(args.val_groups, val_entries, split.classes):
            print(f"==> warning: {warning}", file=sys.stderr, flush=True)
    sampler = EpochSampler(len(train), args.seed, info.rank, info.world_size)
    return StreamData(split.classes, train, val, test, sampler, holdout.description)


FEW_PER_CLASS = 5  # validation videos of a class below which its accuracy moves in steps of 20% or more


def validation_warnings(val_groups, val_entries, classes):
    """What a user should know about the validation set before training on it: that there is
    none although one was asked for, or that it is too small to choose on."""
    if val_groups == 0:
        return []
    if not val_entries:
        return [f"--val-groups {val_groups} held out no validation set (each class has too few training videos or "
                "groups): no model_best.pth or video_scores_val.pkl will be written, and fusion.py --fit-weights-on "
                "has nothing to fit on. Give each class at least 3 videos (2 training groups), or pass "
                "--val-groups 0 to train on every training video knowingly"]
    per_class = [sum(1 for _, y in val_entries if y == c) for c in range(len(classes))]
    missing = sum(1 for n in per_class if n == 0)
    if missing or min(per_class) < FEW_PER_CLASS:
        return [f"the validation set is small: {len(val_entries)} videos for {len(classes)} classes (fewest in a "
                f"class: {min(per_class)}{f'; {missing} classes have none' if missing else ''}); the model chosen "
                "on it and fusion weights fitted on it are noisy"]
    return []


def dataset_class(decode):
    """The dataset of a --decode choice: ClipDataset (the workers decode, cpu), or
    EncodedClipDataset (gpu: the workers send JPEG bytes, engine.loop.to_device decodes them)."""
    return EncodedClipDataset if decode == "gpu" else ClipDataset


def check_decode(choice, device):
    """--decode gpu needs a CUDA device and a torchvision that decodes JPEGs on it: checked
    (one tiny JPEG decoded there) before anything is trained or written."""
    if choice != "gpu":
        return
    if device.type != "cuda":
        raise ValueError(f"--decode gpu decodes the frames on a CUDA GPU, but the run's --device is {device.type}: "
                         "use --device cuda on a machine with a GPU, or --decode cpu")
    check_gpu_decode(device)


def _one_opencv_thread():
    """One OpenCV thread in this process, set before the data workers fork from it: each
    worker then decodes on one thread (the workers are the parallelism). Set here, not in the
    workers: a forked worker that reconfigures a thread pool its parent had started waits
    forever for the parent's pool threads, which the worker does not have."""
    import cv2
    cv2.setNumThreads(1)


def collate_for(dataset):
    """The batching of a dataset (of the one a Subset shards): ClipBatches, or EncodedBatches."""
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    return collate_encoded if isinstance(base, EncodedClipDataset) else collate_clips


def make_loader(dataset, batch_size, device, workers, seed, sampler=None, persistent=False):
    """A DataLoader of ClipBatches (EncodedBatches for --decode gpu): pinned memory on CUDA,
    PREFETCH_FACTOR (2) batches prefetched per worker."""
    if workers > 0:
        _one_opencv_thread()
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=persistent and workers > 0, drop_last=False,
        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None, collate_fn=collate_for(dataset),
        # A private generator: creating loader iterators must not consume the global torch
        # RNG (dropout uses it), or a resumed run would diverge from an uninterrupted one.
        generator=torch.Generator().manual_seed(seed))


def eval_shard(dataset, info):
    """This process's share of an evaluation set: every video exactly once across ranks."""
    return Subset(dataset, range(info.rank, len(dataset), info.world_size)) if info.enabled else dataset
