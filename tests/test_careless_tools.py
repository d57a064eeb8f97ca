"""Careless input to the tools, round three: the demo replaces only runs it made and ends by
saying where its files are; the report, make_synthetic, the demo, the study and pack_frames
refuse an output they cannot write in one line before any work; the report names a
non-UTF-8 record file and a file given as a run folder; pack_frames repacks a video whose
frames changed since it was packed.

Refusals are checked with checksums of what was on disk before (tests/test_bad_input.py).
A path below a regular file (FILE/out) is unwritable for everyone, root included."""
import os
import shutil

import cv2
import numpy as np
import pytest

import utils
from dataloader.packed import PackFile
from dataloader.splits import load_split
from dataloader.synthetic import class_names
from engine import records
from engine.streams import SPATIAL
from engine.train import main as train
from test_bad_input import assert_one_line, checksums
from test_report import TEST, tables, write_run
from tiny import FAST, make_tiny_data
from tools import demo, make_synthetic, pack_frames, report, study


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("tools") / "data", seed=7)


@pytest.fixture(scope="module")
def finished(data_root, tmp_path_factory):
    """A finished one-epoch run made by spatial_cnn's entry point."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert train(SPATIAL, ["--data-root", str(data_root), "--out", str(out), *FAST, "--epochs", "1"]) == 0
    return out


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


# ------------------------------------------------------------ the demo (items 1, 9; first week)
def no_step(cmd):
    raise AssertionError(f"the demo ran a step although it had to refuse: {cmd}")


class FakeSteps:
    """Stands in for demo.sh: records each command and writes what the real step would leave
    for the demo's summary (score files of the synthetic classes, the engine's PNG names, the
    fusion JSON), so that the demo runs through in a fraction of a second."""

    def __init__(self):
        self.commands = []

    def __call__(self, cmd):
        self.commands.append(cmd)
        out = cmd[cmd.index("--out") + 1] if "--out" in cmd else None
        if any(c.endswith(("spatial_cnn.py", "motion_cnn.py")) for c in cmd):
            stream = "spatial" if any(c.endswith("spatial_cnn.py") for c in cmd) else "motion"
            os.makedirs(out, exist_ok=True)
            classes = class_names(3, 2)
            rng = np.random.default_rng(0 if stream == "spatial" else 1)
            videos = [f"v{i:02d}" for i in range(12)]
            payload = {"scores": {v: rng.random(len(classes)).astype(np.float32) for v in videos},
                       "labels": {v: i % len(classes) for i, v in enumerate(videos)}, "classes": classes, "meta": {}}
            for name in ("video_scores_best.pkl", "video_scores.pkl", "video_scores_val.pkl"):
                utils.save_pickle(payload, os.path.join(out, name))
            for kind in ("train", "test", "confusion"):
                with open(os.path.join(out, f"{kind}_{stream}_mean.png"), "wb") as f:
                    f.write(b"\x89PNG\r\n\x1a\n")
        if "--json" in cmd:  # the fusion step
            with open(cmd[cmd.index("--json") + 1], "w") as f:
                f.write("{}\n")

    def streams(self):
        return [c for c in self.commands if any(a.endswith(("spatial_cnn.py", "motion_cnn.py")) for a in c)]


@pytest.mark.parametrize("where", ["spatial", "motion"])
def test_the_demo_refuses_an_out_holding_a_run_it_did_not_make(finished, tmp_path, capsys, monkeypatch, where):
    out = tmp_path / "demo"
    shutil.copytree(finished, out / where)  # e.g. --out record: the streams' own default folder
    before = checksums(out)
    monkeypatch.setattr(demo, "sh", no_step)
    assert demo.main(["--out", str(out)]) == 2
    assert_one_line(capsys.readouterr().err, "--out", out / where, "another --out")
    assert checksums(out) == before
    assert sorted(os.listdir(out)) == [where]  # no marker, no data


def test_the_demo_refuses_data_it_did_not_generate(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    (out / "data" / "jpegs_256").mkdir(parents=True)
    (out / "data" / "jpegs_256" / "mine.txt").write_text("someone's frames\n")
    before = checksums(out)
    monkeypatch.setattr(demo, "sh", no_step)
    assert demo.main(["--out", str(out)]) == 2
    assert_one_line(capsys.readouterr().err, out / "data", "jpegs_256")
    assert checksums(out) == before


def test_a_second_demo_replaces_only_its_own_runs(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    first, second = FakeSteps(), FakeSteps()
    monkeypatch.setattr(demo, "sh", first)
    assert demo.main(["--out", str(out)]) == 0
    # A fresh folder holds nothing to replace: no --overwrite reaches the streams.
    assert len(first.streams()) == 2 and not any("--overwrite" in c for c in first.streams())
    monkeypatch.setattr(demo, "sh", second)
    assert demo.main(["--out", str(out)]) == 0  # its own runs (marked): replaced
    assert len(second.streams()) == 2 and all("--overwrite" in c for c in second.streams())


def test_the_demo_ends_with_where_its_runs_curves_scores_and_fusion_are(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    monkeypatch.setattr(demo, "sh", FakeSteps())
    assert demo.main(["--out", str(out), "--json", str(tmp_path / "table.json")]) == 0
    text = capsys.readouterr().out
    closing = text[text.index("What each stream learned"):]  # after the summary table
    for stream in ("spatial", "motion"):
        run = out / stream
        assert str(run) in closing
        for kind in ("train", "test", "confusion"):
            assert str(run / f"{kind}_{stream}_mean.png") in closing
        assert str(run / "video_scores_best.pkl") in closing and str(run / "video_scores.pkl") in closing
    assert str(out / "fusion.json") in closing and str(tmp_path / "table.json") in closing
    redo = f"python fusion.py --spatial {out / 'spatial' / 'video_scores_best.pkl'} " \
           f"--motion {out / 'motion' / 'video_scores_best.pkl'}"
    assert redo in closing
    assert f"python -m tools.report {out / 'spatial'} {out / 'motion'}" in closing


@pytest.mark.parametrize("case", ["out-is-a-file", "out-below-a-file", "json-below-a-file"])
def test_the_demo_refuses_an_unwritable_output_before_any_step(blocker, tmp_path, capsys, monkeypatch, case):
    out, extra = {"out-is-a-file": (blocker, []), "out-below-a-file": (blocker / "demo", []),
                  "json-below-a-file": (tmp_path / "demo", ["--json", str(blocker / "t.json")])}[case]
    before = checksums(tmp_path)
    monkeypatch.setattr(demo, "sh", no_step)
    assert demo.main(["--out", str(out), *extra]) == 2
    line = assert_one_line(capsys.readouterr().err, "is a file")
    assert ("--json" if extra else "--out") in line
    assert checksums(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["file"]


# ------------------------------------------------------------ pack_frames (items 13, 17)
def test_pack_frames_names_an_unwritable_out(data_root, blocker, tmp_path, capsys):
    out = blocker / "packs"
    before = checksums(data_root, blocker)
    assert pack_frames.main(["--data-root", str(data_root), "--out", str(out), "--workers", "1"]) == 2
    assert_one_line(capsys.readouterr().err, f"--out {out}", "is a file")
    assert checksums(data_root, blocker) == before
    assert not (data_root / "packed").exists()


def pack_ids(folder):
    """{pack: (inode, mtime_ns)}: a rewritten pack (a new file renamed over it) changes both."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.pack")}


def frame_files(root, video):
    return sorted((root / "jpegs_256" / f"v_{video}").glob("*.jpg"))


@pytest.fixture
def packed(tmp_path, capsys):
    root = make_tiny_data(tmp_path / "data", videos_per_class=2)
    assert pack_frames.main(["--data-root", str(root), "--modality", "rgb", "--workers", "1"]) == 0
    capsys.readouterr()
    return root


def test_a_frame_fixed_after_packing_is_packed_again(packed, capsys):
    root, packs = packed, packed / "packed" / "rgb"
    video = load_split("ucf101", str(packed / "ucfTrainTestlist"), 1).train[0][0]
    before = pack_ids(packs)
    frame = frame_files(root, video)[2]
    fixed = cv2.imencode(".jpg", np.full((40, 48, 3), 77, np.uint8))[1].tobytes()  # another valid JPEG
    assert fixed != frame.read_bytes()
    frame.write_bytes(fixed)  # same frame count: today's check saw nothing
    assert pack_frames.main(["--data-root", str(root), "--modality", "rgb", "--workers", "1"]) == 0
    assert "1 packs written, 7 already complete" in capsys.readouterr().err
    after = pack_ids(packs)
    assert after[f"{video}.pack"] != before[f"{video}.pack"]
    assert {k: v for k, v in after.items() if k != f"{video}.pack"} == \
        {k: v for k, v in before.items() if k != f"{video}.pack"}  # the others untouched
    pack = PackFile(str(packs / f"{video}.pack"))
    assert [bytes(pack.read(i)) for i in range(len(pack))] == [f.read_bytes() for f in frame_files(root, video)]
    assert bytes(pack.read(2)) == fixed
    # A rerun now finds everything up to date; --force repacks every video.
    assert pack_frames.main(["--data-root", str(root), "--modality", "rgb", "--workers", "1"]) == 0
    assert "0 packs written, 8 already complete" in capsys.readouterr().err
    settled = pack_ids(packs)
    assert settled == after
    assert pack_frames.main(["--data-root", str(root), "--modality", "rgb", "--workers", "1", "--force"]) == 0
    assert "8 packs written, 0 already complete" in capsys.readouterr().err
    forced = pack_ids(packs)
    assert all(forced[k] != settled[k] for k in settled)


def test_a_frame_with_a_new_modification_time_is_packed_again(packed, capsys):
    root, packs = packed, packed / "packed" / "rgb"
    video = load_split("ucf101", str(packed / "ucfTrainTestlist"), 1).test[0][0]
    before = pack_ids(packs)
    frame = frame_files(root, video)[0]
    st = frame.stat()
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))  # same size, rewritten later
    assert pack_frames.main(["--data-root", str(root), "--modality", "rgb", "--workers", "1"]) == 0
    assert "1 packs written, 7 already complete" in capsys.readouterr().err
    assert [k for k, v in pack_ids(packs).items() if v != before[k]] == [f"{video}.pack"]


def old_pack(frames):
    """A pack as older code wrote it (magic TSNPACK1, no sources record), built by hand."""
    header = 8 + 8 + 8 * (len(frames) + 1)
    offsets = np.cumsum([header] + [len(f) for f in frames]).astype("<u8")
    return b"TSNPACK1" + np.array(len(frames), "<u8").tobytes() + offsets.tobytes() + b"".join(frames)


def test_packs_from_older_code_stay_readable_and_count_as_up_to_date_by_frame_count(packed, capsys):
    root, packs = packed, packed / "packed" / "rgb"
    split = load_split("ucf101", str(packed / "ucfTrainTestlist"), 1)
    same, short = split.train[0][0], split.train[1][0]
    for video, drop in ((same, 0), (short, 1)):
        (packs / f"{video}.pack").write_bytes(old_pack([f.read_bytes() for f in frame_files(root, video)][drop:]))
    before = pack_ids(packs)
    pack = PackFile(str(packs / f"{same}.pack"))
    assert pack.source is None
    assert [bytes(pack.read(i)) for i in range(len(pack))] == [f.read_bytes() for f in frame_files(root, same)]
    assert pack_frames.main(["--data-root", str(root), "--modality", "rgb", "--workers", "1"]) == 0
    assert "1 packs written, 7 already complete" in capsys.readouterr().err
    after = pack_ids(packs)
    assert after[f"{same}.pack"] == before[f"{same}.pack"] and after[f"{short}.pack"] != before[f"{short}.pack"]
