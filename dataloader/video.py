"""A video file -> the frames a model reads, in memory, exactly as tools/prepare_data.py
would have written them to disk.

prepare_data decodes a video with OpenCV, resizes every frame (`resize_frame`), writes it
as JPEG (OpenCV's default quality, 95), computes the flow of consecutive resized grayscale
frames (dataloader/flow.py) and writes it quantised as grayscale JPEG. `decode_video` and
`encode_frames` do the same for only the frames and frame pairs that some test positions
need, and keep the JPEG bytes in a `MemoryLayout`, which ClipDataset reads like a folder
layout: a prediction sees byte-for-byte the input that the evaluation of the extracted
frames sees.
"""
import cv2

from dataloader.flow import compute_flow_batch, quantize_flow
from dataloader.layout import FrameLayout
from dataloader.sampling import stack_indices

DEFAULT_SIZE = (340, 256)  # width, height of extracted frames (prepare_data's default)
# Pairs per call of the torch flow backend: one progress step each, and enough to keep a GPU
# busy (dataloader/tvl1.py splits a call further where memory requires: 17.4 MB a pair at
# 340x256, 0.6 GB for 32); a video's test positions need up to a few hundred pairs.
TORCH_CHUNK = 32
JPEG_PARAMS = [cv2.IMWRITE_JPEG_QUALITY, 95]  # cv2.imwrite's default, what prepare_data writes


class VideoError(ValueError):
    """The file cannot be decoded as a video, or has too few frames."""


def resize_frame(frame, width, height):
    """Every extracted frame goes through this (bilinear, OpenCV's default)."""
    return cv2.resize(frame, (width, height))


def encode_jpeg(image):
    ok, data = cv2.imencode(".jpg", image, JPEG_PARAMS)
    if not ok:
        raise ValueError("cannot encode a frame as JPEG")
    return data.tobytes()


def _open(path):
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise VideoError("OpenCV cannot open it as a video (not a video file, or an unsupported codec)")
    return cap


def count_frames(path, progress=None):
    """The number of frames OpenCV decodes (prepare_data's count; the container's frame-count
    field is only an estimate for some formats); `progress(1)` per frame."""
    cap, n = _open(path), 0
    try:
        while cap.read()[0]:
            n += 1
            if progress:
                progress(1)
    finally:
        cap.release()
    if n == 0:
        raise VideoError("no frame could be decoded (not a video file, or a damaged one)")
    return n


def decode_video(path, wanted, progress=None):
    """{size: {index: resized BGR frame}} for wanted = {(width, height): set of 0-based frame
    indices}, in one pass; `progress(n)` is called per decoded frame."""
    frames = {size: {} for size in wanted}
    last = max((max(ix) for ix in wanted.values() if ix), default=-1)
    cap, i = _open(path), 0
    try:
        while i <= last:
            ok, frame = cap.read()
            if not ok:
                raise VideoError(f"frame {i + 1} could not be decoded on the second pass")
            for size, indices in wanted.items():
                if i in indices:
                    frames[size][i] = resize_frame(frame, *size)
            i += 1
            if progress:
                progress(1)
    finally:
        cap.release()
    return frames


class EncodedFrame:
    """One JPEG in memory; read_frame (dataloader/datasets.py) decodes what .read() returns."""

    def __init__(self, data, name):
        self.data, self.name = data, name

    def read(self):
        return self.data

    def __repr__(self):
        return self.name


class MemoryLayout(FrameLayout):
    """One video's JPEG frames in memory, as the FrameLayout ClipDataset reads
    (dataloader/layout.py): `num_rgb` RGB frames, so num_rgb - 1 flow frames, of which only
    those in the dicts {0-based index: JPEG bytes} are held. Frames nobody asked for are
    absent and read as unreadable (empty bytes)."""
    name = "memory"

    def __init__(self, video, num_rgb, rgb=None, u=None, v=None):
        self.video, self.num_rgb = video, num_rgb
        self.rgb, self.u, self.v = rgb or {}, u or {}, v or {}

    def require(self, modality):
        pass

    def has(self, video, modality):
        return video == self.video

    def num_frames(self, video, modality):
        return self.num_rgb if modality == "rgb" else self.num_rgb - 1  # N frames give N-1 flow frames

    def _frame(self, source, i):
        return EncodedFrame(getattr(self, source).get(i, b""), f"{self.video} ({source} frame {i + 1})")

    def frame_paths(self, video, modality):
        if modality == "rgb":
            return lambda i: self._frame("rgb", i)
        return lambda i: (self._frame("u", i), self._frame("v", i))

    def describe(self, modality):
        return f"{self.video} (in memory)"

    def videos(self, modality):
        return [self.video]


def encode_rgb(frames):
    """{index: BGR frame} -> {index: JPEG bytes}."""
    return {i: encode_jpeg(f) for i, f in frames.items()}


def encode_flow(frames, indices, method, progress=None, backend="opencv", device="cpu"):
    """Flow frame i = the flow from frame i to i + 1 (as prepare_data numbers them), for each
    i in `indices`, quantised and JPEG-encoded: ({i: u bytes}, {i: v bytes}). backend
    "opencv": compute_flow pair by pair (what prepare_data ran); "torch": the TV-L1 of
    dataloader/tvl1.py on `device`, TORCH_CHUNK pairs per compute_flow_batch call.
    `progress(n)` is called after every n pairs."""
    u, v, gray = {}, {}, {}

    def g(i):
        if i not in gray:
            gray[i] = cv2.cvtColor(frames[i], cv2.COLOR_BGR2GRAY)
        return gray[i]

    order, step = sorted(indices), (TORCH_CHUNK if backend == "torch" else 1)
    for k in range(0, len(order), step):
        chunk = order[k:k + step]
        flows = compute_flow_batch([g(i) for i in chunk], [g(i + 1) for i in chunk], method, backend,
                                   device if backend == "torch" else "cpu")
        for i, flow in zip(chunk, flows):
            u[i] = encode_jpeg(quantize_flow(flow[..., 0]))
            v[i] = encode_jpeg(quantize_flow(flow[..., 1]))
        if progress:
            progress(len(chunk))
    return u, v


def needed_frames(positions, span, num_frames):
    """The sorted frame indices the given test positions read (stacks clamped as in
    training, dataloader/sampling.py)."""
    return sorted({int(i) for p in positions for i in stack_indices(int(p), span, num_frames)})

