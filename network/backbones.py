"""The backbones a stream can train (`--arch`), by name.

Each entry says how to build the torchvision network, where its ImageNet weights come from,
and which two modules the two-stream model replaces: the first convolution (the motion
stream feeds it 2L flow channels instead of 3 colours) and the classifier (dropout + a new
Linear for the data set's classes). Adding a backbone is one entry here plus a line in
tests/test_backbones.py; everything else (building, ImageNet and cross-modality
initialisation, partial BN, checkpoints, --help) reads this table.
"""
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Backbone:
    name: str                    # the --arch value (recorded in checkpoints), torchvision's constructor name
    weights_name: str            # torchvision's ImageNet weights, 'Enum.MEMBER'
    legacy_files: tuple = ()     # older file names of the same weights in the torch hub cache
    first_conv: str = "conv1"    # module path of the convolution that sees the input
    classifier: str = "fc"       # module path of the ImageNet classifier, replaced

    # torchvision is imported on use, not with this table: the record readers and tools.study's
    # --help read DEFAULT_ARCH without loading torch.
    def build(self):
        """The torchvision network, randomly initialised."""
        return getattr(importlib.import_module("torchvision.models"), self.name)(weights=None)

    @property
    def weights(self):
        """torchvision's weights enum member (its url, its get_state_dict)."""
        enum, member = self.weights_name.split(".")
        return getattr(getattr(importlib.import_module("torchvision.models"), enum), member)


# IMAGENET1K_V1 everywhere: the classic weights that the two-stream and TSN literature (and
# mmaction2's torchvision:// checkpoints) start from. The legacy names are the files that
# torchvision releases before 0.13 downloaded (same weights, other name).
BACKBONES = {b.name: b for b in (
    Backbone("resnet18", "ResNet18_Weights.IMAGENET1K_V1", ("resnet18-5c106cde.pth",)),
    Backbone("resnet34", "ResNet34_Weights.IMAGENET1K_V1", ("resnet34-333f7ec4.pth",)),
    Backbone("resnet50", "ResNet50_Weights.IMAGENET1K_V1", ("resnet50-19c8e357.pth",)),
    Backbone("resnet101", "ResNet101_Weights.IMAGENET1K_V1", ("resnet101-5d3b4d8f.pth",)),
    Backbone("resnet152", "ResNet152_Weights.IMAGENET1K_V1", ("resnet152-b121ed2d.pth",)),
)}
ARCHS = tuple(BACKBONES)
DEFAULT_ARCH = "resnet18"  # the design's backbone, and what checkpoints without an arch hold


def get_backbone(name):
    """The Backbone called `name`; ValueError listing the choices otherwise."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone '{name}' (choose from {', '.join(ARCHS)})")
    return BACKBONES[name]
