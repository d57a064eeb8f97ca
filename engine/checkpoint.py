"""A run's checkpoints: what they hold (the backbone, the weights, the optimiser and RNG
state, the records), what they must match to be loaded, and the command that resumes from them."""
import json
import os
import shlex

import torch

import utils
from dataloader.layout import PREPARE_INFO
from engine.streams import STREAMS, in_channels
from network.backbones import DEFAULT_ARCH

CHECKPOINT_FORMAT = "two-stream-tsn/1"


class CheckpointError(ValueError):
    pass


def model_identity(args, spec, num_classes):
    """What a checkpoint must match to be loaded into this run."""
    return {"stream": spec.name, "arch": args.arch, "num_classes": num_classes,
            "in_channels": in_channels(spec, args.stack)}


def checkpoint_arch(ckpt):
    """The backbone a checkpoint holds (checkpoints older than --arch are DEFAULT_ARCH)."""
    return (ckpt.get("identity") or {}).get("arch") or DEFAULT_ARCH


def read_checkpoint(path):
    """A checkpoint of this tool from `path`; CheckpointError otherwise."""
    ckpt = utils.load_checkpoint(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a checkpoint of this tool")
    return ckpt


def resolve_arch(args, ckpt):
    """args.arch: as given, else the checkpoint's (--resume, --evaluate), else DEFAULT_ARCH.
    A --arch that contradicts the checkpoint is refused here, before a model is built."""
    saved = checkpoint_arch(ckpt) if ckpt is not None else None
    if args.arch is None:
        args.arch = saved or DEFAULT_ARCH
    elif saved and args.arch != saved:
        raise CheckpointError(f"{args.resume}: a {saved} checkpoint, but --arch {args.arch} was given; "
                              "drop --arch (it is read from the checkpoint)")


def restore(ckpt, path, model, optimizer, scheduler, identity, device):
    """Load a checkpoint (read_checkpoint) into model/optimizer/scheduler after checking it fits this run."""
    for key, want in identity.items():
        have = checkpoint_arch(ckpt) if key == "arch" else ckpt["identity"].get(key)
        if have != want:
            raise CheckpointError(f"{path}: checkpoint has {key} = {have!r}, but this run "
                                  f"needs {want!r} (a checkpoint of another stream, data set or stack size?)")
    model.load_state_dict(ckpt["model"])
    if optimizer is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
    if "torch_rng" in ckpt:
        torch.set_rng_state(ckpt["torch_rng"])
        if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], device)
    return ckpt


DATA_SETTINGS = ("flow", "width", "height", "bound")  # of prepare_info.json: what the frames are


def _first_difference(a, b):
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"class {i + 1}: {a[i] if i < len(a) else '-'!r} vs {b[i] if i < len(b) else '-'!r}"


def _trained_videos(ckpt):
    """The names of the checkpoint's training videos: recorded since they are, else read
    (best effort) from the split list its options name; None if unknown."""
    if "train_videos" in ckpt:
        return ckpt["train_videos"]
    old = ckpt.get("args") or {}
    try:
        from dataloader.catalog import get_dataset
        spec = get_dataset(old["dataset"])
        return [v for v, _ in spec.read_split(old.get("splits_dir") or spec.splits_dir(old["data_root"]),
                                              old["split"]).train]
    except (KeyError, TypeError, ValueError, OSError):
        return None


def check_checkpoint_data(ckpt, path, args, data, data_info):
    """Before a checkpoint meets this run's data: refuse other classes, and a resumed
    training that adds or drops --partial-bn (its optimiser state would not fit); return
    warnings where the data root, split or frames differ from what it was trained on, or
    where test videos were among its training videos."""
    trained_classes = list(ckpt.get("classes") or [])
    if trained_classes != list(data.classes):
        raise CheckpointError(f"{path}: trained on {len(trained_classes)} classes, but the split lists of --data-root "
                              f"{args.data_root} name {len(data.classes)} (first difference at "
                              f"{_first_difference(trained_classes, list(data.classes))}): evaluate or resume it on "
                              "the data it was trained on")
    old = ckpt.get("args") or {}
    if not args.evaluate and bool(old.get("partial_bn")) != bool(args.partial_bn):
        raise CheckpointError(f"{path}: trained {'with' if old.get('partial_bn') else 'without'} --partial-bn; resume "
                              f"it {'with' if old.get('partial_bn') else 'without'} --partial-bn too")
    warnings = []
    if old.get("data_root") and os.path.abspath(old["data_root"]) != os.path.abspath(args.data_root):
        warnings.append(f"{path} was trained on --data-root {old['data_root']}; this run reads {args.data_root}")
    for key in ("dataset", "split"):
        if old.get(key) not in (None, getattr(args, key)):
            warnings.append(f"{path} was trained on {key} {old[key]}; this run reads {key} {getattr(args, key)}")
    before = ckpt.get("data_info") or {}
    differ = [k for k in DATA_SETTINGS if before and data_info and before.get(k) != data_info.get(k)]
    if differ:
        warnings.append(f"{path} was trained on frames made with " + ", ".join(f"{k}={before.get(k)}" for k in differ)
                        + f"; {PREPARE_INFO} of this data root says " + ", ".join(f"{k}={data_info.get(k)}" for k in differ))
    seen = {v.lower() for v in _trained_videos(ckpt) or []}
    overlap = sorted(v for v, _ in data.test.entries if v.lower() in seen)
    if overlap:
        warnings.append(f"{len(overlap)} of the {len(data.test)} test videos were among {path}'s training videos "
                        f"(e.g. {', '.join(overlap[:3])}): its test figures here are not a held-out measurement")
    return warnings


def checkpoint_payload(run, epoch):
    """Plain types and tensors only, so that it loads with weights_only=True."""
    return {"format": CHECKPOINT_FORMAT, "identity": run.identity, "classes": list(run.data.classes),
            "epoch": epoch, "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "best": run.best, "history": run.history,
            "args": json.loads(json.dumps(vars(run.args))), "data_info": run.data_info,
            "train_videos": [v for v, _ in run.data.train.entries], "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None}


def resume_hint(spec, args, argv, replacing=False):
    """What to type to continue. The last finished epoch's checkpoint is already on disk
    (written atomically), and an epoch replays identically, so resuming from it gives the
    same result as a run that was never stopped. `replacing`: an --overwrite run stopped
    before its first save, so the checkpoint in --out is still the old run's."""
    ckpt = os.path.join(args.out, "checkpoint.pth")
    if not os.path.isfile(ckpt):
        return "==> stopped before the first epoch finished: nothing to resume, start again"
    if replacing:
        return (f"==> stopped before the new run's first epoch was saved: {args.out} still holds the old run, "
                "intact. Nothing to resume; start again with the same command")
    keep, skip = [], False
    for a in argv:  # drop an earlier --resume, and --overwrite (done: the run in --out is this one)
        if skip:
            skip = False
            continue
        if a == "--resume":
            skip = True
            continue
        if not a.startswith("--resume=") and a != "--overwrite":
            keep.append(a)
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), spec.script)
    if os.path.dirname(script) == os.getcwd():  # started beside the script: its plain name, as typed
        script = spec.script
    return ("==> stopped; the last finished epoch is in " + ckpt + ". Resume with:\n  python " + shlex.quote(script)
            + " " + " ".join(shlex.quote(a) for a in keep + ["--resume", ckpt]))


def read_prepare_info(data_root):
    """The data root's prepare_info.json (flow method, frame size: what tools.predict must
    redo on a new video), or None where there is none (data not made by tools.prepare_data)."""
    try:
        with open(os.path.join(data_root or "", PREPARE_INFO), encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def load_stream_checkpoint(path):
    """A checkpoint written by spatial_cnn.py / motion_cnn.py, checked for what inference
    needs (stream, classes, weights, options); CheckpointError in one line otherwise."""
    try:
        ckpt = utils.load_checkpoint(path)
    except (OSError, ValueError) as e:
        raise CheckpointError(str(e).splitlines()[0]) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a stream checkpoint (expected checkpoint.pth or model_best.pth "
                              "written by spatial_cnn.py / motion_cnn.py)")
    identity, classes = ckpt.get("identity") or {}, ckpt.get("classes")
    if (identity.get("stream") not in STREAMS or not isinstance(classes, list)
            or len(classes) != identity.get("num_classes") or not isinstance(ckpt.get("model"), dict)
            or not isinstance(ckpt.get("args"), dict)):
        raise CheckpointError(f"{path}: an incomplete stream checkpoint (stream, classes, model or options missing)")
    return ckpt
