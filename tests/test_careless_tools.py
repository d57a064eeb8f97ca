"""Careless input to the tools, round three: the demo replaces only runs it made and ends by
saying where its files are; the report, make_synthetic, the demo, the study and pack_frames
refuse an output they cannot write in one line before any work; the report names a
non-UTF-8 record file and a file given as a run folder; pack_frames repacks a video whose
frames changed since it was packed.

Refusals are checked with checksums of what was on disk before (tests/test_bad_input.py).
A path below a regular file (FILE/out) is unwritable for everyone, root included."""
import os

import pytest

from engine import records
from test_bad_input import assert_one_line, checksums
from test_report import TEST, tables, write_run
from tools import make_synthetic, report, study


@pytest.fixture
def blocker(tmp_path):
    """A regular file: nothing can be made below it, not even by root."""
    path = tmp_path / "file"
    path.write_text("a file, not a folder\n")
    return path


# ------------------------------------------------------------ the report (items 8, 13)
@pytest.mark.parametrize("case", ["output-is-a-folder", "output-below-a-file", "picture-dir-below-a-file",
                                  "png-is-a-folder"])
def test_the_report_refuses_outputs_it_cannot_write_before_printing(blocker, tmp_path, capsys, case):
    run = write_run(tmp_path / "run")
    folder = tmp_path / "reports"
    folder.mkdir()
    if case == "output-is-a-folder":
        extra, names = ["--output", str(folder)], ["--output", folder, "is a folder"]
    elif case == "output-below-a-file":
        extra, names = ["--output", str(blocker / "report.md")], ["--output", blocker / "report.md", "is a file"]
    elif case == "picture-dir-below-a-file":
        extra, names = ["--plots", "--picture-dir", str(blocker / "pictures")], ["--picture-dir", blocker / "pictures"]
    else:  # the run's training curve cannot be drawn: a folder holds its place
        (tmp_path / "run" / "train_spatial_mean.png").mkdir()
        extra, names = ["--plots"], [tmp_path / "run" / "train_spatial_mean.png", "--plots"]
    before = checksums(tmp_path)
    assert report.main([run, *extra]) == 2
    captured = capsys.readouterr()
    assert_one_line(captured.err, *names)
    assert captured.out == ""  # nothing printed before the refusal
    assert checksums(tmp_path) == before
    assert sorted(os.listdir(folder)) == [] and sorted(os.listdir(tmp_path / "run")) == sorted(
        ["train.csv", "test.csv", "val.csv", "args.json", "video_scores_best.pkl"]
        + (["train_spatial_mean.png"] if case == "png-is-a-folder" else []))


def test_the_report_names_a_row_that_is_not_utf8_and_leaves_it_out(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    test_csv = tmp_path / "run" / "test.csv"
    lines = test_csv.read_bytes().split(b"\n")
    assert lines[2].startswith(b"1,")  # line 3: epoch 1
    lines[2] = lines[2].replace(b"67.803", b"67.803\xe9")  # a Latin-1 editor's stray character
    test_csv.write_bytes(b"\n".join(lines))
    assert report.main([run]) == 0
    captured = capsys.readouterr()
    warning = assert_one_line(captured.err, test_csv, "line 3", "not UTF-8", "0xe9", "left out")
    assert warning.startswith("tools.report: warning:")
    test_table = tables(captured.out)[2]
    assert test_table == [records.EVAL_COLUMNS] + TEST[:1] + TEST[2:]  # the other rows verbatim


def test_a_record_file_in_another_encoding_is_named(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    test_csv = tmp_path / "run" / "test.csv"
    test_csv.write_bytes(test_csv.read_text().encode("utf-16"))  # Notepad's "Unicode"
    assert report.main([run]) == 2
    assert_one_line(capsys.readouterr().err, test_csv, "line 1", "not UTF-8", "0xff")


def test_a_file_given_as_a_run_folder_is_called_a_file(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    path = tmp_path / "run" / "test.csv"
    assert report.main([str(path)]) == 2
    line = assert_one_line(capsys.readouterr().err, path, "is a file", "run folder", run)
    assert "no such" not in line


# ------------------------------------------------------------ make_synthetic, study (item 9)
@pytest.mark.parametrize("below", [False, True], ids=["a-file", "below-a-file"])
def test_make_synthetic_refuses_an_unwritable_out_in_one_line(blocker, tmp_path, capsys, below):
    out = blocker / "out" if below else blocker
    before = checksums(tmp_path)
    assert make_synthetic.main([str(out), "--videos-per-class", "1"]) == 2
    assert_one_line(capsys.readouterr().err, out, "is a file")
    assert checksums(tmp_path) == before


@pytest.mark.parametrize("below", [False, True], ids=["a-file", "below-a-file"])
def test_the_study_refuses_an_unwritable_out_before_any_run(blocker, tmp_path, capsys, below):
    out = blocker / "study" if below else blocker
    before = checksums(tmp_path)
    assert study.main(["--data-root", str(tmp_path), "--out", str(out), "--consensus", "mean"]) == 2
    captured = capsys.readouterr()
    assert_one_line(captured.err, f"--out {out}", "is a file")
    assert "==>" not in captured.out  # not even the plan
    assert checksums(tmp_path) == before
