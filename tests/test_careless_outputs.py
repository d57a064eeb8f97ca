"""Careless input to the tools, the sweep after round three: an output path never replaces an
input or a file of another kind (a video, a checkpoint, a record), absurd numbers and
impossible folders fail before any work in one line, and Ctrl-C while packing is one line.

Every refusal is checked with checksums of what was on disk before; no tool is mocked."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import fusion
import tools.bench_summary
import tools.make_synthetic
import tools.pack_frames
import tools.predict
import tools.prepare_data
import tools.report
import utils
from test_bad_input import checksums
from test_fusion import write_pair
from tiny import make_tiny_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def exit_code(main, argv):
    """A command's exit status, whether its main returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.fixture
def files(tmp_path):
    """A 'video', a 'checkpoint', a run's records and a pair of score files, to be kept intact."""
    video = tmp_path / "clip.avi"
    video.write_bytes(b"not really a video, but the user's file")
    ckpt = tmp_path / "model_best.pth"
    ckpt.write_bytes(b"weights")
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.csv").write_text("Epoch,Loss\n0,1.0\n")
    s, m, _ = write_pair(tmp_path)
    return {"video": video, "ckpt": ckpt, "run": run, "s": s, "m": m}


# ------------------------------------------------------------ outputs that would replace inputs
@pytest.mark.parametrize("target, reason", [("video", "is also an input"), ("ckpt", "is also an input"),
                                            ("records", "not a .json file")])
def test_predict_json_never_replaces_a_video_a_checkpoint_or_another_file(files, capsys, target, reason):
    path = files["run"] / "train.csv" if target == "records" else files[target]
    before = checksums(files["video"], files["ckpt"], files["run"])
    code = tools.predict.main([str(files["video"]), "--spatial", str(files["ckpt"]), "--json", str(path)])
    assert code == 2
    line = one_error_line(capsys)
    assert f"--json {path}" in line and reason in line
    assert checksums(files["video"], files["ckpt"], files["run"]) == before


@pytest.mark.parametrize("option, target", [("--json", "ckpt"), ("--json", "s"), ("--save-weights", "m"),
                                            ("--save-weights", "val_s")])
def test_fusion_outputs_never_replace_an_input_or_a_checkpoint(files, tmp_path, capsys, option, target):
    (tmp_path / "val").mkdir()
    vs, vm, _ = write_pair(tmp_path / "val")  # validation files: inputs too
    path = vs if target == "val_s" else files[target]
    before = checksums(tmp_path)
    code = fusion.main(["--spatial", str(files["s"]), "--motion", str(files["m"]), "--fit-weights-on", str(vs),
                        str(vm), option, str(path)])
    assert code == 2
    assert f"{option} {path}" in one_error_line(capsys)
    assert checksums(tmp_path) == before


def test_fusion_json_and_save_weights_must_differ(files, tmp_path, capsys):
    (tmp_path / "val").mkdir()
    vs, vm, _ = write_pair(tmp_path / "val")
    out = tmp_path / "out.json"
    assert fusion.main(["--spatial", str(files["s"]), "--motion", str(files["m"]), "--fit-weights-on", str(vs),
                        str(vm), "--json", str(out), "--save-weights", str(out)]) == 2
    assert "the same file" in one_error_line(capsys)
    assert not out.exists()


def test_report_output_never_replaces_a_record_or_a_checkpoint(files, capsys):
    for path in (files["run"] / "train.csv", files["ckpt"]):
        before = checksums(files["run"], files["ckpt"])
        assert tools.report.main([str(files["run"]), "--output", str(path)]) == 2
        assert "not a .md" in one_error_line(capsys)
        assert checksums(files["run"], files["ckpt"]) == before


def test_report_picture_dir_needs_plots(files, tmp_path, capsys):
    assert tools.report.main([str(files["run"]), "--picture-dir", str(tmp_path / "pics")]) == 2
    assert "add --plots" in one_error_line(capsys)


def test_bench_summary_never_replaces_its_input(tmp_path, capsys):
    result = tmp_path / "bench.json"
    result.write_text("{}\n")
    with pytest.raises(SystemExit) as e:
        tools.bench_summary.main([str(result), "--out", str(result)])
    assert e.value.code == 2 and "is also an input" in capsys.readouterr().err
    assert result.read_text() == "{}\n"


def test_an_output_where_nothing_can_be_created_is_named_before_the_work(files, capsys):
    # /proc's permission bits let root write, yet no file can be created there.
    code = tools.predict.main([str(files["video"]), "--spatial", str(files["ckpt"]), "--json", "/proc/x.json"])
    assert code == 2
    assert "--json /proc/x.json: nothing can be created in /proc" in one_error_line(capsys)


# ------------------------------------------------------------ make_synthetic
@pytest.mark.parametrize("option, value", [("--videos-per-class", str(10 ** 12)), ("--width", str(10 ** 12)),
                                           ("--height", str(2 ** 64)), ("--max-frames", str(10 ** 12)),
                                           ("--seed", "-1")])
def test_make_synthetic_refuses_absurd_sizes_at_once(tmp_path, capsys, option, value):
    assert exit_code(tools.make_synthetic.main, [str(tmp_path / "out"), option, value]) == 2
    assert f"argument {option}" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("out, reason", [("", "OUT is empty"), ("/proc/synth", "nothing can be created"),
                                         ("run", "holds other files")])
def test_make_synthetic_refuses_an_out_it_cannot_or_should_not_fill(files, capsys, out, reason):
    target = str(files["run"]) if out == "run" else out
    before = checksums(files["run"])
    assert tools.make_synthetic.main([target, "--videos-per-class", "1"]) == 2
    assert reason in one_error_line(capsys)
    assert checksums(files["run"]) == before and os.listdir(files["run"]) == ["train.csv"]


# ------------------------------------------------------------ prepare_data
@pytest.fixture
def videos(tmp_path):
    """Two class folders of 'videos' (the checks below come before any is decoded)."""
    root = tmp_path / "videos"
    for cls in ("Alpha", "Beta"):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            (root / cls / f"clip{i}.avi").write_bytes(b"x")
    return root


@pytest.mark.parametrize("extra, reason", [
    (["--width", str(10 ** 12)], "argument --width"), (["--width", "1"], "argument --width"),
    (["--seed", "-1"], "argument --seed"), (["--workers", "100000", "--test-fraction", "2"], "argument --workers"),  # fails fast without the bound
    (["--out", ""], "--out is empty"), (["--out", "VIDEOS/Alpha/frames"], "is inside --videos-dir"),
    (["--out", "/proc/prepared"], "nothing can be created in /proc"),
])
def test_prepare_data_refuses_before_any_video_is_read(videos, tmp_path, capsys, extra, reason):
    extra = [e.replace("VIDEOS", str(videos)) for e in extra]
    before = checksums(videos)
    argv = ["--videos-dir", str(videos), "--dataset", "folders", "--out", str(tmp_path / "prepared"), *extra]
    assert exit_code(tools.prepare_data.main, argv) == 2
    assert reason in one_error_line(capsys)
    assert checksums(videos) == before and sorted(os.listdir(videos)) == ["Alpha", "Beta"]
    assert not (tmp_path / "prepared").exists()


def test_prepare_data_names_a_prepared_folder_given_as_videos(tmp_path, capsys):
    data = make_tiny_data(tmp_path / "data")
    assert tools.prepare_data.main(["--videos-dir", str(data), "--dataset", "folders", "--out",
                                    str(tmp_path / "p")]) == 2
    assert "is a prepared data folder, not videos" in one_error_line(capsys)


def test_prepare_data_suggests_folders_for_names_that_are_not_ucf101s(videos, tmp_path, capsys):
    assert tools.prepare_data.main(["--videos-dir", str(videos), "--out", str(tmp_path / "p")]) == 2
    assert "pass --dataset folders" in one_error_line(capsys)


# ------------------------------------------------------------ pack_frames
@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("pack") / "data", seed=2)


@pytest.mark.parametrize("case, reason", [("root_file", "--data-root"), ("rgb_file", "--rgb-dir"),
                                          ("out_in_frames", "is inside the frame folder")])
def test_pack_frames_names_the_folder_that_is_wrong(frames, tmp_path, capsys, case, reason):
    a_file = tmp_path / "file"
    a_file.write_text("")
    argv = {"root_file": ["--data-root", str(a_file)],
            "rgb_file": ["--data-root", str(frames), "--rgb-dir", str(a_file), "--out", str(tmp_path / "packs")],
            "out_in_frames": ["--data-root", str(frames), "--out", str(frames / "jpegs_256")]}[case]
    before = checksums(frames)
    assert tools.pack_frames.main(argv) == 2
    line = one_error_line(capsys)
    assert reason in line and ("is a file" in line or case == "out_in_frames")
    assert checksums(frames) == before


def test_ctrl_c_while_packing_is_one_line_and_the_rerun_finishes(tmp_path):
    data = make_tiny_data(tmp_path / "data", seed=3, videos_per_class=25)  # 100 videos: seconds to pack
    out = tmp_path / "packs"
    cmd = [sys.executable, "-m", "tools.pack_frames", "--data-root", str(data), "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out.is_dir() and any(out.rglob("*.pack"))) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)  # Ctrl-C once the first pack is written: the run is under way
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again" in err
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    packs = {p.name for p in out.rglob("*.pack")}
    assert len(packs) == len(os.listdir(data / "jpegs_256"))
    assert json.loads((data / "synthetic.json").read_text())  # the frames are untouched and still described


def interrupt_when(cmd, ready, sig=signal.SIGINT, group=False):
    """Run `cmd`, send `sig` (to its process group: a terminal's Ctrl-C, timeout's SIGTERM)
    once ready() holds; (exit status, stderr)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=group)
    deadline = time.time() + 120
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_ctrl_c_while_generating_leaves_a_set_that_overwrite_replaces(tmp_path):
    out = tmp_path / "synth"
    cmd = [sys.executable, "-m", "tools.make_synthetic", str(out), "--videos-per-class", "40"]
    code, err = interrupt_when(cmd, lambda: (out / "jpegs_256").is_dir())
    assert code == 130 and "Traceback" not in err and "--overwrite" in err, err
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--overwrite" in again.stderr  # a partial set is not silently reused
    again = subprocess.run(cmd + ["--overwrite"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "synthetic.json").read_text())["videos_per_class"] == 40


def test_sigterm_to_a_training_and_its_data_workers_is_a_stop_not_a_traceback(tmp_path):
    data = make_tiny_data(tmp_path / "data", seed=4)
    out = tmp_path / "run"
    cmd = [sys.executable, "spatial_cnn.py", "--data-root", str(data), "--out", str(out), "--pretrained", "none",
           "--crop-size", "32", "--batch-size", "2", "--workers", "2", "--test-frames", "2", "--epochs", "500",
           "--no-plots", "--device", "cpu"]
    code, err = interrupt_when(cmd, lambda: (out / "checkpoint.pth").is_file(), signal.SIGTERM, group=True)
    assert code == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and f"--resume {out / 'checkpoint.pth'}" in err
    # What is on disk resumes: the stop may have landed inside a checkpoint write (atomic).
    epoch = utils.load_checkpoint(str(out / "checkpoint.pth"))["epoch"]
    cmd[cmd.index("--epochs") + 1] = str(epoch + 2)
    again = subprocess.run(cmd + ["--resume", str(out / "checkpoint.pth")], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert utils.load_checkpoint(str(out / "checkpoint.pth"))["epoch"] == epoch + 1


@pytest.mark.parametrize("case", ["a_run", "epochs_0", "seed_negative"])
def test_the_demo_refuses_before_any_step(tmp_path, capsys, case):
    import tools.demo
    run = tmp_path / "run"
    run.mkdir()
    (run / "args.json").write_text("{}")
    (run / "checkpoint.pth").write_bytes(b"weights")
    before = checksums(run)
    argv = {"a_run": ["--out", str(run)], "epochs_0": ["--out", str(tmp_path / "d"), "--epochs", "0"],
            "seed_negative": ["--out", str(tmp_path / "d"), "--seed", "-1"]}[case]
    assert exit_code(tools.demo.main, argv) == 2
    line = one_error_line(capsys)
    assert ("did not write" in line) if case == "a_run" else ("argument --" in line)
    assert checksums(run) == before and sorted(os.listdir(run)) == ["args.json", "checkpoint.pth"]
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------ benchmarks and predict's options
@pytest.mark.parametrize("argv, reason", [
    (["--sizes", "0x0"], "each side must be 32..4096"), (["--sizes", "1000000000000x48"], "each side"),
    (["--pairs", str(10 ** 12)], "argument --pairs"), (["--backends", "torch", "--batch-sizes", "8", "--pairs", "2"],
                                                      "below the largest of --batch-sizes"),
    (["--video", "/nonexistent.avi"], "no such file"),
])
def test_the_flow_benchmark_refuses_at_once(capsys, argv, reason):
    import tools.benchmark_flow
    assert exit_code(tools.benchmark_flow.parse_args, argv) == 2
    assert reason in one_error_line(capsys)


def test_the_benchmark_refuses_a_batch_that_would_run_for_days(capsys):
    import tools.benchmark
    assert tools.benchmark.main(["--batch-size", str(10 ** 12), "--device", "cpu"]) == 2
    assert "--batch-size must be 1..1024" in one_error_line(capsys)


def test_predict_refuses_a_checkpoint_option_given_twice(files, capsys):
    argv = [str(files["video"]), "--spatial", str(files["ckpt"]), "--spatial", str(files["video"])]
    assert exit_code(tools.predict.main, argv) == 2
    assert "--spatial given twice" in capsys.readouterr().err


@pytest.mark.parametrize("record", ["args.json", "prepare_info.json", "synthetic.json"])
def test_a_json_output_never_replaces_a_record_the_tools_keep(files, tmp_path, capsys, record):
    kept = files["run"] / record
    kept.write_text('{"stream": "spatial"}')
    (tmp_path / "val").mkdir()
    vs, vm, _ = write_pair(tmp_path / "val")
    for option in ("--json", "--save-weights"):
        assert fusion.main(["--spatial", str(files["s"]), "--motion", str(files["m"]), "--fit-weights-on", str(vs),
                            str(vm), option, str(kept)]) == 2
        assert "is a record" in one_error_line(capsys)
    assert kept.read_text() == '{"stream": "spatial"}'


def test_prepare_data_refuses_an_out_that_holds_a_training_run(videos, files, capsys):
    (files["run"] / "args.json").write_text("{}")
    before = checksums(files["run"])
    assert exit_code(tools.prepare_data.main, ["--videos-dir", str(videos), "--dataset", "folders",
                                               "--out", str(files["run"])]) == 2
    assert "holds a training run" in one_error_line(capsys)
    assert checksums(files["run"]) == before


def test_the_resume_command_works_from_another_folder(tmp_path, monkeypatch):
    # Started as `python /path/to/spatial_cnn.py` elsewhere, the bare script name would not run.
    import argparse
    from engine.checkpoint import resume_hint
    from engine.streams import SPATIAL
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pth").write_bytes(b"x")
    args = argparse.Namespace(out=str(tmp_path / "run"))
    monkeypatch.chdir(tmp_path)
    line = resume_hint(SPATIAL, args, ["--epochs", "3"]).splitlines()[1].split()
    assert line[1] == os.path.join(ROOT, "spatial_cnn.py") and os.path.isfile(line[1])
    monkeypatch.chdir(ROOT)
    assert resume_hint(SPATIAL, args, ["--epochs", "3"]).splitlines()[1].split()[1] == "spatial_cnn.py"
