"""Tests of tools/study.py: the whole study on tiny generated data through the real CLIs,
and its restart logic (skip, resume, restart, failure) with a stand-in CLI."""
import json
import os
import textwrap

import pytest

from tools import study, study_report
from tiny import FAST as TINY
from tiny import make_tiny_data

FAST = [*TINY, "--epochs", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(make_tiny_data(tmp_path_factory.mktemp("tiny") / "data", seed=1))


def _checkpoints(study_dir):
    return {name: (os.stat(study_dir / name / "checkpoint.pth").st_mtime_ns,
                   (study_dir / name / "checkpoint.pth").read_bytes()) for name in os.listdir(study_dir)
            if (study_dir / name).is_dir()}


@pytest.mark.slow
def test_whole_study_then_a_second_call_skips_everything(data_root, tmp_path, capsys, monkeypatch):
    drawn = []  # the pictures themselves are tested in test_report; drawing them here costs seconds
    monkeypatch.setattr(study_report, "plot_run", lambda run_dir, *a, **k: drawn.append(os.path.basename(run_dir)))
    out = tmp_path / "study"
    argv = ["--data-root", data_root, "--out", str(out), "--consensus", "mean", "var", "--jobs", "2",
            "--", *FAST, "--stack", "3"]  # --stack: motion_cnn.py only
    assert study.main(argv) == 0
    first = capsys.readouterr().out
    runs = ["spatial_mean", "spatial_var", "motion_mean", "motion_var"]
    for name in runs:
        assert (out / name / study.DONE).is_file(), first
        assert f"==> {name}: finished" in first
    assert sorted(drawn) == sorted(runs)
    done = json.loads((out / "motion_var" / study.DONE).read_text())
    assert done["options"][-2:] == ["--stack", "3"]
    assert "--stack" not in json.loads((out / "spatial_mean" / study.DONE).read_text())["options"]
    fused = json.loads((out / "fusion.json").read_text())
    assert set(fused) == {"mean [none]", "var [none]", "mean [softmax]", "var [softmax]"}
    assert "average" in fused["mean [none]"] and "| weighted 2:1 |" in (out / "fusion.md").read_text()
    # the spatial:motion weight fitted on the runs' validation scores (video_scores_val.pkl)
    for name in fused:
        assert len([r for r in fused[name] if r.startswith("weighted (val) ")]) == 1, fused[name].keys()
    assert "--fit-weights-on" in (out / "fusion.md").read_text()
    summary = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("| ")]
    for name in runs:
        assert any(line.startswith(f"| {name} | ") and "| val top-1 |" in line for line in summary)

    before = _checkpoints(out)
    assert study.main(argv) == 0
    second = capsys.readouterr().out
    for name in runs:
        assert f"==> {name}: skip (finished" in second
    assert "finished in" not in second and "queued" not in second
    assert _checkpoints(out) == before  # nothing retrained
    assert "## summary" in second and "normalisation: softmax" in second


FAKE_CLI = textwrap.dedent("""\
    # Stands in for spatial_cnn.py / motion_cnn.py: dies after its first 'epoch' unless resumed.
    import json, os, pickle, signal, sys
    argv = sys.argv[1:]
    out = argv[argv.index("--out") + 1]
    os.makedirs(out, exist_ok=True)
    stream, consensus = os.path.basename(out).split("_")
    with open(os.path.join(out, "args.json"), "w") as f:
        json.dump({"stream": stream, "consensus": consensus, "dataset": "ucf101", "split": 1,
                   "selection": "none (LR schedule on the training loss; no model selection)"}, f)
    print("fake run", " ".join(argv), flush=True)
    if os.environ.get("FAKE_FAIL"):
        print("error: something went wrong", file=sys.stderr)
        sys.exit(3)
    if "--resume" not in argv:
        open(os.path.join(out, "checkpoint.pth"), "wb").write(b"epoch 0")
        os.kill(os.getpid(), signal.SIGKILL)  # killed midway
    with open(os.path.join(out, "train.csv"), "w") as f:
        f.write("Epoch,Batch Time,Data Time,Loss,Prec@1,Prec@5,lr\\n0,1,0.5,1.5,40.0,90.0,0.01\\n"
                "1,1,0.5,1.2,50.0,95.0,0.01\\n")
    with open(os.path.join(out, "test.csv"), "w") as f:
        f.write("Epoch,Batch Time,Loss,Prec@1,Prec@5,Mean Class Acc\\n0,1,1.4,40.0,90.0,40.0\\n"
                "1,1,1.3,50.0,100.0,50.0\\n")
    with open(os.path.join(out, "video_scores.pkl"), "wb") as f:
        pickle.dump({"scores": {"v_A_g01_c01": [2.0, 1.0], "v_B_g01_c01": [0.5, 1.5]},
                     "labels": {"v_A_g01_c01": 0, "v_B_g01_c01": 1}, "classes": ["A", "B"],
                     "confusion": [[1, 0], [0, 1]], "meta": {"epoch": 1}}, f)
    """)


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    script = tmp_path / "fake_cnn.py"
    script.write_text(FAKE_CLI)
    monkeypatch.setattr(study, "SCRIPTS", {"spatial": str(script), "motion": str(script)})
    monkeypatch.setattr(study_report, "plot_run", lambda *a, **k: [])  # pictures are tested in test_report
    return script


def test_killed_run_resumes_from_its_checkpoint(data_root, tmp_path, fake_cli, capsys):
    out = tmp_path / "study"
    argv = ["--data-root", data_root, "--out", str(out), "--consensus", "mean"]
    assert study.main(argv) == 1  # both runs killed midway: not finished
    text = capsys.readouterr()
    assert "fake run" in text.out  # --jobs 1: the run's output live on the console
    assert "spatial_mean: FAILED (exit status -9)" in text.out and "spatial_mean, motion_mean" in text.err
    assert not (out / "spatial_mean" / study.DONE).exists()
    assert "no fusion" in text.out

    assert study.main(argv + ["--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "==> spatial_mean: resume" in plan
    assert f"--resume {out / 'spatial_mean' / 'checkpoint.pth'}" in plan

    assert study.main(argv) == 0
    text = capsys.readouterr().out
    assert "==> motion_mean: resuming" in text and (out / "motion_mean" / study.DONE).is_file()
    # No validation set in these runs: the fusion takes the last epoch's scores and says so.
    fusion_md = (out / "fusion.md").read_text()
    assert "video_scores.pkl = the LAST epoch" in fusion_md and "| average |" in fusion_md
    assert "| spatial_mean | spatial | resnet18 | mean |" in (out / "report.md").read_text()
    assert "last (no validation set)" in (out / "report.md").read_text()

    assert study.main(argv) == 0
    assert "==> spatial_mean: skip (finished" in capsys.readouterr().out


def test_failed_run_is_not_finished_and_restarts(data_root, tmp_path, fake_cli, capsys, monkeypatch):
    out = tmp_path / "study"
    argv = ["--data-root", data_root, "--out", str(out), "--streams", "spatial", "--consensus", "max"]
    monkeypatch.setenv("FAKE_FAIL", "1")
    assert study.main(argv) == 1
    text = capsys.readouterr().out
    assert "spatial_max: FAILED (exit status 3)" in text and "something went wrong" in text  # the log's tail
    assert not (out / "spatial_max" / study.DONE).exists()
    assert study.main(argv + ["--dry-run"]) == 0
    assert "==> spatial_max: run" in capsys.readouterr().out  # no checkpoint: starts again


def test_dry_run_plans_without_touching_anything(data_root, tmp_path, capsys):
    out = tmp_path / "study"
    (out / "spatial_var").mkdir(parents=True)
    (out / "spatial_var" / "checkpoint.pth").write_bytes(b"x")
    finished = out / "motion_mean"
    finished.mkdir()
    (finished / "video_scores.pkl").write_bytes(b"x")
    (finished / study.DONE).write_text(json.dumps({"returncode": 0, "options": ["--epochs", "9"],
                                                   "data_root": data_root}))
    before = sorted(str(p) for p in out.rglob("*"))
    argv = ["--data-root", data_root, "--out", str(out), "--consensus", "mean", "var", "--dry-run",
            "--", "--epochs", "2", "--stack=4"]
    assert study.main(argv) == 0
    plan = capsys.readouterr().out
    assert sorted(str(p) for p in out.rglob("*")) == before
    assert "==> spatial_mean: run" in plan and "==> spatial_var: resume" in plan
    assert "==> motion_mean: skip (finished earlier with other options (--epochs 9" in plan
    lines = [line for line in plan.splitlines() if line.startswith("$ ")]
    assert all("--stack=4" in line for line in lines if "motion_cnn.py" in line)
    assert not any("--stack" in line for line in lines if "spatial_cnn.py" in line)
    assert "fusion.py --spatial" in plan and "--names mean var --normalize both" in plan
    assert f"--fit-weights-on {out / 'spatial_mean' / 'video_scores_val.pkl'} " in plan


@pytest.mark.parametrize("extra, message", [(["--", "--out", "x"], "--out is set by the study"),
                                            (["--", "--evaluate"], "--evaluate trains nothing"),
                                            (["--", "--no-such-option"], "not valid for spatial"),
                                            (["--jobs", "0"], "--jobs"),
                                            (["--consensus", "mean", "mean"], "given twice"),
                                            (["--", "--epochs", "1", "--jobs", "2"], "a study option, put it before --")])
def test_bad_options_exit_2(data_root, tmp_path, capsys, extra, message):
    argv = ["--data-root", data_root, "--out", str(tmp_path / "s"), "--dry-run", *extra]
    assert study.main(argv) == 2
    assert message in capsys.readouterr().err


def test_every_option_has_help(capsys):
    assert study.main(["--help"]) == 0
    assert all(a.help for a in study.build_parser()._actions)


@pytest.mark.parametrize("root, message", [("file", "is a file"), ("nowhere", "no such folder"),
                                           ("empty", "split list not found")])
def test_a_data_root_without_split_lists_fails_before_any_run(tmp_path, fake_cli, capsys, root, message):
    (tmp_path / "file").write_text("")
    (tmp_path / "empty").mkdir()
    for dry in ([], ["--dry-run"]):
        argv = ["--data-root", str(tmp_path / root), "--out", str(tmp_path / "study"), "--consensus", "mean", *dry]
        assert study.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("tools.study: error: --data-root") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "study").exists()


def test_a_run_finished_with_other_options_is_refused_not_fused(data_root, tmp_path, fake_cli, capsys):
    out = tmp_path / "study"
    argv = ["--data-root", data_root, "--out", str(out), "--streams", "spatial", "--consensus", "mean"]
    assert study.main(argv) == 1  # the stand-in dies in its first run
    assert study.main(argv) == 0  # and finishes resumed
    capsys.readouterr()
    before = sorted((str(p), p.stat().st_mtime_ns) for p in out.rglob("*"))
    assert study.main(argv + ["--", "--epochs", "7"]) == 2
    err = capsys.readouterr().err
    assert "finished earlier with other options" in err and str(out / "spatial_mean") in err
    assert sorted((str(p), p.stat().st_mtime_ns) for p in out.rglob("*")) == before
