"""The training engine through the real CLIs' entry points, on tiny generated data."""
import os
import shutil

import numpy as np
import pytest
import torch

import utils
from engine.train import main
from engine.streams import MOTION
from engine.streams import SPATIAL
from tiny import FAST as TINY
from tiny import make_tiny_data
from dataloader.synthetic import generate

FAST = [*TINY, "--seed", "3"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(make_tiny_data(tmp_path_factory.mktemp("tiny") / "data", seed=1))


def run(spec, data_root, out, *extra):
    return main(spec, ["--data-root", data_root, "--out", str(out), *FAST, *extra])


@pytest.mark.slow
def test_evaluate_writes_scores_and_touches_nothing_else(data_root, tmp_path):
    out = tmp_path / "run"
    assert run(SPATIAL, data_root, out, "--epochs", "1") == 0
    trained = utils.load_pickle_safe(out / "video_scores.pkl")
    before = {f: (out / f).read_bytes() for f in ("checkpoint.pth", "train.csv", "test.csv", "args.json")}

    assert run(SPATIAL, data_root, out, "--evaluate", "--resume", str(out / "checkpoint.pth")) == 0
    for f, content in before.items():
        assert (out / f).read_bytes() == content, f"--evaluate changed {f}"
    evaluated = utils.load_pickle_safe(out / "video_scores.pkl")
    # Same checkpoint, same protocol: the same video scores as the evaluation after training.
    assert evaluated["scores"].keys() == trained["scores"].keys()
    for v in trained["scores"]:
        np.testing.assert_allclose(evaluated["scores"][v], trained["scores"][v], rtol=1e-5, atol=1e-5)
    assert evaluated["meta"]["evaluated_from"] == str(out / "checkpoint.pth")

    # Another protocol through --evaluate: recorded in the file's meta; replacing the run's
    # video_scores.pkl with other numbers takes --overwrite.
    assert run(SPATIAL, data_root, out, "--evaluate", "--resume", str(out / "checkpoint.pth"),
               "--test-frames", "5", "--test-crops", "3", "--overwrite") == 0
    meta = utils.load_pickle_safe(out / "video_scores.pkl")["meta"]
    assert (meta["test_frames"], meta["test_crops"]) == (5, 3)


@pytest.mark.slow
def test_score_file_matches_records(data_root, tmp_path):
    out = tmp_path / "run"
    assert run(MOTION, data_root, out, "--epochs", "1", "--stack", "3") == 0
    f = utils.load_pickle_safe(out / "video_scores.pkl")
    test_rows = utils.read_csv(out / "test.csv")
    videos = sorted(f["scores"])
    scores = np.stack([f["scores"][v] for v in videos])
    labels = np.array([f["labels"][v] for v in videos])
    assert scores.dtype == np.float32 and scores.shape == (len(videos), len(f["classes"]))
    top1 = 100 * np.mean(scores.argmax(1) == labels)
    assert float(test_rows[-1]["Prec@1"]) == pytest.approx(top1, abs=1e-3)
    assert f["meta"]["stream"] == "motion" and f["meta"]["top1"] == pytest.approx(top1, abs=1e-3)
    assert all("_g0" in v for v in videos)  # split 1 tests groups g01-g07: test videos only
    assert f["confusion"].sum() == len(videos)


def _records(out):
    rows = {}
    for name in ("train", "val", "test"):
        rows[name] = [{k: v for k, v in r.items() if "Time" not in k} for r in utils.read_csv(out / f"{name}.csv")]
    return rows


@pytest.mark.slow
def test_resume_reproduces_an_uninterrupted_run(data_root, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run(SPATIAL, data_root, straight, "--epochs", "3") == 0
    assert run(SPATIAL, data_root, resumed, "--epochs", "1") == 0
    ckpt = utils.load_checkpoint(resumed / "checkpoint.pth")
    assert ckpt["epoch"] == 0
    assert run(SPATIAL, data_root, resumed, "--epochs", "3", "--resume", str(resumed / "checkpoint.pth")) == 0

    a, b = _records(straight), _records(resumed)
    assert [r["Epoch"] for r in b["train"]] == ["0", "1", "2"]  # continued at the next epoch, none repeated
    assert a == b  # same losses, accuracies and learning rates epoch by epoch
    sa = utils.load_pickle_safe(straight / "video_scores.pkl")["scores"]
    sb = utils.load_pickle_safe(resumed / "video_scores.pkl")["scores"]
    for v in sa:
        np.testing.assert_array_equal(sa[v], sb[v])
    # The LR schedule state came back too: the final optimizer LR is the same.
    la = utils.load_checkpoint(straight / "checkpoint.pth")["optimizer"]["param_groups"][0]["lr"]
    lb = utils.load_checkpoint(resumed / "checkpoint.pth")["optimizer"]["param_groups"][0]["lr"]
    assert la == lb


@pytest.mark.slow
def test_checkpoint_round_trip(data_root, tmp_path):
    out = tmp_path / "run"
    argv = ["--data-root", data_root, "--out", str(out), *[a for a in FAST if a != "--no-plots"], "--epochs", "1"]
    assert main(SPATIAL, argv) == 0
    assert (out / "train_spatial_mean.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # curves drawn each epoch
    ckpt = utils.load_checkpoint(out / "checkpoint.pth")  # weights_only=True: plain types only
    from network.model import TSN, build_backbone
    model = TSN(build_backbone(len(ckpt["classes"]), 3), "mean")
    model.load_state_dict(ckpt["model"])
    assert ckpt["identity"] == {"stream": "spatial", "arch": "resnet18", "num_classes": 4, "in_channels": 3}
    assert ckpt["args"]["crop_size"] == 32 and ckpt["history"]["train"][0]["Epoch"] == 0
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ckpt["model"][k])


def test_missing_video_fails_before_training(data_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(data_root, root)
    victim = sorted(os.listdir(root / "jpegs_256"))[0]
    shutil.rmtree(root / "jpegs_256" / victim)
    assert run(SPATIAL, str(root), tmp_path / "out", "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert "1 of" in err and victim[2:] in err and "jpegs_256" in err
    assert not (tmp_path / "out" / "checkpoint.pth").exists()


@pytest.mark.slow
def test_checkpoint_of_the_other_stream_is_refused(data_root, tmp_path, capsys):
    out = tmp_path / "spatial"
    assert run(SPATIAL, data_root, out, "--epochs", "1") == 0
    code = run(MOTION, data_root, tmp_path / "motion", "--stack", "3", "--resume", str(out / "checkpoint.pth"))
    assert code == 2
    assert "stream" in capsys.readouterr().err


@pytest.mark.slow
def test_diverging_loss_stops_with_epoch_and_step(data_root, tmp_path, capsys):
    assert run(SPATIAL, data_root, tmp_path / "run", "--epochs", "2", "--lr", "1e30") == 2
    err = capsys.readouterr().err
    assert "diverged" in err and "epoch 0, step" in err


def test_evaluate_requires_a_checkpoint(data_root, tmp_path, capsys):
    assert run(SPATIAL, data_root, tmp_path / "run", "--evaluate") == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("layout, dataset", [("mmaction", "hmdb51"), ("mmaction", "ucf101"), ("twostream", "hmdb51")])
def test_both_streams_train_from_other_layouts_and_hmdb51(tmp_path, layout, dataset):
    root = tmp_path / "data"
    generate(root, appearances=2, motions=2, videos_per_class=4, width=40, height=36, min_frames=6,
             max_frames=9, seed=5, layout=layout, dataset=dataset, verbose=False)
    lists = root / ("testTrainMulti_7030_splits" if dataset == "hmdb51" else "ucfTrainTestlist")
    for spec, extra in ((SPATIAL, []), (MOTION, ["--stack", "2"])):
        out = tmp_path / spec.name
        argv = ["--data-root", str(root), "--out", str(out), "--dataset", dataset, *FAST, "--val-groups", "0",
                "--epochs", "1", "--test-frames", "2", *extra]
        assert main(spec, argv) == 0
        f = utils.load_pickle_safe(out / "video_scores.pkl")
        assert f["meta"]["dataset"] == dataset and len(f["classes"]) == 4
        if dataset == "hmdb51":
            assert f["classes"] == sorted(p.name.split("_test_split")[0] for p in lists.glob("*_test_split1.txt"))
            expected = {line.split()[0][:-4] for p in lists.glob("*_test_split1.txt")
                        for line in p.read_text().splitlines() if line.split()[1:] == ["2"]}
        else:
            expected = {line.strip().split("/v_")[1][:-4] for line in (lists / "testlist01.txt").read_text().splitlines()}
        assert set(f["scores"]) == expected


HUGE_PAGE_PROBE = """
import os, sys
from engine.runtime import enable_huge_pages
enable_huge_pages()
import torch
x = torch.ones(64 << 18)  # 64 MiB, allocated after the call, as in the training scripts
with open("/proc/self/smaps_rollup") as f:
    huge = [int(line.split()[1]) for line in f if line.startswith("AnonHugePages:")][0]
print(os.environ.get("THP_MEM_ALLOC_ENABLE"), huge)
"""


def huge_page_probe(env):
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", HUGE_PAGE_PROBE], cwd=root, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.slow
def test_large_cpu_tensors_get_huge_pages_unless_the_user_says_no():
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
        kernel_allows = "[never]" not in f.read()
    setting, huge_kib = huge_page_probe(env)
    if kernel_allows:
        assert setting == "1" and huge_kib >= 2048  # at least one 2 MiB page backs the tensor
    else:
        assert setting == "None"
    setting, _ = huge_page_probe(env | {"THP_MEM_ALLOC_ENABLE": "0"})
    assert setting == "0"  # the user's choice is kept
