"""Defaults of the stream CLIs that depend on other options or on the data: the number of
test positions (TSN's 25 with 10 crops) and the validation hold-out (--val-groups auto)."""
import pytest

from engine.options import build_parser
from engine.streams import MOTION, SPATIAL


@pytest.mark.parametrize("spec", [SPATIAL, MOTION])
@pytest.mark.parametrize("argv, frames", [
    ([], 19),                                        # the original scripts' protocol
    (["--test-crops", "3"], 19),
    (["--test-crops", "10"], 25),                    # TSN's protocol: 25 positions x 10 crops
    (["--test-crops", "10", "--test-frames", "7"], 7),  # an explicit number wins
    (["--test-frames", "7", "--test-crops", "10"], 7),
    (["--test-frames", "25"], 25),
    (["--test-frames", "auto", "--test-crops", "10"], 25),
])
def test_test_frames_default_follows_test_crops(spec, argv, frames):
    args = build_parser(spec).parse_args(argv)
    assert args.test_frames == frames and isinstance(args.test_frames, int)


@pytest.mark.parametrize("value", ["-1", "many", "2.5"])
def test_test_frames_rejects_what_is_not_a_count(value, capsys):
    with pytest.raises(SystemExit):
        build_parser(SPATIAL).parse_args(["--test-frames", value])
    assert "--test-frames" in capsys.readouterr().err


def test_help_states_the_derived_defaults():
    text = build_parser(SPATIAL).format_help()
    assert "25 with --test-crops 10" in " ".join(text.split())


def test_val_groups_default_is_auto_and_a_number_overrides(capsys):
    parser = build_parser(SPATIAL)
    assert parser.parse_args([]).val_groups == "auto"
    assert parser.parse_args(["--val-groups", "2"]).val_groups == 2
    assert parser.parse_args(["--val-groups", "0"]).val_groups == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["--val-groups", "-1"])
    assert "--val-groups" in capsys.readouterr().err
    text = " ".join(parser.format_help().split())
    assert "about 15% of it" in text and "g23-g25 in split 1" in text and "(default: auto)" in text


def test_selection_protocol_says_what_was_held_out():
    from engine.options import selection_protocol
    parser = build_parser(SPATIAL)
    args = parser.parse_args([])
    held = "3 held-out actor groups of the training list: g23-g25; auto: 15% of 18 groups"
    assert selection_protocol(args, held) == f"val ({held})"
    assert selection_protocol(args, "").startswith("none")  # auto found nothing to hold out
    assert selection_protocol(parser.parse_args(["--val-groups", "2"])) == \
        "val (2 held-out actor groups of the training list)"
    assert selection_protocol(parser.parse_args(["--val-groups", "0"])).startswith("none")
    assert selection_protocol(args) == "val (about 15% of the training list held out (--val-groups auto))"
    assert selection_protocol(parser.parse_args(["--select-on-test"]), held).startswith("test (--select-on-test")


@pytest.mark.slow
def test_default_run_holds_out_auto_groups_and_writes_validation_scores(tmp_path):
    """A run with the defaults: 15% of the 4 training groups of the tiny set (g09, g13, g17,
    g21) is 1 group, g21; the selected model's validation scores go to video_scores_val.pkl."""
    import json

    import numpy as np

    import utils
    from dataloader.splits import video_group
    from engine.train import main
    from tiny import FAST, make_tiny_data

    data = make_tiny_data(tmp_path / "data", seed=1)
    out = tmp_path / "run"
    assert main(SPATIAL, ["--data-root", str(data), "--out", str(out), *FAST, "--val-groups", "auto",
                          "--epochs", "1", "--device", "cpu"]) == 0
    args = json.loads((out / "args.json").read_text())
    assert args["val_groups"] == "auto"
    assert args["selection"] == "val (1 held-out actor group of the training list: g21; auto: 15% of 4 groups)"
    val = utils.load_pickle_safe(out / "video_scores_val.pkl")
    best = utils.load_pickle_safe(out / "video_scores_best.pkl")
    assert {video_group(v) for v in val["scores"]} == {"g21"} and len(val["scores"]) == 4  # one per class
    assert not set(val["scores"]) & set(best["scores"])
    assert val["meta"]["subset"] == "val" and best["meta"]["subset"] == "test"
    assert val["meta"]["selection"] == best["meta"]["selection"] == args["selection"]
    assert val["meta"]["epoch"] == best["meta"]["epoch"] == best["meta"]["best"]["epoch"]
    videos = sorted(val["scores"])
    scores = np.stack([val["scores"][v] for v in videos])
    labels = np.array([val["labels"][v] for v in videos])
    row = utils.read_csv(out / "val.csv")[-1]
    assert float(row["Prec@1"]) == pytest.approx(utils.video_metrics(scores, labels)["top1"], abs=0.01)
    assert val["classes"] == best["classes"]
