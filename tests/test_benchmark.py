"""Tests of tools/benchmark.py: it runs in CI size and reports every figure, and its
classic baseline feeds the network the same tensors as the project's pipeline."""
import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from dataloader.datasets import ClipDataset, collate_clips, count_frames
from engine.loop import to_device
from dataloader.frame_dirs import open_layout
from dataloader.splits import load_split
from dataloader.transforms import FLOW_STD, RGB_STD, mirror, normalize
from tools import bench_classic, bench_loader, benchmark
from dataloader.synthetic import generate

# The two paths decode the same JPEGs with different libraries (OpenCV vs Pillow). Both
# bundle libjpeg-turbo here and agree exactly, but other builds (libjpeg 9, other IDCT or
# chroma-upsampling choices) may differ by a grey level or two. The tolerance is 3 levels of
# the stored byte, in network units (after / 255 and / std): far below what a real mistake
# makes (a forgotten u inversion moves moving pixels by ~60 levels, a rotated flow stack or
# BGR order by tens of levels), as the sabotage checks below show.
LEVELS = 3
TOL = {"rgb": LEVELS / 255 / min(RGB_STD), "flow": LEVELS / 255 / FLOW_STD}

CI = ["--synthetic", "--frame-width", "64", "--frame-height", "48", "--crop-size", "32",
      "--synthetic-videos", "3", "--synthetic-frames", "8", "12", "--batch-size", "2", "--num-segments", "2",
      "--stack", "3", "--batches", "2", "--warmup", "1", "--step-batches", "1", "--train-batches", "1",
      "--eval-videos", "2", "--test-batch-size", "2", "--test-frames", "2", "--device", "cpu", "--threads", "1"]

KEYS = ["pipeline_samples_per_s", "classic_samples_per_s", "speedup", "step_samples_per_s",
        "train_samples_per_s", "data_wait_fraction", "eval_videos_per_s", "projected_epoch_s",
        "projected_test_s", "pipeline_uint8_samples_per_s", "decode_frames_per_s",
        "loader_samples_per_s_per_worker", "decode_efficiency", "target_samples_per_s"]
ROWS = ["data pipeline", "loader only", "classic baseline", "speedup", "bare JPEG decode", "loader per worker",
        "decode efficiency", "workers to feed", "model step", "end-to-end training",
        "evaluation", "train epoch", "test pass"]


@pytest.mark.slow
@pytest.mark.parametrize("stream, workers, target, layout", [("motion", "1", None, "auto"), ("spatial", "0", 500.0, "auto"),
                                                             ("spatial", "1", None, "packed")])
def test_ci_sized_run_reports_every_figure(stream, workers, target, layout, tmp_path, capsys):
    out = tmp_path / "bench.json"
    extra = (["--target-samples-per-s", str(target)] if target else []) + ["--layout", layout]
    assert benchmark.main(CI + ["--stream", stream, "--workers", workers, "--json", str(out)] + extra) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])  # the JSON line comes last
    assert json.loads(out.read_text()) == result
    for key in KEYS:
        assert isinstance(result[key], float) and math.isfinite(result[key]), key
        if key != "data_wait_fraction":
            assert result[key] > 0, key
    assert 0 <= result["data_wait_fraction"] <= 1
    assert result["speedup"] == pytest.approx(result["pipeline_samples_per_s"] / result["classic_samples_per_s"])
    assert result["projected_epoch_s"] == pytest.approx(9537 / result["train_samples_per_s"])
    assert result["projected_test_s"] == pytest.approx(3783 / result["eval_videos_per_s"])
    assert (result["device"], result["stream"], result["workers"], result["batch_size"]) == \
        ("cpu", stream, int(workers), 2)
    assert (result["crop_size"], result["frame_size"]) == (32, "64x48")
    assert result["layout"] == ("packed" if layout == "packed" else "twostream")
    # The loader against the bare decode of the same frames, and the workers it needs.
    nominal = 2 if stream == "spatial" else 2 * 2 * 3  # K=2 x (1 | 2L, L=3)
    assert result["frames_per_sample_nominal"] == nominal
    assert 0.5 * nominal <= result["frames_per_sample"] <= nominal  # short videos share frames between stacks
    per_worker = result["pipeline_uint8_samples_per_s"] / max(1, int(workers))
    assert result["loader_samples_per_s_per_worker"] == pytest.approx(per_worker)
    assert 0 < result["decode_efficiency"] < 1.5
    assert result["decode_efficiency"] == pytest.approx(per_worker * result["frames_per_sample"]
                                                        / result["decode_frames_per_s"])
    assert result["target_samples_per_s"] == pytest.approx(target or result["step_samples_per_s"])
    assert result["workers_to_feed"] == math.ceil(result["target_samples_per_s"] / per_worker) >= 1
    assert result["target_given"] is (target is not None)
    table = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| measurement")]
    assert len(table) == len(ROWS)
    for row, word in zip(table, ROWS):
        assert word in row


def test_every_option_has_help():
    for action in benchmark.build_parser()._actions:
        assert action.help, action.option_strings


def test_decode_gpu_needs_cuda(capsys):
    assert benchmark.main(CI + ["--decode", "gpu"]) == 2  # CI runs on --device cpu; refused before any data
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--decode gpu" in err and "--device" in err


@pytest.mark.slow
def test_the_decode_gpu_path_runs_with_the_cpu_decoder(tmp_path, capsys, monkeypatch):
    """No GPU here: the --decode gpu measurements run with torchvision's CPU decoder."""
    monkeypatch.setattr(benchmark, "check_decode", lambda choice, device: None)
    assert benchmark.main(CI + ["--stream", "motion", "--workers", "1", "--decode", "gpu"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["decode"] == "gpu" and result["gpu_decode_frames_per_s"] > 0
    for key in KEYS:
        assert math.isfinite(result[key]), key


def test_bad_options_are_refused(capsys):
    assert benchmark.main(["--batches", "0"]) == 2
    assert "--batches" in capsys.readouterr().err


# ------------------------------------------------------------ pipeline == classic baseline
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench") / "data"
    # motions=3 adds Side (horizontal motion): its u values are far from 127.5, so a
    # forgotten u inversion shows.
    generate(root, appearances=3, motions=3, videos_per_class=2, width=64, height=48,
             min_frames=8, max_frames=14, seed=2, verbose=False)
    split = load_split("ucf101", str(root / "ucfTrainTestlist"), 1)
    return split.train, open_layout("auto", str(root))


def both_paths(data, modality, stack=4, crop=32, segments=3, seed=5, count=12):
    """Network input of the same items through the project's pipeline (ClipDataset, collate_clips,
    engine.loop.to_device) and through the classic baseline. Also returns the uint8 batch."""
    entries, layout = data
    counts = count_frames(entries, layout, modality)
    ours = ClipDataset(entries, counts, layout, modality, stack=stack, crop_size=crop, train=True,
                       num_segments=segments, seed=seed)
    old = bench_classic.ClassicClipDataset(entries, counts, layout, modality, frame_size=ours.frame_size,
                                       stack=stack, crop_size=crop, num_segments=segments, seed=seed)
    items = bench_loader.training_items(len(ours), seed, count)
    batch = collate_clips([ours[i] for i in items])
    x, label = to_device(batch, torch.device("cpu"), modality)
    classic = default_collate([old[i] for i in items])
    assert torch.equal(label, classic[1]) and np.array_equal(batch.indices, classic[2].numpy())
    assert batch.flips.any() and not batch.flips.all(), "the items must include flipped and unflipped videos"
    return x, classic[0], batch, old


def max_diff(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
    return (a - b).abs().max().item()


def test_rgb_batches_match_the_classic_baseline(data):
    x, classic, batch, _ = both_paths(data, "rgb")
    assert x.shape == (12, 3, 3, 32, 32)
    assert max_diff(x, classic) <= TOL["rgb"]
    assert (x - classic).abs().mean().item() <= TOL["rgb"] / LEVELS / 2  # at most half a level on average
    # The comparison would catch: BGR order, a missing flip, a missing normalisation.
    assert max_diff(x.flip(2), classic) > 5 * TOL["rgb"]
    assert max_diff(normalize(batch.clips, "rgb"), classic) > 5 * TOL["rgb"]
    assert max_diff(batch.clips.float() / 255, classic) > 5 * TOL["rgb"]


def test_flow_batches_match_the_classic_baseline(data, monkeypatch):
    x, classic, batch, old = both_paths(data, "flow")
    assert x.shape == (12, 3, 8, 32, 32)  # stack 4: u1 v1 u2 v2 u3 v3 u4 v4
    assert max_diff(x, classic) <= TOL["flow"]
    assert (x - classic).abs().mean().item() <= TOL["flow"] / LEVELS / 2

    # The comparison would catch a flip that forgets to invert u, in either path:
    clip, flip = batch.clips, torch.from_numpy(batch.flips)
    no_inversion = normalize(mirror(clip, flip), "flow")  # mirror only, u not inverted
    assert max_diff(no_inversion, classic) > 10 * TOL["flow"]
    monkeypatch.setattr(old, "INVERT_U", False)
    items = bench_loader.training_items(len(old), 5, 12)
    classic_wrong = default_collate([old[i] for i in items])[0]
    assert max_diff(x, classic_wrong) > 10 * TOL["flow"]
    # ... or another channel order: the original scripts' rotated pairs (first pair last), u/v swapped.
    assert max_diff(x.roll(-2, dims=2), classic) > 5 * TOL["flow"]
    swapped = x.view(12, 3, 4, 2, 32, 32).flip(3).reshape(x.shape)
    assert max_diff(swapped, classic) > 5 * TOL["flow"]


@pytest.mark.parametrize("modality, train", [("rgb", True), ("flow", True), ("flow", False)])
def test_item_frames_are_the_frames_an_item_decodes(data, modality, train, monkeypatch):
    """The benchmark's bare decode rate is measured on ClipDataset.item_frames: exactly the
    frames the loader decodes for those items (recorded here from the dataset's reads)."""
    import dataloader.datasets as datasets
    entries, layout = data
    counts = count_frames(entries, layout, modality)
    ds = ClipDataset(entries, counts, layout, modality, stack=4, crop_size=32, train=train, num_segments=3,
                     test_frames=5, seed=5)
    read, real = [], datasets.read_frame
    monkeypatch.setattr(datasets, "read_frame", lambda path, color: read.append(path) or real(path, color))
    items = bench_loader.training_items(len(ds), 5, 6) if train else range(4)
    for item in items:
        read.clear()
        ds[item]
        listed = [f for pair in ds.item_frames(item) for f in (pair if isinstance(pair, tuple) else (pair,))]
        assert sorted(listed) == sorted(read) and len(set(listed)) == len(listed)


def test_the_summary_checks_the_targets(tmp_path):
    from tools import bench_summary
    base = {"pipeline_uint8_samples_per_s": 900.0, "decode_efficiency": 0.5, "step_samples_per_s": 400.0,
            "train_samples_per_s": 380.0, "eval_videos_per_s": 40.0}
    fast = base | {"stream": "spatial", "decode": "gpu", "gpu_decode_frames_per_s": 5000.0, "data_wait_fraction": 0.02,
                   "projected_epoch_s": 50.0, "projected_test_s": 100.0}
    slow = base | {"stream": "motion", "decode": "cpu", "gpu_decode_frames_per_s": None, "data_wait_fraction": 0.4,
                   "projected_epoch_s": 150.0, "projected_test_s": 130.0}
    for name, r in (("fast", fast), ("slow", slow)):
        (tmp_path / f"{name}.json").write_text(json.dumps(r) + "\n")
    out = tmp_path / "summary.md"
    files = [str(tmp_path / n) for n in ("fast.json", "slow.json", "absent.json")]
    assert bench_summary.main(files + ["--out", str(out)]) == 0
    rows = out.read_text().splitlines()[2:]
    assert len(rows) == 3
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    assert cells[0][1:3] == ["spatial", "gpu"] and cells[0][5] == "5000" and cells[0][-3:] == ["yes", "yes (<= 1 min)", "yes"]
    assert cells[1][5] == "-" and cells[1][-3:] == ["**no**", "**no** (<= 2 min)", "**no**"]  # 2.5 min > 2, 2.17 > 2
    assert "no result" in rows[2]
