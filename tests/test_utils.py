"""Tests of utils.py: metrics against numpy / hand computation, atomic writes, safe loading."""
import io
import os
import pickle
import struct

import numpy as np
import pytest
import torch

import progress
from utils import (AverageMeter, accuracy, atomic_write, confusion_matrix, load_checkpoint,
                   load_pickle_safe, mean_class_accuracy, read_csv, save_csv, save_json,
                   save_pickle, save_text, save_torch)


def np_topk_correct(scores, labels, k):
    order = np.argsort(-scores, axis=1)[:, :k]
    return int((order == labels[:, None]).any(axis=1).sum())


def test_average_meter():
    m = AverageMeter()
    assert m.avg == 0
    m.update(2.0, n=3)
    m.update(4.0)
    assert m.avg == pytest.approx((2 * 3 + 4) / 4)
    assert m.count == 4


def test_topk_and_accuracy_against_numpy():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 6))  # continuous values: no ties
    labels = rng.integers(0, 6, size=50)
    ks = (1, 2, 5, 6, 10)  # 10 > C
    from utils import topk_correct
    got = topk_correct(torch.from_numpy(scores), torch.from_numpy(labels), ks)
    want = [np_topk_correct(scores, labels, min(k, 6)) for k in ks]
    assert got == want
    assert got[-1] == 50 and got[-2] == 50  # k >= C: every row is correct
    acc = accuracy(torch.from_numpy(scores), torch.from_numpy(labels), ks)
    np.testing.assert_allclose(acc, [100.0 * w / 50 for w in want])


def test_accuracy_hand_worked():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = torch.tensor([1, 2, 0, 2])
    # top-1 hits: row 0 only; top-2 hits: rows 0, 1 (0.4 second) -> 25 %, 50 %
    assert accuracy(scores, labels, (1, 2)) == [25.0, 50.0]


def test_confusion_matrix_and_mean_class_accuracy_hand_worked():
    labels = [0, 0, 0, 1, 1, 3]     # class 2 never appears in the labels
    pred = [0, 1, 0, 1, 2, 3]
    cm = confusion_matrix(pred, labels, 4)
    want = np.array([[2, 1, 0, 0],
                     [0, 1, 1, 0],
                     [0, 0, 0, 0],
                     [0, 0, 0, 1]])
    np.testing.assert_array_equal(cm, want)
    # recalls of present classes 0, 1, 3: 2/3, 1/2, 1/1 -> mean 13/18
    assert mean_class_accuracy(pred, labels, 4) == pytest.approx(100 * 13 / 18)
    # torch tensors are accepted too
    assert mean_class_accuracy(torch.tensor(pred), torch.tensor(labels), 4) == pytest.approx(100 * 13 / 18)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "scores.bin"
    path.write_bytes(b"old good copy")

    def half_then_fail(f):
        f.write(b"partial garbage")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old good copy"
    assert os.listdir(tmp_path) == ["scores.bin"]  # no temporary file left behind
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["scores.bin"]


def test_atomic_write_creates_folder(tmp_path):
    save_json({"b": 1, "a": [1, 2]}, tmp_path / "sub" / "x.json")
    import json
    assert json.loads((tmp_path / "sub" / "x.json").read_text()) == {"a": [1, 2], "b": 1}


def test_csv_round_trip(tmp_path):
    rows = [{"epoch": 1, "loss": 0.5, "name": "a,b"}, {"epoch": 2, "loss": 0.25, "name": 'q"x', "extra": 9}]
    save_csv(rows, ["epoch", "loss", "name"], tmp_path / "log.csv")
    back = read_csv(tmp_path / "log.csv")
    assert back == [{"epoch": "1", "loss": "0.5", "name": "a,b"},
                    {"epoch": "2", "loss": "0.25", "name": 'q"x'}]
    assert (tmp_path / "log.csv").read_text().splitlines()[0] == "epoch,loss,name"


def test_load_pickle_safe_numpy_dicts(tmp_path):
    data = {"video_a": np.arange(5, dtype=np.float32), "video_b": np.eye(3),
            "labels": [1, 2], "meta": {"n": 2, "name": "x", "t": (1.5, None)}}
    for proto in (2, pickle.HIGHEST_PROTOCOL):
        p = tmp_path / f"s{proto}.pkl"
        with open(p, "wb") as f:
            pickle.dump(data, f, protocol=proto)
        back = load_pickle_safe(p)
        assert set(back) == set(data)
        np.testing.assert_array_equal(back["video_a"], data["video_a"])
        assert back["video_a"].dtype == np.float32
        np.testing.assert_array_equal(back["video_b"], data["video_b"])
        assert back["labels"] == [1, 2] and back["meta"] == data["meta"]
    save_pickle(data, tmp_path / "saved.pkl")
    np.testing.assert_array_equal(load_pickle_safe(tmp_path / "saved.pkl")["video_b"], np.eye(3))


def test_load_pickle_safe_numpy_scalar(tmp_path):
    p = tmp_path / "scalar.pkl"
    with open(p, "wb") as f:
        pickle.dump({"acc": np.float64(0.75), "n": np.int64(3)}, f, protocol=2)
    back = load_pickle_safe(p)
    assert back == {"acc": 0.75, "n": 3}


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` opcodes (BINSTRING), as the original scripts' Python 2 code did."""
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def test_load_pickle_safe_python2_numpy_pickle(tmp_path):
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump({"v_a": np.arange(4, dtype=np.float32), "acc": np.float64(2.5)})
    # Python 2 numpy named its module numpy.core.multiarray
    data = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in data and b"_codecs" not in data
    p = tmp_path / "py2.pkl"
    p.write_bytes(data)
    back = load_pickle_safe(p)
    np.testing.assert_array_equal(back["v_a"], np.arange(4, dtype=np.float32))
    assert back["v_a"].dtype == np.float32 and back["acc"] == 2.5


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


def test_load_pickle_safe_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pkl"
    with open(p, "wb") as f:
        pickle.dump({"scores": _Evil(f"touch {marker}")}, f, protocol=2)
    with pytest.raises(ValueError) as e:
        load_pickle_safe(p)
    assert "evil.pkl" in str(e.value)
    assert "system" in str(e.value)
    assert not marker.exists()


def test_load_pickle_safe_garbage(tmp_path):
    p = tmp_path / "junk.pkl"
    p.write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="junk.pkl"):
        load_pickle_safe(p)


def test_checkpoint_round_trip_and_missing(tmp_path):
    ckpt = {"epoch": 3, "state_dict": {"w": torch.arange(4.0)}}
    save_torch(ckpt, tmp_path / "ck.pth")
    back = load_checkpoint(str(tmp_path / "ck.pth"))
    assert back["epoch"] == 3 and torch.equal(back["state_dict"]["w"], torch.arange(4.0))
    missing = str(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_checkpoint(missing)


def test_checkpoint_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pth"
    torch.save({"x": _Evil(f"touch {marker}")}, p)
    with pytest.raises(ValueError, match="evil.pth"):
        load_checkpoint(str(p))
    assert not marker.exists()


def test_save_text_keeps_line_endings(tmp_path):
    path = tmp_path / "sub" / "list.txt"
    save_text("a 1\r\nb 2\r\n", path)
    assert path.read_bytes() == b"a 1\r\nb 2\r\n"
    assert os.listdir(tmp_path / "sub") == ["list.txt"]  # no temporary file left


# ---------------------------------------------------------------- progress
def test_progress_to_a_file_is_whole_lines_without_carriage_returns():
    """Redirected to a log, a bar is a line every LOG_INTERVAL seconds and one at the end."""
    ticks = iter(range(0, 1000, 20))  # each reading of the clock: 20 s later
    out = io.StringIO()
    bar = progress.LineProgress(range(5), file=out, desc="epoch 0 train", unit="batch", clock=lambda: next(ticks))
    for _ in bar:
        bar.set_postfix(loss="0.693")
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    # updates at 20, 40, ... s after the start: a line when 30 s have passed since the last, and the last one
    assert 2 <= len(lines) <= 4
    assert lines[-1].startswith("epoch 0 train: 100%") and "5/5" in lines[-1] and "loss=0.693" in lines[-1]
    assert all(line.startswith("epoch 0 train:") for line in lines)


def test_progress_on_a_terminal_is_tqdm_and_to_a_file_lines_and_disabled_says_nothing():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert type(progress.progress(range(2), file=Terminal())).__name__ == "tqdm"
    assert isinstance(progress.progress(range(2), file=io.StringIO()), progress.LineProgress)
    out = io.StringIO()
    with progress.progress(total=3, file=out, desc="x", disable=True) as bar:
        bar.update(3)
    assert out.getvalue() == ""
