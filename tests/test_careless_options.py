"""Careless input to the stream scripts, the sweep after round three: absurd numbers (an extra
zero or three, 2**64, 1e300) and folder options that would be ignored or misread fail at once
with one line naming the option, before anything is read or written; an allocation failure
is one line that says what to lower, not a traceback."""
import pytest
import torch

from engine.streams import MOTION, SPATIAL
from engine.train import main, out_of_memory
from test_bad_input import assert_one_line
from tiny import FAST, make_tiny_data


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("sweep") / "data", seed=7)


def stream(spec, data_root, out, *extra):
    return main(spec, ["--data-root", str(data_root), "--out", str(out), *FAST, *extra])


# Each of these once allocated terabytes, forked hundreds of processes, overflowed inside
# torch with a traceback, or trained on as if nothing were wrong.
ABSURD = [
    (MOTION, "--stack", "1000000000"),             # a conv of 2e9 input channels: 25 TB
    (SPATIAL, "--num-segments", "1000000000"),     # a batch of 1e9 crops a video: ran until killed
    (SPATIAL, "--test-frames", "1000000000"),
    (SPATIAL, "--workers", "1000000"),             # forked until the machine stalled
    (SPATIAL, "--seed", str(2 ** 64)),             # "Overflow when unpacking long long"
    (SPATIAL, "--lr", "1e300"),                    # float32 overflow traceback in SGD
    (SPATIAL, "--weight-decay", "1e300"),          # the same
    (SPATIAL, "--momentum", "1e300"),              # trained silently
    (SPATIAL, "--momentum", "1"),
    (SPATIAL, "--dist-timeout", "1e300"),          # timedelta overflow under torchrun
]


@pytest.mark.parametrize("spec, option, value", ABSURD, ids=[f"{o}={v}" for _, o, v in ABSURD])
def test_an_absurd_number_is_refused_before_anything_runs(spec, option, value, tmp_path, capsys):
    # No data: should the bound ever go, the run fails on the missing data root (and the
    # assertion on the option with it) instead of forking a million workers on the test machine.
    assert stream(spec, tmp_path / "no_data", tmp_path / "out", option, value, "--epochs", "1") == 2
    assert_one_line(capsys.readouterr().err, option, value)
    assert not (tmp_path / "out").exists()


def test_the_defaults_and_usual_values_are_inside_the_bounds(data_root, tmp_path, capsys):
    # --check-data parses every option, reads the data and trains nothing.
    usual = ["--stack", "10", "--num-segments", "7", "--test-frames", "25", "--test-crops", "10", "--seed",
             str(2 ** 32 - 1), "--lr", "0.01", "--weight-decay", "5e-4", "--momentum", "0.9", "--check-data"]
    assert stream(MOTION, data_root, tmp_path / "out", *usual) == 0


@pytest.mark.parametrize("spec, option, reason", [
    (SPATIAL, "--flow-dir", "not read by the spatial stream"),     # a missing folder the stream never reads
    (MOTION, "--rgb-dir", "not read by the motion stream"),
    (SPATIAL, "--packed-dir", "no such folder"),
])
def test_a_missing_frame_folder_is_named_not_ignored(spec, option, reason, data_root, tmp_path, capsys):
    code = stream(spec, data_root, tmp_path / "out", option, str(tmp_path / "nope"), "--epochs", "1")
    assert code == 2
    line = assert_one_line(capsys.readouterr().err, option, tmp_path / "nope")
    assert reason in line or "not found" in line
    assert not (tmp_path / "out").exists()


def test_a_folder_of_another_layout_picks_that_layout(data_root, tmp_path, capsys):
    # --frames-dir names an mmaction folder: reading the two-stream folders instead would train
    # on other frames than the user pointed at.
    empty = tmp_path / "rawframes"
    empty.mkdir()
    assert stream(SPATIAL, data_root, tmp_path / "out", "--frames-dir", str(empty), "--epochs", "1") == 2
    assert_one_line(capsys.readouterr().err, empty, "no rgb frames")


def test_both_streams_may_share_existing_folder_options(data_root, tmp_path):
    # A script that passes both streams the same --rgb-dir and --flow-dir must keep working.
    dirs = ["--rgb-dir", str(data_root / "jpegs_256"), "--flow-dir", str(data_root / "tvl1_flow"), "--check-data"]
    assert stream(SPATIAL, data_root, tmp_path / "s", *dirs) == 0
    assert stream(MOTION, data_root, tmp_path / "m", *dirs) == 0


@pytest.mark.parametrize("option", ["--data-root", "--splits-dir", "--rgb-dir", "--picture-dir"])
def test_a_file_where_a_folder_is_expected_is_named(option, data_root, tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder\n")
    argv = ["--out", str(tmp_path / "out"), *FAST, "--epochs", "1", option, str(a_file)]
    if option != "--data-root":
        argv = ["--data-root", str(data_root), *argv]
    assert main(SPATIAL, argv) == 2
    line = assert_one_line(capsys.readouterr().err, option, a_file)
    assert "is a file" in line
    assert not (tmp_path / "out").exists()


def test_a_missing_data_root_is_named(tmp_path, capsys):
    assert main(SPATIAL, ["--data-root", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), *FAST]) == 2
    assert "no such folder" in assert_one_line(capsys.readouterr().err, "--data-root", tmp_path / "nope")


def test_an_unwritable_picture_dir_fails_before_training(data_root, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert stream(SPATIAL, data_root, tmp_path / "out", "--picture-dir", str(a_file / "pics"), "--epochs", "1") == 2
    assert_one_line(capsys.readouterr().err, "--picture-dir", a_file)
    assert not (tmp_path / "out").exists()


def test_divergence_at_the_first_step_does_not_claim_a_checkpoint(data_root, tmp_path, capsys):
    assert stream(SPATIAL, data_root, tmp_path / "out", "--lr", "1e30", "--epochs", "1") == 2
    line = assert_one_line(capsys.readouterr().err, "diverged", "nothing was saved")
    assert "checkpoint.pth" not in line
    assert not (tmp_path / "out" / "checkpoint.pth").exists()


def test_an_allocation_failure_is_recognised():
    # A real failed allocation (an exabyte), as torch reports it, against an ordinary error.
    with pytest.raises(RuntimeError) as failed:
        torch.empty(2 ** 60, dtype=torch.uint8)
    assert out_of_memory(failed.value)
    assert not out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
