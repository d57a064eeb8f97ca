"""dataloader/synthetic.py (and its CLI tools/make_synthetic.py): layouts and split lists readable by dataloader/, and the cues
(colour only in RGB, direction only in flow) checked with plain numpy on the decoded files."""
import filecmp
import os

import cv2
import numpy as np
import pytest

from dataloader.frame_dirs import open_layout
from dataloader.splits import load_split, video_group
from dataloader.synthetic import class_names, generate
from dataloader.synthetic_render import render_video
from tools.make_synthetic import main

# Expected dominant channels (RGB order) of each colour, written independently of the tool.
DOMINANT = {"red": [0], "green": [1], "blue": [2]}


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    """Default classes and videos per class (the split counts depend on them), short videos."""
    out = str(tmp_path_factory.mktemp("ucf"))
    generate(out, min_frames=11, max_frames=14, verbose=False)
    return out


@pytest.fixture(scope="module")
def hmdb(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("hmdb"))
    generate(out, dataset="hmdb51", layout="mmaction", width=128, height=96,
             min_frames=3, max_frames=5, verbose=False)
    return out


def _split_dir(out, dataset):
    return os.path.join(out, "ucfTrainTestlist" if dataset == "ucf101" else "testTrainMulti_7030_splits")


def _colour_motion(cls):
    """'RedUp' / 'red_up' -> ('red', 'up')."""
    if "_" in cls:
        return tuple(cls.split("_"))
    i = next(i for i in range(1, len(cls)) if cls[i].isupper())
    return cls[:i].lower(), cls[i:].lower()


def _read(path, flags=cv2.IMREAD_COLOR):
    img = cv2.imread(path, flags)
    assert img is not None, path
    return img[..., ::-1] if img.ndim == 3 else img  # BGR -> RGB


def _object_mask(rgb):
    """Saturated pixels (the object); the backgrounds are dull by design."""
    rgb = rgb.astype(np.int16)
    return (rgb.max(-1) - rgb.min(-1)) > 100


def test_class_names():
    assert class_names() == ["BlueDown", "BlueUp", "GreenDown", "GreenUp", "RedDown", "RedUp"]
    assert class_names(dataset="hmdb51")[:2] == ["blue_down", "blue_up"]
    assert len(class_names(6, 3)) == 18 and "CyanSide" in class_names(6, 3)


@pytest.mark.parametrize("dataset", ["ucf101", "hmdb51"])
def test_split_lists_parse(ucf, hmdb, dataset):
    out = ucf if dataset == "ucf101" else hmdb
    seen = set()
    for s in (1, 2, 3):
        split = load_split(dataset, _split_dir(out, dataset), s)
        assert len(split.classes) == 6
        assert len(split.train) + len(split.test) == 60
        for label in range(6):
            n_train = sum(y == label for _, y in split.train)
            n_test = sum(y == label for _, y in split.test)
            assert n_test >= 2 and n_train >= 6, (s, label, n_train, n_test)
        # Groups (g08 / film08) never straddle train and test, not even across classes.
        train_groups = {video_group(v, split.classes[y]) for v, y in split.train}
        test_groups = {video_group(v, split.classes[y]) for v, y in split.test}
        assert test_groups and not train_groups & test_groups
        seen |= {v for v, _ in split.test}
        # The label is consistent with the class in the name.
        for v, y in split.train + split.test:
            assert split.classes[y] in v
    assert len(seen) == 60 - 6 * 1  # the groups g22-g25 are never tested: video i=9 (g23) of each class


def test_ucf_lists_use_crlf(ucf):
    with open(os.path.join(ucf, "ucfTrainTestlist", "trainlist01.txt"), "rb") as f:
        data = f.read()
    assert data.count(b"\r\n") == data.count(b"\n") > 0
    assert data.split(b"\r\n")[0] == b"BlueDown/v_BlueDown_g08_c01.avi 1"


@pytest.mark.parametrize("dataset", ["ucf101", "hmdb51"])
def test_every_video_on_disk(ucf, hmdb, dataset):
    out, (w, h), (lo, hi) = (ucf, (160, 120), (11, 14)) if dataset == "ucf101" else (hmdb, (128, 96), (3, 5))
    layout = open_layout("auto", out)
    assert layout.name == ("twostream" if dataset == "ucf101" else "mmaction")
    split = load_split(dataset, _split_dir(out, dataset), 1)
    for video, _ in split.train + split.test:
        assert layout.has(video, "rgb") and layout.has(video, "flow")
        n = layout.num_frames(video, "rgb")
        assert layout.num_frames(video, "flow") == n - 1
        assert lo <= n <= hi
        rgb = _read(layout.frame_paths(video, "rgb")(n - 1))
        u_path, v_path = layout.frame_paths(video, "flow")(n - 2)
        assert rgb.shape == (h, w, 3)
        assert _read(u_path, cv2.IMREAD_UNCHANGED).shape == _read(v_path, cv2.IMREAD_UNCHANGED).shape == (h, w)
        assert not os.path.exists(layout.frame_paths(video, "rgb")(n))


def test_large_frames(tmp_path):
    generate(str(tmp_path), appearances=1, motions=1, videos_per_class=1, width=340, height=256,
             min_frames=2, max_frames=2, verbose=False)
    layout = open_layout("auto", str(tmp_path))
    assert _read(layout.frame_paths("RedUp_g01_c01", "rgb")(1)).shape == (256, 340, 3)


def _videos(out, dataset="ucf101"):
    """[(video, class name)] of split 1, train and test."""
    split = load_split(dataset, _split_dir(out, dataset), 1)
    return [(v, split.classes[y]) for v, y in split.train + split.test]


def test_cues_rgb_colour_and_flow_direction(ucf):
    """Object colour matches the class; in the object region v is clearly below 128 for Up
    and above for Down, u ~128; the background's flow is ~128."""
    layout = open_layout("auto", ucf)
    for video, cls in _videos(ucf):
        colour, motion = _colour_motion(cls)
        rgb_path, flow_paths = layout.frame_paths(video, "rgb"), layout.frame_paths(video, "flow")
        for t in (0, 5, 9):
            rgb = _read(rgb_path(t)).astype(np.float32)
            mask = _object_mask(rgb)
            assert mask.mean() > 0.05, (video, t)
            mean = rgb[mask].mean(0)
            others = [c for c in range(3) if c not in DOMINANT[colour]]
            assert mean[DOMINANT[colour]].min() > 150 and mean[others].max() < 100, (video, mean)
            # Stay a few px inside/outside the object's edge (JPEG ringing, rounding).
            kernel = np.ones((7, 7), np.uint8)
            inside = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
            outside = ~cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
            u = _read(flow_paths(t)[0], cv2.IMREAD_UNCHANGED).astype(np.float32)
            v = _read(flow_paths(t)[1], cv2.IMREAD_UNCHANGED).astype(np.float32)
            sign = {"up": -1, "down": 1}[motion]
            assert sign * (np.median(v[inside]) - 128) > 20, (video, t, np.median(v[inside]))
            assert abs(np.median(u[inside]) - 128) <= 2
            assert abs(np.median(u[outside]) - 128) <= 2 and abs(np.median(v[outside]) - 128) <= 2


def test_no_motion_in_rgb_frames(tmp_path):
    """Single frames do not reveal the direction: over many videos, the mean object row and
    column in the first and last frame agree between Up and Down within a loose tolerance
    (sampling noise of 120 videos per class: about 0.04)."""
    out = str(tmp_path)
    generate(out, appearances=1, motions=2, videos_per_class=120, width=64, height=48,
             min_frames=3, max_frames=3, verbose=False)
    layout = open_layout("auto", out)
    for t in (0, 2):
        pos = {"up": [], "down": []}
        for video, cls in _videos(out):
            mask = _object_mask(_read(layout.frame_paths(video, "rgb")(t)))
            rows, cols = np.nonzero(mask)
            pos[_colour_motion(cls)[1]].append((rows.mean() / mask.shape[0], cols.mean() / mask.shape[1]))
        assert len(pos["up"]) == len(pos["down"]) == 120
        diff = np.abs(np.mean(pos["up"], 0) - np.mean(pos["down"], 0))
        assert (diff < 0.15).all(), (t, diff)


def test_no_colour_in_flow_frames(ucf):
    """Flow of two classes that differ only in colour has the same statistics."""
    layout = open_layout("auto", ucf)
    stats = {}
    for video, cls in _videos(ucf):
        if cls not in ("RedDown", "GreenDown"):
            continue
        paths = layout.frame_paths(video, "flow")
        for t in range(layout.num_frames(video, "flow")):
            u, v = (_read(p, cv2.IMREAD_UNCHANGED).astype(np.float32) for p in paths(t))
            moving = v > 140
            stats.setdefault(cls, []).append((u.mean(), v.mean(), u.std(), moving.mean(),
                                              np.median(v[moving]) if moving.any() else 128))
    red, green = np.mean(stats["RedDown"], 0), np.mean(stats["GreenDown"], 0)
    assert abs(red[0] - green[0]) < 0.5 and abs(red[2] - green[2]) < 0.5       # u: no signal
    assert abs(red[1] - green[1]) < 2.5 and abs(red[3] - green[3]) < 0.05      # v: area
    assert abs(red[4] - green[4]) < 4                                            # v: speed


def _tree(out):
    return sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)


def test_seed_determinism(tmp_path):
    opts = dict(appearances=2, motions=3, videos_per_class=2, min_frames=3, max_frames=4, verbose=False)
    a, b, c = (str(tmp_path / n) for n in "abc")
    generate(a, seed=5, **opts)
    generate(b, seed=5, **opts)
    generate(c, seed=6, **opts)
    files = _tree(a)
    assert files == _tree(b) and len(files) > 30
    assert all(filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False) for f in files)
    jpgs = [f for f in files if f.endswith(".jpg") and f in set(_tree(c))]
    assert jpgs and not any(filecmp.cmp(os.path.join(a, f), os.path.join(c, f), shallow=False)
                            for f in jpgs if "jpegs_256" in f)


def test_cli_and_overwrite(tmp_path, capsys):
    out = str(tmp_path / "d")
    args = [out, "--appearances", "1", "--motions", "2", "--videos-per-class", "4",
            "--min-frames", "2", "--max-frames", "3", "--layout", "mmaction", "--dataset", "hmdb51"]
    assert main(args) == 0
    line = capsys.readouterr().out.strip()
    assert "2 classes" in line and "8 videos" in line and out in line
    assert os.path.isdir(os.path.join(out, "rawframes", "red_up", "film01_red_up_clip01"))
    capsys.readouterr()
    assert main(args) == 2  # refuses to mix with an existing set, in one line
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and out in err and "--overwrite" in err
    assert main(args + ["--overwrite"]) == 0
    # Never deletes data it did not make.
    real = str(tmp_path / "real")
    os.makedirs(os.path.join(real, "jpegs_256"))
    with pytest.raises(FileExistsError):
        generate(real, overwrite=True, verbose=False)
    assert os.path.isdir(os.path.join(real, "jpegs_256"))
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--videos-per-class" in capsys.readouterr().out


def test_side_motion_is_flip_invariant_class():
    """`Side` moves left or right at random per video (so a horizontal flip keeps the class):
    u is clearly off 128 in the object, v stays ~128, and both directions occur."""
    signs = set()
    for i in range(12):
        _, u, v = render_video(np.random.default_rng(i), "Red", "Side", 4)
        moving = np.abs(u.astype(np.int16) - 128) > 12
        assert 0.05 < moving.mean() < 0.5
        signs.add(int(np.sign(np.median(u[moving]).astype(np.int16) - 128)))
        assert np.abs(np.median(v[moving]).astype(np.int16) - 128) <= 2
    assert signs == {-1, 1}


def test_cue_accuracy_counts_each_cue_separately():
    from dataloader.synthetic import cue_accuracy
    classes = ["BlueDown", "BlueUp", "RedDown", "RedUp"]
    one_hot = lambda i: np.eye(4, dtype=np.float32)[i]
    f = {"classes": classes,
         "labels": {"a": 0, "b": 1, "c": 3, "d": 2},
         # a: right class; b: BlueUp -> RedUp (motion right, colour wrong);
         # c: RedUp -> RedDown (colour right, motion wrong); d: RedDown -> BlueUp (both wrong)
         "scores": {"a": one_hot(0), "b": one_hot(3), "c": one_hot(2), "d": one_hot(1)}}
    assert cue_accuracy(f) == {"colour": 0.5, "motion": 0.5, "both": 0.25}
    f["scores"]["d"] = one_hot(0)  # RedDown -> BlueDown: motion right now
    assert cue_accuracy(f) == {"colour": 0.5, "motion": 0.75, "both": 0.25}


def _jpeg_kb(frames, quality):
    return np.mean([len(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]) for f in frames]) / 1000


def test_realistic_flow_has_the_size_and_texture_of_tvl1_dumps():
    """--flow-texture realistic (for benchmarks): same RGB as plain, the same motion cue, but
    a smooth, varying field around it whose 340x256 JPEGs weigh what real TV-L1 dumps do
    (4-8 KB), where plain flow is flat background with white noise."""
    rgb_p, u_p, v_p = render_video(np.random.default_rng(3), "Red", "Side", 5, 340, 256)
    rgb, u, v = render_video(np.random.default_rng(3), "Red", "Side", 5, 340, 256, flow_texture="realistic")
    assert np.array_equal(rgb, rgb_p) and u.shape == u_p.shape and u.dtype == np.uint8
    for q in (90, 95):
        kb = _jpeg_kb(list(u) + list(v), q)
        assert 4 <= kb <= 8, (q, kb)
    # The motion cue survives: where plain flow marks the object, realistic u is off by the velocity.
    moving = np.abs(u_p.astype(np.int16) - 128) > 12
    assert abs(np.median(u[moving].astype(float)) - np.median(u_p[moving].astype(float))) <= 6
    # Around the object: not flat, and smooth (neighbours correlate, unlike white noise).
    still = u[:, 100:110, :].astype(float)[~moving[:, 100:110, :]]
    assert still.std() > 1

    def neighbour_corr(x):
        x = x.astype(float) - x.mean()
        return (x[:, :, 1:] * x[:, :, :-1]).mean() / (x * x).mean()
    assert neighbour_corr(v) > 0.8 > 0.3 > neighbour_corr(v_p)


def test_flow_texture_is_checked_and_recorded(tmp_path):
    with pytest.raises(ValueError, match="flow_texture"):
        generate(tmp_path / "bad", flow_texture="fancy", verbose=False)
    plain = generate(tmp_path / "p", videos_per_class=1, min_frames=2, max_frames=2, verbose=False)
    real = generate(tmp_path / "r", videos_per_class=1, min_frames=2, max_frames=2, verbose=False,
                    flow_texture="realistic")
    assert "flow_texture" not in plain and real["flow_texture"] == "realistic"
