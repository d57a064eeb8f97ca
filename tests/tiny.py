"""Tiny generated data and fast options for the tests that run real trainings."""
from dataloader.synthetic import generate

# 4 classes at 48x40, 32-pixel crops, 2 segments, 3 test positions: about a second an epoch.
FAST = ["--pretrained", "none", "--crop-size", "32", "--batch-size", "4", "--workers", "0",
        "--num-segments", "2", "--test-frames", "3", "--val-groups", "1", "--lr", "0.01", "--no-plots"]


def make_tiny_data(root, seed=1, **overrides):
    """A 2 colours x 2 motions set, 6 videos per class, 8-14 frames each; returns `root`."""
    generate(root, **({"appearances": 2, "motions": 2, "videos_per_class": 6, "width": 48, "height": 40,
                       "min_frames": 8, "max_frames": 14, "seed": seed, "verbose": False} | overrides))
    return root
