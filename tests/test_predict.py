"""tools.predict on video files, and the README's "Your own videos" commands, run on generated
videos in class folders (mp4 and avi mixed, names with spaces, dots and Unicode).

Tolerance of predict vs evaluation: predict re-encodes the frames and the quantised flow as
JPEG exactly as prepare_data wrote them (same OpenCV encoder, quality 95), so the network
input is byte-for-byte the evaluation's (checked directly below). What remains is float
rounding: evaluation scores up to 8 videos per batch, predict one, and CPU kernels may sum in
another order for another batch size. Scores are O(1) logits averaged over positions; float32
rounding in a ResNet18 forward is ~1e-6 relative, so 1e-4 absolute is a wide margin that a
single flipped JPEG byte (shifting a logit by ~1e-3 or more) would still break.
"""
import contextlib
import io
import json
import os
import re
import shlex

import numpy as np
import pytest
import torch

import fusion
import utils
from dataloader.datasets import ClipDataset
from dataloader.folders import list_class_videos
from dataloader.frame_dirs import open_layout
from dataloader.splits import load_ucf101_split
from dataloader.video import MemoryLayout, count_frames, decode_video, encode_flow, encode_rgb
from engine.predict import load_stream
from engine.streams import MOTION, SPATIAL
from engine.train import main as train_main
from own_videos import make_class_videos, render, write_video
from tools import predict, prepare_data

pytestmark = pytest.mark.slow
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
TOL = 1e-4
CLASSES = {"Red Up": ("Red", "Up"), "Red Down": ("Red", "Down"), "Blue Up": ("Blue", "Up"), "Blue Down": ("Blue", "Down")}
QUICK = {  # what a quick CPU try adds to the README's commands
    "prepare": ["--width", "64", "--height", "48", "--flow", "farneback", "--workers", "1"],
    "train": ["--epochs", "1", "--crop-size", "32", "--pretrained", "none", "--device", "cpu", "--workers", "0",
              "--batch-size", "4", "--num-segments", "2", "--test-frames", "3", "--no-plots", "--val-groups", "1"],
    "motion": ["--stack", "4"],
    "predict": ["--json", "prediction.json", "--no-progress"],
}


def readme_commands():
    """The commands of the README's 'Your own videos' block, split into argv lists."""
    text = open(README, encoding="utf-8").read()
    block = re.search(r"## Your own videos\n.*?```bash\n(.*?)```", text, re.S).group(1)
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        for part in line.split("&&"):
            if part.strip():
                commands.append(shlex.split(part))
    return commands


def run_command(argv):
    """Run a README command in this process, with the quick options appended."""
    if argv[:3] == ["python", "-m", "tools.prepare_data"]:
        return prepare_data.main(argv[3:] + QUICK["prepare"])
    if argv[:2] == ["python", "spatial_cnn.py"]:
        return train_main(SPATIAL, argv[2:] + QUICK["train"])
    if argv[:2] == ["python", "motion_cnn.py"]:
        return train_main(MOTION, argv[2:] + QUICK["train"] + QUICK["motion"])
    if argv[:2] == ["python", "fusion.py"]:
        return fusion.main(argv[2:])
    if argv[:3] == ["python", "-m", "tools.predict"]:
        return predict.main(argv[3:] + QUICK["predict"])
    raise AssertionError(f"unexpected command in the README: {argv}")


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """The README's commands on generated class folders, in a fresh working directory."""
    root = tmp_path_factory.mktemp("own")
    names = lambda cls, i: [f"clip {i}.mp4", f"prise n°{i}.été.avi", f"take.{i}.avi", f"Clip_{i} .mp4"][i % 4]
    sources = make_class_videos(str(root / "my_videos"), CLASSES, per_class=4, frames=(8, 12), names=names)
    write_video(str(root / "new_video.mp4"), render("Blue", "Up", 99, frames=11))
    cwd, outputs = os.getcwd(), {}
    os.chdir(root)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            for argv in readme_commands():
                outputs[argv[1] if argv[1] != "-m" else argv[2]] = run_command(argv)
    finally:
        os.chdir(cwd)
    return root, outputs, sources, printed.getvalue()


def test_readme_commands_run(own, capsys):
    root, outputs, _, printed = own
    assert outputs == {"tools.prepare_data": 0, "spatial_cnn.py": 0, "motion_cnn.py": 0, "fusion.py": 0,
                       "tools.predict": 0}
    # The fusion table has the row whose weight was fitted on the validation scores.
    assert re.search(r"^\| weighted \(val\) [0-9.]+:[0-9.]+ \|", printed, re.M), printed[-2000:]
    rec = json.loads((root / "prediction.json").read_text())
    assert rec["streams"]["motion"]["flow"] == "farneback"  # from prepare_info.json, via the checkpoint
    top = rec["videos"][0]["top"]
    assert [t["rank"] for t in top] == [1, 2, 3, 4] and {t["class"] for t in top} == {"Red_Up", "Red_Down", "Blue_Up", "Blue_Down"}
    # predict fused with the weight fusion.py fitted on validation and saved (--save-weights, --fusion)
    saved = json.loads((root / "record" / "mine_fusion.json").read_text())
    assert rec["weights"] == saved["weights"] and rec["normalize"] == saved["normalize"]
    assert "record/mine_fusion.json" in rec["fusion"] and "fitted on validation" in rec["fusion"]
    a, b = saved["weights"]
    for t in top:
        assert t["fused"] == pytest.approx((a * t["spatial"] + b * t["motion"]) / (a + b))


def source_of(video, root):
    """The video file a split-list name came from."""
    return next(v.path for v in list_class_videos(str(root / "my_videos")) if v.name == video)


def test_predict_equals_training_evaluation(own, tmp_path):
    root, _, sources, _ = own
    split = load_ucf101_split(str(root / "data/mine/ucfTrainTestlist"), 1)
    spatial = utils.load_pickle_safe(str(root / "record/mine_spatial/video_scores_best.pkl"))
    motion = utils.load_pickle_safe(str(root / "record/mine_motion/video_scores_best.pkl"))
    videos = [v for v, _ in split.test]
    paths = [source_of(v, root) for v in videos]
    out = tmp_path / "p.json"
    assert predict.main(paths + ["--spatial", str(root / "record/mine_spatial/model_best.pth"),
                                 "--motion", str(root / "record/mine_motion/model_best.pth"),
                                 "--json", str(out), "--no-progress"]) == 0
    recs = json.loads(out.read_text())["videos"]
    worst = 0.0
    for v, rec in zip(videos, recs):
        for name, scores in (("spatial", spatial), ("motion", motion)):
            diff = np.abs(np.array(rec["scores"][name]) - scores["scores"][v]).max()
            worst = max(worst, diff)
            assert diff < TOL, (v, name, diff)
    print(f"largest |predict - evaluation| over {len(videos)} videos x 2 streams: {worst:.2e}")


def test_predict_input_is_byte_identical(own):
    """The clips predict builds in memory equal the clips evaluation reads from disk."""
    root, _, sources, _ = own
    split = load_ucf101_split(str(root / "data/mine/ucfTrainTestlist"), 1)
    layout = open_layout("auto", str(root / "data/mine"))
    video = split.test[0][0]
    path = source_of(video, root)
    n = count_frames(path)
    for ckpt, modality, stack in (("mine_spatial", "rgb", 1), ("mine_motion", "flow", 4)):
        stream = load_stream(str(root / "record" / ckpt / "model_best.pth"), torch.device("cpu"))
        frames = decode_video(path, {stream.size: set(range(n))})[stream.size]
        if modality == "rgb":
            mem = MemoryLayout(video, n, rgb=encode_rgb(frames))
        else:
            u, v = encode_flow(frames, range(n - 1), "farneback")
            mem = MemoryLayout(video, n, u=u, v=v)
        kw = dict(stack=stack, crop_size=32, train=False, test_frames=3, test_crops=10, frame_size=(48, 64))
        disk = ClipDataset([(video, 0)], {video: layout.num_frames(video, modality)}, layout, modality, **kw)
        memory = ClipDataset([(video, 0)], {video: mem.num_frames(video, modality)}, mem, modality, **kw)
        assert disk.counts == memory.counts
        assert torch.equal(disk[0][0], memory[0][0])


def test_bad_inputs_one_line_each_and_the_others_predicted(own, tmp_path, capsys):
    root, _, _, _ = own
    ckpts = ["--spatial", str(root / "record/mine_spatial/model_best.pth"),
             "--motion", str(root / "record/mine_motion/model_best.pth"),
             "--weights", "1:1"]  # explicit: no warning that fitted weights could be used instead
    (tmp_path / "notes.avi").write_text("not a video")
    one = write_video(str(tmp_path / "one frame.avi"), render("Red", "Up", 1, frames=1))
    short = write_video(str(tmp_path / "short.mp4"), render("Red", "Up", 2, frames=3))  # 2 flow frames < stack 4
    good = str(root / "new_video.mp4")
    out = tmp_path / "p.json"
    capsys.readouterr()
    rc = predict.main([str(tmp_path / "notes.avi"), one, str(tmp_path / "missing.mp4"), short, good]
                      + ckpts + ["--json", str(out), "--no-progress", "--topk", "2"])
    assert rc == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith(("error", "warning"))]
    assert err == [f"error: {tmp_path / 'notes.avi'}: OpenCV cannot open it as a video (not a video file, or an unsupported codec)",
                   f"error: {one}: only 1 frame: the motion stream needs at least 2 for optical flow",
                   f"error: {tmp_path / 'missing.mp4'}: no such file",
                   f"warning: {short}: only 2 flow frame(s), fewer than the motion stream's stack of 4: "
                   "the last one is repeated, as in training"]
    rec = json.loads(out.read_text())
    assert [v["video"] for v in rec["videos"]] == [short, good] and len(rec["errors"]) == 3
    assert len(rec["videos"][0]["top"]) == 2
    # one stream alone: a one-frame video is fine for the spatial stream
    assert predict.main([one, "--spatial", ckpts[1], "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "spatial" in printed and "motion" not in printed


def test_bad_checkpoints_are_refused(own, tmp_path, capsys):
    root, _, _, _ = own
    spatial, motion = (str(root / f"record/mine_{s}/model_best.pth") for s in ("spatial", "motion"))
    video = str(root / "new_video.mp4")
    other = torch.load(spatial, weights_only=True)
    other["classes"] = list(reversed(other["classes"]))
    torch.save(other, tmp_path / "other.pth")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pth")
    cases = [
        (["--spatial", motion], "a motion stream checkpoint, given as --spatial"),
        (["--spatial", str(tmp_path / "foreign.pth")], "not a stream checkpoint"),
        (["--motion", str(root / "record/mine_motion/video_scores.pkl")], "not a PyTorch checkpoint"),
        (["--spatial", str(tmp_path / "other.pth"), "--motion", motion], "different class lists"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert predict.main([video, "--no-progress"] + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
