"""Careless use of tools.predict: outputs that cannot be written, Ctrl-C, a folder for a video,
options that depart from what a model was trained on, fusion weights from fusion.py
--save-weights (or their absence), progress in a log, and the flow backends.

Two tiny streams are trained once (tests/tiny.py) on data whose prepare_info.json says TV-L1
at 48x40, and predict reads generated videos of 12 frames (tests/own_videos.py). With FAST's
3 test positions and a stack of 4, a 12-frame video needs RGB frames 2, 6, 10 (positions at
the centres of thirds of 12) and flow frames 1-9 (11 flow frames, 8 usable positions: 1, 4, 6,
each 4 long), i.e. 9 flow pairs and frames up to 10."""
import json
import os
import pickle
import re
import shutil

import numpy as np
import pytest
import torch

import dataloader.video
import fusion
import tools.predict
from engine.streams import MOTION, SPATIAL
from engine.train import main as train_main
from own_videos import render, write_video
from test_bad_input import assert_one_line, checksums
from tiny import FAST, make_tiny_data

TRAINED = pytest.mark.slow  # the tests that need the trained streams


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("careless_predict")
    data = make_tiny_data(root / "data", seed=3)
    (data / "prepare_info.json").write_text(json.dumps({"flow": "tvl1", "width": 48, "height": 40, "bound": 20}))
    for spec, extra in ((SPATIAL, []), (MOTION, ["--stack", "4"])):
        assert train_main(spec, ["--data-root", str(data), "--out", str(root / spec.name), *FAST, "--epochs", "1",
                                 *extra]) == 0
    videos = [write_video(str(root / f"clip{i}.mp4"), render(c, m, 40 + i, frames=12))
              for i, (c, m) in enumerate([("Red", "Up"), ("Green", "Down"), ("Red", "Down")])]
    return root, videos


def ckpts(root):
    return ["--spatial", str(root / "spatial" / "model_best.pth"), "--motion", str(root / "motion" / "model_best.pth")]


def predict(capsys, *argv):
    rc = tools.predict.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def lines(err, prefix):
    return [ln for ln in err.splitlines() if ln.startswith(prefix)]


# ------------------------------------------------------------ --help
def test_help_names_each_default_once(capsys):
    with pytest.raises(SystemExit):
        tools.predict.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: None)" not in text
    assert "override the flow method (default: the one the motion checkpoint's data were made with) --flow-backend" in text
    assert "--flow-backend {auto,opencv,torch}" in text and "--fusion W.json" in text


# ------------------------------------------------------------ refused before any video is read
@TRAINED
def test_json_that_cannot_be_written_is_refused_before_predicting(runs, tmp_path, capsys, monkeypatch):
    root, videos = runs
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    blocker = tmp_path / "file"
    blocker.write_text("a file: nothing can be made below it, even by root")
    read = []
    monkeypatch.setattr(tools.predict, "predict_video", lambda *a, **k: read.append(a) or pytest.fail("predicted"))
    for target, words in ((folder, ["is a folder", "expected a file name"]), (blocker / "p.json", ["is a file"])):
        before = checksums(tmp_path)
        rc, out, err = predict(capsys, videos[0], *ckpts(root), "--json", target, "--no-progress")
        assert rc == 2 and out == "" and read == []
        assert_one_line(err, f"--json {target}", *words)
        assert checksums(tmp_path) == before


@TRAINED
def test_a_folder_given_as_a_video_is_called_a_folder(runs, tmp_path, capsys):
    root, videos = runs
    rc, out, err = predict(capsys, tmp_path, videos[0], *ckpts(root), "--no-progress", "--weights", "1:1")
    assert rc == 2 and f"{videos[0]}: " in out  # the other video is still predicted
    assert lines(err, "error") == [f"error: {tmp_path}: is a folder; expected a video file (give the videos in it, "
                                   "e.g. FOLDER/*.mp4)"]


@TRAINED
def test_ctrl_c_is_one_line_exit_130_and_writes_nothing(runs, tmp_path, capsys, monkeypatch):
    root, videos = runs
    out = tmp_path / "p.json"
    out.write_text('{"an": "older prediction"}')
    before = checksums(tmp_path)
    real, calls = tools.predict.predict_video, []

    def second_is_interrupted(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tools.predict, "predict_video", second_is_interrupted)
    try:
        rc, printed, err = predict(capsys, *videos, *ckpts(root), "--json", out, "--no-progress", "--weights", "1:1")
    except KeyboardInterrupt:  # would end the whole test session: a failure of this test instead
        pytest.fail("KeyboardInterrupt escaped tools.predict: the user sees a traceback")
    assert rc == 130 and "Traceback" not in err
    assert lines(err, "interrupted") == [f"interrupted after 1 of 3 videos; {out} not written"]
    assert [ln for ln in err.splitlines() if not ln.startswith(("==>", "interrupted"))] == []
    assert printed.startswith(f"{videos[0]}: ")  # the first video's prediction was printed
    assert checksums(tmp_path) == before


# ------------------------------------------------------------ what the model was trained on
@TRAINED
def test_flow_and_size_other_than_the_training_data_are_warned_about(runs, capsys):
    root, videos = runs
    motion = root / "motion" / "model_best.pth"
    rc, _, err = predict(capsys, videos[0], "--motion", motion, "--flow", "farneback", "--size", "64x48",
                         "--no-progress")
    assert rc == 0
    assert lines(err, "warning") == [
        f"warning: {motion} was trained on tvl1 flow (the checkpoint), but --flow farneback computes farneback "
        "flow: its scores on other flow may be off; drop --flow to use tvl1",
        f"warning: {motion} was trained on 48x40 frames (the checkpoint), but --size 64x48 resizes to other ones: "
        "its scores may be off; drop --size to use 48x40"]
    # the same as the training data: nothing to say
    rc, _, err = predict(capsys, videos[0], "--motion", motion, "--flow", "tvl1", "--size", "48x40", "--no-progress")
    assert rc == 0 and lines(err, "warning") == []


@TRAINED
def test_a_size_below_the_trained_crop_names_size_not_crop_size(runs, capsys):
    root, videos = runs
    rc, _, err = predict(capsys, videos[0], *ckpts(root), "--size", "1x1")
    assert rc == 2
    line = assert_one_line(err, "--size 1x1", "32-pixel crop", "at least 32x32")
    assert "--crop-size" not in line  # predict has no such option


# ------------------------------------------------------------ progress in a log
@TRAINED
def test_progress_in_a_log_is_whole_lines_one_bar_per_phase(runs, capsys):
    root, videos = runs
    rc, _, err = predict(capsys, videos[0], *ckpts(root), "--weights", "1:1")  # stderr is not a terminal here
    assert rc == 0 and "\r" not in err
    name = os.path.basename(videos[0])
    # decoding: 12 frames counted, then frames 0..10 read (11); 9 flow pairs; 2 streams scored
    for phase, done, unit in (("decode", 23, "frame"), ("flow", 9, "pair"), ("score", 2, "stream")):
        assert re.search(rf"^{re.escape(name)} {phase}: 100%\|#+\| {done}/{done} \[.*{unit}", err, re.M), (phase, err)


# ------------------------------------------------------------ which weights, and from where
def fitted_weights(root, tmp_path, capsys):
    """fusion.py --save-weights on the runs' own score files -> W.json."""
    s, m = root / "spatial", root / "motion"
    path = tmp_path / "W.json"
    assert fusion.main(["--spatial", str(s / "video_scores_best.pkl"), "--motion", str(m / "video_scores_best.pkl"),
                        "--fit-weights-on", str(s / "video_scores_val.pkl"), str(m / "video_scores_val.pkl"),
                        "--save-weights", str(path)]) == 0
    capsys.readouterr()
    return path


def softmax(v):
    e = np.exp(np.asarray(v) - np.max(v))
    return e / e.sum()


@TRAINED
def test_predict_fuses_with_the_saved_weights_and_says_so(runs, tmp_path, capsys):
    root, videos = runs
    path = fitted_weights(root, tmp_path, capsys)
    saved = json.loads(path.read_text())
    val_videos = len(pickle.load(open(root / "spatial" / "video_scores_val.pkl", "rb"))["scores"])
    assert saved["validation"]["videos"] == val_videos
    # Another weight and normalisation than 1:1 raw, so that the fused scores show which was used.
    saved["weights"], saved["normalize"] = [1, 3], "softmax"
    path.write_text(json.dumps(saved))
    rc, _, err = predict(capsys, videos[0], *ckpts(root), "--fusion", path, "--json", tmp_path / "p.json",
                         "--no-progress")
    assert rc == 0, err
    assert lines(err, "==> fusion") == [f"==> fusion: weighted 1:3 on softmax scores, fitted on validation (val top-1 "
                                        f"{saved['validation']['top1']:.2f}, {val_videos} videos) from {path}"]
    assert lines(err, "warning") == []  # fitted on these very runs
    rec = json.loads((tmp_path / "p.json").read_text())
    scores = rec["videos"][0]["scores"]
    want = (softmax(scores["spatial"]) + 3 * softmax(scores["motion"])) / 4
    np.testing.assert_allclose(scores["fused"], want, rtol=1e-6)
    assert rec["weights"] == [1, 3] and rec["normalize"] == "softmax"


@TRAINED
def test_default_weights_say_so_and_point_at_fitting_once(runs, tmp_path, capsys):
    root, videos = runs
    rc, _, err = predict(capsys, videos[0], videos[1], *ckpts(root), "--no-progress")
    assert rc == 0
    assert lines(err, "==> fusion") == ["==> fusion: weighted 1:1 on raw scores (the default)"]
    hints = lines(err, "warning")
    assert len(hints) == 1 and "default weights 1:1" in hints[0]
    s, m = root / "spatial", root / "motion"
    assert (f"--fit-weights-on {s / 'video_scores_val.pkl'} {m / 'video_scores_val.pkl'} --save-weights W.json"
            in hints[0] and "--fusion W.json" in hints[0])
    rc, _, err = predict(capsys, videos[0], *ckpts(root), "--weights", "1:2", "--no-progress")
    assert lines(err, "==> fusion") == ["==> fusion: weighted 1:2 on raw scores (--weights)"]
    assert lines(err, "warning") == []
    # checkpoints without validation scores beside them: nothing to fit on, nothing to say
    for stream in ("spatial", "motion"):
        shutil.copy(root / stream / "model_best.pth", tmp_path / f"{stream}.pth")
    rc, _, err = predict(capsys, videos[0], "--spatial", tmp_path / "spatial.pth", "--motion", tmp_path / "motion.pth",
                         "--no-progress")
    assert rc == 0 and lines(err, "warning") == []


@TRAINED
def test_fusion_files_that_do_not_fit_are_refused_or_warned_about(runs, tmp_path, capsys):
    root, videos = runs
    path = fitted_weights(root, tmp_path, capsys)
    saved = json.loads(path.read_text())
    # --fusion with --weights or --normalize: the file says both, so the combination is refused
    for extra in (["--weights", "1:2"], ["--normalize", "softmax"]):
        rc, out, err = predict(capsys, videos[0], *ckpts(root), "--fusion", path, *extra, "--no-progress")
        assert rc == 2 and out == ""
        assert_one_line(err, f"--fusion {path}", "drop --weights / --normalize")
    # fitted on score files of other classes
    other = tmp_path / "other.json"
    other.write_text(json.dumps(saved | {"classes": ["A", "B", "C", "D"]}))
    rc, out, err = predict(capsys, videos[0], *ckpts(root), "--fusion", other, "--no-progress")
    assert rc == 2 and out == ""
    assert_one_line(err, f"--fusion {other}", "other classes", "first difference at class 1")
    # broken files
    (tmp_path / "text.json").write_text("weighted 1:2\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    for bad, words in ((tmp_path / "missing.json", ["no such file", "--save-weights"]),
                       (tmp_path, ["is a folder"]), (tmp_path / "text.json", ["not readable as JSON"]),
                       (tmp_path / "list.json", ["not a fusion weights file"])):
        rc, out, err = predict(capsys, videos[0], *ckpts(root), "--fusion", bad, "--no-progress")
        assert rc == 2 and out == ""
        assert_one_line(err, f"--fusion {bad}", *words)
    # fitted on another epoch's validation scores than the checkpoint's
    later = tmp_path / "later.json"
    later.write_text(json.dumps(saved | {"streams": saved["streams"] | {"motion": saved["streams"]["motion"] | {
        "epoch": 7}}}))
    rc, _, err = predict(capsys, videos[0], *ckpts(root), "--fusion", later, "--no-progress")
    assert rc == 0 and lines(err, "warning") == [
        f"warning: --fusion {later}: its weight was fitted on the validation scores of epoch 7, but --motion "
        f"{root / 'motion' / 'model_best.pth'} holds epoch 0 (model_best.pth is the fitted one)"]
    # checkpoints of other runs (here: copies elsewhere) -> predicted, with a warning per stream
    for stream in ("spatial", "motion"):
        shutil.copy(root / stream / "model_best.pth", tmp_path / f"{stream}.pth")
    rc, _, err = predict(capsys, videos[0], "--spatial", tmp_path / "spatial.pth", "--motion", tmp_path / "motion.pth",
                         "--fusion", path, "--no-progress")
    assert rc == 0
    warned = lines(err, "warning")
    assert len(warned) == 2 and all("not on the validation scores of the run of" in w for w in warned)
    assert str(root / "spatial" / "video_scores_val.pkl") in warned[0] and str(tmp_path / "spatial.pth") in warned[0]


# ------------------------------------------------------------ flow backends
@TRAINED
def test_torch_flow_backend_on_the_cpu_scores_close_to_opencv(runs, tmp_path, capsys, monkeypatch):
    """The torch TV-L1 follows OpenCV's to about 0.03 px (docs/flow.md); one quantisation step
    is 40/255 = 0.157 px, so most flow bytes are equal and the rest differ by a grey level or
    two (a few pixels more, where the flow is ill-posed). Measured before choosing the
    tolerances, on this model and 16 videos (seeds 100-107, two classes): decoded flow bytes
    differ by 0.07-0.24 grey levels on average, at most 0.65 % by more than 2 levels; the
    motion scores by at most 3.1 % of their range (max - min over the classes), while
    Farneback flow instead moved them by 2-100 %. Tolerances, with room for other machines:
    bytes 0.5 level on average and 98.5 % within 2 levels; scores 10 % of their range."""
    root, videos = runs
    calls, real = [], dataloader.video.compute_flow_batch

    def spy(prevs, nexts, method, backend, device):
        calls.append((method, backend, str(device), len(prevs)))
        return real(prevs, nexts, method, backend, device)

    monkeypatch.setattr(dataloader.video, "compute_flow_batch", spy)
    motion = ["--motion", root / "motion" / "model_best.pth", "--no-progress", "--device", "cpu"]
    got = {}
    for backend in ("opencv", "torch"):
        calls.clear()
        rc, _, err = predict(capsys, *videos[:2], *motion, "--flow-backend", backend, "--json", tmp_path / "p.json")
        assert rc == 0, err
        got[backend] = [np.array(v["scores"]["motion"]) for v in json.loads((tmp_path / "p.json").read_text())["videos"]]
        if backend == "torch":  # one batch of the 9 pairs per video, on the predict device
            assert calls == [("tvl1", "torch", "cpu", 9)] * 2
            assert lines(err, "==> flow") == [
                "==> flow: tvl1 by the torch backend on cpu (--flow-backend torch; dataloader/tvl1.py follows "
                "OpenCV's TV-L1, which tools.prepare_data runs, to about 0.03 px: docs/flow.md)"]
        else:
            assert calls == [("tvl1", "opencv", "cpu", 1)] * 18
    for o, t in zip(got["opencv"], got["torch"]):
        assert np.abs(o - t).max() <= 0.1 * np.ptp(o), (o, t)

    # The flow bytes themselves, over three more videos in one batch (frames of video k at 100 k + i).
    import cv2
    frames, pairs = {}, []
    for k in range(3):
        for i, f in enumerate(render(["Red", "Green", "Red"][k], ["Up", "Down", "Down"][k], 100 + k, frames=8)):
            frames[100 * k + i] = dataloader.video.resize_frame(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), 48, 40)
        pairs += [100 * k + i for i in range(7)]
    flows = {b: dataloader.video.encode_flow(frames, pairs, "tvl1", backend=b, device="cpu") for b in ("opencv", "torch")}
    decode = lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE).astype(int)  # noqa: E731
    diff = np.concatenate([np.abs(decode(flows["opencv"][c][i]) - decode(flows["torch"][c][i])).ravel()
                           for c in (0, 1) for i in pairs])
    assert diff.mean() <= 0.5 and (diff <= 2).mean() >= 0.985, (diff.mean(), (diff <= 2).mean())


@TRAINED
def test_auto_backend_on_the_cpu_is_opencv_and_torch_errors_are_one_line(runs, tmp_path, capsys):
    root, videos = runs
    motion = root / "motion" / "model_best.pth"
    rc, _, err = predict(capsys, videos[0], "--motion", motion, "--device", "cpu", "--no-progress")
    assert rc == 0 and lines(err, "==> flow") == [
        "==> flow: tvl1 by OpenCV on the CPU (--flow-backend auto), as tools.prepare_data computes it"]
    # the torch backend computes TV-L1 only
    rc, out, err = predict(capsys, videos[0], "--motion", motion, "--flow", "farneback", "--flow-backend", "torch",
                           "--device", "cpu", "--no-progress")
    assert rc == 2 and out == ""
    assert_one_line(err, "--flow-backend torch computes TV-L1 only", "farneback", "--flow-backend opencv")
    if not torch.cuda.is_available():  # --device cuda on a machine without one
        rc, out, err = predict(capsys, videos[0], "--motion", motion, "--flow-backend", "torch", "--device", "cuda",
                               "--no-progress")
        assert rc == 2 and out == ""
        assert_one_line(err, "--device cuda", "no CUDA")
