"""Tests of the fusion strategies, the weight fitting and the tables (engine/fusion.py) and of
the fusion.py command: every number is checked against an independent computation here.
Reading and checking score files: test_scores.py."""
import json
import shutil
import pickle

import numpy as np
import pytest

import fusion as fusion_cli
from engine import fusion
from engine.scores import FusionError

BUILTIN_ROWS = ["spatial", "motion", "average", "max", "weighted 1:2", "weighted 2:1", "var[top 5]", "var"]


# ---------------------------------------------------------------- helpers
def write_pickle(path, obj, protocol=pickle.HIGHEST_PROTOCOL):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return str(path)


def score_file(path, videos, scores, labels, classes, stream="spatial", consensus="mean"):
    return write_pickle(path, {
        "scores": {v: np.asarray(s, dtype=np.float32) for v, s in zip(videos, scores)},
        "labels": {v: int(y) for v, y in zip(videos, labels)},
        "classes": list(classes),
        "meta": {"stream": stream, "consensus": consensus, "epoch": 3, "split": 1,
                 "dataset": "ucf101", "top1": 0.0, "top5": 0.0}})


def random_runs(seed, V=60, C=7):
    """Videos, labels, classes and float32 spatial/motion scores at different scales,
    so that raw and softmax fusion give different results."""
    rng = np.random.default_rng(seed)
    classes = [f"Class{c}" for c in range(C)]
    labels = rng.integers(0, C, V)
    videos = [f"{classes[y]}_g{i // 5 + 8:02d}_c{i % 5 + 1:02d}" for i, y in enumerate(labels)]
    onehot = np.eye(C)[labels]
    S = (4.0 * rng.normal(size=(V, C)) + 3.0 * onehot).astype(np.float32)
    T = (1.0 * rng.normal(size=(V, C)) + 1.2 * onehot).astype(np.float32)
    return videos, labels, classes, S, T


def write_pair(tmp_path, seed=0, consensus="mean", **kw):
    videos, labels, classes, S, T = random_runs(seed, **kw)
    s = score_file(tmp_path / f"s_{consensus}.pkl", videos, S, labels, classes, "spatial", consensus)
    m = score_file(tmp_path / f"m_{consensus}.pkl", videos, T, labels, classes, "motion", consensus)
    return s, m, (labels, S.astype(np.float64), T.astype(np.float64))


# Independent reference: one video at a time, plain numpy.
def ref_softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def ref_fuse(row, s, t):
    if row == "spatial":
        return s
    if row == "motion":
        return t
    if row == "average":
        return (s + t) / 2
    if row == "max":
        return np.array([max(a, b) for a, b in zip(s, t)])
    if row.startswith("weighted "):
        a, b = (float(x) for x in row.split()[1].split(":"))
        return (a * s + b * t) / (a + b)
    if row == "var":
        vs, vt = np.var(s), np.var(t)
    else:  # var[top K]
        k = int(row[len("var[top "):-1])
        vs, vt = np.var(sorted(s)[-k:]), np.var(sorted(t)[-k:])
    return (vs * s + vt * t) / (vs + vt)


def ref_metrics(fused, labels):
    fused = [np.asarray(f) for f in fused]
    ranks = [list(np.argsort(-f)) for f in fused]
    top1 = 100 * np.mean([r[0] == y for r, y in zip(ranks, labels)])
    top5 = 100 * np.mean([y in r[:5] for r, y in zip(ranks, labels)])
    recalls = [np.mean([r[0] == c for r, y in zip(ranks, labels) if y == c]) for c in sorted(set(labels))]
    return {"top1": top1, "top5": top5, "mean_class_acc": 100 * np.mean(recalls)}


def reference(rows, labels, S, T, normalize="none"):
    if normalize == "softmax":
        S = np.array([ref_softmax(v) for v in S])
        T = np.array([ref_softmax(v) for v in T])
    return {row: ref_metrics([ref_fuse(row, s, t) for s, t in zip(S, T)], labels) for row in rows}


def run_cli(capsys, *argv):
    code = fusion_cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def table_row(out, name):
    """Cells (as strings) of the Markdown row named `name`; every such row in order."""
    hits = [ln for ln in out.splitlines() if ln.startswith(f"| {name} |")]
    return [[c.strip() for c in ln.strip("|").split("|")][1:] for ln in hits]


def assert_close(got, want):
    for row, metrics in want.items():
        for key, value in metrics.items():
            assert got[row][key] == pytest.approx(value, abs=1e-9), (row, key)


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize("normalize", ["none", "softmax"])
def test_every_strategy_matches_reference(tmp_path, capsys, normalize):
    s, m, (labels, S, T) = write_pair(tmp_path)
    code, out, _ = run_cli(capsys, "--spatial", s, "--motion", m, "--normalize", normalize,
                           "--json", tmp_path / "r.json")
    assert code == 0
    got = json.loads((tmp_path / "r.json").read_text())["mean"]
    assert sorted(got) == sorted(BUILTIN_ROWS)
    want = reference(BUILTIN_ROWS, labels, S, T, normalize)
    assert_close(got, want)
    for row in BUILTIN_ROWS:  # the table shows the same numbers, two decimals
        assert table_row(out, row) == [[f"{want[row]['top1']:.2f}", f"{want[row]['top5']:.2f}"]]


def test_normalisation_changes_the_result(tmp_path):
    _, _, (labels, S, T) = write_pair(tmp_path)
    raw, soft = reference(BUILTIN_ROWS, labels, S, T), reference(BUILTIN_ROWS, labels, S, T, "softmax")
    assert raw != soft  # otherwise the test above could not tell the two apart
    rows = fusion.table_rows()
    assert_close(fusion.fusion_table(S, T, labels, rows, "softmax"), soft)


def test_var_hand_worked(tmp_path, capsys):
    # One video, 3 classes, true class 0.
    # S = [3, 0, 0]: var = (4 + 1 + 1) / 3 = 2;  top-2 entries [3, 0]: var = 2.25
    # T = [0, 2, 4]: var = (4 + 0 + 4) / 3 = 8/3; top-2 entries [4, 2]: var = 1
    # var       = (2 S + 8/3 T) / (14/3) = [18, 16, 32] / 14      -> predicts class 2
    # var[top 2] = (2.25 S + 1 T) / 3.25 = [6.75, 2, 4] / 3.25    -> predicts class 0
    S, T = np.array([[3.0, 0, 0]]), np.array([[0.0, 2, 4]])
    np.testing.assert_allclose(fusion.fuse_var(S, T), [[18 / 14, 16 / 14, 32 / 14]])
    np.testing.assert_allclose(fusion.fuse_var_topk(S, T, 2), [[6.75 / 3.25, 2 / 3.25, 4 / 3.25]])
    # Two flat vectors have zero variance: the average, not NaN.
    flat = np.ones((1, 3))
    np.testing.assert_allclose(fusion.fuse_var(flat, 2 * flat), [[1.5, 1.5, 1.5]])
    np.testing.assert_allclose(fusion.softmax(np.array([[0.0, np.log(3)]])), [[0.25, 0.75]])

    classes = ["A", "B", "C"]
    s = score_file(tmp_path / "s.pkl", ["A_g01_c01"], S, [0], classes)
    m = score_file(tmp_path / "m.pkl", ["A_g01_c01"], T, [0], classes, "motion")
    code, out, _ = run_cli(capsys, "--spatial", s, "--motion", m, "--topk", 2)
    assert code == 0
    top1 = {row: table_row(out, row)[0][0] for row in
            ["spatial", "motion", "average", "max", "weighted 1:2", "weighted 2:1", "var[top 2]", "var"]}
    assert top1 == {"spatial": "100.00", "motion": "0.00", "average": "0.00", "max": "0.00",
                    "weighted 1:2": "0.00", "weighted 2:1": "100.00", "var[top 2]": "100.00", "var": "0.00"}


# ---------------------------------------------------------------- command line
def test_cli_two_pairs_names_weights_topk(tmp_path, capsys):
    s1, m1, (labels1, S1, T1) = write_pair(tmp_path, seed=1, consensus="mean")
    s2, m2, (labels2, S2, T2) = write_pair(tmp_path, seed=2, consensus="var", V=50, C=9)
    code, out, err = run_cli(capsys, "--spatial", s1, s2, "--motion", m1, m2, "--weights", "3:1",
                             "--weights", "1:1.5", "--topk", 3, "--json", tmp_path / "r.json")
    assert code == 0, err
    rows = ["spatial", "motion", "average", "max", "weighted 1:2", "weighted 2:1", "var[top 3]", "var",
            "weighted 3:1", "weighted 1:1.5"]
    table = [ln for ln in out.splitlines() if ln.startswith("|")]
    assert table[0] == "| strategy | mean top1 | mean top5 | var top1 | var top5 |"
    assert [ln.split("|")[1].strip() for ln in table[2:]] == rows  # every row, exactly, in order
    assert "var[top 5]" not in out
    assert f"{s1} + motion {m1}: 60 videos, 7 classes" in out and "50 videos, 9 classes" in out
    assert "normalisation: none" in out

    got = json.loads((tmp_path / "r.json").read_text())
    assert sorted(got) == ["mean", "var"]
    for name, (labels, S, T) in [("mean", (labels1, S1, T1)), ("var", (labels2, S2, T2))]:
        assert sorted(got[name]) == sorted(rows)
        want = reference(rows, labels, S, T)
        assert_close(got[name], want)
        col = ["mean", "var"].index(name) * 2
        for row in rows:
            assert table_row(out, row)[0][col:col + 2] == [f"{want[row]['top1']:.2f}", f"{want[row]['top5']:.2f}"]

    code, out, _ = run_cli(capsys, "--spatial", s1, s2, "--motion", m1, m2, "--names", "RGB+flow", "second")
    assert code == 0
    assert "| strategy | RGB+flow top1 | RGB+flow top5 | second top1 | second top5 |" in out
    code, _, err = run_cli(capsys, "--spatial", s1, s2, "--motion", m1, m2, "--names", "only-one")
    assert code == 2 and "--names" in err


def test_normalize_both(tmp_path, capsys):
    s, m, (labels, S, T) = write_pair(tmp_path)
    code, out, _ = run_cli(capsys, "--spatial", s, "--motion", m, "--normalize", "both",
                           "--json", tmp_path / "r.json")
    assert code == 0
    assert "normalisation: none" in out and "normalisation: softmax" in out
    assert len(table_row(out, "var")) == 2  # two tables
    got = json.loads((tmp_path / "r.json").read_text())
    assert sorted(got) == ["mean [none]", "mean [softmax]"]
    assert_close(got["mean [none]"], reference(BUILTIN_ROWS, labels, S, T))
    assert_close(got["mean [softmax]"], reference(BUILTIN_ROWS, labels, S, T, "softmax"))


def test_help_and_bad_options(capsys):
    assert fusion_cli.main(["--help"]) == 0
    assert all(a.help for a in fusion_cli.build_parser()._actions)  # every option documented
    capsys.readouterr()
    assert fusion_cli.main(["--spatial", "a.pkl", "--motion", "b.pkl", "--weights", "x"]) == 2
    assert fusion_cli.main(["--spatial", "a.pkl", "--motion", "b.pkl", "--topk", "1"]) == 2


def test_a_file_of_the_other_stream_warns_and_the_library_returns_the_warnings(tmp_path, capsys):
    s, m, _ = write_pair(tmp_path)
    assert fusion.fuse_score_files([s], [m]).warnings == []
    s2 = tmp_path / "spatial_again.pkl"  # another spatial run passed as motion (two RGB models, say)
    shutil.copy(s, s2)
    result = fusion.fuse_score_files([s], [s2])
    assert result.warnings == [f"{s2}: meta says stream 'spatial' but it was passed to --motion"]
    assert capsys.readouterr() == ("", "")  # the library prints nothing
    code, out, err = run_cli(capsys, "--spatial", s, "--motion", s2)
    assert code == 0 and out == result.markdown() + "\n"  # fused all the same
    assert err == "".join(f"fusion.py: warning: {w}\n" for w in result.warnings)
    # A later error keeps the warnings found before it: printed first, then the error line.
    with pytest.raises(FusionError, match="also in the test files") as e:
        fusion.fuse_score_files([s], [s2], fit_on=[(s, m)])
    assert e.value.warnings == result.warnings
    code, out, err = run_cli(capsys, "--spatial", s, "--motion", s2, "--fit-weights-on", s, m)
    assert code == 2 and out == ""
    assert err.splitlines()[:1] == [f"fusion.py: warning: {w}" for w in result.warnings]
    assert len(err.splitlines()) == 2 and err.splitlines()[1].startswith("fusion.py: error: ")


def test_swapped_streams_are_refused(tmp_path, capsys):
    # Both files the other stream's: every row of the table would carry the wrong label.
    s, m, _ = write_pair(tmp_path)
    with pytest.raises(FusionError, match="swapped"):
        fusion.fuse_score_files([m], [s])
    code, out, err = run_cli(capsys, "--spatial", m, "--motion", s)
    assert code == 2 and out == ""
    assert err.startswith("fusion.py: error: ") and len(err.splitlines()) == 1 and f"--spatial {m}" in err


# ---------------------------------------------------------------- weights fitted on validation
# Two classes; video i is right under weighted a:b iff a*dS_i + b*dT_i > 0 (dS, dT: score of
# the true class minus the other's). The rule each video sets on a/b is in its comment.
HAND_LABELS = np.array([0, 0, 1, 1, 0])
HAND_S = np.array([[2, 0], [1, 0], [2.5, 0], [0, 1], [0, 1]], dtype=np.float64)
HAND_T = np.array([[0, 3.2], [0, 1.8], [0, 1], [0, 1], [2.5, 0]], dtype=np.float64)
#                  a/b > 1.6   a/b > 1.8  a/b < 0.4  always    a/b < 2.5
HAND_TOP1 = {(1, 3): 60.0, (1, 2): 40.0, (1, 1.5): 40.0, (1, 1): 40.0, (1.5, 1): 40.0, (2, 1): 80.0, (3, 1): 60.0}


def test_fit_fusion_weight_hand_worked():
    assert fusion.validation_top1(HAND_S, HAND_T, HAND_LABELS) == HAND_TOP1
    assert fusion.fit_fusion_weight(HAND_S, HAND_T, HAND_LABELS) == (2, 1)
    assert sorted(fusion.FIT_GRID) == sorted(HAND_TOP1)  # 1:3 .. 3:1 from {1, 1.5, 2, 3}
    # the argmax of validation top-1 over the grid given
    grid = [(1, 1), (1, 3), (3, 1)]
    # 1:3 and 3:1 tie at 60 (> 40 for 1:1), equally far from 1:1: the earlier in the grid
    assert fusion.fit_fusion_weight(HAND_S, HAND_T, HAND_LABELS, grid) == (1, 3)
    assert fusion.fit_fusion_weight(HAND_S, HAND_T, HAND_LABELS, [(3, 1), (1, 3)]) == (3, 1)


def test_fit_fusion_weight_ties_go_to_the_ratio_closest_to_even():
    keep = [0, 2, 3, 4]  # without video 1: 2:1 and 1:3 both get 3 of 4 right
    S, T, y = HAND_S[keep], HAND_T[keep], HAND_LABELS[keep]
    top1 = fusion.validation_top1(S, T, y)
    assert top1[(2, 1)] == top1[(1, 3)] == 75.0 == max(top1.values())
    assert fusion.fit_fusion_weight(S, T, y) == (2, 1)  # |log 2| < |log 3|
    assert fusion.fit_fusion_weight(S, T, y, [(1, 3), (2, 1)]) == (2, 1)  # whatever the grid order
    # every ratio equally good: 1:1
    same = np.array([[1.0, 0.0]] * 3)
    assert fusion.fit_fusion_weight(same, same, np.zeros(3, dtype=int)) == (1, 1)
    with pytest.raises(ValueError):
        fusion.fit_fusion_weight(S, T, y, [(0, 1)])


def test_fit_fusion_weight_softmax_fits_on_normalised_scores():
    _, labels, _, S, T = random_runs(4)
    S, T = S.astype(np.float64), T.astype(np.float64)
    soft = fusion.fit_fusion_weight(S, T, labels, normalize="softmax")
    assert soft == fusion.fit_fusion_weight(fusion.softmax(S), fusion.softmax(T), labels)


def write_val_pair(tmp_path, seed, consensus="mean", **kw):
    """Validation score files: other videos than the test files', meta subset 'val'."""
    videos, labels, classes, S, T = random_runs(seed, **kw)
    videos = [f"val_{v}" for v in videos]
    paths = []
    for stream, X in (("spatial", S), ("motion", T)):
        p = score_file(tmp_path / f"val_{stream[0]}_{consensus}.pkl", videos, X, labels, classes, stream, consensus)
        data = pickle.load(open(p, "rb"))
        data["meta"]["subset"] = "val"
        write_pickle(p, data)
        paths.append(p)
    return paths[0], paths[1], (labels, S.astype(np.float64), T.astype(np.float64))


@pytest.mark.parametrize("normalize", ["none", "softmax"])
def test_fitted_weight_is_the_validation_argmax_and_test_scores_never_choose_it(tmp_path, normalize):
    s, m, (labels, S, T) = write_pair(tmp_path, seed=0, V=80)
    vs, vm, (vlabels, vS, vT) = write_val_pair(tmp_path, seed=11, V=80)
    result = fusion.fuse_score_files([s], [m], normalize=normalize, fit_on=[(vs, vm)])
    (a, b), = result.fits[normalize].values()
    top1 = fusion.validation_top1(vS, vT, vlabels, normalize=normalize)
    assert top1[(a, b)] == max(top1.values())
    assert (a, b) == fusion.fit_fusion_weight(vS, vT, vlabels, normalize=normalize)
    row = fusion.fitted_name(a, b)
    got = result.tables[normalize]["mean"]
    assert list(got)[-1] == row and got[row]["weights"] == [a, b] and got[row]["val_top1"] == top1[(a, b)]
    assert_close({row: got[row]}, {row: reference([fusion.weight_name(a, b)], labels, S, T, normalize)[
        fusion.weight_name(a, b)]})  # evaluated on the test files
    # Shuffle the test scores over the videos, or replace them with noise: the same weight.
    videos, _, classes, _, _ = random_runs(0, V=80)
    rng = np.random.default_rng(5)
    for k, (S2, T2) in enumerate([(S[rng.permutation(len(S))], T[rng.permutation(len(T))]),
                                  (rng.normal(size=S.shape), rng.normal(size=T.shape))]):
        s2 = score_file(tmp_path / f"s{k}.pkl", videos, S2, labels, classes)
        m2 = score_file(tmp_path / f"m{k}.pkl", videos, T2, labels, classes, "motion")
        other = fusion.fuse_score_files([s2], [m2], normalize=normalize, fit_on=[(vs, vm)])
        assert other.fits == result.fits
        assert other.tables[normalize]["mean"][row] != got[row]  # the test numbers did change


def test_cli_fit_weights_on_per_pair(tmp_path, capsys):
    s1, m1, _ = write_pair(tmp_path, seed=1, consensus="mean")
    s2, m2, _ = write_pair(tmp_path, seed=2, consensus="var", V=50, C=9)
    vs1, vm1, (l1, S1, T1) = write_val_pair(tmp_path, seed=21, consensus="mean")
    vs2, vm2, (l2, S2, T2) = write_val_pair(tmp_path, seed=22, consensus="var", V=50, C=9)
    code, out, err = run_cli(capsys, "--spatial", s1, s2, "--motion", m1, m2, "--fit-weights-on", vs1, vm1,
                             "--fit-weights-on", vs2, vm2, "--normalize", "both", "--json", tmp_path / "r.json")
    assert code == 0, err
    got = json.loads((tmp_path / "r.json").read_text())
    for name, (y, S, T) in (("mean", (l1, S1, T1)), ("var", (l2, S2, T2))):
        for norm in ("none", "softmax"):
            a, b = fusion.fit_fusion_weight(S, T, y, normalize=norm)
            fitted = [r for r in got[f"{name} [{norm}]"] if r.startswith("weighted (val) ")]
            assert fitted == [fusion.fitted_name(a, b)]
            assert table_row(out, fusion.fitted_name(a, b))  # in the Markdown table too
    assert f"mean: spatial:motion weight fitted on validation ({vs1} + {vm1}, 60 videos): raw " in out
    # a pair without its validation files, files sharing videos with the test files, test scores
    code, _, err = run_cli(capsys, "--spatial", s1, s2, "--motion", m1, m2, "--fit-weights-on", vs1, vm1)
    assert code == 2 and "once per pair" in err
    code, _, err = run_cli(capsys, "--spatial", s1, "--motion", m1, "--fit-weights-on", s1, m1)
    assert code == 2 and "also in the test files" in err
    test_scores = pickle.load(open(vs1, "rb"))
    test_scores["meta"]["subset"] = "test"
    bad = write_pickle(tmp_path / "bad_val.pkl", test_scores)
    code, _, err = run_cli(capsys, "--spatial", s1, "--motion", m1, "--fit-weights-on", bad, vm1)
    assert code == 2 and "bad_val.pkl: holds test scores" in err


# ---------------------------------------------------------------- small data sets say what they cannot show
def hand_markdown_case(tmp_path, C):
    """Three videos hand-worked for every row: S = x r and T = y q with r = [C-1, ..., 1, 0] and
    q = [0, 1, ..., C-1], so any positive mix a r + b q (r + q is constant) ranks as r when
    a > b and as q when a < b: the label is first or last, or second (as in r) / second to
    last (as in q) for video 3. var and var[top K] weigh by x^2 var(r) and y^2 var(q) alike.
      video 1, class 0, S = 3r, T = q:   every row right (top-1 and top-5) but motion (wrong, last)
      video 2, class C-1, S = r, T = 1.5q: right where the motion side wins: not spatial, not
               weighted 2:1 (2 > 1.5), last there; max [.., 1.5(C-1)] right
      video 3, class 1, S = r, T = 0.4q: the r order everywhere (class 1 second), q's for motion
               (class 1 second to last): top-1 wrong, top-5 right (with C = 6)."""
    r, q = np.arange(C - 1, -1, -1.0), np.arange(C, dtype=float)
    classes = [chr(ord("A") + c) for c in range(C)]
    videos, labels = ["A_g01_c01", f"{classes[-1]}_g01_c01", "B_g01_c01"], [0, C - 1, 1]
    s = score_file(tmp_path / "s.pkl", videos, [3 * r, r, r], labels, classes)
    m = score_file(tmp_path / "m.pkl", videos, [q, 1.5 * q, 0.4 * q], labels, classes, "motion")
    return s, m


def test_tables_of_6_classes_are_as_they_were_and_5_classes_drop_top5(tmp_path, capsys):
    s, m = hand_markdown_case(tmp_path, 6)
    code, out, err = run_cli(capsys, "--spatial", s, "--motion", m)
    assert code == 0 and err == ""
    # Byte for byte the table of before: top-5 and var[top 5] shown with 6 classes.
    assert out == f"""mean: spatial {s} + motion {m}: 3 videos, 6 classes

normalisation: none (raw scores)

| strategy | mean top1 | mean top5 |
|---|---:|---:|
| spatial | 33.33 | 66.67 |
| motion | 33.33 | 66.67 |
| average | 66.67 | 100.00 |
| max | 66.67 | 100.00 |
| weighted 1:2 | 66.67 | 100.00 |
| weighted 2:1 | 33.33 | 66.67 |
| var[top 5] | 66.67 | 100.00 |
| var | 66.67 | 100.00 |
"""
    s, m = hand_markdown_case(tmp_path, 5)
    code, out, err = run_cli(capsys, "--spatial", s, "--motion", m, "--json", tmp_path / "r.json")
    assert code == 0 and err == ""
    assert out == f"""mean: spatial {s} + motion {m}: 3 videos, 5 classes
mean: 5 classes, not shown: top-5 (every video is in its top 5); var[top 5] (with K >= the class count it is var)

normalisation: none (raw scores)

| strategy | mean top1 |
|---|---:|
| spatial | 33.33 |
| motion | 33.33 |
| average | 66.67 |
| max | 66.67 |
| weighted 1:2 | 66.67 |
| weighted 2:1 | 33.33 |
| var | 66.67 |
"""
    got = json.loads((tmp_path / "r.json").read_text())["mean"]
    assert "var[top 5]" not in got and all("top5" not in metrics for metrics in got.values())
    # 6 classes with --topk 6: var[top 6] is var; top-5 still shown
    s, m = hand_markdown_case(tmp_path, 6)
    code, out, _ = run_cli(capsys, "--spatial", s, "--motion", m, "--topk", 6)
    assert code == 0 and "var[top 6]" in out.splitlines()[1] and "top-5" not in out.splitlines()[1]
    assert "| var[top" not in out and "| strategy | mean top1 | mean top5 |" in out


# ---------------------------------------------------------------- validation files: order, ties, size
def val_file(path, videos, scores, labels, classes, stream):
    p = score_file(path, videos, scores, labels, classes, stream)
    data = pickle.load(open(p, "rb"))
    data["meta"]["subset"] = "val"
    return write_pickle(p, data)


def hand_val_files(tmp_path, keep=slice(None)):
    """HAND_S / HAND_T as validation files (2 classes), and test files of other videos."""
    videos = [str(v) for v in np.array([f"V{i}_g01_c01" for i in range(5)])[keep]]
    vs = val_file(tmp_path / "val_s.pkl", videos, HAND_S[keep], HAND_LABELS[keep], ["A", "B"], "spatial")
    vm = val_file(tmp_path / "val_m.pkl", videos, HAND_T[keep], HAND_LABELS[keep], ["A", "B"], "motion")
    rng = np.random.default_rng(3)
    test_labels = np.array([0, 1] * 6)
    S, T = rng.normal(size=(12, 2)), rng.normal(size=(12, 2))
    tests = [f"T{i}_g02_c01" for i in range(12)]
    s = score_file(tmp_path / "s.pkl", tests, S, test_labels, ["A", "B"])
    m = score_file(tmp_path / "m.pkl", tests, T, test_labels, ["A", "B"], "motion")
    return s, m, vs, vm, (test_labels, S.astype(np.float32).astype(float), T.astype(np.float32).astype(float))


def test_swapped_or_repeated_validation_files_are_refused(tmp_path, capsys):
    s, m, vs, vm, _ = hand_val_files(tmp_path)
    code, out, err = run_cli(capsys, "--spatial", s, "--motion", m, "--fit-weights-on", vm, vs)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("fusion.py: error: ") and "swapped" in err and f"--fit-weights-on {vs} {vm}" in err
    code, out, err = run_cli(capsys, "--spatial", s, "--motion", m, "--fit-weights-on", vs, vs)
    assert code == 2 and out == "" and err.count("\n") == 1 and f"{vs} {vs}: the same file twice" in err
    # a second spatial file in the motion place (another path, same stream)
    other = write_pickle(tmp_path / "val_s2.pkl", pickle.load(open(vs, "rb")))
    code, out, err = run_cli(capsys, "--spatial", s, "--motion", m, "--fit-weights-on", vs, other)
    assert code == 2 and out == "" and f"{other} holds spatial scores" in err and "given as the motion one" in err


def test_ties_and_few_validation_videos_are_warned_about(tmp_path, capsys):
    # Without video 1, 2:1 and 1:3 both get 3 of 4 right (75%): a tie of 2, 2:1 is closer to 1:1.
    s, m, vs, vm, _ = hand_val_files(tmp_path, [0, 2, 3, 4])
    code, out, err = run_cli(capsys, "--spatial", s, "--motion", m, "--fit-weights-on", vs, vm)
    assert code == 0
    assert ("fusion.py: warning: mean: the fitted weight 2:1 (raw scores) is a tie: 2 of the 7 ratios reach the best "
            "validation top-1 75.00; the one closest to 1:1 was taken") in err
    # 4 videos, classes A: 2 and B: 2
    assert "fitted on 4 validation videos for 2 classes (fewest in a class: 2)" in err
    assert "| weighted (val) 2:1 |" in out
    # all seven ratios equal: the validation scores cannot choose
    videos, same = ["V0_g01_c01", "V1_g01_c01"], np.array([[1.0, 0.0], [0.0, 1.0]])
    vs2 = val_file(tmp_path / "same_s.pkl", videos, same, [0, 1], ["A", "B"], "spatial")
    vm2 = val_file(tmp_path / "same_m.pkl", videos, same, [0, 1], ["A", "B"], "motion")
    code, _, err = run_cli(capsys, "--spatial", s, "--motion", m, "--fit-weights-on", vs2, vm2)
    assert code == 0 and "every one of the 7 ratios gets the same validation top-1 100.00" in err
    assert "1:1 (the closest to 1:1) was taken" in err


def test_a_missing_class_and_a_large_validation_set(tmp_path, capsys):
    videos, labels, classes, S, T = random_runs(8, V=40, C=4)
    s = score_file(tmp_path / "s.pkl", videos, S, labels, classes)
    m = score_file(tmp_path / "m.pkl", videos, T, labels, classes, "motion")
    rng = np.random.default_rng(9)
    for per_class, name in ((6, "big"), (0, "gap")):
        y = np.repeat(np.arange(4), 6) if per_class else np.array([0, 0, 1, 1, 1, 2])  # class 3 has none
        vids = [f"{name}{i}_g05_c01" for i in range(len(y))]
        # spatial right on all but one video, motion on none: 3:1 .. 1:1 beat the ratios that favour motion
        Sv = np.eye(4)[y] * 5 + rng.uniform(0, 0.1, (len(y), 4))
        Sv[0] = np.roll(Sv[0], 1)
        Tv = np.eye(4)[(y + 1) % 4] * 0.5
        vs = val_file(tmp_path / f"{name}_s.pkl", vids, Sv, y, classes, "spatial")
        vm = val_file(tmp_path / f"{name}_m.pkl", vids, Tv, y, classes, "motion")
        code, _, err = run_cli(capsys, "--spatial", s, "--motion", m, "--fit-weights-on", vs, vm)
        assert code == 0
        if per_class:
            assert "rough guess" not in err
        else:
            assert ("the weight is fitted on 6 validation videos for 4 classes (fewest in a class: 0; 1 of them "
                    "with none); with under 5 a class one video moves the validation top-1 by 16.7 points") in err


# ---------------------------------------------------------------- --save-weights
def test_save_weights_writes_what_was_fitted(tmp_path, capsys):
    s, m, vs, vm, (labels, S, T) = hand_val_files(tmp_path)
    path = tmp_path / "W.json"
    code, out, err = run_cli(capsys, "--spatial", s, "--motion", m, "--fit-weights-on", vs, vm,
                             "--save-weights", path)
    assert code == 0, err
    saved = json.loads(path.read_text())
    assert saved["weights"] == [2, 1] and saved["normalize"] == "none" and saved["strategy"] == "weighted"
    # the hand-worked grid (HAND_TOP1), its best 80%, 5 validation videos
    assert saved["validation"]["grid"] == {f"{a:g}:{b:g}": t for (a, b), t in HAND_TOP1.items()}
    assert saved["validation"]["top1"] == 80.0 and saved["validation"]["videos"] == 5
    assert saved["classes"] == ["A", "B"]
    assert {k: (v["validation"], v["test"]) for k, v in saved["streams"].items()} == {
        "spatial": (vs, s), "motion": (vm, m)}  # absolute paths (tmp_path is absolute)
    # reported on the test files: weighted 2:1 there, computed here
    want = ref_metrics([ref_fuse("weighted 2:1", a, b) for a, b in zip(S, T)], labels)["top1"]
    assert saved["test"]["top1"] == pytest.approx(want) and saved["test"]["videos"] == 12
    assert f"fusion.py: wrote {path}: weighted 2:1 on raw scores, fitted on validation (val top-1 80.00, 5 videos)" in err


def test_save_weights_with_normalize_both_takes_the_better_on_validation(tmp_path, capsys):
    s, m, _ = write_pair(tmp_path, seed=1)
    vs, vm, (y, vS, vT) = write_val_pair(tmp_path, seed=31, V=80)
    grid = [(1, 1), (1.5, 1), (1, 1.5), (2, 1), (1, 2), (3, 1), (1, 3)]

    def best(normalize):  # independently: one video at a time
        X = [(ref_softmax(a), ref_softmax(b)) if normalize == "softmax" else (a, b) for a, b in zip(vS, vT)]
        top1 = {w: ref_metrics([ref_fuse(f"weighted {w[0]}:{w[1]}", a, b) for a, b in X], y)["top1"] for w in grid}
        return max(top1.values())

    want = "softmax" if best("softmax") > best("none") else "none"
    code, _, err = run_cli(capsys, "--spatial", s, "--motion", m, "--fit-weights-on", vs, vm, "--normalize", "both",
                           "--save-weights", tmp_path / "W.json")
    assert code == 0, err
    saved = json.loads((tmp_path / "W.json").read_text())
    assert saved["normalize"] == want and saved["validation"]["top1"] == pytest.approx(best(want))
    assert f"raw {best('none'):.2f}, softmax {best('softmax'):.2f}" in saved["normalize_choice"]


def test_save_weights_refusals_come_before_any_fusing(tmp_path, capsys):
    s, m, vs, vm, _ = hand_val_files(tmp_path)
    s2, m2, _ = write_pair(tmp_path, seed=2)
    kept = tmp_path / "W.json"
    kept.write_text("an older file, kept\n")
    blocker = tmp_path / "file"
    blocker.write_text("a file: nothing can be made below it")
    cases = [
        (["--spatial", s, "--motion", m, "--save-weights", kept], ["--save-weights", "--fit-weights-on VAL_S VAL_M"]),
        (["--spatial", s, s2, "--motion", m, m2, "--fit-weights-on", vs, vm, "--fit-weights-on", vs, vm,
          "--save-weights", kept], ["one pair", "2 pairs"]),
        (["--spatial", s, "--motion", m, "--fit-weights-on", vs, vm, "--save-weights", blocker / "W.json"],
         [f"--save-weights {blocker / 'W.json'}", "is a file"]),
        (["--spatial", s, "--motion", m, "--fit-weights-on", vs, vm, "--save-weights", tmp_path],
         [f"--save-weights {tmp_path}", "is a folder"]),
        (["--spatial", s, "--motion", m, "--json", blocker / "r.json"], [f"--json {blocker / 'r.json'}"]),
    ]
    for argv, words in cases:
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and out == "" and err.count("\n") == 1, (argv, err)  # no table, no warning: nothing fused
        assert all(w in err for w in words), err
        assert kept.read_text() == "an older file, kept\n"
