"""Turn uint8 batches into network input, on the device, batched.

The data workers only decode and crop (cheap integer work); the float conversion, the
flip and the normalisation run here on the whole batch, on the GPU when there is one.
"""
import torch

# ImageNet statistics for RGB; TSN's 0.5 / 0.226 for flow bytes scaled to [0, 1], which
# maps the "no motion" byte 127.5 to zero.
RGB_MEAN, RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FLOW_MEAN, FLOW_STD = 0.5, 0.226


def flip_horizontal(x, flip, modality):
    """Mirror the samples where `flip` is true. x: (..., C, H, W) uint8, flip: x.shape[:-3] bool.

    Mirroring a flow field also reverses its horizontal component: u -> 255 - u on the
    u channels (even channel indices, the order is u1, v1, u2, v2, ...).
    """
    if not bool(flip.any()):
        return x
    sel = flip.nonzero(as_tuple=True)  # only the flipped samples are touched
    mirrored = x[sel].flip(-1)  # (n, C, H, W), a copy
    if modality == "flow":
        mirrored[:, 0::2] = 255 - mirrored[:, 0::2]
    x = x.clone()
    x[sel] = mirrored
    return x


def normalize(x, modality, dtype=torch.float32):
    """uint8 (..., C, H, W) -> float, zero-centred: one conversion and one fused
    multiply-add, (x / 255 - mean) / std = x * scale + shift."""
    if modality == "rgb":
        mean = torch.tensor(RGB_MEAN, dtype=dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(RGB_STD, dtype=dtype, device=x.device).view(3, 1, 1)
    else:
        mean = torch.tensor(FLOW_MEAN, dtype=dtype, device=x.device)
        std = torch.tensor(FLOW_STD, dtype=dtype, device=x.device)
    return torch.addcmul(-mean / std, x.to(dtype), 1 / (255 * std))


def to_network_input(x, flip, modality):
    """Flip then normalise a uint8 batch already on its device."""
    return normalize(flip_horizontal(x, flip, modality), modality)
