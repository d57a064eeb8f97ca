"""TSN-style ResNet18: a torchvision ResNet18 applied to every segment, then a consensus."""
import torch
from torch import nn
from torchvision.models import resnet18

from network.consensus import segment_consensus
from network.init import (PretrainedWeightsError, adapt_imagenet_state_dict,
                          load_imagenet_state_dict, load_state_dict_file)


def build_backbone(num_classes, in_channels=3, dropout=0.5, pretrained="none"):
    """torchvision ResNet18 with `in_channels` inputs and fc = dropout + Linear(512, C).

    pretrained: 'none', 'imagenet' (torchvision's weights) or a path to a state dict.
    """
    net = resnet18(weights=None)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if pretrained != "none":
        source = "ImageNet weights" if pretrained == "imagenet" else pretrained
        sd = load_imagenet_state_dict() if pretrained == "imagenet" else load_state_dict_file(pretrained)
        sd = adapt_imagenet_state_dict(sd, in_channels, source)
        try:
            missing, unexpected = net.load_state_dict(sd, strict=False)
        except RuntimeError as e:  # same key names, other shapes (e.g. a ResNet50 file)
            raise PretrainedWeightsError(f"{source}: does not match ResNet18 ({str(e).splitlines()[-1].strip()})") from None
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise PretrainedWeightsError(f"{source}: does not match ResNet18 (missing {missing[:3]}, "
                                         f"unexpected {unexpected[:3]})")
    net.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(net.fc.in_features, num_classes))
    return net


def batch_norms(module):
    """The BatchNorm layers of `module`, in order (the first is the one after conv1)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class TSN(nn.Module):
    def __init__(self, backbone, consensus="mean", partial_bn=False):
        super().__init__()
        self.backbone, self.consensus, self.partial_bn = backbone, consensus, partial_bn
        if partial_bn:
            # Partial BN (TSN): every BatchNorm but the first also keeps its affine
            # parameters (scale, shift) fixed: no gradient, so not in the optimiser.
            for m in batch_norms(backbone)[1:]:
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
            for m in batch_norms(self.backbone)[1:]:
                m.eval()
        return self
