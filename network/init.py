"""Weight initialisation: ImageNet weights from torchvision's cache or a file, and the
cross-modality initialisation of the motion stream's first convolution (TSN)."""
import os

import torch


class PretrainedWeightsError(RuntimeError):
    pass


def cross_modality_conv1(weight, in_channels):
    """[F, 3, k, k] RGB filters -> [F, in_channels, k, k]: average over the colour
    channels and replicate, so each flow channel starts with the mean RGB filter."""
    return weight.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1)


def _hub_folder():
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def _cached_imagenet_file(backbone):
    for name in (os.path.basename(backbone.weights.url), *backbone.legacy_files):
        if os.path.isfile(os.path.join(_hub_folder(), name)):
            return os.path.join(_hub_folder(), name)
    return None


def load_imagenet_state_dict(backbone):
    """torchvision's ImageNet weights of `backbone` (a network.backbones.Backbone), from the
    local cache or, where the machine can, downloaded into it. Raises
    PretrainedWeightsError with what to do otherwise."""
    path = _cached_imagenet_file(backbone)
    if path:
        return load_state_dict_file(path)
    try:
        return backbone.weights.get_state_dict(progress=False)
    except Exception as e:  # no network, proxy, disk...
        raise PretrainedWeightsError(
            f"cannot get torchvision's ImageNet {backbone.name} weights ({type(e).__name__}: {e}). "
            f"Copy {os.path.basename(backbone.weights.url)} into {_hub_folder()}, "
            f"or pass --pretrained PATH to a {backbone.name} state dict, or --pretrained none") from None


def load_state_dict_file(path):
    """A state dict from a file, loaded with weights_only=True (no code runs)."""
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


def adapt_imagenet_state_dict(sd, backbone, in_channels, filters, source):
    """Keep the weights of an ImageNet state dict that our model uses: drop the ImageNet
    classifier, and adapt the first convolution (`filters` output channels expected) to
    `in_channels` inputs (cross-modality init)."""
    sd = {k: v for k, v in sd.items() if not k.startswith(backbone.classifier + ".")}
    key = backbone.first_conv + ".weight"
    conv = sd.get(key)
    if conv is None or conv.dim() != 4 or conv.shape[0] != filters:
        raise PretrainedWeightsError(f"{source}: not a {backbone.name} state dict (no {filters}-filter {key})")
    if conv.shape[1] != in_channels:
        if conv.shape[1] != 3:
            raise PretrainedWeightsError(f"{source}: {key} has {conv.shape[1]} input channels; "
                                         f"expected 3 (RGB) or {in_channels}")
        sd[key] = cross_modality_conv1(conv, in_channels)
    return sd
