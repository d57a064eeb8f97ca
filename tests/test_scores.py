"""Tests of reading and checking score files (engine/scores.py), through the fusion.py command
and the library: bad input exits with status 2 and one line naming the file."""
import json
import os
import pickle
import struct

import numpy as np
import pytest

from engine import scores
from test_fusion import (BUILTIN_ROWS, assert_close, random_runs, reference, run_cli, score_file, write_pair,
                         write_pickle)


# ---------------------------------------------------------------- bad input
def _case(tmp_path, name):
    """argv and the file the error must name, for each kind of bad input."""
    videos, labels, classes, S, T = random_runs(0, V=20, C=6)
    s = score_file(tmp_path / "spatial.pkl", videos, S, labels, classes)

    def motion(vids=videos, scores=T, labs=labels, cls=classes):
        return score_file(tmp_path / "motion.pkl", vids, scores, labs, cls, "motion")

    bad = tmp_path / "bad.pkl"
    if name == "different videos":
        return [s, motion(videos[2:] + ["Extra_g01_c01"], np.vstack([T[2:], T[:1]]),
                          list(labels[2:]) + [0])], "motion.pkl", "2 missing from the motion file"
    if name == "class count":
        return [s, motion(scores=np.hstack([T, T[:, :1]]), cls=classes + ["Extra"])], "motion.pkl", "7 classes"
    if name == "class order":
        return [s, motion(cls=classes[::-1])], "motion.pkl", "class order differs"
    if name == "labels disagree":
        labs = labels.copy()
        labs[3] = (labs[3] + 1) % 6
        return [s, motion(labs=labs)], "motion.pkl", "labels disagree"
    if name in ("nan", "inf"):
        T2 = T.copy()
        T2[4, 1] = np.nan if name == "nan" else np.inf
        return [s, motion(scores=T2)], "motion.pkl", "NaN or inf"
    if name == "empty file":
        bad.write_bytes(b"")
        return [s, bad], "bad.pkl", "empty"
    if name == "no videos":
        write_pickle(bad, {"scores": {}, "labels": {}, "classes": [], "meta": {}})
        return [s, bad], "bad.pkl", "no videos"
    if name == "list pickle":
        write_pickle(bad, [1, 2, 3])
        return [s, bad], "bad.pkl", "not a score file"
    if name == "text file":
        bad.write_text("top1 85.67\n")
        return [s, bad], "bad.pkl", "not a readable score pickle"
    if name == "truncated":
        bad.write_bytes(pickle.dumps({"scores": {"a": np.zeros(3)}}, protocol=2)[:40])
        return [s, bad], "bad.pkl", "not a readable score pickle"
    if name == "missing file":
        return [s, tmp_path / "nope.pkl"], "nope.pkl", "no such file"
    if name == "plain dict without splits":
        write_pickle(bad, {v: t for v, t in zip(videos, T)}, protocol=2)
        return [s, bad], "bad.pkl", "--splits-dir"
    raise AssertionError(name)


BAD_CASES = ["different videos", "class count", "class order", "labels disagree", "nan", "inf",
             "empty file", "no videos", "list pickle", "text file", "truncated", "missing file",
             "plain dict without splits"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_exits_2_naming_the_file(tmp_path, capsys, case):
    (s, m), named, phrase = _case(tmp_path, case)
    code, out, err = run_cli(capsys, "--spatial", s, "--motion", m)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("fusion.py: error: ")  # one line, no traceback
    assert named in err and phrase in err, err
    assert out == ""


def test_different_videos_message_names_both_sides(tmp_path, capsys):
    (s, m), _, _ = _case(tmp_path, "different videos")
    _, _, err = run_cli(capsys, "--spatial", s, "--motion", m)
    assert "spatial.pkl" in err and "1 missing from the spatial file (e.g. Extra_g01_c01)" in err
    assert "--intersect" in err


def test_intersect_fuses_common_videos(tmp_path, capsys):
    videos, labels, classes, S, T = random_runs(3, V=30, C=6)
    # The motion file lacks the last 3 videos and has 2 of its own.
    extra = ["Other_g30_c01", "Other_g30_c02"]
    m = score_file(tmp_path / "m.pkl", videos[:27] + extra, np.vstack([T[:27], T[:2]]),
                   list(labels[:27]) + [0, 1], classes, "motion")
    s = score_file(tmp_path / "s.pkl", videos, S, labels, classes)
    code, out, err = run_cli(capsys, "--spatial", s, "--motion", m, "--intersect", "--json", tmp_path / "r.json")
    assert code == 0, err
    assert "27 videos" in out and "dropped 5 videos: 3 only in the spatial file, 2 only in the motion file" in out
    got = json.loads((tmp_path / "r.json").read_text())["mean"]
    assert_close(got, reference(BUILTIN_ROWS, labels[:27], S[:27].astype(float), T[:27].astype(float)))


class _RunsCode:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


@pytest.mark.parametrize("nested", [False, True])
def test_pickle_that_runs_code_is_refused(tmp_path, capsys, nested):
    s, _, _ = write_pair(tmp_path)
    pwned = tmp_path / "pwned"
    evil = _RunsCode(pwned)
    if nested:  # hidden inside an otherwise valid score file
        evil = {"scores": {"A_g01_c01": evil}, "labels": {"A_g01_c01": 0}, "classes": ["A"], "meta": {}}
    m = write_pickle(tmp_path / "evil.pkl", evil)
    code, _, err = run_cli(capsys, "--spatial", s, "--motion", m)
    assert code == 2
    assert "evil.pkl" in err and "refus" in err and "system" in err
    assert not pwned.exists()


# ---------------------------------------------------------------- original-style score files
class _Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote: str as 8-bit strings, numpy.core module paths."""
    dispatch = pickle._Pickler.dispatch.copy()

    def _str8(self, data):
        n = len(data)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else
                    pickle.BINSTRING + struct.pack("<i", n)) + data)

    def save_bytes(self, obj):
        self._str8(obj)
        self.memoize(obj)

    def save_str(self, obj):
        self._str8(obj.encode("latin1"))
        self.memoize(obj)

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes], dispatch[str], dispatch[type] = save_bytes, save_str, save_global


def _ucf_lists(folder):
    folder.mkdir()
    classes = ["Foo", "HandstandPushups", "Bar"]
    (folder / "classInd.txt").write_bytes(b"1 Foo\r\n2 HandstandPushups\r\n3 Bar\r\n")  # CRLF
    (folder / "trainlist01.txt").write_text(
        "Foo/v_Foo_g08_c01.avi 1\nHandstandPushups/v_HandStandPushups_g08_c01.avi 2\nBar/v_Bar_g08_c01.avi 3\n")
    test = [f"{c}_g{g:02d}_c{k:02d}" for c in ("Foo", "HandStandPushups", "Bar") for g in (1, 2) for k in (1, 2)]
    (folder / "testlist01.txt").write_text("".join(f"{v.split('_')[0]}/v_{v}.avi\n" for v in test))
    return classes, test


@pytest.mark.parametrize("writer", ["protocol2", "python2"])
def test_original_plain_dict_labelled_from_split_lists(tmp_path, capsys, writer):
    classes, test = _ucf_lists(tmp_path / "lists")
    labels = np.array([0] * 4 + [1] * 4 + [2] * 4)
    rng = np.random.default_rng(5)
    S = rng.normal(size=(12, 3)) + 1.5 * np.eye(3)[labels]
    T = rng.normal(size=(12, 3)) + 1.5 * np.eye(3)[labels]
    # The original code wrote names with the class-index spelling: matched case-insensitively.
    names = [v.replace("HandStandPushups", "HandstandPushups") for v in test]
    s = write_pickle(tmp_path / "spatial_orig.pkl", {v: x.astype(np.float32) for v, x in zip(names, S)}, 2)
    m = str(tmp_path / "motion_orig.pkl")
    with open(m, "wb") as f:
        pickler = pickle.Pickler if writer == "protocol2" else _Py2Pickler
        pickler(f, protocol=2).dump({v: x.astype(np.float32) for v, x in zip(names, T)})

    code, _, err = run_cli(capsys, "--spatial", s, "--motion", m)
    assert code == 2 and "--splits-dir" in err and "spatial_orig.pkl" in err

    code, out, err = run_cli(capsys, "--spatial", s, "--motion", m, "--splits-dir", tmp_path / "lists",
                             "--split", 1, "--dataset", "ucf101", "--json", tmp_path / "r.json")
    assert code == 0, err
    assert "12 videos, 3 classes" in out and "run 1 top1" in out
    got = json.loads((tmp_path / "r.json").read_text())["run 1"]
    f32 = lambda x: x.astype(np.float32).astype(np.float64)  # noqa: E731 - as stored
    # 3 classes: no top-5 (always 100) and no var[top 5] (the same as var)
    rows = [r for r in BUILTIN_ROWS if r != "var[top 5]"]
    assert sorted(got) == sorted(rows) and all(sorted(m) == ["mean_class_acc", "top1"] for m in got.values())
    want = reference(rows, labels, f32(S), f32(T))
    assert_close(got, {row: {k: v for k, v in m.items() if k != "top5"} for row, m in want.items()})


def test_mixed_pair_checks_classes_against_split(tmp_path, capsys):
    classes, test = _ucf_lists(tmp_path / "lists")
    labels = np.array([0] * 4 + [1] * 4 + [2] * 4)
    S = np.random.default_rng(6).normal(size=(12, 3))
    s = score_file(tmp_path / "s.pkl", test, S, labels, ["Foo", "Bar", "HandstandPushups"])
    m = write_pickle(tmp_path / "m.pkl", {v: x for v, x in zip(test, S)}, protocol=2)
    code, _, err = run_cli(capsys, "--spatial", s, "--motion", m, "--splits-dir", tmp_path / "lists")
    assert code == 2 and "m.pkl" in err and "class order differs" in err


# ---------------------------------------------------------------- the library
def test_library_reads_and_aligns_score_files(tmp_path):
    videos, labels, classes, S, T = random_runs(7, V=12, C=4)
    s = score_file(tmp_path / "s.pkl", videos, S, labels, classes)
    # The motion file lists the videos in another order and spells one name in another case.
    order = np.random.default_rng(7).permutation(len(videos))
    m_videos = [videos[i].upper() if i == order[0] else videos[i] for i in order]
    m = score_file(tmp_path / "m.pkl", m_videos, T[order], labels[order], classes, "motion")
    spatial, motion = scores.load_scores(s), scores.load_scores(m)
    assert spatial.num_classes == 4 and spatial.classes == classes and spatial.meta["stream"] == "spatial"
    pair = scores.align(spatial, motion)
    assert pair.videos == videos and pair.dropped == (0, 0)  # the spatial file's order
    np.testing.assert_array_equal(pair.S, S.astype(np.float64))
    np.testing.assert_array_equal(pair.T, T.astype(np.float64))
    np.testing.assert_array_equal(pair.labels, labels)
    assert scores.swapped_warnings([pair]) == []
    assert scores.swapped_warnings([scores.align(spatial, spatial)]) == [  # two spatial runs: may be meant
        f"{s}: meta says stream 'spatial' but it was passed to --motion"]
    with pytest.raises(scores.FusionError, match="swapped"):  # both the other stream's: a mix-up
        scores.swapped_warnings([scores.align(motion, spatial)])


def test_library_errors_are_value_errors_naming_the_file(tmp_path):
    assert issubclass(scores.FusionError, ValueError)
    with pytest.raises(scores.FusionError, match="nope.pkl: no such file"):
        scores.load_scores(str(tmp_path / "nope.pkl"))
    s, m, _ = write_pair(tmp_path)
    data = pickle.load(open(m, "rb"))
    data["classes"] = data["classes"][::-1]
    m2 = write_pickle(tmp_path / "reversed.pkl", data)
    with pytest.raises(scores.FusionError, match="reversed.pkl: class order differs"):
        scores.align(scores.load_scores(s), scores.load_scores(m2))
