"""--decode gpu (dataloader/encoded.py): workers send JPEG bytes, the device decodes them.

There is no GPU here, so the device is the CPU: decode_clips runs the same code with
torchvision's CPU decoder. What is tested is that the encoded path builds ClipDataset's
clips (same frames, crops, flips, channel order) up to decoder rounding (LEVELS grey levels),
that the comparison would catch a real mistake, and the errors.
"""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from dataloader.datasets import BadFrameError, ClipDataset, collate_clips, count_frames
from dataloader.encoded import (EncodedBatch, EncodedClipDataset, check_gpu_decode, collate_encoded,
                                decode_clips, jpeg_size)
from dataloader.frame_dirs import open_layout
from dataloader.splits import load_split
from dataloader.transforms import to_network_input
from engine.streams import in_channels
from network.model import build_model, build_optimizer
from engine.data import build_data, check_decode, collate_for, make_loader
from engine.loop import LoopConfig, evaluate, to_device, train_one_epoch
from engine.options import build_parser
from engine.runtime import SINGLE_PROCESS
from engine.streams import MOTION, SPATIAL
from tiny import FAST, make_tiny_data
from tools import pack_frames

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEVELS = 2  # decoders round differently (IDCT, chroma upsampling); a real mistake moves tens of levels
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    # 64x48 frames, 3 motions (Side: horizontal flow, so a missing u inversion shows), packed too.
    root = make_tiny_data(tmp_path_factory.mktemp("encoded") / "data", seed=3, width=64, height=48, motions=3,
                          flow_texture="realistic")
    assert pack_frames.main(["--data-root", str(root), "--workers", "1"]) == 0
    return root


def datasets(root, layout, modality, train, crops=1, on_bad_frame="error", entries=None, test_frames=4):
    """(ClipDataset, EncodedClipDataset) of the same videos (split 1's training list) and options."""
    entries = entries or load_split("ucf101", str(root / "ucfTrainTestlist"), 1).train
    lay = open_layout(layout, str(root))
    counts = count_frames(entries, lay, modality)
    kw = dict(stack=3, crop_size=32, train=train, num_segments=3, test_frames=test_frames, test_crops=crops,
              seed=7, on_bad_frame=on_bad_frame)
    return (ClipDataset(entries, counts, lay, modality, **kw), EncodedClipDataset(entries, counts, lay, modality, **kw))


def items_of(ds, train, count=16):
    return [(i, 2) for i in range(count)] if train else list(range(min(count, len(ds))))


def both(root, layout, modality, train, crops=1):
    """The same items as a ClipBatch and as an EncodedBatch; and the encoded clips decoded here."""
    cv, enc = datasets(root, layout, modality, train, crops)
    items = items_of(cv, train)
    ref, batch = collate_clips([cv[i] for i in items]), collate_encoded([enc[i] for i in items])
    return ref, batch, decode_clips(batch, CPU)


def levels(a, b):
    """Largest difference in grey levels of two uint8 (or byte-scaled float) tensors."""
    return (a.double() - b.double()).abs().max().item()


def network_levels(a, b, modality):
    """Largest difference of two network inputs, in grey levels of the stored byte."""
    std = 0.226 if modality == "flow" else min((0.229, 0.224, 0.225))
    return levels(a, b) * 255 * std


# ------------------------------------------------------------ the same clips as ClipDataset
@pytest.mark.parametrize("layout", ["twostream", "packed"])
@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_training_items_match_opencv(data_root, layout, modality):
    ref, batch, clips = both(data_root, layout, modality, train=True)
    assert clips.shape == ref.clips.shape == (16, 3, 3 if modality == "rgb" else 6, 32, 32)
    assert clips.dtype == torch.uint8
    assert np.array_equal(batch.flips, ref.flips) and np.array_equal(batch.labels, ref.labels)
    assert np.array_equal(batch.indices, ref.indices) and batch.bad_frames == ref.bad_frames == 0
    assert ref.flips.any() and not ref.flips.all(), "the items must include flipped and unflipped videos"
    assert levels(clips, ref.clips) <= LEVELS
    # Not trivially equal: every crop plane varies (flow is smooth, RGB textured), and so do the samples.
    assert (ref.clips.float().std(dim=(-2, -1)) > 1).all() and ref.clips.float().std() > 5
    # After the device-side mirror and normalise (u inverted for mirrored flow): still the same.
    flips = torch.from_numpy(batch.flips)
    x, want = to_network_input(clips, flips, modality), to_network_input(ref.clips, flips, modality)
    assert network_levels(x, want, modality) <= LEVELS + 1e-6
    y, _ = to_device(batch, CPU, modality)  # the engine's own dispatch on the batch type
    assert torch.equal(y, x)


@pytest.mark.parametrize("modality, crops", [("rgb", 3), ("rgb", 10), ("flow", 3), ("flow", 10)])
def test_test_items_with_crops_match_opencv(data_root, modality, crops):
    ref, batch, clips = both(data_root, "twostream", modality, train=False, crops=crops)
    assert clips.shape == ref.clips.shape == (16, 4 * crops, 3 if modality == "rgb" else 6, 32, 32)
    assert levels(clips, ref.clips) <= LEVELS
    assert np.array_equal(batch.flips, ref.flips) and ref.flips.any() == (crops == 10)
    flips = torch.from_numpy(batch.flips)
    assert network_levels(to_network_input(clips, flips, modality), to_network_input(ref.clips, flips, modality),
                          modality) <= LEVELS + 1e-6


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_the_comparison_catches_a_wrong_order_or_a_missing_flip(data_root, modality):
    ref, batch, clips = both(data_root, "twostream", modality, train=True)
    flips = torch.from_numpy(batch.flips)
    want = to_network_input(ref.clips, flips, modality)
    wrong = {
        "channels reversed (BGR; flow v_L..u_1)": clips.flip(2),
        "positions rotated": clips.roll(1, dims=1),
        "samples shuffled": clips.roll(1, dims=0),
    }
    if modality == "flow":
        wrong["u and v swapped"] = clips.view(16, 3, 3, 2, 32, 32).flip(3).reshape(clips.shape)
    for name, bad in wrong.items():
        assert levels(bad, ref.clips) > 10 * LEVELS, name
    no_flip = to_network_input(clips, torch.zeros_like(flips), modality)
    assert network_levels(no_flip, want, modality) > 10 * LEVELS
    if modality == "flow":  # mirrored but u not inverted
        from dataloader.transforms import mirror, normalize
        assert network_levels(normalize(mirror(clips, flips), "flow"), want, modality) > 10 * LEVELS


def test_a_frame_used_twice_is_stored_once(data_root):
    _, enc = datasets(data_root, "twostream", "flow", train=False)
    item = enc[0]  # 4 test positions x stack 3 of a short video: neighbouring stacks share frames
    assert item.slots.shape == (4, 6)
    assert len(item.jpegs) == len(set(item.names)) == len(np.unique(item.slots))
    assert len(item.jpegs) < item.slots.size


# ------------------------------------------------------------ the loader and the engine
@pytest.mark.slow
@pytest.mark.parametrize("spec", [SPATIAL, MOTION])
def test_an_epoch_through_the_encoded_path_trains_as_the_opencv_one(data_root, spec, tmp_path):
    """build_data with --decode gpu, its loader through a worker process, train_one_epoch and
    evaluate with the decoder on the CPU: the same losses and scores as --decode cpu."""
    results = {}
    for decode in ("gpu", "cpu"):
        args = build_parser(spec).parse_args(["--data-root", str(data_root), *FAST, "--decode", decode]
                                             + (["--stack", "3"] if spec is MOTION else []))
        data = build_data(args, spec, SINGLE_PROCESS)
        assert isinstance(data.train, EncodedClipDataset) == (decode == "gpu")
        loader = make_loader(data.train, args.batch_size, CPU, 1, args.seed, sampler=data.train_sampler)
        torch.manual_seed(0)
        model = build_model(args.arch or "resnet18", len(data.classes), in_channels(spec, args.stack), CPU)
        optimizer = build_optimizer(model, args.lr, 0.9, 5e-4)
        loop = LoopConfig(spec.modality, workers=1, test_batch_size=4, progress=False)
        row, bad = train_one_epoch(model, loader, optimizer, CPU, 0, loop)
        result = evaluate(model, data.test, CPU, loop)
        erow, scores = result.row, result.scores
        results[decode] = (row, scores)
    (row_gpu, scores_gpu), (row_cpu, scores_cpu) = results["gpu"], results["cpu"]
    assert row_gpu["Loss"] == pytest.approx(row_cpu["Loss"], rel=1e-3)
    assert np.allclose(scores_gpu, scores_cpu, rtol=1e-3, atol=1e-3)


def test_batches_cross_from_a_worker_in_one_tensor(data_root):
    _, enc = datasets(data_root, "packed", "flow", train=False)  # test items: a Subset takes plain indices
    loader = make_loader(Subset(enc, range(6)), 3, CPU, 1, 0)
    assert collate_for(loader.dataset) is collate_encoded
    batches = list(loader)
    assert all(isinstance(b, EncodedBatch) for b in batches) and len(batches) == 2
    here = collate_encoded([enc[i] for i in range(3)])
    got = batches[0]
    assert torch.equal(got.data, here.data) and np.array_equal(got.offsets, here.offsets)
    assert [t for t in got if isinstance(t, torch.Tensor)] == [got.data]  # one tensor per batch
    assert torch.equal(decode_clips(got, CPU), decode_clips(here, CPU))


# ------------------------------------------------------------ bad frames and errors
@pytest.fixture
def damaged(data_root, tmp_path):
    """A copy of the folders whose first training video has a missing (frame index 1), a
    garbage (3) and a wrong-size (5) RGB frame. Returns (root, its entry, frame paths)."""
    import shutil
    root = tmp_path / "data"
    shutil.copytree(data_root, root, ignore=shutil.ignore_patterns("packed"))
    entry = load_split("ucf101", str(root / "ucfTrainTestlist"), 1).train[0]
    frames = sorted((root / "jpegs_256" / f"v_{entry[0]}").iterdir())
    frames[1].unlink()
    frames[3].write_bytes(b"not a jpeg" + bytes(300))
    assert cv2.imwrite(str(frames[5]), np.zeros((40, 64, 3), np.uint8))
    return root, entry, frames


def test_missing_garbage_or_wrong_size_frames_follow_on_bad_frame(damaged):
    root, entry, frames = damaged
    every = len(frames)  # test positions = frames: every frame is read
    _, enc = datasets(root, "twostream", "rgb", train=False, entries=[entry], test_frames=every)
    with pytest.raises(BadFrameError, match=frames[1].name):
        enc[0]
    paths_of = enc.layout.frame_paths(entry[0], "rgb")
    assert [enc.read_encoded(paths_of, i) is None for i in range(7)] == [False, True, False, True, False, True, False]
    cv, enc = datasets(root, "twostream", "rgb", train=False, on_bad_frame="skip", entries=[entry], test_frames=every)
    want, got = cv[0], collate_encoded([enc[0]])  # each bad frame replaced by the nearest readable one
    assert levels(decode_clips(got, CPU)[0], want[0]) <= LEVELS
    assert got.bad_frames == want[4] == 3


def test_an_undecodable_jpeg_is_named_when_decoded(damaged):
    """A frame whose header is fine but whose data do not decode (here a bogus Huffman table)
    passes the worker and stops the run when decoded, naming the file."""
    root, entry, frames = damaged
    data = bytearray(frames[7].read_bytes())
    dht = data.find(b"\xff\xc4")
    data[dht + 5:dht + 21] = bytes([255] * 16)  # code counts summing over 256
    frames[7].write_bytes(bytes(data))
    _, enc = datasets(root, "twostream", "rgb", train=False, on_bad_frame="skip", entries=[entry],
                      test_frames=len(frames))
    batch = collate_encoded([enc[0]])
    assert batch.bad_frames == 3 and str(frames[7]) in batch.names
    with pytest.raises(BadFrameError) as e:
        decode_clips(batch, CPU)
    message = str(e.value)
    assert message.startswith(str(frames[7])) and "Huffman" in message and "decode_jpeg.cpp" not in message


def test_jpeg_size_reads_the_frame_header(data_root):
    for path in [*sorted((data_root / "jpegs_256").rglob("*.jpg"))[:3], *sorted((data_root / "tvl1_flow").rglob("*.jpg"))[:3]]:
        data = path.read_bytes()
        assert jpeg_size(data) == cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2]
        assert jpeg_size(data[:20]) is None  # cut before the frame header
    assert jpeg_size(b"") is None and jpeg_size(b"not a jpeg") is None and jpeg_size(None) is None
    progressive = cv2.imencode(".jpg", np.zeros((30, 70), np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert jpeg_size(progressive) == (30, 70)


# ------------------------------------------------------------ options
@pytest.mark.slow
def test_decode_gpu_on_the_cpu_is_one_line_with_exit_2(data_root, tmp_path):
    out = tmp_path / "out"
    for script in ("spatial_cnn.py", "motion_cnn.py"):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, script), "--data-root", str(data_root),
                               "--out", str(out), "--decode", "gpu", "--device", "cpu", *FAST],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: ") and "--decode gpu" in lines[0] and "--device" in lines[0]
        assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_decode_choice_is_checked_against_the_device(monkeypatch):
    check_decode("cpu", CPU)  # the default: nothing to check
    with pytest.raises(ValueError, match="--decode gpu.*--device"):
        check_decode("gpu", CPU)
    import dataloader.encoded as encoded

    def no_gpu_decoder(*args, **kwargs):
        raise RuntimeError("Not compiled with GPU support\nmore detail")
    monkeypatch.setattr(encoded, "decode_jpeg", no_gpu_decoder)
    with pytest.raises(ValueError) as e:
        check_gpu_decode(torch.device("cuda"))
    message = str(e.value)
    assert "--decode gpu" in message and "Not compiled with GPU support" in message
    assert "torchvision" in message and "--decode cpu" in message and "\n" not in message


def test_decode_option_is_shared_and_defaults_to_cpu():
    for spec in (SPATIAL, MOTION):
        parser = build_parser(spec)
        assert parser.parse_args([]).decode == "cpu"
        action = next(a for a in parser._actions if "--decode" in a.option_strings)
        assert action.choices == ("cpu", "gpu") and "--device cuda" in action.help and "torchvision" in action.help
    with pytest.raises(SystemExit):
        build_parser(SPATIAL).parse_args(["--decode", "tpu"])
