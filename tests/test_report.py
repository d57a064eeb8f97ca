"""Tests of tools/report.py and of the run records and pictures it shows (engine/records.py,
engine/plots.py), on hand-written records with known numbers."""
import os
import sys

import numpy as np
import pytest

import utils
from engine import plots, records
from tools import report

TRAIN = [  # Epoch, Batch Time, Data Time, Loss, Prec@1, Prec@5, lr
    ["0", "5.211", "4.612", "2.25475", "49.3237", "71.144", "0.0005"],
    ["1", "4.202", "4.048", "0.631", "85.2994", "97.6198", "0.0005"],
    ["2", "4.169", "4.016", "0.34814", "92.7965", "99.287", "5e-05"],
    ["3", "3.989", "3.834", "0.22722", "95.7114", "99.7274", "5e-06"],
    ["4", "4.189", "4.031", "0.16261", "97.148", "99.7903", "5e-07"],
]
VAL = [  # the best val top-1 is epoch 3 (tied with 1, lower loss: the engine's rule) ...
    ["0", "0.51", "3.1", "60.5", "85.25", "59.75"],
    ["1", "0.52", "2.9", "68.125", "90.5", "67.5"],
    ["2", "0.53", "3.0", "66.0", "91.0", "65.0"],
    ["3", "0.54", "2.7", "68.125", "90.75", "66.25"],
    ["4", "0.55", "3.2", "67.75", "90.25", "66.0"],
]
TEST = [  # ... but the best test top-1 is epoch 2: the report must not pick it
    ["0", "1.163", "4.49144", "61.168", "86.519", "60.333"],
    ["1", "0.95", "4.11913", "67.803", "89.691", "66.917"],
    ["2", "0.82", "4.22929", "73.883", "93.074", "72.458"],
    ["3", "0.75", "4.04706", "71.293", "91.938", "70.125"],
    ["4", "0.651", "4.22076", "70.5", "92.149", "69.042"],
]
SELECTION = "val (3 held-out actor groups of the training list)"


def write_run(path, consensus="mean", val=True, select_on_test=False, scores=True, classes=4):
    os.makedirs(path, exist_ok=True)
    utils.save_csv([dict(zip(records.TRAIN_COLUMNS, r)) for r in TRAIN], records.TRAIN_COLUMNS, path / "train.csv")
    utils.save_csv([dict(zip(records.EVAL_COLUMNS, r)) for r in TEST], records.EVAL_COLUMNS, path / "test.csv")
    if val:
        utils.save_csv([dict(zip(records.EVAL_COLUMNS, r)) for r in VAL], records.EVAL_COLUMNS, path / "val.csv")
    selection = ("test (--select-on-test: model and LR schedule chosen on the test split; optimistic)"
                 if select_on_test else SELECTION if val else
                 "none (LR schedule on the training loss; no model selection)")
    utils.save_json({"stream": "spatial", "consensus": consensus, "dataset": "ucf101", "split": 1,
                     "select_on_test": select_on_test, "selection": selection}, path / "args.json")
    if scores:
        rng = np.random.default_rng(0)
        labels = np.repeat(np.arange(classes), 5)
        pred = np.where(rng.random(labels.size) < 0.7, labels, rng.integers(0, classes, labels.size))
        utils.save_pickle({"scores": {}, "labels": {}, "classes": [f"Class{i}" for i in range(classes)],
                           "confusion": utils.confusion_matrix(pred, labels, classes),
                           "meta": {"epoch": 1, "top1": 67.803, "mean_class_acc": 66.917}},
                          path / "video_scores_best.pkl")
    return str(path)


def tables(text):
    """Markdown tables in `text` -> [[row cells]], header first, separator row dropped."""
    out, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if current is None:
                current = []
                out.append(current)
            if not all(set(c) <= set("-:") for c in cells):
                current.append(cells)
        else:
            current = None
    return out


def summary_rows(text):
    table = next(t for t in tables(text) if t[0][0] == "run")
    return {row[0]: dict(zip(table[0], row)) for row in table[1:]}


def test_tables_reproduce_the_csv_numbers_and_select_by_val(tmp_path, capsys):
    run = write_run(tmp_path / "spatial_mean")
    assert report.main([run]) == 0
    text = capsys.readouterr().out
    train, val, test, summary = tables(text)
    assert train == [records.TRAIN_COLUMNS] + TRAIN  # every number verbatim, the original scripts' columns
    assert val == [records.EVAL_COLUMNS] + VAL
    assert test == [records.EVAL_COLUMNS] + TEST
    row = summary_rows(text)["spatial_mean"]
    # Epoch 3 has the best val top-1; epoch 2 the best test top-1 (73.883): never reported as selected.
    assert row["selected by"] == "val top-1" and row["epoch"] == "3" and row["val top-1"] == "68.125"
    assert (row["test top-1"], row["test top-5"], row["test mean class acc"]) == ("71.293", "91.938", "70.125")
    assert (row["last epoch"], row["last top-1"], row["last top-5"]) == ("4", "70.5", "92.149")
    assert "73.883" not in str(summary)
    assert f"model selection {SELECTION}" in text and "reported epoch: 3, chosen by val top-1" in text


def test_side_by_side_states_each_runs_protocol(tmp_path, capsys):
    runs = [write_run(tmp_path / "mean", "mean"), write_run(tmp_path / "max", "max", val=False),
            write_run(tmp_path / "var", "var", select_on_test=True)]
    out = tmp_path / "report.md"
    assert report.main([*runs, "--summary-only", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.read_text() == text and len(tables(text)) == 1
    rows = summary_rows(text)
    assert [rows[n]["consensus"] for n in ("mean", "max", "var")] == ["mean", "max", "var"]
    assert (rows["mean"]["selected by"], rows["mean"]["epoch"]) == ("val top-1", "3")
    # No validation set: the last epoch, said so.
    assert (rows["max"]["selected by"], rows["max"]["epoch"], rows["max"]["test top-1"]) == \
        ("last (no validation set)", "4", "70.5")
    # The original scripts' protocol picks the best test epoch, and the table says it is optimistic.
    assert rows["var"]["selected by"] == "test top-1 (--select-on-test: optimistic)"
    assert (rows["var"]["epoch"], rows["var"]["test top-1"]) == ("2", "73.883")


@pytest.mark.parametrize("make", ["empty", "missing"])
def test_folder_without_records_exits_2_naming_it(tmp_path, capsys, make):
    folder = tmp_path / "not_a_run"
    if make == "empty":
        folder.mkdir()
    good = write_run(tmp_path / "good")
    assert report.main([good, str(folder)]) == 2
    captured = capsys.readouterr()
    assert str(folder) in captured.err and captured.out == ""


def _check_png(path, min_w=400, min_h=300):
    import matplotlib.image
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] >= min_h and image.shape[1] >= min_w, (path, image.shape)
    assert image.std() > 0.01  # not a blank canvas


def test_plots_are_valid_pngs_and_copied_to_picture_dir(tmp_path, capsys):
    run = write_run(tmp_path / "run", consensus="var")
    pictures = tmp_path / "picture"
    assert report.main([run, "--plots", "--picture-dir", str(pictures)]) == 0
    names = {"train_spatial_var.png", "test_spatial_var.png", "confusion_spatial_var.png"}
    assert names <= set(os.listdir(run)) and set(os.listdir(pictures)) == names  # no temporary files left
    for name in names:
        _check_png(os.path.join(run, name))
        assert (pictures / name).read_bytes() == (tmp_path / "run" / name).read_bytes()
    # Called after every epoch: only pictures older than their records are redrawn.
    assert plots.plot_run(run, str(pictures)) == []
    later = os.path.getmtime(os.path.join(run, "test_spatial_var.png")) + 10
    os.utime(os.path.join(run, "test.csv"), (later, later))  # a new epoch's evaluation records
    assert plots.plot_run(run, str(pictures)) == [os.path.join(run, "test_spatial_var.png"),
                                                    str(pictures / "test_spatial_var.png")]


def test_confusion_of_101_classes_drops_cell_numbers(tmp_path, monkeypatch):
    from matplotlib.axes import Axes
    calls = []
    original = Axes.text
    monkeypatch.setattr(Axes, "text", lambda self, *a, **k: calls.append(a) or original(self, *a, **k))
    small = records.load_run(write_run(tmp_path / "small", classes=4, val=False))
    plots.plot_confusion(small, str(tmp_path / "small.png"))
    confusion = utils.load_pickle_safe(tmp_path / "small" / "video_scores_best.pkl")["confusion"]
    assert len(calls) == np.count_nonzero(confusion)  # one number per non-empty cell
    calls.clear()
    big = records.load_run(write_run(tmp_path / "big", classes=101, val=False))
    plots.plot_confusion(big, str(tmp_path / "big.png"))
    assert calls == []  # 101 x 101 numbers would be unreadable
    _check_png(tmp_path / "big.png", min_w=1000, min_h=1000)


def test_tensorboard_is_optional(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(plots.TensorBoardUnavailable, match="pip install tensorboard"):
        plots.tensorboard_writer(str(tmp_path))

    class Writer:
        def __init__(self):
            self.scalars, self.flushed = {}, False

        def add_scalar(self, tag, value, step):
            self.scalars[tag, step] = value

        def flush(self):
            self.flushed = True

    w = Writer()
    plots.tensorboard_log(w, 4, {"train": {"Loss": 0.5, "Prec@1": 90.0, "lr": 0.001}, "val": None,
                                  "test": {"Loss": 1.25, "Prec@1": 70.0, "Mean Class Acc": 69.5}})
    assert w.scalars == {("loss/train", 4): 0.5, ("top1/train", 4): 90.0, ("lr/train", 4): 0.001,
                         ("loss/test", 4): 1.25, ("top1/test", 4): 70.0, ("mean_class_acc/test", 4): 69.5}
    assert w.flushed


def test_every_option_has_help(capsys):
    assert report.main(["--help"]) == 0
    assert all(a.help for a in report.build_parser()._actions)
