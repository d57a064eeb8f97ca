"""Careless input to the training scripts, round three: a checkpoint never meets data it was
not trained on unwarned, an interrupted --overwrite never points back at the old run,
unwritable outputs and impossible schedules fail before an epoch, the validation set says
when it is too small to choose on, and outputs are readable as the umask allows.

Each test runs the real CLI entry point on tiny generated data (tests/tiny.py); refusals are
checked with checksums of what was on disk before."""
import os
import shutil

import pytest

import engine.train
import utils
from engine.streams import SPATIAL
from engine.train import main
from test_bad_input import assert_one_line, checksums
from tiny import FAST, make_tiny_data


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("careless") / "data", seed=5)


@pytest.fixture(scope="module")
def other_data(tmp_path_factory):
    """Another data set with as many classes (4) but other ones: BlueUp, GreenUp, RedUp, YellowUp."""
    return make_tiny_data(tmp_path_factory.mktemp("other") / "data", seed=6, appearances=4, motions=1)


@pytest.fixture(scope="module")
def finished(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert stream(data_root, out, "--epochs", "1") == 0
    return out


def stream(data_root, out, *extra):
    return main(SPATIAL, ["--data-root", str(data_root), "--out", str(out), *FAST, *extra])


# ------------------------------------------------------------ a checkpoint meets other data (item 3)
@pytest.mark.parametrize("mode", ["--resume", "--evaluate"])
def test_a_checkpoint_is_refused_on_other_classes(finished, other_data, tmp_path, capsys, mode):
    before = checksums(finished)
    extra = ["--evaluate", "--resume"] if mode == "--evaluate" else ["--resume"]
    out = tmp_path / "out" if mode == "--evaluate" else finished
    assert stream(other_data, out, *extra, str(finished / "checkpoint.pth"), "--epochs", "3") == 2
    line = assert_one_line(capsys.readouterr().err, finished / "checkpoint.pth", "4 classes", "class 1")
    assert "BlueUp" in line
    assert checksums(finished) == before
    assert not (tmp_path / "out").exists()


def test_evaluating_elsewhere_and_on_another_split_is_warned_about(finished, data_root, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(data_root, copy)
    assert stream(copy, tmp_path / "eval", "--evaluate", "--resume", str(finished / "checkpoint.pth"),
                  "--split", "2") == 0
    err = capsys.readouterr().err
    assert f"--data-root {data_root}" in err and f"this run reads {copy}" in err
    assert "split 1; this run reads split 2" in err
    # Split 2 tests groups g08-g14, which split 1 trained on: the figures are not held out.
    assert "test videos were among" in err and "not a held-out measurement" in err


def test_the_same_data_gives_no_warning(finished, data_root, tmp_path, capsys):
    assert stream(data_root, tmp_path / "eval", "--evaluate", "--resume", str(finished / "checkpoint.pth")) == 0
    assert "warning" not in capsys.readouterr().err


# ------------------------------------------------------------ --overwrite and Ctrl-C (item 4)
def test_ctrl_c_before_an_overwriting_run_saves_points_at_no_checkpoint(finished, data_root, tmp_path, capsys,
                                                                         monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = checksums(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C during the new run's first epoch

    monkeypatch.setattr(engine.train, "train_epochs", interrupted)
    assert stream(data_root, out, "--epochs", "2", "--overwrite") == 128 + 2
    err = capsys.readouterr().err
    assert "still holds the old run, intact" in err and "--resume" not in err
    assert checksums(out) == before


def test_overwrite_and_resume_of_the_same_run_are_refused(finished, data_root, capsys):
    before = checksums(finished)
    assert stream(data_root, finished, "--overwrite", "--resume", str(finished / "checkpoint.pth"),
                  "--epochs", "3") == 2
    assert_one_line(capsys.readouterr().err, "--overwrite", "--resume")
    assert checksums(finished) == before


def test_a_resume_hint_never_repeats_overwrite(finished, data_root, tmp_path, capsys, monkeypatch):
    """After the new run's first save, the hint resumes the new run, without --overwrite
    (which would now be refused together with --resume)."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    real = engine.train.save_epoch  # (engine.outputs.save_epoch, as train.py calls it)

    def save_then_stop(run, epoch, *args):
        real(run, epoch, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.train, "save_epoch", save_then_stop)
    assert stream(data_root, out, "--epochs", "3", "--overwrite") == 128 + 2
    err = capsys.readouterr().err
    assert f"--resume {out / 'checkpoint.pth'}" in err and "--overwrite" not in err


# ------------------------------------------------------------ refused at start (items 10, 11, 12)
@pytest.mark.parametrize("mode", ["train", "resume", "evaluate"])
def test_an_unwritable_out_fails_before_any_work(finished, data_root, tmp_path, capsys, mode):
    blocker = tmp_path / "file"
    blocker.write_text("a file, so nothing can be made below it (even by root)")
    out = blocker / "out"
    extra = {"train": [], "resume": ["--resume", str(finished / "checkpoint.pth"), "--epochs", "3"],
             "evaluate": ["--evaluate", "--overwrite", "--resume", str(finished / "checkpoint.pth")]}[mode]
    before = checksums(finished)
    assert stream(data_root, out, *extra) == 2
    assert_one_line(capsys.readouterr().err, f"--out {out}", "is a file")
    assert "==> Epoch" not in capsys.readouterr().out
    assert checksums(finished) == before


def test_min_lr_above_lr_is_refused(data_root, tmp_path, capsys):
    assert stream(data_root, tmp_path / "out", "--lr", "0.01", "--min-lr", "0.1") == 2
    assert_one_line(capsys.readouterr().err, "--min-lr 0.1", "--lr 0.01")
    assert not (tmp_path / "out").exists()


def test_resume_with_a_start_epoch_past_the_end_is_refused(finished, data_root, capsys):
    before = checksums(finished)
    assert stream(data_root, finished, "--resume", str(finished / "checkpoint.pth"), "--start-epoch", "100",
                  "--epochs", "3") == 2
    assert_one_line(capsys.readouterr().err, "--start-epoch 100", "--epochs 3")
    assert checksums(finished) == before


def test_resuming_with_partial_bn_changed_names_the_option(finished, data_root, capsys):
    before = checksums(finished)
    assert stream(data_root, finished, "--resume", str(finished / "checkpoint.pth"), "--epochs", "3",
                  "--partial-bn") == 2
    assert_one_line(capsys.readouterr().err, "--partial-bn", "without")
    assert checksums(finished) == before


# ------------------------------------------------------------ silent no more (items 14, 15, 16)
def rewrite_lists(root, classes, train, test):
    """UCF101-format lists: classes [name], train/test [(video, label)] (frame folders v_<video>)."""
    lists = root / "ucfTrainTestlist"
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\r\n" for i, c in enumerate(classes)))
    (lists / "trainlist01.txt").write_text("".join(f"{classes[y]}/v_{v}.avi {y + 1}\r\n" for v, y in train))
    (lists / "testlist01.txt").write_text("".join(f"{classes[y]}/v_{v}.avi\r\n" for v, y in test))


def group_free_copy(data_root, root, per_class):
    """The first `per_class` videos of each class under names without actor groups (as one's own
    videos are named), one test video per class and the rest training, as prepare_data draws them."""
    shutil.copytree(data_root, root)
    names = sorted(os.listdir(root / "jpegs_256"))
    classes = sorted({n[2:].split("_")[0] for n in names})
    train, test = [], []
    for y, c in enumerate(classes):
        for i, folder in enumerate([n for n in names if n[2:].split("_")[0] == c][:per_class]):
            video = f"{c}_clip{i}"
            for top in ("jpegs_256", "tvl1_flow/u", "tvl1_flow/v"):
                os.rename(root / top / folder, root / top / f"v_{video}")
            (test if i == 0 else train).append((video, y))
    rewrite_lists(root, classes, train, test)
    return root


def test_two_videos_a_class_give_no_validation_set_and_say_so(data_root, tmp_path, capsys):
    root = group_free_copy(data_root, tmp_path / "data", per_class=2)
    assert stream(root, tmp_path / "out", "--epochs", "1", "--val-groups", "auto") == 0
    err = capsys.readouterr().err
    assert "--val-groups auto held out no validation set" in err and "at least 3 videos" in err
    assert not (tmp_path / "out" / "model_best.pth").exists()


def test_three_videos_a_class_give_a_small_validation_set_and_say_so(data_root, tmp_path, capsys):
    root = group_free_copy(data_root, tmp_path / "data", per_class=3)
    assert stream(root, tmp_path / "out", "--epochs", "1", "--val-groups", "auto") == 0
    err = capsys.readouterr().err
    assert "the validation set is small: 4 videos for 4 classes (fewest in a class: 1)" in err
    assert (tmp_path / "out" / "model_best.pth").exists()


def test_one_class_is_refused(data_root, tmp_path, capsys):
    root = group_free_copy(data_root, tmp_path / "data", per_class=3)
    rewrite_lists(root, ["GreenDown"], [("GreenDown_clip1", 0), ("GreenDown_clip2", 0)], [("GreenDown_clip0", 0)])
    assert stream(root, tmp_path / "out", "--epochs", "1") == 2
    assert_one_line(capsys.readouterr().err, "classInd.txt", "1 class", "at least 2")
    assert not (tmp_path / "out").exists()


def test_partial_bn_without_pretrained_weights_is_warned_about(data_root, tmp_path, capsys):
    assert stream(data_root, tmp_path / "out", "--epochs", "1", "--partial-bn") == 0  # FAST: --pretrained none
    assert "--partial-bn with --pretrained none freezes" in capsys.readouterr().err


# ------------------------------------------------------------ permissions (item 18)
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_follow_the_umask(data_root, tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        utils.save_json({"a": 1}, tmp_path / "x.json")
        assert os.stat(tmp_path / "x.json").st_mode & 0o777 == mode
        if umask == 0o002:  # a whole run, once
            assert stream(data_root, tmp_path / "run", "--epochs", "1") == 0
            for f in ("checkpoint.pth", "train.csv", "video_scores.pkl", "args.json", "model_best.pth"):
                assert os.stat(tmp_path / "run" / f).st_mode & 0o777 == mode, f
    finally:
        os.umask(old)
