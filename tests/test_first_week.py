"""A researcher's first week: a training run ends by saying what it selected, with which
figures, and where everything is; its log has no carriage-return progress."""
import os
import re
import subprocess
import sys

import pytest

import utils
from engine.streams import SPATIAL
from engine.train import main
from tiny import FAST, FAST_PROCESSES, make_tiny_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("week") / "data", seed=7)


def test_a_run_ends_with_what_it_selected_and_where_the_files_are(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(SPATIAL, ["--data-root", str(data_root), "--out", str(out), *FAST, "--epochs", "3"]) == 0
    text = capsys.readouterr().out
    summary = text[text.index("==> spatial stream (resnet18) finished"):]
    best = utils.load_checkpoint(out / "model_best.pth")["epoch"]
    val = {int(r["Epoch"]): r for r in utils.read_csv(out / "val.csv")}[best]
    test = {int(r["Epoch"]): r for r in utils.read_csv(out / "test.csv")}[best]
    assert "epochs 0-2 in" in summary
    assert (f"selected epoch {best} on the validation set: validation top-1 {float(val['Prec@1']):.2f}, mean class "
            f"accuracy {float(val['Mean Class Acc']):.2f}; test top-1 {float(test['Prec@1']):.2f}") in summary
    assert f"outputs in {out}" in summary
    for f in ("model_best.pth", "video_scores_best.pkl", "video_scores_val.pkl", "train.csv, val.csv, test.csv"):
        assert f in summary


def test_a_run_without_validation_says_it_selected_nothing(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(SPATIAL, ["--data-root", str(data_root), "--out", str(out), *FAST, "--epochs", "1",
                          "--val-groups", "0"]) == 0
    summary = capsys.readouterr().out.split("finished:")[1]
    assert "no model selection (no validation set): the last epoch, 0" in summary
    assert "model_best.pth" not in summary and "video_scores.pkl" in summary


@pytest.mark.slow
def test_a_redirected_log_has_no_carriage_returns(data_root, tmp_path):
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, "spatial_cnn.py", "--data-root", str(data_root), "--out",
                             str(tmp_path / "run"), *FAST_PROCESSES, "--epochs", "2"], cwd=ROOT, stdout=f,
                            stderr=subprocess.STDOUT).returncode
    text = log.read_text()
    assert rc == 0, text[-2000:]
    assert "\r" not in text
    # the progress of each stage is whole lines: at least its closing one
    assert re.search(r"^epoch 1 train: 100%.*\d+/\d+", text, re.M)
    assert "==> spatial stream (resnet18) finished" in text


def test_with_five_classes_or_fewer_no_table_claims_a_top5(data_root, tmp_path, capsys):
    """4 classes: every video is in its top 5, so top-5 is always 100; the console lines, the
    report's tables and its summary leave it out (the CSV records keep their columns)."""
    from tools import report
    out = tmp_path / "run"
    assert main(SPATIAL, ["--data-root", str(data_root), "--out", str(out), *FAST, "--epochs", "1"]) == 0
    console = capsys.readouterr().out
    assert "Prec@1 [" in console and "Prec@5" not in console
    assert "Prec@5" in (out / "test.csv").read_text().splitlines()[0]
    assert report.main([str(out)]) == 0
    text = capsys.readouterr().out
    assert "top-5 not shown: 4 classes" in text
    for line in text.splitlines():
        if line.startswith("| Epoch"):
            assert "Prec@5" not in line
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| run | stream |"))
    header, cells = ([c.strip() for c in lines[k].strip("|").split("|")] for k in (at, at + 2))
    assert cells[header.index("test top-5")] == "-" and cells[header.index("last top-5")] == "-"
