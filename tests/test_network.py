"""Tests of network/init.py and network/model.py (CPU, tiny inputs, few ResNet18 builds)."""
import os

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from network.init import (PretrainedWeightsError, adapt_imagenet_state_dict, cross_modality_conv1,
                          load_imagenet_state_dict, load_state_dict_file)
from network.backbones import BACKBONES
from network.model import TSN, build_backbone

RESNET18 = BACKBONES["resnet18"]


def np_cross_modality(w, c):
    return np.repeat(w.mean(axis=1, keepdims=True), c, axis=1)


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A ResNet18 state dict with random (non-default) values, saved like an ImageNet file."""
    torch.manual_seed(0)
    net = resnet18(weights=None)
    with torch.no_grad():
        for t in net.state_dict().values():  # BN buffers too, so they are not the defaults
            if t.is_floating_point():
                t.copy_(torch.randn_like(t).abs() + 0.1)
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    path = tmp_path_factory.mktemp("weights") / "resnet18-test.pth"
    torch.save(sd, path)
    return str(path), sd


def test_cross_modality_conv1_numpy():
    w = np.random.default_rng(0).normal(size=(64, 3, 7, 7)).astype(np.float32)
    out = cross_modality_conv1(torch.from_numpy(w), 20)
    assert tuple(out.shape) == (64, 20, 7, 7)
    np.testing.assert_allclose(out.numpy(), np_cross_modality(w, 20), rtol=1e-6, atol=1e-7)
    # every input channel holds the same filter, the mean of R, G, B
    np.testing.assert_allclose(out[:, 5].numpy(), (w[:, 0] + w[:, 1] + w[:, 2]) / 3, rtol=1e-5, atol=1e-6)


def test_build_backbone_loads_rgb_weights(resnet_file):
    path, sd = resnet_file
    net = build_backbone(7, in_channels=3, dropout=0.3, pretrained=path)
    got = net.state_dict()
    for k, v in sd.items():
        if k.startswith("fc.") or k.endswith("num_batches_tracked"):
            continue
        assert torch.equal(got[k], v), k
    assert isinstance(net.fc, nn.Sequential) and len(net.fc) == 2
    assert isinstance(net.fc[0], nn.Dropout) and net.fc[0].p == 0.3
    assert isinstance(net.fc[1], nn.Linear)
    assert (net.fc[1].in_features, net.fc[1].out_features) == (512, 7)


def test_build_backbone_flow_cross_modality(resnet_file):
    path, sd = resnet_file
    net = build_backbone(5, in_channels=20, pretrained=path)
    assert tuple(net.conv1.weight.shape) == (64, 20, 7, 7)
    np.testing.assert_allclose(net.conv1.weight.detach().numpy(),
                               np_cross_modality(sd["conv1.weight"].numpy(), 20), rtol=1e-6, atol=1e-7)
    assert torch.equal(net.layer4[1].conv2.weight, sd["layer4.1.conv2.weight"])
    assert net.eval()(torch.zeros(1, 20, 32, 32)).shape == (1, 5)


def test_load_state_dict_file_strips_wrappers(tmp_path, resnet_file):
    _, sd = resnet_file
    small = {"module.conv1.weight": sd["conv1.weight"], "module.bn1.bias": sd["bn1.bias"]}
    p = tmp_path / "ckpt.pth"
    torch.save({"state_dict": small, "epoch": 3}, p)
    out = load_state_dict_file(str(p))
    assert set(out) == {"conv1.weight", "bn1.bias"}
    assert torch.equal(out["conv1.weight"], sd["conv1.weight"])


def test_adapt_drops_fc_and_rejects_wrong_conv1(resnet_file):
    _, sd = resnet_file
    out = adapt_imagenet_state_dict(dict(sd), RESNET18, 3, 64, "src")
    assert not any(k.startswith("fc.") for k in out)
    with pytest.raises(PretrainedWeightsError, match="src"):
        adapt_imagenet_state_dict({"conv1.weight": torch.zeros(64, 4, 7, 7)}, RESNET18, 20, 64, "src")


def test_not_a_resnet18_state_dict(tmp_path):
    p = tmp_path / "linear.pth"
    torch.save(nn.Linear(3, 2).state_dict(), p)
    with pytest.raises(PretrainedWeightsError, match="linear.pth"):
        build_backbone(4, pretrained=str(p))


def test_resnet18_keys_missing_raise(tmp_path, resnet_file):
    _, sd = resnet_file
    partial = {k: v for k, v in sd.items() if not k.startswith("layer4")}
    p = tmp_path / "partial.pth"
    torch.save(partial, p)
    with pytest.raises(PretrainedWeightsError, match="partial.pth"):
        build_backbone(4, pretrained=str(p))


def test_wrong_shaped_resnet_state_dict_raises_pretrained_error(tmp_path, resnet_file):
    # A bottleneck ResNet (ResNet50-like) has 1x1 convs where ResNet18 has 3x3 ones: the same
    # key with another shape must give the clear PretrainedWeightsError, not a raw RuntimeError.
    _, sd = resnet_file
    bad = dict(sd)
    bad["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    p = tmp_path / "bottleneck.pth"
    torch.save(bad, p)
    with pytest.raises(PretrainedWeightsError, match="bottleneck.pth"):
        build_backbone(4, pretrained=str(p))


def test_missing_and_unreadable_files(tmp_path):
    missing = str(tmp_path / "nope.pth")
    with pytest.raises(PretrainedWeightsError, match="nope.pth"):
        build_backbone(4, pretrained=missing)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a torch file")
    with pytest.raises(PretrainedWeightsError, match="junk.pth"):
        load_state_dict_file(str(junk))


def test_imagenet_weights_unavailable_gives_clear_message(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))  # restored afterwards, unlike set_dir
    # Unreachable source with the same file name, so the outcome does not depend on internet access.
    url = ResNet18_Weights.IMAGENET1K_V1.value.url
    monkeypatch.setattr(ResNet18_Weights.IMAGENET1K_V1.value, "url",
                        "file://" + str(tmp_path / "unreachable" / os.path.basename(url)))
    with pytest.raises(PretrainedWeightsError) as e:
        load_imagenet_state_dict(RESNET18)
    assert "--pretrained" in str(e.value)
    assert os.path.basename(url) in str(e.value)


def test_imagenet_weights_from_cache(tmp_path, monkeypatch, resnet_file):
    path, sd = resnet_file
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    # the legacy file name (torchvision before 0.13, the original two-stream scripts') is accepted
    os.symlink(path, hub / "checkpoints" / "resnet18-5c106cde.pth")
    out = load_imagenet_state_dict(RESNET18)
    assert torch.equal(out["conv1.weight"], sd["conv1.weight"])


# ------------------------------------------------------------------ TSN
@pytest.fixture(scope="module")
def small_backbone():
    torch.manual_seed(1)
    return build_backbone(6, in_channels=3)


def test_tsn_forward_shapes_and_mean_consensus(small_backbone):
    model = TSN(small_backbone, consensus="mean").eval()
    x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        per = torch.stack([small_backbone(x[:, k]) for k in range(3)], dim=1)  # (B, K, C)
    assert out.shape == (2, 6)
    np.testing.assert_allclose(out.numpy(), per.mean(dim=1).numpy(), rtol=1e-4, atol=1e-5)
    model.consensus = "max"
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), per.amax(dim=1).numpy(), rtol=1e-4, atol=1e-5)


def test_tsn_video_scores_mean_of_frames(small_backbone):
    model = TSN(small_backbone).eval()
    x = torch.randn(2, 4, 3, 32, 32)
    out = model.video_scores(x)
    with torch.no_grad():
        per = np.stack([[small_backbone(x[b, p:p + 1])[0].numpy() for p in range(4)] for b in range(2)])
    assert out.shape == (2, 6)
    np.testing.assert_allclose(out.numpy(), per.mean(axis=1), rtol=1e-4, atol=1e-5)


def test_partial_bn():
    torch.manual_seed(1)
    model = TSN(build_backbone(6, in_channels=3), partial_bn=True)  # its own: partial BN freezes parameters
    model.train()
    bns = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 20
    assert bns[0].training and bns[0] is model.backbone.bn1
    assert not any(m.training for m in bns[1:])
    assert model.backbone.conv1.training and model.backbone.fc.training  # others still train
    # running statistics of frozen BNs do not move in a training forward pass
    before = bns[5].running_mean.clone()
    first_before = bns[0].running_mean.clone()
    model(torch.randn(1, 2, 3, 32, 32))
    assert torch.equal(bns[5].running_mean, before)
    assert not torch.equal(bns[0].running_mean, first_before)
    model.eval()
    assert not any(m.training for m in bns)
    plain = TSN(build_backbone(6, in_channels=3), partial_bn=False).train()
    assert all(m.training for m in plain.backbone.modules() if isinstance(m, nn.BatchNorm2d))
    assert all(p.requires_grad for p in plain.parameters())


def test_partial_bn_freezes_affine_parameters_but_the_first():
    """TSN's partial BN: the BatchNorms after the first keep scale and shift fixed (no
    gradient, not in the optimiser); the first BN and every other layer train."""
    from network.model import build_optimizer
    torch.manual_seed(2)
    model = TSN(build_backbone(4, in_channels=3), partial_bn=True).train()
    bns = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    frozen = [p for m in bns[1:] for p in (m.weight, m.bias)]
    assert not any(p.requires_grad for p in frozen)
    optimizer = build_optimizer(model, lr=0.1, momentum=0.9, weight_decay=5e-4)
    in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not in_opt & {id(p) for p in frozen}
    assert in_opt == {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(bns[0].weight), id(bns[0].bias), id(model.backbone.conv1.weight)} <= in_opt
    frozen_before = [p.detach().clone() for p in frozen]
    first_before = (bns[0].weight.detach().clone(), bns[0].bias.detach().clone())
    stats_before = bns[3].running_var.clone()
    loss = nn.functional.cross_entropy(model(torch.randn(2, 2, 3, 32, 32)), torch.tensor([0, 3]))
    loss.backward()
    optimizer.step()
    assert all(torch.equal(p, b) for p, b in zip(frozen, frozen_before))
    assert all(p.grad is None for p in frozen)
    assert not torch.equal(bns[0].weight, first_before[0]) and not torch.equal(bns[0].bias, first_before[1])
    assert torch.equal(bns[3].running_var, stats_before)
    # without partial BN every parameter is optimised
    plain = TSN(build_backbone(4, in_channels=3)).train()
    n_opt = sum(len(g["params"]) for g in build_optimizer(plain, lr=0.1).param_groups)
    assert n_opt == len(list(plain.parameters()))
