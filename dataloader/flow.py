"""How optical flow is stored as 8-bit images (the TV-L1 dumps' rule, bound 20).

A flow component f (pixels per frame; u positive right, v positive down) becomes
    q = round(255 * (clip(f, -B, B) + B) / (2B)),   B = BOUND = 20,
so -B -> 0, +B -> 255 and no motion -> 127.5, stored as 128 (halves round to even).
Written by tools/prepare_data.py and dataloader/synthetic.py; the readers never undo it
(dataloader/transforms.py normalises the bytes directly). See docs/method.md.

`compute_flow` is the one flow estimator of the project: tools/prepare_data.py extracts
data sets with it and tools/predict.py (engine/predict.py) computes a new video's flow with
it, so a model sees at prediction time the flow it was trained on.
"""
import cv2
import numpy as np

BOUND = 20  # pixels per frame; the dense_flow / denseflow bound
FLOW_METHODS = ("tvl1", "farneback")
DEFAULT_FLOW = "tvl1"


def quantize_flow(flow, bound=BOUND):
    """Flow component(s) (float array, pixels) -> uint8 array of the same shape."""
    scaled = 255.0 * (np.clip(flow, -bound, bound) + bound) / (2 * bound)
    return np.rint(scaled).astype(np.uint8)


def dequantize_flow(q, bound=BOUND):
    """uint8 -> float64 pixels: the centre of q's quantisation step, so
    quantize_flow(dequantize_flow(q)) == q; 128 -> +0.078 px (one step is 2B/255 px)."""
    return np.asarray(q, dtype=np.float64) * (2 * bound) / 255.0 - bound


_TVL1 = None


def tvl1():
    """The process's TV-L1 estimator, created once: construction is not free and the
    object is reusable (it keeps no state between calls)."""
    global _TVL1
    if _TVL1 is None:
        _TVL1 = cv2.optflow.DualTVL1OpticalFlow_create()
    return _TVL1


def compute_flow(prev_gray, gray, method):
    """Dense flow from `prev_gray` to `gray` (uint8 H x W): H x W x 2 float32,
    [..., 0] = horizontal (positive right), [..., 1] = vertical (positive down)."""
    if method == "tvl1":
        return tvl1().calc(prev_gray, gray, None)
    if method == "farneback":
        # The parameters of OpenCV's sample (pyramid 0.5, 3 levels, window 15).
        return cv2.calcOpticalFlowFarneback(prev_gray, gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    raise ValueError(f"unknown flow method '{method}' (choose from {', '.join(FLOW_METHODS)})")
