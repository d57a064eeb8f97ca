"""torchrun with two CPU processes (gloo): the real DistributedDataParallel path."""
import os
import subprocess
import sys

import numpy as np

import utils
from engine.train import main
from engine.streams import SPATIAL
from dataloader.synthetic import generate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--pretrained", "none", "--crop-size", "32", "--batch-size", "4", "--workers", "1",
        "--num-segments", "2", "--test-frames", "3", "--val-groups", "1", "--lr", "0.01", "--device", "cpu", "--no-plots"]


def test_torchrun_two_processes_scores_each_video_once(tmp_path):
    data = tmp_path / "data"
    generate(data, appearances=2, motions=2, videos_per_class=5, width=48, height=40,
             min_frames=8, max_frames=12, seed=2, verbose=False)
    # An odd number of test videos, so the evaluation shards of the two processes differ.
    testlist = data / "ucfTrainTestlist" / "testlist01.txt"
    testlist.write_text("".join(testlist.read_text().splitlines(keepends=True)[:-1]))
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(ROOT, "spatial_cnn.py"), "--data-root", str(data), "--out", str(out),
           "--epochs", "1", *FAST]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("==> spatial stream") == 1  # only rank 0 prints
    assert "x 2 processes" in proc.stdout
    assert sorted(os.listdir(out)) == ["args.json", "checkpoint.pth", "model_best.pth", "test.csv",
                                       "train.csv", "val.csv", "video_scores.pkl", "video_scores_best.pkl"]
    assert len(utils.read_csv(out / "train.csv")) == 1

    ddp = utils.load_pickle_safe(out / "video_scores.pkl")
    test_list = (data / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    expected = {os.path.basename(line)[2:-4] for line in test_list}
    assert set(ddp["scores"]) == expected and len(test_list) % 2 == 1

    # A single-process --evaluate of the same checkpoint gives the same numbers.
    single = tmp_path / "single"
    assert main(SPATIAL, ["--data-root", str(data), "--out", str(single), *FAST, "--evaluate",
                          "--resume", str(out / "checkpoint.pth")]) == 0
    one = utils.load_pickle_safe(single / "video_scores.pkl")
    for v in expected:
        np.testing.assert_allclose(ddp["scores"][v], one["scores"][v], rtol=1e-4, atol=1e-5)
