"""Turn uint8 batches into network input, on the device, batched.

The data workers only decode and crop (cheap integer work); the mirroring, the float
conversion and the normalisation run here on the whole batch, on the GPU when there is one.
On a CPU device this is the costliest part of the input pipeline (a float flow batch is
four times the bytes of the uint8 one), so it is written as few passes over memory as
possible: mirror the flipped samples in uint8, then one conversion and one in-place
multiply and add whose per-channel factors also invert u for mirrored flow.
"""
import torch

# ImageNet statistics for RGB; TSN's 0.5 / 0.226 for flow bytes scaled to [0, 1], which
# maps the "no motion" byte 127.5 to zero.
RGB_MEAN, RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FLOW_MEAN, FLOW_STD = 0.5, 0.226


def mirror(x, flip):
    """Reverse the width of the samples where `flip` is true, nothing else (no u inversion:
    `normalize` folds that in). x: (..., C, H, W) uint8; flip: bool of shape x.shape[:-3],
    on any device. Returns x itself when nothing is flipped, else a new tensor."""
    flipped = flip.reshape(-1).nonzero().reshape(-1).tolist()
    if not flipped:
        return x
    x = x.clone()
    samples = x.view(-1, *x.shape[-3:])  # (N, C, H, W)
    # One copy per flipped sample: on the CPU several times faster than gathering and
    # scattering the flipped samples with index ops, and a batch holds at most a few
    # hundred samples (on a GPU each is one asynchronous kernel).
    for i in flipped:
        samples[i] = samples[i].flip(-1)
    return x


def affine(modality, channels, flip=None, dtype=torch.float32):
    """scale, shift (on the CPU, broadcastable to x) with x * scale + shift = (x / 255 - mean) / std.

    Mirroring a flow field also reverses its horizontal component, u -> 255 - u on the u
    channels (even indices: u1, v1, u2, v2, ...) of the flipped samples; that is affine
    too: (255 - u) * s + b = u * (-s) + (255 * s + b). So for flow with `flip` (bool,
    x.shape[:-3]) the factors are per sample: flip.shape + (C, 1, 1)."""
    mean = torch.tensor(RGB_MEAN if modality == "rgb" else [FLOW_MEAN] * channels, dtype=torch.float64)
    std = torch.tensor(RGB_STD if modality == "rgb" else [FLOW_STD] * channels, dtype=torch.float64)
    scale, shift = 1 / (255 * std), -mean / std  # (C,)
    if modality == "flow" and flip is not None:
        invert = flip.cpu().unsqueeze(-1) & (torch.arange(channels) % 2 == 0)  # (..., C)
        shift = torch.where(invert, shift + 255 * scale, shift)
        scale = torch.where(invert, -scale, scale)
    return scale[..., None, None].to(dtype), shift[..., None, None].to(dtype)


def normalize(x, modality, flip=None, dtype=torch.float32):
    """uint8 (..., C, H, W) -> float, zero-centred; with `flip` (bool, x.shape[:-3]) the u
    channels of flipped flow samples are also inverted. One conversion, one multiply-add."""
    scale, shift = affine(modality, x.shape[-3], flip, dtype)
    return x.to(dtype).mul_(scale.to(x.device)).add_(shift.to(x.device))


def to_network_input(x, flip, modality):
    """Mirror the flipped samples (u inverted for flow), then normalise; x uint8 on its device."""
    return normalize(mirror(x, flip), modality, flip)
