"""Both streams trained from scratch on generated data learn their own cue; fusion gets both.

The generated classes are colour x vertical motion. A single RGB frame shows the colour but
not the motion, the flow shows the motion but not the colour (dataloader/synthetic.py).

CPU training is deterministic on one machine but not across machines: AVX2 and AVX512
kernels, and different thread counts, round differently, and a few epochs from scratch
amplify that. So nothing here depends on exact numbers. The test asserts what must hold
whatever the rounding: each stream gets its own cue for most test videos and only guesses
the other, and the fused prediction has both cues right for most videos. 62 test videos
make these fractions stable; the thresholds leave room below the worst of 5 seeds x 1 and
2 torch threads measured on one machine (below).
"""
import json

import numpy as np
import pytest

import fusion
from dataloader.synthetic import cue_accuracy
from engine.scores import align, load_scores
from engine.streams import MOTION, SPATIAL
from engine.train import main
from tiny import LEARN, make_learning_data

pytestmark = pytest.mark.slow

SEED = 0
# Worst of 5 seeds (data and training) x 1 and 2 torch threads on a 2-core AMD EPYC, each
# stream trained 8 epochs on 34 videos and tested on 62:
#   own cue 87.1% (spatial colour, 87-97%; motion motion 92-100%): asserted >= 80%;
#   other cue 56.5% at most (chance 50%): asserted <= 70%;
#   fusion (average of raw scores) both cues 59.7% (60-86%): asserted >= 50%, while a stream
#   alone gets both for 37-55% (it guesses the cue it cannot see); the fusion's gain over
#   the better stream was 6.5-37 points: asserted > 0. How much fusion gains depends on how
#   confidently each stream guesses the cue it cannot see, which varies most from run to run.
OWN_CUE = 0.80
OTHER_CUE = 0.70
BOTH_CUES = 0.50


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = make_learning_data(root / "data", seed=SEED)
    train = [*LEARN, "--seed", str(SEED)]
    assert main(SPATIAL, ["--data-root", str(data), "--out", str(root / "spatial"), *train]) == 0
    assert main(MOTION, ["--data-root", str(data), "--out", str(root / "motion"), *train, "--stack", "4"]) == 0
    pair = align(load_scores(str(root / "spatial" / "video_scores.pkl")),
                 load_scores(str(root / "motion" / "video_scores.pkl")))
    assert len(pair.videos) == 62
    return root, pair


def cues(pair, scores):
    """cue_accuracy of (V, C) scores of the pair's videos."""
    return cue_accuracy({"classes": pair.spatial.classes, "scores": dict(zip(pair.videos, scores)),
                         "labels": dict(zip(pair.videos, pair.labels.tolist()))})


def test_each_stream_learns_its_own_cue_only(trained):
    _, pair = trained
    spatial, motion = cues(pair, pair.S), cues(pair, pair.T)
    assert spatial["colour"] >= OWN_CUE, f"spatial stream: colour right for {spatial['colour']:.0%} (chance 50%)"
    assert motion["motion"] >= OWN_CUE, f"motion stream: motion right for {motion['motion']:.0%} (chance 50%)"
    # Neither stream can see the other cue: near chance, else the generator leaks it.
    assert spatial["motion"] <= OTHER_CUE, spatial
    assert motion["colour"] <= OTHER_CUE, motion


def test_fusion_gets_both_cues(trained, capsys):
    root, pair = trained
    out = root / "fusion.json"
    assert fusion.main(["--spatial", str(root / "spatial" / "video_scores.pkl"),
                        "--motion", str(root / "motion" / "video_scores.pkl"),
                        "--json", str(out)]) == 0  # raw scores, the default (as the original scripts)
    assert "| average |" in capsys.readouterr().out
    table = next(iter(json.loads(out.read_text()).values()))
    # Independently: the average of the raw scores, and which cues its predictions get right.
    fused = cues(pair, (pair.S + pair.T) / 2)
    assert table["average"]["top1"] == pytest.approx(100 * fused["both"])
    assert fused["both"] >= BOTH_CUES, f"fusion: both cues right for {fused['both']:.0%}; {table}"
    # A stream alone gets both only when it guesses the cue it cannot see right.
    best_single = max(cues(pair, pair.S)["both"], cues(pair, pair.T)["both"])
    assert table["spatial"]["top1"] == pytest.approx(100 * cues(pair, pair.S)["both"])
    assert fused["both"] > best_single, (fused, best_single)
    assert np.isfinite(pair.S).all() and np.isfinite(pair.T).all()
