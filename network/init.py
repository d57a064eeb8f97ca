"""Weight initialisation: ImageNet weights from torchvision's cache or a file, and the
cross-modality initialisation of the motion stream's first convolution (TSN)."""
import os

import torch
from torchvision.models import ResNet18_Weights

# The seed used this older file of the same weights; either name in the cache works.
LEGACY_FILE = "resnet18-5c106cde.pth"


class PretrainedWeightsError(RuntimeError):
    pass


def cross_modality_conv1(weight, in_channels):
    """[64, 3, 7, 7] RGB filters -> [64, in_channels, 7, 7]: average over the colour
    channels and replicate, so each flow channel starts with the mean RGB filter."""
    return weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1)


def _cached_imagenet_file():
    url = ResNet18_Weights.IMAGENET1K_V1.url
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    for name in (os.path.basename(url), LEGACY_FILE):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


def load_imagenet_state_dict():
    """torchvision's ResNet18 ImageNet weights, from the local cache or, where the machine
    can, downloaded into it. Raises PretrainedWeightsError with what to do otherwise."""
    path = _cached_imagenet_file()
    if path:
        return load_state_dict_file(path)
    try:
        return ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as e:  # no network, proxy, disk...
        folder = os.path.join(torch.hub.get_dir(), "checkpoints")
        raise PretrainedWeightsError(
            f"cannot get torchvision's ImageNet ResNet18 weights ({type(e).__name__}: {e}). "
            f"Copy {os.path.basename(ResNet18_Weights.IMAGENET1K_V1.url)} into {folder}, "
            "or pass --pretrained PATH to a ResNet18 state dict, or --pretrained none") from None


def load_state_dict_file(path):
    """A ResNet18 state dict from a file, loaded with weights_only=True (no code runs)."""
    if not os.path.isfile(path):
        raise PretrainedWeightsError(f"--pretrained {path}: no such file (or use 'imagenet' or 'none')")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise PretrainedWeightsError(f"{path}: cannot load as a state dict ({e})") from None
    for key in ("state_dict", "model"):  # also accept our checkpoints and common wrappers
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise PretrainedWeightsError(f"{path}: expected a state dict, found {type(sd).__name__}")
    return {k.removeprefix("module.").removeprefix("backbone."): v for k, v in sd.items()}


def adapt_imagenet_state_dict(sd, in_channels, source):
    """Keep the backbone weights of an ImageNet ResNet18 state dict for our model: drop the
    1000-class fc, and adapt conv1 to `in_channels` (cross-modality init)."""
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    conv1 = sd.get("conv1.weight")
    if conv1 is None or conv1.dim() != 4 or conv1.shape[0] != 64:
        raise PretrainedWeightsError(f"{source}: not a ResNet18 state dict (no 64-filter conv1.weight)")
    if conv1.shape[1] != in_channels:
        if conv1.shape[1] != 3:
            raise PretrainedWeightsError(f"{source}: conv1 has {conv1.shape[1]} input channels; "
                                         f"expected 3 (RGB) or {in_channels}")
        sd["conv1.weight"] = cross_modality_conv1(conv1, in_channels)
    return sd
