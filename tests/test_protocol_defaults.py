"""Defaults of the stream CLIs that depend on other options or on the data: the number of
test positions (TSN's 25 with 10 crops) and the validation hold-out (--val-groups auto)."""
import pytest

from engine.options import build_parser
from engine.streams import MOTION, SPATIAL


@pytest.mark.parametrize("spec", [SPATIAL, MOTION])
@pytest.mark.parametrize("argv, frames", [
    ([], 19),                                        # the seed's protocol
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
    assert selection_protocol(parser.parse_args(["--select-on-test"]), held).startswith("test (seed protocol")
