"""How tools.prepare_data runs its videos, by flow backend, with a progress bar that counts
frame pairs (the unit of the work: a long video is many pairs, a short one few).

- OpenCV (`run_opencv`): each worker process does whole videos (tools/prepare_videos.py
  prepare_video); the workers add every pair to a shared counter, which the main process
  reads twice a second, so the bar moves within long videos too.
- torch (`run_torch`): worker processes decode videos and write their JPEGs, while this
  process gathers the frame pairs of several videos into batches and computes their TV-L1
  flow on the device (dataloader.flow.compute_flow_batch). At most `window` decoded videos
  wait in memory (their grey frames: 87 KB a frame at 340x256).
"""
import multiprocessing
import queue
from collections import deque

import numpy as np

from dataloader.flow import compute_flow_batch, quantize_flow
from tools.prepare_videos import Result, decode_video, init_worker, prepare_video, write_flow

POLL_S = 0.5  # how often the main process looks at the workers' pair counter


def spawn_pool(workers, flow, counter=None):
    # spawn, not fork: forking a process whose OpenCV thread pool is already running can
    # deadlock the children.
    return multiprocessing.get_context("spawn").Pool(workers, initializer=init_worker, initargs=(flow, counter))


def run_opencv(jobs, workers, flow, bar):
    """Yield Results as videos finish; `bar` counts pairs. One worker runs in this process."""
    if workers <= 1:
        init_worker(flow)
        for job in jobs:
            result = prepare_video(job)
            bar.update(max(result.frames - 1, 0))
            yield result
        return
    counter = multiprocessing.get_context("spawn").Value("q", 0)
    with spawn_pool(workers, flow, counter) as pool:
        results = pool.imap_unordered(prepare_video, jobs, chunksize=1)
        seen = 0
        for _ in jobs:
            while True:
                try:
                    result = results.next(timeout=POLL_S)
                    break
                except multiprocessing.TimeoutError:
                    seen = _catch_up(bar, counter, seen)
            seen = _catch_up(bar, counter, seen)
            yield result


def _catch_up(bar, counter, seen):
    now = counter.value
    if now > seen:
        bar.update(now - seen)
    return now


class _Video:
    """A decoded video waiting for its flow: its grey frames and the flow filled in so far."""

    def __init__(self, job, result):
        self.job, self.frames, self.seconds = job, result.frames, result.seconds
        self.grey = result.grey                                              # (N, H, W) uint8
        self.flow = np.empty((self.frames - 1, *self.grey.shape[1:], 2), np.uint8)  # (N-1, H, W, 2)
        self.missing = self.frames - 1                                       # pairs still to compute


def run_torch(jobs, workers, device, batch_size, bar, window=None):
    """Yield Results as videos finish: workers decode and write, this process computes the
    flow of `batch_size` pairs at a time (pairs of several videos at once) on `device`. At most
    `window` videos are being decoded or wait in memory for their flow."""
    window = window or max(2, 2 * workers)
    done = queue.SimpleQueue()  # what the workers finished: ("decoded" | "written", job, Result)
    todo, pairs = deque(jobs), deque()
    count = {"decoding": 0, "in_memory": 0, "writing": 0}
    with spawn_pool(workers, "torch") as pool:
        def submit(fn, args, kind, job):
            def failed(e):  # a worker that died or could not take the job: that video failed
                done.put((kind, job, Result(job.name, False, 0, f"{type(e).__name__}: {e}", 0.0)))
            pool.apply_async(fn, args, callback=lambda r: done.put((kind, job, r)), error_callback=failed)

        def refill():
            while todo and count["decoding"] + count["in_memory"] < window:
                job = todo.popleft()
                submit(decode_video, (job,), "decoded", job)
                count["decoding"] += 1

        refill()
        while any(count.values()) or pairs:
            # Take what the workers finished; wait only while no batch can be filled yet.
            while not done.empty() or (not pairs and (count["decoding"] or count["writing"])) or (
                    len(pairs) < batch_size and count["decoding"]):
                kind, job, result = done.get()
                count["writing" if kind == "written" else "decoding"] -= 1
                if kind == "decoded" and result.ok:
                    video = _Video(job, result)
                    count["in_memory"] += 1
                    pairs.extend((video, i) for i in range(video.missing))
                else:
                    yield result  # written (done or failed), or a video that failed to decode
                refill()
            if pairs:
                for video in _flow_batch(pairs, min(batch_size, len(pairs)), device, bar):
                    count["in_memory"] -= 1
                    count["writing"] += 1
                    submit(write_flow, (video.job, video.flow, video.frames, video.seconds), "written", video.job)
            refill()


def _flow_batch(pairs, n, device, bar):
    """Compute the flow of the next n pairs; returns the videos it completed."""
    batch = [pairs.popleft() for _ in range(n)]
    prevs = [video.grey[i] for video, i in batch]
    nexts = [video.grey[i + 1] for video, i in batch]
    flow = quantize_flow(compute_flow_batch(prevs, nexts, "tvl1", "torch", device))  # (n, H, W, 2) uint8
    bar.update(n)
    complete = []
    for (video, i), f in zip(batch, flow):
        video.flow[i] = f
        video.missing -= 1
        if video.missing == 0:
            video.grey = None  # its memory goes now, not when its JPEGs are written
            complete.append(video)
    return complete
