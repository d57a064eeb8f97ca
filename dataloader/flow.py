"""How optical flow is stored as 8-bit images (the TV-L1 dumps' rule, bound 20).

A flow component f (pixels per frame; u positive right, v positive down) becomes
    q = round(255 * (clip(f, -B, B) + B) / (2B)),   B = BOUND = 20,
so -B -> 0, +B -> 255 and no motion -> 127.5, stored as 128 (halves round to even).
Written by tools/prepare_data.py and dataloader/synthetic.py; the readers never undo it
(dataloader/transforms.py normalises the bytes directly). See docs/method.md.

`compute_flow` is the one flow estimator of the project: tools/prepare_data.py extracts
data sets with it and tools/predict.py (engine/predict.py) computes a new video's flow with
it, so a model sees at prediction time the flow it was trained on.

`compute_flow_batch` computes the flow of N pairs at once, with OpenCV's estimator (backend
"opencv", the same as compute_flow pair by pair) or with dataloader/tvl1.py, the same TV-L1 in
PyTorch on any device (backend "torch"; docs/flow.md: how closely it follows OpenCV).
"""
import cv2
import numpy as np

BOUND = 20  # pixels per frame; the dense_flow / denseflow bound
FLOW_METHODS = ("tvl1", "farneback")
DEFAULT_FLOW = "tvl1"
FLOW_BACKENDS = ("opencv", "torch")


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


def _check_frames(prevs, nexts):
    """(H, W) of the pairs: equal numbers of uint8 2-D frames, all of one size."""
    if len(prevs) != len(nexts):
        raise ValueError(f"{len(prevs)} first frames but {len(nexts)} second frames")
    size = None
    for i, (a, b) in enumerate(zip(prevs, nexts)):
        for name, f in (("prevs", a), ("nexts", b)):
            if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim != 2:
                what = (f"{f.dtype} array of shape {f.shape}" if isinstance(f, np.ndarray)
                        else type(f).__name__)
                raise ValueError(f"{name}[{i}] must be a uint8 grey frame (H x W), not a {what}")
        wxh = lambda shape: f"{shape[1]}x{shape[0]}"
        if a.shape != b.shape:
            raise ValueError(f"pair {i}: prevs[{i}] is {wxh(a.shape)} but nexts[{i}] is {wxh(b.shape)}")
        if size is not None and a.shape != size:
            raise ValueError(f"pair {i} is {wxh(a.shape)} but pair 0 is {wxh(size)}: "
                             f"a batch holds frames of one size")
        size = a.shape
    return size


def compute_flow_batch(prevs, nexts, method="tvl1", backend="opencv", device="cpu"):
    """Dense flow of N pairs: prevs[i] -> nexts[i] (uint8 H x W frames, one size for all)
    -> float32 N x H x W x 2, the convention of compute_flow.

    backend "opencv": compute_flow pair by pair (CPU only). backend "torch": TV-L1 of
    dataloader/tvl1.py on `device` ("cpu", "cuda", "cuda:1", ...), all pairs at once (in
    chunks that fit the device; every frame is copied there first, 4 bytes a pixel, so pass
    a video or a few hundred pairs at a time); it does TV-L1 only. No pairs -> an empty
    0 x H x W x 2 array (H = W = 0 when the empty inputs carry no frame size).
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown flow method '{method}' (choose from {', '.join(FLOW_METHODS)})")
    if backend not in FLOW_BACKENDS:
        raise ValueError(f"unknown flow backend '{backend}' (choose from {', '.join(FLOW_BACKENDS)})")
    if backend == "torch" and method != "tvl1":
        raise ValueError(f"the torch backend computes TV-L1 only, not '{method}' (use backend='opencv')")
    if backend == "opencv" and str(device) != "cpu":
        raise ValueError(f"the opencv backend runs on the CPU, not on '{device}' (use backend='torch')")
    if backend == "torch":
        from dataloader import tvl1  # imports torch, which only this backend needs
        dev = tvl1.resolve_device(device)  # no CUDA device: an error even for no pairs
    size = _check_frames(prevs, nexts)
    if size is None:  # no pairs: an empty (0, H, W) array still tells the frame size
        shape = getattr(prevs, "shape", ())
        h, w = shape[1:3] if len(shape) == 3 else (0, 0)
        return np.zeros((0, h, w, 2), np.float32)
    if backend == "opencv":
        return np.stack([compute_flow(a, b, method) for a, b in zip(prevs, nexts)])
    flow = tvl1.tvl1_flow(tvl1.grey_frames(prevs, dev), tvl1.grey_frames(nexts, dev))
    return flow.cpu().numpy()
