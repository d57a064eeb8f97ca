"""tools.prepare_data with the torch TV-L1 backend, shards, and checks before the work:
the same layout as the OpenCV backend, flow that warps frame t+1 onto frame t as well as
OpenCV's, shards that cover every video exactly once, an impossible split or a changed split
setting refused before a single frame is written, and a dry run that writes nothing."""
import json
import os

import cv2
import numpy as np
import pytest
import torch

from dataloader.flow import dequantize_flow
from test_careless_runs import checksums
from tools import prepare_data
from tools.flow_scenes import make_layers, render

W, H, FRAMES = 96, 72, 6


def scene_video(path, seed, n=FRAMES):
    """A textured moving scene (tools/flow_scenes.py) as an MJPG video."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    layers = make_layers(W, H, np.random.default_rng(seed))
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 25, (W, H))
    for t in range(n):
        grey = np.clip(render(layers, W, H, t)[0], 0, 255).astype(np.uint8)
        writer.write(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def ucf_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes") / "UCF-101"
    for i, cls in enumerate(("Pan", "Pan", "Zoom", "Zoom")):
        scene_video(str(root / cls / f"v_{cls}_g0{i + 1}_c01.avi"), seed=10 + i)
    return root


def prepare(videos, out, *extra):
    return prepare_data.main(["--videos-dir", str(videos), "--out", str(out), "--width", str(W), "--height", str(H),
                              *extra])


def files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
                  if f != "prepare_info.json")


def read_flow(out, video, i):
    """Flow frame i (1-based) of a video, dequantised: (H, W, 2) pixels."""
    u, v = (cv2.imread(str(out / "tvl1_flow" / c / video / f"frame{i:06d}.jpg"), cv2.IMREAD_GRAYSCALE) for c in "uv")
    return np.stack([dequantize_flow(u), dequantize_flow(v)], axis=-1)


def warp_error(out, video, i):
    """Mean |grey frame i+1 warped back by flow i - grey frame i| over pixels whose source stays inside."""
    rgb = [cv2.imread(str(out / "jpegs_256" / video / f"frame{k:06d}.jpg")) for k in (i, i + 1)]
    prev, nxt = (cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.float32) for f in rgb)
    flow = read_flow(out, video, i).astype(np.float32)
    xs, ys = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    warped = cv2.remap(nxt, mx, my, cv2.INTER_LINEAR)
    inside = (mx >= 0) & (mx <= W - 1) & (my >= 0) & (my <= H - 1)
    return float(np.abs(warped - prev)[inside].mean())


@pytest.mark.slow
def test_torch_backend_writes_the_same_layout_and_flow_as_good_as_opencv(ucf_videos, tmp_path):
    cv, th = tmp_path / "opencv", tmp_path / "torch"
    assert prepare(ucf_videos, cv, "--flow-backend", "opencv", "--workers", "1") == 0
    assert prepare(ucf_videos, th, "--flow-backend", "torch", "--flow-device", "cpu", "--workers", "2",
                   "--flow-batch", "7") == 0  # 7: batches hold pairs of two videos
    assert files(cv) == files(th)
    videos = sorted(os.listdir(cv / "jpegs_256"))
    for video in videos:  # the RGB frames are decoded and written the same way
        for f in os.listdir(cv / "jpegs_256" / video):
            assert (cv / "jpegs_256" / video / f).read_bytes() == (th / "jpegs_256" / video / f).read_bytes()
    pairs = [(v, i) for v in videos for i in range(1, FRAMES)]
    err = {k: np.mean([warp_error(k, v, i) for v, i in pairs]) for k in (cv, th)}
    assert err[th] <= 1.03 * err[cv], err
    epe = np.mean([np.hypot(*(read_flow(cv, v, i) - read_flow(th, v, i)).transpose(2, 0, 1)).mean() for v, i in pairs])
    assert epe <= 0.15, epe  # the agreement the torch TV-L1 is held to, after quantisation and JPEG
    info = json.loads((th / "prepare_info.json").read_text())
    assert (info["flow_backend"], info["flow_device"], info["torch"]) == ("torch", "cpu", torch.__version__)

    # Resuming a folder made with the other backend is refused, like other setting changes.
    before = checksums(cv)
    assert prepare(ucf_videos, cv, "--flow-backend", "torch", "--flow-device", "cpu") == 2
    assert checksums(cv) == before


def test_shards_cover_every_video_exactly_once(ucf_videos, tmp_path, capsys):
    out, parts = tmp_path / "out", []
    for shard in ("1/3", "2/3", "3/3"):
        before = set(os.listdir(out / "jpegs_256")) if out.exists() else set()
        assert prepare(ucf_videos, out, "--flow", "farneback", "--workers", "1", "--shard", shard) == 0
        parts.append(set(os.listdir(out / "jpegs_256")) - before)  # what this shard prepared
    assert all(parts) and sum(len(p) for p in parts) == 4  # 2, 1, 1: none empty, none twice
    assert set().union(*parts) == {f"v_{c}_g0{i + 1}_c01" for i, c in enumerate(("Pan", "Pan", "Zoom", "Zoom"))}
    # A run of a shard again finds nothing to do, and says so once.
    capsys.readouterr()
    assert prepare(ucf_videos, out, "--flow", "farneback", "--workers", "1", "--shard", "2/3") == 0
    assert capsys.readouterr().err.count("nothing to do") == 1


def test_a_bad_shard_is_refused(ucf_videos, tmp_path, capsys):
    assert prepare(ucf_videos, tmp_path / "out", "--shard", "3/2") == 2
    assert "--shard 3/2" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_torch_on_cuda_without_a_gpu_is_one_line(ucf_videos, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert prepare(ucf_videos, tmp_path / "out", "--flow-backend", "torch", "--flow-device", "cuda") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA device" in err[0]
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- one's own videos: check first, then work
def own_videos(root, names):
    """Class folders of small generated clips; names: {class: [file names]}."""
    from own_videos import render, write_video
    for k, (cls, files) in enumerate(names.items()):
        for i, f in enumerate(files):
            write_video(str(root / cls / f), render("Red" if k % 2 else "Blue", "Up", [k, i], frames=6, width=40,
                                                    height=32))
    return root


def prepare_own(videos, out, *extra):
    return prepare_data.main(["--videos-dir", str(videos), "--out", str(out), "--dataset", "folders", "--flow",
                              "farneback", "--workers", "1", "--width", "40", "--height", "32", *extra])


def test_an_impossible_split_fails_before_any_frame_is_written(tmp_path, capsys):
    # UCF-style names: group g01 holds both of ArmWrestling's videos and one of Boxing's, so
    # one class ends up entirely on one side whichever way the groups are drawn.
    videos = own_videos(tmp_path / "videos", {"ArmWrestling": ["v_ArmWrestling_g01_c01.avi", "v_ArmWrestling_g01_c02.avi"],
                                              "Boxing": ["v_Boxing_g01_c01.avi", "v_Boxing_g02_c01.avi"]})
    assert prepare_own(videos, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gets no" in err[0] and "--group-regex" in err[0]
    assert not (tmp_path / "out").exists()  # not a frame, not a folder
    assert prepare_own(videos, tmp_path / "out", "--group-regex", "") == 0  # the fix it names works


def test_dry_run_shows_the_plan_and_an_estimate_and_writes_nothing(tmp_path, capsys):
    videos = own_videos(tmp_path / "videos", {"Jump": ["a.mp4", "b.mp4", "c.mp4"], "Run": ["a.mp4", "b.mp4", "c.mp4"]})
    assert prepare_own(videos, tmp_path / "out", "--dry-run") == 0
    out = capsys.readouterr()
    assert "split plan: 2 classes, 3-3 videos a class" in out.out
    assert "split 1: 2 train / 2 validation (auto) / 2 test videos" in out.out
    assert "estimated time: ~" in out.out and "pairs/s measured" in out.out
    assert "6 videos: 0 already finished, 6 to prepare, ~30 frame pairs" in out.err
    assert not (tmp_path / "out").exists()


def test_progress_to_a_log_is_lines_of_frame_pairs(tmp_path, capsys):
    videos = own_videos(tmp_path / "videos", {"Jump": ["a.mp4", "b.mp4"], "Run": ["a.mp4", "b.mp4"]})
    assert prepare_own(videos, tmp_path / "out") == 0
    err = capsys.readouterr().err  # not a terminal here: whole lines, no carriage returns
    assert "\r" not in err
    assert any(line.startswith("frame pairs: 100%") and "20/20" in line and "videos=4/4" in line
               for line in err.splitlines()), err


def test_a_changed_split_setting_is_refused_and_redraw_splits_allows_it(tmp_path, capsys):
    videos = own_videos(tmp_path / "videos", {"Jump": [f"{c}.mp4" for c in "abcd"], "Run": [f"{c}.mp4" for c in "abcd"]})
    out = tmp_path / "out"
    assert prepare_own(videos, out) == 0
    lists = out / "ucfTrainTestlist"
    before = checksums(lists)
    for change in (["--seed", "3"], ["--test-fraction", "0.5"], ["--limit", "6"], ["--videos", "Jump_a", "Run_a",
                                                                                   "Jump_b", "Run_b"]):
        capsys.readouterr()
        assert prepare_own(videos, out, *change) == 2, change
        err = capsys.readouterr().err
        assert "--redraw-splits" in err and change[0].lstrip("-").replace("-", "_").split("_")[0] in err.replace(
            "selection", "limit videos"), err
        assert checksums(lists) == before
    assert prepare_own(videos, out, "--seed", "3", "--redraw-splits") == 0
    assert checksums(lists) != before


@pytest.mark.parametrize("case", ["limit 0", "one class", "videos-dir is a file"])
def test_careless_prepare_options_are_one_line(tmp_path, capsys, case):
    videos = own_videos(tmp_path / "videos", {"Jump": ["a.mp4", "b.mp4"]} if case == "one class"
                        else {"Jump": ["a.mp4", "b.mp4"], "Run": ["a.mp4", "b.mp4"]})
    extra = {"limit 0": ["--limit", "0"], "one class": [], "videos-dir is a file": []}[case]
    if case == "videos-dir is a file":
        videos = videos / "Jump" / "a.mp4"
    with pytest.raises(SystemExit) if case == "limit 0" else _nothing():
        assert prepare_own(videos, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert {"limit 0": "--limit", "one class": "at least 2", "videos-dir is a file": "is a file"}[case] in err[0]
    assert not (tmp_path / "out").exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_videos_takes_the_name_a_failure_line_prints(tmp_path, capsys):
    videos = own_videos(tmp_path / "videos", {"Tai Chi": ["clip 1.v2.mp4", "clip 2.mp4"], "Run": ["a.mp4", "b.mp4"]})
    # as failure lines name them (frame folders), as the lists do, as the files are called
    assert prepare_own(videos, tmp_path / "out", "--videos", "v_Tai_Chi_clip_1.v2", "Tai_Chi_clip_2", "a.mp4",
                       "V_RUN_B") == 0
    assert sorted(os.listdir(tmp_path / "out" / "jpegs_256")) == ["v_Run_a", "v_Run_b", "v_Tai_Chi_clip_1.v2",
                                                                   "v_Tai_Chi_clip_2"]


def test_with_shards_the_split_lists_are_written_once_every_video_is_ready(tmp_path, capsys):
    videos = own_videos(tmp_path / "videos", {"Jump": ["a.mp4", "b.mp4", "c.mp4"], "Run": ["a.mp4", "b.mp4"]})
    out = tmp_path / "out"
    assert prepare_own(videos, out, "--shard", "1/2") == 0
    assert "split lists not written yet: 2 videos of other shards" in capsys.readouterr().err
    assert not (out / "ucfTrainTestlist").exists()
    assert prepare_own(videos, out, "--shard", "2/2") == 0
    assert "split lists: 2 classes" in capsys.readouterr().out
    names = (out / "ucfTrainTestlist" / "trainlist01.txt").read_text() + (out / "ucfTrainTestlist" / "testlist01.txt").read_text()
    assert len(names.splitlines()) == 5


def test_torch_backend_reports_and_skips_bad_videos(tmp_path, capsys):
    videos = tmp_path / "UCF-101"
    (videos / "Bad").mkdir(parents=True)
    (videos / "Bad" / "v_Bad_g01_c01.avi").write_bytes(np.random.default_rng(0).bytes(4096))  # not a video
    scene_video(str(videos / "Bad" / "v_Bad_g02_c01.avi"), seed=1, n=1)                         # 1 frame: no flow
    scene_video(str(videos / "Pan" / "v_Pan_g01_c01.avi"), seed=2, n=4)
    out = tmp_path / "out"
    assert prepare(videos, out, "--flow-backend", "torch", "--flow-device", "cpu", "--workers", "2") == 1
    text = capsys.readouterr()
    assert "done: 1, skipped (already finished): 0, failed: 2" in text.out
    assert "v_Bad_g02_c01: ValueError: only 1 frame(s) could be read (need 2 for flow)" in text.out
    assert os.listdir(out / "jpegs_256") == ["v_Pan_g01_c01"] and len(os.listdir(out / "tvl1_flow" / "u" / "v_Pan_g01_c01")) == 3
    assert not [f for d, ds, fs in os.walk(out) for f in ds + fs if f.startswith(".tmp-")]
