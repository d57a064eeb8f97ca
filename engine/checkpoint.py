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


def checkpoint_payload(run, epoch):
    """Plain types and tensors only, so that it loads with weights_only=True."""
    return {"format": CHECKPOINT_FORMAT, "identity": run.identity, "classes": list(run.data.classes),
            "epoch": epoch, "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "best": run.best, "history": run.history,
            "args": json.loads(json.dumps(vars(run.args))), "data_info": run.data_info, "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None}


def resume_hint(spec, args, argv):
    """What to type to continue. The last finished epoch's checkpoint is already on disk
    (written atomically), and an epoch replays identically, so resuming from it gives the
    same result as a run that was never stopped."""
    ckpt = os.path.join(args.out, "checkpoint.pth")
    if not os.path.isfile(ckpt):
        return "==> stopped before the first epoch finished: nothing to resume, start again"
    keep, skip = [], False
    for a in argv:  # drop an earlier --resume
        if skip:
            skip = False
            continue
        if a == "--resume":
            skip = True
            continue
        if not a.startswith("--resume="):
            keep.append(a)
    return ("==> stopped; the last finished epoch is in " + ckpt + ". Resume with:\n  python " + spec.script + " "
            + " ".join(shlex.quote(a) for a in keep + ["--resume", ckpt]))


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
