"""Both streams trained from scratch on generated data learn their own cue; fusion gets both.

The generated classes are colour x vertical motion. A single RGB frame shows the colour but
not the motion, the flow shows the motion but not the colour (tools/make_synthetic.py).
Training on the CPU with a fixed seed is deterministic, so these runs give the same numbers
every time; on so few test videos, how much fusion gains varies from seed to seed.
"""
import json

import pytest

import fusion
import utils
from engine.train import main
from engine.streams import MOTION
from engine.streams import SPATIAL
from dataloader.synthetic import cue_accuracy as synthetic_cue_accuracy
from dataloader.synthetic import generate

TRAIN = ["--pretrained", "none", "--crop-size", "32", "--batch-size", "4", "--workers", "1",
         "--num-segments", "2", "--test-frames", "3", "--val-groups", "0", "--lr", "0.003",
         "--epochs", "8", "--min-lr", "1e-5", "--seed", "0", "--no-plots"]


def cue_accuracy(path):
    acc = synthetic_cue_accuracy(utils.load_pickle_safe(path))
    return acc["colour"], acc["motion"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = root / "data"
    generate(data, appearances=2, motions=2, videos_per_class=14, width=40, height=36,
             min_frames=10, max_frames=16, seed=7, verbose=False)
    assert main(SPATIAL, ["--data-root", str(data), "--out", str(root / "spatial"), *TRAIN]) == 0
    assert main(MOTION, ["--data-root", str(data), "--out", str(root / "motion"), *TRAIN, "--stack", "4"]) == 0
    return root


def test_each_stream_learns_its_own_cue(trained):
    colour, motion = cue_accuracy(trained / "spatial" / "video_scores.pkl")
    assert colour >= 0.8, f"spatial stream: colour right for {colour:.0%} of test videos (chance 50%)"
    colour, motion = cue_accuracy(trained / "motion" / "video_scores.pkl")
    assert motion >= 0.8, f"motion stream: motion right for {motion:.0%} of test videos (chance 50%)"


def test_fusion_beats_each_stream(trained, capsys):
    out = trained / "fusion.json"
    assert fusion.main(["--spatial", str(trained / "spatial" / "video_scores.pkl"),
                        "--motion", str(trained / "motion" / "video_scores.pkl"),
                        "--json", str(out)]) == 0  # raw scores, the default (as the seed)
    table = next(iter(json.loads(out.read_text()).values()))
    best_single = max(table["spatial"]["top1"], table["motion"]["top1"])
    assert table["average"]["top1"] > best_single + 15, table
    assert "| average |" in capsys.readouterr().out
