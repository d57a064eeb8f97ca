"""Tests of tools/prepare_data.py on tiny synthetic videos encoded like UCF101 (XVID .avi)."""
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from dataloader.catalog import get_dataset
from dataloader.flow import quantize_flow
from tools import prepare_data as pd
from tools.prepare_plan import list_sources, select_sources
from tools.prepare_videos import final_dirs, is_finished, tmp_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W, H = 64, 48                  # size of the encoded videos and of the extracted frames
MOVING = "v_Push_g01_c01"      # bright square moving right SPEED px per frame
SPEED = 3
SQUARE = (18, 30, 12)          # top row, bottom row, side (px)


def write_video(path, frames, fps=25):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"XVID"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


def background(seed, w=W, h=H):
    """Static dark texture, so only the square moves and flow elsewhere is ~0."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 80, (h, w, 3), dtype=np.uint8), (0, 0), 1)


def moving_square_frames(n=8):
    """A bright square moving right SPEED px per frame. Its inside is a coarse bright
    checkerboard-like texture: a flat square gives TV-L1 nothing to match inside it (on such
    tiny frames the flow there comes out underestimated, ~1 px instead of 3)."""
    top, bottom, side = SQUARE
    rng = np.random.default_rng(5)
    patch = np.kron(rng.integers(170, 256, (side // 3, side // 3, 1)), np.ones((3, 3, 3))).astype(np.uint8)
    frames = []
    for i in range(n):
        f = background(1)
        x = 10 + SPEED * i
        f[top:bottom, x:x + side] = patch
        frames.append(f)
    return frames


def noise_frames(n, seed, w=W, h=H):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    """UCF-101-like tree: Push/v_Push_g01_c01 (moving square, 8 frames), Pull/... (6 and 7 frames)."""
    root = str(tmp_path_factory.mktemp("UCF-101"))
    write_video(os.path.join(root, "Push", MOVING + ".avi"), moving_square_frames(8))
    write_video(os.path.join(root, "Pull", "v_Pull_g01_c01.avi"), noise_frames(6, 2))
    write_video(os.path.join(root, "Pull", "v_Pull_g02_c01.avi"), noise_frames(7, 3))
    return root


COUNTS = {MOVING: 8, "v_Pull_g01_c01": 6, "v_Pull_g02_c01": 7}


def frames_in(folder):
    return sorted(os.listdir(folder))


def check_video(out, name, n, size=(W, H)):
    rgb = os.path.join(out, "jpegs_256", name)
    u = os.path.join(out, "tvl1_flow", "u", name)
    v = os.path.join(out, "tvl1_flow", "v", name)
    assert frames_in(rgb) == [f"frame{i:06d}.jpg" for i in range(1, n + 1)]
    assert frames_in(u) == frames_in(v) == [f"frame{i:06d}.jpg" for i in range(1, n)]
    img = cv2.imread(os.path.join(rgb, "frame000001.jpg"), cv2.IMREAD_UNCHANGED)
    assert img.shape == (size[1], size[0], 3)
    for d in (u, v):
        flow = cv2.imread(os.path.join(d, "frame000001.jpg"), cv2.IMREAD_UNCHANGED)
        assert flow.shape == (size[1], size[0]) and flow.dtype == np.uint8  # grayscale


def check_moving_right(out):
    """u clearly above 128 on the square, ~128 on the static background; v ~128."""
    top, bottom, side = SQUARE
    expected = 255 * (SPEED + 20) / 40           # 146.6 for 3 px/frame
    for k in (1, 4, 7):                          # flow frame k: frames k -> k+1
        u = cv2.imread(os.path.join(out, "tvl1_flow/u", MOVING, f"frame{k:06d}.jpg"), 0).astype(float)
        v = cv2.imread(os.path.join(out, "tvl1_flow/v", MOVING, f"frame{k:06d}.jpg"), 0).astype(float)
        x0 = 10 + SPEED * (k - 1)                # the square in frame k, less a 2 px margin
        sq = (slice(top + 2, bottom - 2), slice(x0 + 2, x0 + side - 2))
        assert np.median(u[sq]) > 138, np.median(u[sq])
        assert abs(np.median(u[sq]) - expected) <= 4
        assert abs(np.median(v[sq]) - 128) <= 2
        bg = (slice(bottom + 6, None), slice(None))  # rows below the square
        assert abs(np.median(u[bg]) - 128) <= 2 and abs(np.median(v[bg]) - 128) <= 2


def run_main(videos_dir, out, *extra):
    return pd.main(["--videos-dir", str(videos_dir), "--out", str(out),
                    "--width", str(W), "--height", str(H), *extra])


def mtimes(out, names):
    result = {}
    for name in names:
        for d in final_dirs(str(out), name):
            for f in os.listdir(d):
                result[os.path.join(d, f)] = os.stat(os.path.join(d, f)).st_mtime_ns
    return result


def leftover_tmps(out):
    return [os.path.join(r, d) for r, ds, _ in os.walk(out) for d in ds if d.startswith(".tmp-")]


# ------------------------------------------------------------------ pure parts

def test_quantize_flow_by_hand():
    f = np.array([-30.0, -20, -10, 0, 0.1, 10, 20, 25, 1e9], dtype=np.float32)
    # 255 * (f + 20) / 40: -20 -> 0, -10 -> 63.75 -> 64, 0 -> 127.5 -> 128 (np.round rounds
    # halves to even, and 128 is even), 0.1 -> 128.1 -> 128, 10 -> 191.25 -> 191, 20 -> 255;
    # beyond +-20 clipped.
    q = quantize_flow(f)
    assert q.dtype == np.uint8
    assert q.tolist() == [0, 0, 64, 128, 128, 191, 255, 255, 255]
    assert quantize_flow(np.array([5.0]), bound=10).tolist() == [191]  # 255 * 15 / 20 = 191.25


def test_list_and_select_videos(ucf):
    sources = list_sources(ucf, get_dataset("ucf101"))
    names = [os.path.basename(s.path) for s in sources]
    assert names == ["v_Pull_g01_c01.avi", "v_Pull_g02_c01.avi", MOVING + ".avi"]  # class, then name
    assert [s.folder for s in sources] == ["v_Pull_g01_c01", "v_Pull_g02_c01", MOVING]
    assert [s.name for s in sources] == ["Pull_g01_c01", "Pull_g02_c01", MOVING[2:]]
    assert select_sources(sources, limit=2) == sources[:2]
    picked = select_sources(sources, names=["Pull_g02_c01", "v_push_g01_c01.avi"])
    assert [os.path.basename(s.path) for s in picked] == ["v_Pull_g02_c01.avi", MOVING + ".avi"]
    assert select_sources(sources, names=["V_PULL_G01_C01"]) == sources[:1]  # the folder name, any case
    with pytest.raises(ValueError, match="Nope_g01_c01"):
        select_sources(sources, names=["Nope_g01_c01"])


def test_help_names_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        pd.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--videos-dir", "--out", "--dataset", "--flow", "--workers", "--limit", "--videos",
                "--width", "--height"):
        assert opt in text


# ------------------------------------------------------------------ whole runs

def test_tvl1_moving_square(ucf, tmp_path):
    out = tmp_path / "out"
    assert run_main(ucf, out, "--flow", "tvl1", "--workers", "1", "--videos", "Push_g01_c01") == 0
    check_video(str(out), MOVING, 8)
    check_moving_right(str(out))
    assert os.listdir(out / "jpegs_256") == [MOVING]            # --videos: only that one
    info = json.loads((out / "prepare_info.json").read_text())
    assert info["flow"] == "tvl1" and info["bound"] == 20 and (info["width"], info["height"]) == (W, H)


def test_farneback_all_videos_with_pool(ucf, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_main(ucf, out, "--flow", "farneback", "--workers", "2") == 0
    for name, n in COUNTS.items():
        check_video(str(out), name, n)
    check_moving_right(str(out))
    assert json.loads((out / "prepare_info.json").read_text())["flow"] == "farneback"
    assert sorted(os.listdir(out / "tvl1_flow")) == ["u", "v"]  # folder name kept for readers
    assert leftover_tmps(out) == []
    assert "done: 3, skipped (already finished): 0, failed: 0" in capsys.readouterr().out

    # Other settings into the same --out are refused rather than mixed.
    assert run_main(ucf, out, "--flow", "tvl1", "--workers", "1") == 2


def test_resize_and_limit(ucf, tmp_path):
    out = tmp_path / "out"
    assert pd.main(["--videos-dir", ucf, "--out", str(out), "--width", "80", "--height", "60",
                    "--flow", "farneback", "--workers", "1", "--limit", "1"]) == 0
    assert os.listdir(out / "jpegs_256") == ["v_Pull_g01_c01"]
    check_video(str(out), "v_Pull_g01_c01", 6, size=(80, 60))


def test_resume_after_simulated_interruption(ucf, tmp_path, capsys):
    """Deterministic leftovers of an interrupted run, made by hand:
    - Pull_g01: finished (must be skipped, files untouched);
    - Pull_g02: killed between renames (u, v final, RGB still in its temp folder);
    - Push:     killed while writing (only temp folders with a partial frame)."""
    out = tmp_path / "out"
    assert run_main(ucf, out, "--flow", "farneback", "--workers", "1") == 0
    capsys.readouterr()
    before = mtimes(out, ["v_Pull_g01_c01"])
    rgb_g02 = out / "jpegs_256" / "v_Pull_g02_c01"
    rgb_g02.rename(out / "jpegs_256" / ".tmp-v_Pull_g02_c01")
    for final in final_dirs(str(out), MOVING):
        os.rename(final, tmp_dir(final))
    (out / "jpegs_256" / f".tmp-{MOVING}" / "frame000003.jpg").write_bytes(b"\xff\xd8 half a jpeg")
    assert not is_finished(str(out), "v_Pull_g02_c01") and not is_finished(str(out), MOVING)
    time.sleep(0.01)  # so a rewrite would show in mtimes even on coarse clocks

    assert run_main(ucf, out, "--flow", "farneback", "--workers", "1") == 0
    assert "done: 2, skipped (already finished): 1, failed: 0" in capsys.readouterr().out
    assert mtimes(out, ["v_Pull_g01_c01"]) == before
    for name, n in COUNTS.items():
        check_video(str(out), name, n)
    assert leftover_tmps(out) == []


@pytest.mark.slow
def test_cli_killed_then_resumed(tmp_path):
    """A real interruption: SIGKILL the CLI while it writes the second video, then rerun."""
    videos = tmp_path / "UCF-101"
    names = [f"v_Walk_g0{i}_c01" for i in range(1, 5)]
    for i, name in enumerate(names):
        write_video(str(videos / "Walk" / f"{name}.avi"), noise_frames(20, 10 + i, w=160, h=120))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tools.prepare_data", "--videos-dir", str(videos), "--out", str(out),
           "--width", "160", "--height", "120", "--flow", "farneback", "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second_tmp = out / "jpegs_256" / f".tmp-{names[1]}"
    deadline = time.time() + 60
    try:
        # Kill once the first video is finished and the second has a few frames written.
        while not (is_finished(str(out), names[0]) and second_tmp.is_dir()
                   and len(os.listdir(second_tmp)) >= 3):
            assert proc.poll() is None, "finished before it could be interrupted"
            assert time.time() < deadline
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = [n for n in names if is_finished(str(out), n)]
    assert finished and finished == names[:len(finished)] and len(finished) < len(names)
    for name in names[len(finished):]:                         # half-written: not final
        assert not os.path.exists(out / "jpegs_256" / name)
    if names[1] not in finished:                               # (it is, unless the kill was late)
        assert second_tmp.is_dir()                             # its RGB is renamed last
    before = mtimes(out, finished)

    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (f"done: {len(names) - len(finished)}, skipped (already finished): {len(finished)}, failed: 0"
            in res.stdout)
    assert mtimes(out, finished) == before
    for name in names:
        check_video(str(out), name, 20, size=(160, 120))
    assert leftover_tmps(out) == []


def test_corrupt_videos_are_reported_and_skipped(ucf, tmp_path, capsys):
    videos = tmp_path / "UCF-101"
    bad = videos / "Bad" / "v_Bad_g01_c01.avi"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(np.random.default_rng(0).bytes(4096))                    # not a video
    write_video(str(videos / "Bad" / "v_Bad_g02_c01.avi"), noise_frames(1, 5))  # 1 frame: no flow
    write_video(str(videos / "Pull" / "v_Pull_g01_c01.avi"), noise_frames(6, 2))
    out = tmp_path / "out"
    assert run_main(videos, out, "--flow", "farneback", "--workers", "1") == 1
    text = capsys.readouterr().out
    assert "done: 1, skipped (already finished): 0, failed: 2" in text
    assert "v_Bad_g01_c01" in text and "v_Bad_g02_c01" in text
    check_video(str(out), "v_Pull_g01_c01", 6)
    assert os.listdir(out / "jpegs_256") == ["v_Pull_g01_c01"]  # nothing left of the bad ones
    assert leftover_tmps(out) == []


def test_hmdb51_layout(tmp_path):
    videos = tmp_path / "hmdb51"
    name = "April_09_brush_hair_u_nm_np1_ba_goo_0"
    write_video(str(videos / "brush_hair" / f"{name}.avi"), noise_frames(5, 7))
    out = tmp_path / "out"
    assert run_main(videos, out, "--dataset", "hmdb51", "--flow", "farneback", "--workers", "1") == 0
    check_video(str(out), name, 5)
    assert json.loads((out / "prepare_info.json").read_text())["dataset"] == "hmdb51"
