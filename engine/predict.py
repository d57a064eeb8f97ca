"""Predict the class of a video file with the trained streams (`python -m tools.predict`).

A stream's checkpoint says how it was trained and tested: its classes, its test protocol
(positions, crops, crop size, flow stack) and, for data made by tools.prepare_data, the frame
size and flow method (`data_info`, or the run's args.json -> data root -> prepare_info.json;
TV-L1 at 340x256 when nothing says). `predict_video` decodes the video, resizes and encodes
only the frames the test positions read, computes flow only for the frame pairs they read,
and scores them with the same dataset, transforms and evaluation loop as training-time
evaluation (dataloader/video.py keeps the frames as the JPEGs prepare_data would write), so
a video gets the score its extracted frames would get. The flow is OpenCV's, as prepare_data
computes it, or on a GPU the torch TV-L1 of dataloader/tvl1.py (`choose_flow_backend`), which
follows it closely. `fuse` combines the streams like fusion.py's weighted strategy, with the
weight fitted on validation scores where fusion.py saved one (`fitting_hint` says how).
"""
import json
import os
import shlex
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from progress import progress as progress_bar

from dataloader.datasets import ClipDataset
from dataloader.flow import DEFAULT_FLOW, FLOW_METHODS
from dataloader.layout import PREPARE_INFO
from dataloader.sampling import sample_test_positions
from dataloader.video import (DEFAULT_SIZE, MemoryLayout, VideoError, count_frames, decode_video, encode_flow,
                              encode_rgb, needed_frames)
from engine import fusion
from engine.checkpoint import CheckpointError, checkpoint_arch, load_stream_checkpoint, read_prepare_info
from engine.records import BEST_SCORES, VAL_SCORES
from engine.loop import LoopConfig, evaluate
from engine.runtime import default_amp
from engine.streams import STREAMS, in_channels
from network.backbones import get_backbone
from network.model import build_model


@dataclass
class StreamModel:
    """A trained stream ready to score videos, with its test protocol."""
    name: str                  # 'spatial' | 'motion'
    path: str
    model: torch.nn.Module
    classes: list
    stack: int                 # 1 for RGB
    crop_size: int
    test_frames: int
    test_crops: int
    size: tuple                # (width, height) frames are resized to
    flow: str | None           # flow method (motion stream)
    source: str                # where size and flow came from
    arch: str                  # the backbone (network/backbones.py)
    epoch: int | None = None   # the checkpoint's epoch
    warnings: list = field(default_factory=list)  # where the command line departs from the training data

    @property
    def modality(self):
        return STREAMS[self.name].modality

    def describe(self):
        what = f"{self.test_frames} positions x {self.test_crops} crop(s) of {self.crop_size}"
        if self.flow:
            what += f", stacks of {self.stack} {self.flow} flow frames"
        return f"{self.name}: {self.path} ({self.arch}, {len(self.classes)} classes; {what}; {self.size[0]}x{self.size[1]} frames, from {self.source})"


def find_data_info(ckpt, path):
    """(prepare_info dict, where it came from): the checkpoint's own record, else the
    prepare_info.json of the data root named by the run's args.json or the checkpoint."""
    if ckpt.get("data_info"):
        return ckpt["data_info"], "the checkpoint"
    roots = []
    args_json = os.path.join(os.path.dirname(os.path.abspath(path)), "args.json")
    try:
        with open(args_json, encoding="utf-8") as f:
            roots.append(json.load(f).get("data_root"))
    except (OSError, ValueError, AttributeError):
        pass
    roots.append(ckpt["args"].get("data_root"))
    for root in roots:
        info = read_prepare_info(root)
        if info is not None:
            return info, os.path.join(root or "", PREPARE_INFO)
    return {}, f"defaults ({DEFAULT_FLOW}, {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}: no {PREPARE_INFO} found)"


def load_stream(path, device, expect=None, flow=None, size=None):
    """A StreamModel from a checkpoint; `expect` the stream it must be, `flow` and `size`
    override what the checkpoint's data say. Raises CheckpointError."""
    ckpt = load_stream_checkpoint(path)
    name = ckpt["identity"]["stream"]
    if expect and name != expect:
        raise CheckpointError(f"{path}: a {name} stream checkpoint, given as --{expect}")
    a, arch = ckpt["args"], checkpoint_arch(ckpt)
    try:
        get_backbone(arch)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    stack = int(a.get("stack", 1)) if STREAMS[name].modality == "flow" else 1
    model = build_model(arch, len(ckpt["classes"]), in_channels(STREAMS[name], stack), device,
                        a.get("consensus", "mean"), a.get("dropout", 0.5), "none", a.get("partial_bn", False))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: the weights do not fit the model ({str(e).splitlines()[0]})") from None
    info, source = find_data_info(ckpt, path)
    warnings = trained_on_warnings(path, name, info, source, flow, size)
    if size or flow:
        source += " and the command line"
    method = (flow or info.get("flow", DEFAULT_FLOW)) if STREAMS[name].modality == "flow" else None
    if method is not None and method not in FLOW_METHODS:
        raise CheckpointError(f"{path}: trained on '{method}' flow, which this tool cannot compute "
                              f"({', '.join(FLOW_METHODS)}); pass --flow")
    size = tuple(size or (int(info.get("width", DEFAULT_SIZE[0])), int(info.get("height", DEFAULT_SIZE[1]))))
    crop = int(a.get("crop_size", 224))
    if min(size) < crop:  # only --size can make frames smaller than the crop the model was trained on
        raise CheckpointError(f"--size {size[0]}x{size[1]}: smaller than the {crop}-pixel crop {path} was trained "
                              f"on; give at least {crop}x{crop}, or leave out --size for the frame size of its data")
    return StreamModel(name, path, model, list(ckpt["classes"]), stack, crop,
                       int(a.get("test_frames", 19)), int(a.get("test_crops", 1)), size, method, source, arch,
                       ckpt.get("epoch"), warnings)


def trained_on_warnings(path, name, info, source, flow=None, size=None):
    """One line for each --flow / --size that departs from what the checkpoint's data record
    (nothing is said where nothing is recorded: the defaults are a guess either way)."""
    out = []
    recorded = info.get("flow")
    if flow and recorded and STREAMS[name].modality == "flow" and flow != recorded:
        out.append(f"{path} was trained on {recorded} flow ({source}), but --flow {flow} computes {flow} flow: "
                   f"its scores on other flow may be off; drop --flow to use {recorded}")
    if size and "width" in info and "height" in info and tuple(size) != (int(info["width"]), int(info["height"])):
        out.append(f"{path} was trained on {info['width']}x{info['height']} frames ({source}), but --size "
                   f"{size[0]}x{size[1]} resizes to other ones: its scores may be off; drop --size to use "
                   f"{info['width']}x{info['height']}")
    return out


def check_same_classes(streams):
    """Both streams must predict the same classes in the same order."""
    first, *rest = streams
    for s in rest:
        if s.classes != first.classes:
            diff = next((i for i, (a, b) in enumerate(zip(first.classes, s.classes)) if a != b),
                        min(len(first.classes), len(s.classes)))
            raise CheckpointError(f"the checkpoints have different class lists ({first.path}: {len(first.classes)} "
                                  f"classes, {s.path}: {len(s.classes)}; first difference at class {diff + 1}): "
                                  "train both streams on the same split lists")


@dataclass
class VideoPrediction:
    path: str
    frames: int
    scores: dict                      # stream name -> (C,) float32 video scores
    warnings: list = field(default_factory=list)


def _plan(stream, n):
    """(frame indices to decode, flow frame indices or None, warnings) of one stream."""
    if stream.modality == "rgb":
        return needed_frames(sample_test_positions(n, stream.test_frames, 1), 1, n), None, []
    flows = n - 1  # N frames give N-1 flow frames
    if flows < 1:
        raise VideoError(f"only {n} frame: the motion stream needs at least 2 for optical flow")
    warnings = []
    if flows < stream.stack:
        warnings.append(f"only {flows} flow frame(s), fewer than the motion stream's stack of {stream.stack}: "
                        "the last one is repeated, as in training")
    idx = needed_frames(sample_test_positions(flows, stream.test_frames, stream.stack), stream.stack, flows)
    return sorted({j for i in idx for j in (i, i + 1)}), idx, warnings


def stream_scores(stream, layout, video, device):
    """(C,) scores of one stream on an in-memory video, by the training-time evaluation."""
    dataset = ClipDataset([(video, 0)], {video: layout.num_frames(video, stream.modality)}, layout,
                          stream.modality, stack=stream.stack, crop_size=stream.crop_size, train=False,
                          test_frames=stream.test_frames, test_crops=stream.test_crops,
                          frame_size=(stream.size[1], stream.size[0]))
    cfg = LoopConfig(stream.modality, default_amp(device), workers=0, test_batch_size=1, progress=False)
    return evaluate(stream.model, dataset, device, cfg).scores[0]


def _bar(desc, unit, total, enabled):
    """One phase's progress (progress.progress): a bar on a terminal, gone when the phase ends (the
    prediction follows); whole lines in a log or pipe, the closing one kept with the phase's total."""
    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return progress_bar(total=total, desc=desc, unit=unit, disable=not enabled, leave=not tty)


def predict_video(path, streams, device, progress=True, flow_backend="opencv"):
    """Score one video file with each stream. Raises VideoError for a file that is not a
    readable video or too short, DataError when its frames are smaller than a crop. Progress
    per phase: decoding (frames: the counting pass, then the frames the positions read), flow
    (pairs; `flow_backend` as encode_flow's, on `device`) and scoring (streams)."""
    if os.path.isdir(path):
        raise VideoError("is a folder; expected a video file (give the videos in it, e.g. FOLDER/*.mp4)")
    if not os.path.isfile(path):
        raise VideoError("no such file")
    video, layouts = os.path.basename(path), {}
    try:
        with _bar(f"{video} decode", "frame", None, progress) as bar:
            n = count_frames(path, bar.update)
            plans = {s.name: _plan(s, n) for s in streams}
            wanted = {}
            for s in streams:
                wanted.setdefault(s.size, set()).update(plans[s.name][0])
            bar.total = n + max(max(ix) for ix in wanted.values()) + 1  # known once counted
            frames = decode_video(path, wanted, bar.update)
        for s in streams:
            if s.modality == "rgb":
                own = frames[s.size]
                layouts[s.name] = MemoryLayout(video, n, rgb=encode_rgb({i: own[i] for i in plans[s.name][0]}))
        pairs = sum(len(p[1]) for p in plans.values() if p[1] is not None)
        with _bar(f"{video} flow", "pair", pairs, progress and pairs > 0) as bar:
            for s in streams:
                if s.modality == "flow":
                    u, v = encode_flow(frames[s.size], plans[s.name][1], s.flow, bar.update, flow_backend, device)
                    layouts[s.name] = MemoryLayout(video, n, u=u, v=v)
    except Exception as e:
        if isinstance(e, VideoError) or type(e).__module__ != "cv2":
            raise
        raise VideoError(f"OpenCV failed on it ({str(e).strip().splitlines()[-1]})") from None
    scores = {}
    with _bar(f"{video} score", "stream", len(streams), progress) as bar:
        for s in streams:
            scores[s.name] = stream_scores(s, layouts[s.name], video, device)
            bar.update(1)
    warnings = [w for p in plans.values() for w in p[2]]
    return VideoPrediction(path, n, scores, warnings)


def choose_flow_backend(choice, device, streams):
    """(backend, the line that says so) of the motion stream's flow: --flow-backend auto is the
    torch TV-L1 on a CUDA device and OpenCV (what tools.prepare_data ran) otherwise. ValueError
    where the torch backend cannot compute the stream's flow."""
    motion = next((s for s in streams if s.modality == "flow"), None)
    if motion is None:
        return "opencv", None
    backend = choice if choice != "auto" else ("torch" if device.type == "cuda" and motion.flow == "tvl1" else "opencv")
    if backend == "opencv":
        return backend, (f"flow: {motion.flow} by OpenCV on the CPU (--flow-backend {choice}), as "
                         "tools.prepare_data computes it")
    if motion.flow != "tvl1":
        raise ValueError(f"--flow-backend torch computes TV-L1 only, but {motion.path} takes {motion.flow} flow; "
                         "use --flow-backend opencv (or auto)")
    return backend, (f"flow: tvl1 by the torch backend on {device} (--flow-backend {choice}; dataloader/tvl1.py "
                     "follows OpenCV's TV-L1, which tools.prepare_data runs, to about 0.03 px: docs/flow.md)")


def fitting_hint(streams):
    """Where validation scores lie beside both checkpoints, the commands that fit the fusion
    weight on them and predict with it; None otherwise."""
    folders = {s.name: os.path.dirname(s.path) for s in streams}
    val = {k: os.path.join(d, VAL_SCORES) for k, d in folders.items()}
    if set(val) != {"spatial", "motion"} or not all(os.path.isfile(p) for p in val.values()):
        return None
    test = {k: os.path.join(d, BEST_SCORES) for k, d in folders.items()}  # fusion.py reports the weight on them
    cmd = shlex.join(["python", "fusion.py", "--spatial", test["spatial"], "--motion", test["motion"],
                      "--fit-weights-on", val["spatial"], val["motion"], "--save-weights", "W.json"])
    return (f"fusing with the default weights 1:1, though validation scores lie beside both checkpoints: fit the "
            f"weights on them with `{cmd}`, then predict with --fusion W.json")


def fuse(scores, weights=(1.0, 1.0), normalize="none"):
    """The fused (C,) scores: weighted (a S + b T) / (a + b) as fusion.py's 'weighted a:b'
    (1:1 = its 'average'), on raw or softmax-normalised scores; one stream alone as is."""
    named = {k: np.asarray(v, np.float64)[None] for k, v in scores.items()}
    if normalize == "softmax":
        named = {k: fusion.softmax(v) for k, v in named.items()}
    if len(named) == 1:
        return next(iter(named.values()))[0]
    return fusion.fuse_weighted(named["spatial"], named["motion"], *weights)[0]


def prediction_record(pred, classes, topk=5, weights=(1.0, 1.0), normalize="none"):
    """What tools.predict prints and writes as JSON for one video: the top-k classes by fused
    score, each with every stream's score, and the full score vectors."""
    fused = fuse(pred.scores, weights, normalize)
    order = np.argsort(-fused, kind="stable")[:topk]
    per_stream = {k: (fusion.softmax(np.asarray(v, np.float64)[None])[0] if normalize == "softmax" else v)
                  for k, v in pred.scores.items()}
    top = [{"rank": r + 1, "class": classes[c], "fused": float(fused[c]),
            **{k: float(v[c]) for k, v in per_stream.items()}} for r, c in enumerate(order)]
    return {"video": pred.path, "frames": pred.frames, "prediction": classes[order[0]], "top": top,
            "warnings": pred.warnings,
            "scores": {"fused": fused.tolist(), **{k: np.asarray(v).tolist() for k, v in pred.scores.items()}}}
