"""Generated videos in class folders, as a user's own data set would be (tools.prepare_data
--dataset folders, tools.predict): the synthetic data set's colour x motion clips
(dataloader/synthetic.py) encoded as MJPG .avi or mp4v .mp4, which this OpenCV writes and reads."""
import os

import cv2
import numpy as np

from dataloader.synthetic_render import render_video

FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}


def write_video(path, rgb, fps=25):
    """rgb: (N, H, W, 3) uint8 RGB frames -> a video file, codec by extension."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    n, h, w = rgb.shape[:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*FOURCC[os.path.splitext(path)[1].lower()]), fps, (w, h))
    assert writer.isOpened(), path
    for frame in rgb:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def render(colour, motion, seed, frames=12, width=64, height=48):
    return render_video(np.random.default_rng(seed), colour, motion, frames, width, height)[0]


def make_class_videos(root, classes, per_class=6, frames=(10, 14), width=64, height=48, seed=0, names=None):
    """classes: {folder name: (colour, motion)}. Video i of a class is `names(cls, i)` (default
    'clip <i>.<ext>', mp4 for odd i, avi for even). Returns {folder: [paths]}."""
    names = names or (lambda cls, i: f"clip {i}.{'mp4' if i % 2 else 'avi'}")
    out = {}
    for k, (folder, (colour, motion)) in enumerate(sorted(classes.items())):
        for i in range(per_class):
            n = frames[0] + (i * 7 + k) % (frames[1] - frames[0] + 1)
            rgb = render(colour, motion, [seed, k, i], n, width, height)
            out.setdefault(folder, []).append(write_video(os.path.join(root, folder, names(folder, i)), rgb))
    return out
