"""Faults on real runs: signals, a full disk, bad frames, malformed lists."""
import errno
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import utils
from engine.train import main
from engine.streams import SPATIAL
from tiny import FAST as TINY
from tiny import make_tiny_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = [*TINY, "--seed", "5"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("faults") / "data", seed=4)


@pytest.fixture
def own_data(data_root, tmp_path):
    """A private copy to damage."""
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    return root


def run(root, out, *extra):
    return main(SPATIAL, ["--data-root", str(root), "--out", str(out), *FAST, *extra])


def records(out):
    return [{k: v for k, v in r.items() if "Time" not in k} for r in utils.read_csv(out / "train.csv")] + \
           [{k: v for k, v in r.items() if "Time" not in k} for r in utils.read_csv(out / "test.csv")]


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_resume_matches_an_uninterrupted_run(data_root, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert run(data_root, straight, "--epochs", "3") == 0

    cmd = [sys.executable, os.path.join(ROOT, "spatial_cnn.py"), "--data-root", str(data_root),
           "--out", str(stopped), *FAST, "--epochs", "3"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (stopped / "checkpoint.pth").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "SIGTERM" in err and "--resume" in err
    ckpt = utils.load_checkpoint(stopped / "checkpoint.pth")  # intact and loadable
    assert ckpt["epoch"] < 2
    assert not [f for f in os.listdir(stopped) if f.endswith(".tmp")]

    assert run(data_root, stopped, "--epochs", "3", "--resume", str(stopped / "checkpoint.pth")) == 0
    assert records(stopped) == records(straight)


@pytest.mark.slow
def test_full_disk_while_saving_keeps_the_previous_checkpoint(data_root, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert run(data_root, out, "--epochs", "1") == 0
    good = (out / "checkpoint.pth").read_bytes()
    csv_before = (out / "train.csv").read_bytes()

    real_save = torch.save

    def save_then_fill_disk(obj, f, *a, **k):
        real_save({"partial": torch.zeros(1000)}, f)  # some bytes reach the disk, then it is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save_then_fill_disk)
    assert run(data_root, out, "--epochs", "2", "--resume", str(out / "checkpoint.pth")) == 2
    assert "No space left" in capsys.readouterr().err
    monkeypatch.setattr(torch, "save", real_save)
    assert (out / "checkpoint.pth").read_bytes() == good
    assert utils.load_checkpoint(out / "checkpoint.pth")["epoch"] == 0
    assert (out / "train.csv").read_bytes() == csv_before  # records still match the checkpoint
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def _damage(root, video_index=0, frame=3):
    folder = root / "jpegs_256" / sorted(os.listdir(root / "jpegs_256"))[video_index]
    corrupt = folder / f"frame{frame:06d}.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:40])  # truncated JPEG
    empty = folder / f"frame{frame + 1:06d}.jpg"
    empty.write_bytes(b"")  # zero-byte file
    return corrupt, empty


def test_check_data_names_bad_frames(own_data, tmp_path, capsys):
    corrupt, empty = _damage(own_data)
    assert run(own_data, tmp_path / "out", "--check-data") == 1
    out = capsys.readouterr().out
    assert "2 unreadable" in out and str(corrupt) in out and str(empty) in out
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


@pytest.mark.slow
def test_bad_frames_stop_the_run_or_are_skipped(own_data, tmp_path, capsys):
    # Every frame of the first video is bad except the first two, so any sample hits one.
    folder = own_data / "jpegs_256" / sorted(os.listdir(own_data / "jpegs_256"))[0]
    frames = sorted(os.listdir(folder))
    for name in frames[2:]:
        (folder / name).write_bytes(b"")
    assert run(own_data, tmp_path / "a", "--epochs", "1", "--val-groups", "0") == 2
    err = capsys.readouterr().err
    assert str(folder) in err and "--on-bad-frame skip" in err

    assert run(own_data, tmp_path / "b", "--epochs", "1", "--val-groups", "0", "--on-bad-frame", "skip") == 0
    assert "replaced by their nearest readable neighbour" in capsys.readouterr().out


@pytest.mark.parametrize("line, message", [
    ("RedUp/v_RedUp_g09_c01.avi 7", "label '7'"),
    ("Purple/v_Purple_g09_c01.avi 1", "unknown class 'Purple'"),
])
def test_malformed_split_list_fails_before_training(own_data, tmp_path, capsys, line, message):
    trainlist = own_data / "ucfTrainTestlist" / "trainlist01.txt"
    trainlist.write_text(trainlist.read_text() + line + "\r\n")
    assert run(own_data, tmp_path / "out", "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert message in err and "trainlist01.txt" in err
    assert not (tmp_path / "out").exists()


def test_wrong_data_root_says_where_it_looked(tmp_path, capsys):
    assert run(tmp_path / "nowhere", tmp_path / "out", "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert "--data-root" in err and "nowhere: no such folder" in err
