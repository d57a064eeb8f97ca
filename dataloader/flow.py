"""How optical flow is stored as 8-bit images (the TV-L1 dumps' rule, bound 20).

A flow component f (pixels per frame; u positive right, v positive down) becomes
    q = round(255 * (clip(f, -B, B) + B) / (2B)),   B = BOUND = 20,
so -B -> 0, +B -> 255 and no motion -> 127.5, stored as 128 (halves round to even).
Written by tools/prepare_data.py and dataloader/synthetic.py; the readers never undo it
(dataloader/transforms.py normalises the bytes directly). See docs/method.md.
"""
import numpy as np

BOUND = 20  # pixels per frame; the dense_flow / denseflow bound


def quantize_flow(flow, bound=BOUND):
    """Flow component(s) (float array, pixels) -> uint8 array of the same shape."""
    scaled = 255.0 * (np.clip(flow, -bound, bound) + bound) / (2 * bound)
    return np.rint(scaled).astype(np.uint8)


def dequantize_flow(q, bound=BOUND):
    """uint8 -> float64 pixels: the centre of q's quantisation step, so
    quantize_flow(dequantize_flow(q)) == q; 128 -> +0.078 px (one step is 2B/255 px)."""
    return np.asarray(q, dtype=np.float64) * (2 * bound) / 255.0 - bound
