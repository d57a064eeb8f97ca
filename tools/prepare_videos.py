"""tools.prepare_data's work on one video, in a worker process: decode it, resize every frame,
write the RGB JPEGs and the quantised flow JPEGs, and make the video's folders final.

Two ways, by flow backend:
- OpenCV (`prepare_video`): the worker also computes the flow, pair by pair, as it decodes;
- torch (`decode_video`, then `write_flow`): the worker decodes and writes the RGB frames and
  hands the grey frames to the main process, which computes the flow of many videos' pairs at
  once on the GPU (tools/prepare_flow.py) and hands the quantised flow back to a worker to
  encode and write.

Resumable either way: a video is written into `.tmp-<dir>` folders beside its three final
folders and renamed when complete (flow u, v first, RGB last), so a video counts as finished
only when all three final folders exist; leftovers of an interrupted run are removed first.
No worker function raises: a failure comes back as a Result and leaves nothing of the video.
"""
import os
import shutil
import time
from typing import NamedTuple

import cv2
import numpy as np

from dataloader.flow import compute_flow, quantize_flow, tvl1
from dataloader.layout import FLOW_DIR, RGB_DIR, twostream_frame_name, twostream_video_dirs
from dataloader.video import JPEG_PARAMS, resize_frame

TMP_PREFIX = ".tmp-"


class VideoJob(NamedTuple):
    """One video to prepare (what a worker process receives)."""
    src: str        # the video file
    name: str       # output folder name (v_<name> for UCF101-style data sets)
    out: str        # --out
    width: int
    height: int
    flow: str       # "tvl1" or "farneback"


class Result(NamedTuple):
    name: str
    ok: bool
    frames: int      # RGB frames written (pairs = frames - 1)
    error: str
    seconds: float
    grey: object = None  # decode_video: (frames, H, W) uint8 grey frames for the main process


# ---------------------------------------------------------------- folders
def final_dirs(out, name):
    """The three folders of one video, in the order they are renamed (RGB last)."""
    rgb, u, v = twostream_video_dirs(os.path.join(out, RGB_DIR), os.path.join(out, FLOW_DIR), name)
    return [u, v, rgb]


def tmp_dir(final):
    """`.tmp-<dir>` beside `final`: the same file system, so the rename is atomic."""
    parent, name = os.path.split(final)
    return os.path.join(parent, TMP_PREFIX + name)


def is_finished(out, name):
    return all(os.path.isdir(d) for d in final_dirs(out, name))


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)


def _start(job):
    """Fresh temporary folders for the video (leftovers of an interrupted run removed: the
    video is not finished, so it is redone whole). Returns [u, v, rgb] temporary folders."""
    finals = final_dirs(job.out, job.name)
    tmps = [tmp_dir(d) for d in finals]
    for d in tmps + finals:
        _remove(d)
    for d in tmps:
        os.makedirs(d)
    return tmps


def _finish(job):
    """u, v first and RGB last: RGB's folder appearing is what marks the video finished."""
    for final in final_dirs(job.out, job.name):
        os.rename(tmp_dir(final), final)


def _failed(job, error, start):
    for final in final_dirs(job.out, job.name):
        _remove(tmp_dir(final))
    return Result(job.name, False, 0, f"{type(error).__name__}: {error}", time.time() - start)


# ---------------------------------------------------------------- in a worker
_PAIRS = None  # this worker's share of the progress counter (init_worker), shared with the main process


def init_worker(flow, pairs_counter=None):
    """Pool initializer: one OpenCV thread per process (the pool already uses every core),
    the TV-L1 object built once, and the counter the worker adds each frame pair to (the
    main process reads it for a progress bar that moves within a video)."""
    global _PAIRS
    cv2.setNumThreads(1)
    _PAIRS = pairs_counter
    if flow == "tvl1":
        tvl1()


def _count_pair():
    if _PAIRS is not None:
        with _PAIRS.get_lock():
            _PAIRS.value += 1


def _write(path, image):
    if not cv2.imwrite(path, image, JPEG_PARAMS):  # the quality tools.predict re-encodes with
        raise OSError(f"cannot write {path}")


def _frames(job):
    """The video's frames, resized, one at a time (only one in memory)."""
    cap = cv2.VideoCapture(job.src)
    if not cap.isOpened():
        raise ValueError("OpenCV cannot open the video")
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield resize_frame(frame, job.width, job.height)
    finally:
        cap.release()


def _write_flow_pair(u_tmp, v_tmp, number, flow_q):
    """Flow frame `number` (1-based) from a quantised (H, W, 2) uint8 array."""
    _write(os.path.join(u_tmp, twostream_frame_name(number)), flow_q[..., 0])
    _write(os.path.join(v_tmp, twostream_frame_name(number)), flow_q[..., 1])


def prepare_video(job):
    """The OpenCV way: decode, write RGB and flow frame by frame (two frames in memory), finish."""
    start = time.time()
    try:
        u_tmp, v_tmp, rgb_tmp = _start(job)
        prev, n = None, 0
        for n, frame in enumerate(_frames(job), 1):
            _write(os.path.join(rgb_tmp, twostream_frame_name(n)), frame)
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            if prev is not None:
                _write_flow_pair(u_tmp, v_tmp, n - 1, quantize_flow(compute_flow(prev, grey, job.flow)))
                _count_pair()
            prev = grey
        if n < 2:
            raise ValueError(f"only {n} frame(s) could be read (need 2 for flow)")
        _finish(job)
        return Result(job.name, True, n, "", time.time() - start)
    except Exception as e:  # noqa: BLE001 - report any failure and go on with the others
        return _failed(job, e, start)


def decode_video(job):
    """The torch way, part 1: decode, write the RGB frames (not final yet) and return the grey
    frames (Result.grey) for the main process's flow."""
    start = time.time()
    try:
        rgb_tmp = _start(job)[2]
        grey = []
        for n, frame in enumerate(_frames(job), 1):
            _write(os.path.join(rgb_tmp, twostream_frame_name(n)), frame)
            grey.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        if len(grey) < 2:
            raise ValueError(f"only {len(grey)} frame(s) could be read (need 2 for flow)")
        return Result(job.name, True, len(grey), "", time.time() - start, np.stack(grey))
    except Exception as e:  # noqa: BLE001
        return _failed(job, e, start)


def write_flow(job, flow_q, frames, seconds):
    """The torch way, part 2: write the quantised flow (frames - 1, H, W, 2) uint8, finish."""
    start = time.time()
    try:
        u_tmp, v_tmp, _ = [tmp_dir(d) for d in final_dirs(job.out, job.name)]
        for i, pair in enumerate(flow_q, 1):
            _write_flow_pair(u_tmp, v_tmp, i, pair)
        _finish(job)
        return Result(job.name, True, frames, "", seconds + time.time() - start)
    except Exception as e:  # noqa: BLE001
        return _failed(job, e, start)
