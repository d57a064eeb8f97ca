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
