"""Bad input as a careless user types it (issue 15): every case ends with a non-zero exit and
one line naming the option or file (or, for a warning, exit 0 and the warning), never a
traceback, and never changes what earlier runs wrote (checksums before and after)."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fusion
import utils
from engine.streams import MOTION, SPATIAL
from engine.train import main
from tiny import FAST, make_tiny_data
from tools import benchmark, pack_frames, prepare_data, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def checksums(*folders):
    """{path: sha256} of every file under the folders (and files) given."""
    sums = {}
    for top in map(str, folders):
        paths = [top] if os.path.isfile(top) else [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs]
        for p in paths:
            with open(p, "rb") as f:
                sums[p] = hashlib.sha256(f.read()).hexdigest()
    return sums


def error_lines(err):
    """The lines of stderr that are not progress bars, nor the training's warnings about the
    tiny data sets these tests use (a small validation set): those come before the error."""
    return [line for line in err.replace("\r", "\n").splitlines()
            if line.strip() and "%|" not in line and not line.startswith("==> warning: the validation set is small")]


def assert_one_line(err, *names):
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert str(name) in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("bad") / "data", seed=4)


@pytest.fixture(scope="module")
def finished(data_root, tmp_path_factory):
    """A finished one-epoch spatial run; every test checks that it is left unchanged."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert stream(data_root, out, "--epochs", "1") == 0
    return out


@pytest.fixture
def untouched(data_root, finished):
    """Fails the test if the data set or the finished run changed."""
    before = checksums(data_root, finished)
    yield
    assert checksums(data_root, finished) == before, "an earlier output changed"


def stream(data_root, out, *extra, spec=SPATIAL):
    return main(spec, ["--data-root", str(data_root), "--out", str(out), *FAST, *extra])


# ---------------------------------------------------------------- options, checked by argparse
@pytest.mark.parametrize("spec, option, value", [
    (SPATIAL, "--lr", "-0.1"),
    (SPATIAL, "--lr", "0"),
    (SPATIAL, "--lr", "nan"),
    (SPATIAL, "--dropout", "1.5"),
    (SPATIAL, "--workers", "-1"),
    (SPATIAL, "--lr-factor", "2"),
    (SPATIAL, "--val-groups", "-1"),
    (SPATIAL, "--batch-size", "0"),
    (SPATIAL, "--epochs", "0"),
    (SPATIAL, "--seed", "-1"),
    (SPATIAL, "--test-batch-size", "0"),
    (SPATIAL, "--dist-timeout", "0"),
    (MOTION, "--stack", "0"),
], ids=lambda v: v.name if hasattr(v, "name") else v)
def test_bad_option_values_are_refused_naming_the_flag(data_root, tmp_path, capsys, untouched, spec, option, value):
    out = tmp_path / "out"
    assert stream(data_root, out, "--epochs", "1", option, value, spec=spec) == 2
    assert_one_line(capsys.readouterr().err, f"argument {option}", value)
    assert not out.exists()


def test_negative_start_epoch_is_refused_before_anything_is_written(data_root, finished, capsys, untouched):
    assert stream(data_root, finished, "--resume", str(finished / "checkpoint.pth"), "--start-epoch", "-5") == 2
    assert_one_line(capsys.readouterr().err, "--start-epoch", "-5")


def test_start_epoch_past_epochs_without_resume_is_refused(data_root, tmp_path, capsys):
    assert stream(data_root, tmp_path / "out", "--epochs", "2", "--start-epoch", "3") == 2
    assert_one_line(capsys.readouterr().err, "--start-epoch 3", "--epochs 2")
    assert not (tmp_path / "out").exists()


def test_benchmark_refuses_zero_batches(capsys):
    assert benchmark.main(["--batches", "0"]) == 2
    assert_one_line(capsys.readouterr().err, "--batches")


# ---------------------------------------------------------------- paths
@pytest.mark.parametrize("case", ["out-is-a-file", "resume-a-folder", "resume-missing", "resume-text", "resume-empty"])
def test_bad_paths_say_what_the_path_is_and_what_was_expected(data_root, finished, tmp_path, capsys, untouched, case):
    text, empty = tmp_path / "notes.txt", tmp_path / "empty.pth"
    text.write_text("hello\n")
    empty.write_bytes(b"")
    out, extra = tmp_path / "out", []
    if case == "out-is-a-file":
        out = text
        expect = [text, "is a file", "folder"]
    elif case == "resume-a-folder":
        extra, expect = ["--resume", str(finished)], [finished, "is a folder", finished / "checkpoint.pth"]
    elif case == "resume-missing":
        extra, expect = ["--resume", str(tmp_path / "nope.pth")], ["nope.pth", "no such file", "checkpoint"]
    elif case == "resume-text":
        extra, expect = ["--resume", str(text)], [text, "not a PyTorch checkpoint", "checkpoint.pth"]
    else:
        extra, expect = ["--resume", str(empty)], [empty, "empty (0 bytes)", "checkpoint.pth"]
    before = checksums(tmp_path)
    assert stream(data_root, out, "--epochs", "1", *extra) == 2
    assert_one_line(capsys.readouterr().err, *expect)
    assert checksums(tmp_path) == before


# ---------------------------------------------------------------- finished runs
def test_training_into_a_finished_run_is_refused(data_root, finished, capsys, untouched):
    assert stream(data_root, finished, "--epochs", "1", "--seed", "7") == 2
    line = assert_one_line(capsys.readouterr().err, finished, f"--resume {finished / 'checkpoint.pth'}",
                           "new --out", "--overwrite")
    assert "finished run" in line


def test_resuming_another_run_into_a_finished_run_is_refused(data_root, finished, tmp_path, capsys, untouched):
    other = tmp_path / "other"
    shutil.copytree(finished, other)
    before = checksums(other)
    assert stream(data_root, other, "--epochs", "2", "--resume", str(finished / "checkpoint.pth")) == 2
    assert_one_line(capsys.readouterr().err, other, "finished run")
    assert checksums(other) == before


def test_resuming_a_complete_run_says_so_and_writes_nothing(data_root, finished, capsys, untouched):
    assert stream(data_root, finished, "--epochs", "1", "--resume", str(finished / "checkpoint.pth")) == 0
    out = capsys.readouterr().out
    assert "complete at epoch 0" in out and "--epochs" in out
    assert "==> spatial stream" not in out  # no header: nothing starts


def test_evaluate_does_not_replace_other_scores_without_overwrite(data_root, finished, capsys, untouched):
    assert stream(data_root, finished, "--evaluate", "--resume", str(finished / "checkpoint.pth"),
                  "--test-frames", "5") == 2
    assert_one_line(capsys.readouterr().err, finished, "video_scores.pkl", "test_frames", "--overwrite")


@pytest.mark.slow
def test_overwrite_replaces_a_finished_run_entirely(data_root, finished, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    old = checksums(out)
    assert stream(data_root, out, "--epochs", "1", "--seed", "9", "--val-groups", "0", "--overwrite") == 0
    # Every file of the old run is replaced or, where this run writes none (no validation
    # set: no val.csv, model_best.pth, video_scores_best.pkl), gone.
    assert sorted(os.listdir(out)) == ["args.json", "checkpoint.pth", "test.csv", "train.csv", "video_scores.pkl"]
    new = checksums(out)
    assert all(new[p] != old[p] for p in new)
    assert utils.load_checkpoint(out / "checkpoint.pth")["args"]["seed"] == 9


# ---------------------------------------------------------------- data
@pytest.fixture
def own_data(data_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    return root


@pytest.mark.slow
def test_a_corrupt_frame_read_by_a_worker_is_one_line_and_leaves_no_run_folder(own_data, tmp_path, capsys):
    for folder in (own_data / "jpegs_256").iterdir():  # every frame but the first two of every video
        for frame in sorted(folder.iterdir())[2:]:
            frame.write_bytes(b"")
    out = tmp_path / "out"
    assert stream(own_data, out, "--epochs", "1", "--workers", "1") == 2
    err = capsys.readouterr().err
    line = assert_one_line(err, "jpegs_256", ".jpg", "--on-bad-frame skip")
    assert line.startswith("error: ") and "worker" not in err
    assert not out.exists()  # not even args.json


def test_empty_frame_folders_are_counted_right(own_data, tmp_path, capsys):
    for folder in (own_data / "jpegs_256").iterdir():
        for frame in folder.iterdir():
            frame.unlink()
    n = len(os.listdir(own_data / "jpegs_256"))
    assert stream(own_data, tmp_path / "out", "--epochs", "1") == 2
    assert_one_line(capsys.readouterr().err, f"{n} of {n} videos", "no rgb frames", f"{n} with an empty one")


@pytest.mark.slow
def test_a_stack_longer_than_the_flow_is_warned_about(data_root, tmp_path, capsys, untouched):
    assert stream(data_root, tmp_path / "out", "--stack", "50", "--check-data", spec=MOTION) == 0
    err = capsys.readouterr().err
    assert "warning: --stack 50 is longer than the flow of 24 of 24 videos" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- signals
@pytest.mark.slow
def test_sigint_to_the_process_group_is_reported_once(data_root, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, os.path.join(ROOT, "spatial_cnn.py"), "--data-root", str(data_root), "--out", str(out),
           *FAST, "--epochs", "50", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 300
    while not (out / "checkpoint.pth").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch: its data workers are running
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    assert err.count("stopping after the current step") == 1, err[-2000:]
    assert "Traceback" not in err


# ---------------------------------------------------------------- tools
def test_fusion_refuses_the_same_file_twice(finished, capsys, untouched):
    pkl = finished / "video_scores.pkl"
    assert fusion.main(["--spatial", str(pkl), "--motion", str(pkl)]) == 2
    assert_one_line(capsys.readouterr().err, pkl, "--spatial", "--motion")


def test_fusion_says_a_folder_is_a_folder(finished, capsys, untouched):
    assert fusion.main(["--spatial", str(finished), "--motion", str(finished / "video_scores.pkl")]) == 2
    assert_one_line(capsys.readouterr().err, finished, "is a folder", finished / "video_scores_best.pkl")


def test_pack_frames_out_is_a_file(data_root, tmp_path, capsys, untouched):
    target = tmp_path / "file"
    target.write_text("keep me\n")
    assert pack_frames.main(["--data-root", str(data_root), "--out", str(target)]) == 2
    assert_one_line(capsys.readouterr().err, target, "is a file")
    assert target.read_text() == "keep me\n"


def test_pack_frames_with_nothing_to_pack_is_an_error(own_data, capsys):
    for source in ("jpegs_256", "tvl1_flow/u", "tvl1_flow/v"):
        for folder in (own_data / source).iterdir():
            shutil.rmtree(folder)
            folder.mkdir()
    assert pack_frames.main(["--data-root", str(own_data), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "error: nothing packed" in err and "Traceback" not in err
    assert not (own_data / "packed").exists()  # --layout auto would prefer an empty packed/


def test_prepare_data_whose_every_video_fails_leaves_nothing(tmp_path, capsys):
    videos = tmp_path / "UCF-101"
    for i in (1, 2):
        bad = videos / "Bad" / f"v_Bad_g0{i}_c01.avi"
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_bytes(np.random.default_rng(i).bytes(2048))  # not a video
    out = tmp_path / "out"
    assert prepare_data.main(["--videos-dir", str(videos), "--out", str(out), "--flow", "farneback",
                              "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "none of the 2 videos could be prepared" in err and "Traceback" not in err
    assert not out.exists()


# ---------------------------------------------------------------- tools.report on damaged records
TRAIN = ("Epoch,Batch Time,Data Time,Loss,Prec@1,Prec@5,lr\n"
         "0,0.5,0.1,1.25,30.0,90.0,0.01\n1,0.5,0.1,1.0,40.0,95.0,0.01\n2,0.5,0.1,0.75,45.0,97.5,0.01\n")
TEST = ("Epoch,Batch Time,Loss,Prec@1,Prec@5,Mean Class Acc\n"
        "0,0.2,1.5,25.0,75.0,25.0\n1,0.2,1.25,37.5,87.5,37.5\n2,0.2,1.0,62.5,100.0,50.0\n")


@pytest.mark.parametrize("name, cut, line, code", [
    ("test.csv", lambda t: t[:-3], 4, 0),                      # mid-row: the last row would read 5 for 50.0
    ("test.csv", lambda t: t.replace("1,0.2,1.25,", "1,0.2,", 1), 3, 0),  # a row short of fields
    ("test.csv", lambda t: t[:20], 1, 2),                      # mid-header: nothing left
    ("test.csv", lambda t: "", None, 2),                       # zero bytes
    ("train.csv", lambda t: t[:-4], 4, 0),
    ("train.csv", lambda t: t.replace("40.0", ""), 3, 0),      # an empty cell
    ("train.csv", lambda t: t[:25], 1, 0),
    ("train.csv", lambda t: "", None, 0),
], ids=["test-mid-row", "test-short-row", "test-mid-header", "test-empty",
        "train-mid-row", "train-empty-cell", "train-mid-header", "train-empty"])
def test_report_warns_about_damaged_records_and_shows_no_wrong_number(tmp_path, capsys, name, cut, line, code):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.csv").write_text(TRAIN)
    (run / "test.csv").write_text(TEST)
    assert report.main([str(run)]) == 0
    intact = capsys.readouterr().out
    path = run / name
    path.write_text(cut(path.read_text()))
    before = checksums(run)
    assert report.main([str(run)]) == code
    captured = capsys.readouterr()
    assert checksums(run) == before
    if code:
        assert_one_line(captured.err, path if line is None else f"{path}: line {line}")
        return
    where = f"{path}: line {line}" if line else f"{path}: the file is empty"
    assert where in captured.err and "warning" in captured.err and "Traceback" not in captured.err
    # The damaged rows are left out of their table (the other table still has its row of that epoch).
    lost = range(3) if line in (1, None) else [line - 2]
    for epoch in lost:
        assert captured.out.count(f"\n| {epoch} | ") == intact.count(f"\n| {epoch} | ") - 1
    cells = {c.strip() for row in captured.out.splitlines() if row.startswith("| ") for c in row.split("|")[1:-1]}
    assert not {"5", "None", ""} & cells, captured.out  # no cut number, no None, no empty cell
