"""The two-stream model: a torchvision backbone (network/backbones.py) applied to every
segment, then a consensus (TSN); how it is built, and which parameters the optimiser trains."""
import torch
from torch import nn

from network.backbones import DEFAULT_ARCH, get_backbone
from network.consensus import segment_consensus
from network.init import (PretrainedWeightsError, adapt_imagenet_state_dict, load_imagenet_state_dict,
                          load_state_dict_file)


def _replace(net, path, module):
    """Put `module` at the dotted `path` of `net` (e.g. 'fc', 'features.0')."""
    parent, _, name = path.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, name, module)


def _with_inputs(conv, in_channels):
    """A fresh nn.Conv2d like `conv` that takes `in_channels` inputs."""
    return nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     conv.dilation, conv.groups, conv.bias is not None)


def build_backbone(num_classes, in_channels=3, dropout=0.5, pretrained="none", arch=DEFAULT_ARCH):
    """The torchvision network `arch` with `in_channels` inputs and its classifier replaced
    by dropout + Linear(features, num_classes).

    pretrained: 'none', 'imagenet' (torchvision's weights) or a path to a state dict. With
    2L flow inputs the first convolution gets the cross-modality initialisation.
    """
    backbone = get_backbone(arch)
    net = backbone.build()
    conv = net.get_submodule(backbone.first_conv)
    if in_channels != conv.in_channels:
        _replace(net, backbone.first_conv, _with_inputs(conv, in_channels))
    if pretrained != "none":
        _load_pretrained(net, backbone, in_channels, conv.out_channels, pretrained)
    features = net.get_submodule(backbone.classifier).in_features
    _replace(net, backbone.classifier, nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_classes)))
    return net


def _load_pretrained(net, backbone, in_channels, filters, pretrained):
    source = "ImageNet weights" if pretrained == "imagenet" else pretrained
    sd = load_imagenet_state_dict(backbone) if pretrained == "imagenet" else load_state_dict_file(pretrained)
    sd = adapt_imagenet_state_dict(sd, backbone, in_channels, filters, source)
    try:
        missing, unexpected = net.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # same key names, other shapes (e.g. a ResNet50 file for resnet18)
        raise PretrainedWeightsError(f"{source}: does not match {backbone.name} "
                                     f"({str(e).splitlines()[-1].strip()})") from None
    missing = [k for k in missing if not k.startswith(backbone.classifier + ".")]
    if missing or unexpected:
        raise PretrainedWeightsError(f"{source}: does not match {backbone.name} (missing {missing[:3]}, "
                                     f"unexpected {unexpected[:3]})")


def batch_norms(module):
    """The BatchNorm layers of `module`, in order (the first is the one after the first conv)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def partial_bn_frozen(module):
    """The BatchNorm layers TSN's partial BN freezes: all but the first."""
    return batch_norms(module)[1:]


class TSN(nn.Module):
    def __init__(self, backbone, consensus="mean", partial_bn=False):
        super().__init__()
        self.backbone, self.consensus, self.partial_bn = backbone, consensus, partial_bn
        if partial_bn:
            # Partial BN (TSN): every BatchNorm but the first also keeps its affine
            # parameters (scale, shift) fixed: no gradient, so not in the optimiser.
            for m in partial_bn_frozen(backbone):
                for p in m.parameters(recurse=False):
                    p.requires_grad_(False)

    def forward(self, x):
        """x: (B, K, C, H, W) segments -> (B, num_classes) consensus scores."""
        b, k = x.shape[:2]
        scores = self.backbone(x.flatten(0, 1)).view(b, k, -1)  # (B, K, classes)
        return segment_consensus(scores, self.consensus)

    @torch.no_grad()
    def video_scores(self, x):
        """x: (B, P, C, H, W) test positions x crops -> (B, num_classes), their average."""
        b, p = x.shape[:2]
        return self.backbone(x.flatten(0, 1)).view(b, p, -1).float().mean(dim=1)

    def train(self, mode=True):
        """Partial BN (TSN): in training, every BatchNorm but the first keeps its ImageNet
        statistics (and, from __init__, its affine parameters), which helps on a data set as
        small as UCF101."""
        super().train(mode)
        if mode and self.partial_bn:
            for m in partial_bn_frozen(self.backbone):
                m.eval()
        return self


def build_model(arch, num_classes, in_channels, device, consensus="mean", dropout=0.5, pretrained="none",
                partial_bn=False):
    """A TSN over the backbone `arch`, on the device (channels_last on CUDA)."""
    backbone = build_backbone(num_classes, in_channels, dropout, pretrained, arch)
    model = TSN(backbone, consensus, partial_bn).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def build_optimizer(model, lr, momentum=0.9, weight_decay=5e-4):
    """SGD over the trainable parameters; frozen ones (--partial-bn's BatchNorm scale and
    shift) are left out."""
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=momentum,
                           weight_decay=weight_decay)
