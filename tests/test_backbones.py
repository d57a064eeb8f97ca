"""Backbones by name (--arch, network/backbones.py): every entry builds with its own ImageNet
weights, takes an ImageNet-style state dict with the motion stream's cross-modality
initialisation, trains a step and evaluates through the stream CLIs, and is read back from
its checkpoint by --resume / --evaluate, tools.predict and tools.report.

Adding a backbone: one entry in network/backbones.py; the parametrised tests below then
cover it (the deep ones are marked slow: they build large networks)."""
import json

import numpy as np
import pytest
import torch

import utils
from engine.streams import MOTION, SPATIAL
from engine.train import main
from network.backbones import ARCHS, BACKBONES, DEFAULT_ARCH
from network.model import TSN, build_backbone, build_optimizer
from own_videos import render, write_video
from tiny import FAST, make_tiny_data
from tools import predict, report

DEEP = ("resnet101", "resnet152")
EVERY_ARCH = [pytest.param(a, marks=pytest.mark.slow) if a in DEEP else a for a in ARCHS]
STACK = 3


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    # 2 classes x 4 videos: a few steps an epoch, so that the deep backbones stay quick.
    return str(make_tiny_data(tmp_path_factory.mktemp("tiny") / "data", seed=2, motions=1, videos_per_class=4))


def train(spec, data_root, out, *extra):
    stack = ["--stack", str(STACK)] if spec is MOTION else []
    return main(spec, ["--data-root", data_root, "--out", str(out), *FAST, *stack, "--epochs", "1", *extra])


def random_imagenet_file(arch, path):
    """The backbone's torchvision network with random (non-default) weights, saved as an
    ImageNet state dict would be: 3-channel first conv, 1000-class classifier."""
    torch.manual_seed(0)
    net = BACKBONES[arch].build()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t).abs() + 0.1)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    torch.save(sd, path)
    return sd


@pytest.mark.parametrize("arch", ARCHS)
def test_each_entry_pairs_a_network_with_its_own_weights(arch):
    """torchvision's weights metadata counts the parameters of the network they belong to."""
    b = BACKBONES[arch]
    net = b.build()
    assert sum(p.numel() for p in net.parameters()) == b.weights.meta["num_params"]
    assert net.get_submodule(b.first_conv).in_channels == 3
    assert net.get_submodule(b.classifier).out_features == 1000
    assert b.weights.url.rsplit("/", 1)[-1].startswith(arch + "-")


@pytest.mark.parametrize("arch", EVERY_ARCH)
def test_imagenet_weights_with_cross_modality_first_conv(arch, tmp_path):
    sd = random_imagenet_file(arch, tmp_path / "imagenet.pth")
    b = BACKBONES[arch]
    net = build_backbone(5, in_channels=2 * STACK, dropout=0.2, pretrained=str(tmp_path / "imagenet.pth"), arch=arch)
    conv = net.get_submodule(b.first_conv).weight.detach().numpy()
    rgb = sd[b.first_conv + ".weight"].numpy()  # (F, 3, k, k)
    assert conv.shape == (rgb.shape[0], 2 * STACK) + rgb.shape[2:]
    for c in range(2 * STACK):  # every flow channel starts as the mean of the R, G and B filters
        np.testing.assert_allclose(conv[:, c], (rgb[:, 0] + rgb[:, 1] + rgb[:, 2]) / 3, rtol=1e-5, atol=1e-6)
    got = net.state_dict()
    for k, v in sd.items():  # everything else is the ImageNet weights, but the replaced classifier
        if not k.startswith((b.first_conv + ".", b.classifier + ".")) and not k.endswith("num_batches_tracked"):
            assert torch.equal(got[k], v), k
    head = net.get_submodule(b.classifier)
    assert head[0].p == 0.2 and (head[1].in_features, head[1].out_features) == (sd[b.classifier + ".weight"].shape[1], 5)

    # Partial BN: every BatchNorm but the first is left out of the optimiser.
    model = TSN(net, partial_bn=True)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    trained = {id(p) for g in build_optimizer(model, lr=0.1).param_groups for p in g["params"]}
    assert all(id(p) in trained for p in bns[0].parameters())
    assert not any(id(p) in trained for m in bns[1:] for p in m.parameters())
    assert len(trained) == sum(1 for p in model.parameters()) - 2 * (len(bns) - 1)


@pytest.mark.parametrize("arch", EVERY_ARCH)
def test_every_arch_trains_and_evaluates_and_is_read_back(arch, data_root, tmp_path):
    """One epoch of the motion stream (a few steps) with --arch; then --evaluate without --arch
    reads the backbone from the checkpoint and reproduces the run's own test scores."""
    out = tmp_path / "run"
    # No validation set: one checkpoint written, not two (a ResNet152's is 0.5 GB with its optimiser state).
    assert train(MOTION, data_root, out, "--arch", arch, "--val-groups", "0", "--batch-size", "8") == 0  # one step
    ckpt = utils.load_checkpoint(out / "checkpoint.pth")
    assert ckpt["identity"]["arch"] == arch
    assert json.loads((out / "args.json").read_text())["arch"] == arch
    conv = ckpt["model"]["backbone." + BACKBONES[arch].first_conv + ".weight"]
    assert conv.shape[1] == 2 * STACK

    assert train(MOTION, data_root, tmp_path / "eval", "--evaluate", "--resume", str(out / "checkpoint.pth")) == 0
    trained = utils.load_pickle_safe(out / "video_scores.pkl")["scores"]
    evaluated = utils.load_pickle_safe(tmp_path / "eval" / "video_scores.pkl")["scores"]
    assert trained.keys() == evaluated.keys()
    for v in trained:
        np.testing.assert_allclose(evaluated[v], trained[v], rtol=1e-5, atol=1e-5)


def test_unknown_arch_is_one_line_listing_the_choices(data_root, tmp_path, capsys):
    assert train(SPATIAL, data_root, tmp_path / "run", "--arch", "vgg99") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "vgg99" in err
    assert all(a in err for a in ARCHS)
    assert not (tmp_path / "run").exists()


def test_resume_reads_the_arch_and_refuses_another(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(SPATIAL, data_root, out, "--arch", "resnet34") == 0
    ckpt = str(out / "checkpoint.pth")
    before = (out / "checkpoint.pth").read_bytes()
    assert train(SPATIAL, data_root, out, "--resume", ckpt, "--arch", "resnet50", "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert "resnet34" in err and "resnet50" in err
    assert (out / "checkpoint.pth").read_bytes() == before
    assert train(SPATIAL, data_root, out, "--resume", ckpt, "--epochs", "2") == 0  # no --arch: the checkpoint's
    assert utils.load_checkpoint(out / "checkpoint.pth")["epoch"] == 1


def test_checkpoint_without_arch_is_the_default_backbone(data_root, tmp_path):
    """Checkpoints written before --arch existed carry no arch in their options."""
    out = tmp_path / "run"
    assert train(SPATIAL, data_root, out) == 0
    ckpt = utils.load_checkpoint(out / "checkpoint.pth")
    del ckpt["args"]["arch"], ckpt["identity"]["arch"]
    utils.save_torch(ckpt, str(tmp_path / "old.pth"))
    assert train(SPATIAL, data_root, tmp_path / "eval", "--evaluate", "--resume", str(tmp_path / "old.pth")) == 0
    scores = utils.load_pickle_safe(tmp_path / "eval" / "video_scores.pkl")["scores"]
    trained = utils.load_pickle_safe(out / "video_scores.pkl")["scores"]
    for v in trained:
        np.testing.assert_allclose(scores[v], trained[v], rtol=1e-5, atol=1e-5)
    model = predict.load_stream(str(tmp_path / "old.pth"), torch.device("cpu"), size=(48, 40))
    assert model.arch == DEFAULT_ARCH


@pytest.mark.slow
def test_predict_and_report_on_deeper_backbones(data_root, tmp_path, capsys):
    spatial, motion = tmp_path / "spatial", tmp_path / "motion"
    assert train(SPATIAL, data_root, spatial, "--arch", "resnet50") == 0
    assert train(MOTION, data_root, motion, "--arch", "resnet34") == 0
    video = write_video(str(tmp_path / "clip.avi"), render("Red", "Up", 5, frames=10, width=48, height=40))
    capsys.readouterr()
    assert predict.main([video, "--spatial", str(spatial / "checkpoint.pth"), "--motion", str(motion / "checkpoint.pth"),
                         "--size", "48x40", "--flow", "farneback", "--device", "cpu", "--no-progress",
                         "--json", str(tmp_path / "p.json")]) == 0
    streams = json.loads((tmp_path / "p.json").read_text())["streams"]
    assert (streams["spatial"]["arch"], streams["motion"]["arch"]) == ("resnet50", "resnet34")
    assert report.main([str(spatial), str(motion), "--summary-only"]) == 0
    text = capsys.readouterr().out
    assert "| spatial | resnet50 |" in text and "| motion | resnet34 |" in text
