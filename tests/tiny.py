"""Tiny generated data and the training options of the tests that run real trainings.

FAST is the one list of fast training options; the variants below are FAST plus a few
documented changes, so every test trains the same way unless it says why not. Later
options override earlier ones (argparse), so a test may still append its own.
"""
from dataloader.synthetic import generate

# 4 classes at 48x40, 32-pixel crops, 2 segments, 3 test positions: about a second an epoch.
# No data-loading processes: the engine then gives the training all cores as threads
# (engine.set_cpu_threads).
FAST = ["--pretrained", "none", "--crop-size", "32", "--batch-size", "4", "--workers", "0",
        "--num-segments", "2", "--test-frames", "3", "--val-groups", "1", "--lr", "0.01", "--no-plots"]

# FAST for runs in separate processes (torchrun, subprocesses): one data-loading process
# each and the CPU named, so that no run picks a GPU or spawns a worker per core.
FAST_PROCESSES = [*FAST, "--workers", "1", "--device", "cpu"]

# FAST for trainings that must learn the cues (tests/test_end_to_end.py): a lower learning
# rate (0.01 from scratch at batch 4 is erratic), no validation set (every training video
# trains; the LR schedule follows the training loss) and 8 epochs.
LEARN = [*FAST, "--val-groups", "0", "--lr", "0.003", "--min-lr", "1e-5", "--epochs", "8"]


def make_tiny_data(root, seed=1, **overrides):
    """A 2 colours x 2 motions set, 6 videos per class, 8-14 frames each; returns `root`."""
    generate(root, **({"appearances": 2, "motions": 2, "videos_per_class": 6, "width": 48, "height": 40,
                       "min_frames": 8, "max_frames": 14, "seed": seed, "verbose": False} | overrides))
    return root


def make_learning_data(root, seed=0):
    """A 2 colours x 2 motions set for LEARN: 24 short videos per class (6-10 frames at 40x36),
    and split 1 rewritten so that every other training video tests too: 62 test / 34 train
    videos instead of 28 / 68, so that an accuracy is a fraction of many videos (training
    on 34 is enough to learn a cue). Returns `root`."""
    generate(root, appearances=2, motions=2, videos_per_class=24, width=40, height=36,
             min_frames=6, max_frames=10, seed=seed, verbose=False)
    lists = root / "ucfTrainTestlist"
    train = (lists / "trainlist01.txt").read_text().splitlines(keepends=True)
    test = (lists / "testlist01.txt").read_text().splitlines(keepends=True)
    moved = train[1::2]  # every other training video (the list is by class, so every class gives some)
    (lists / "trainlist01.txt").write_text("".join(train[0::2]))
    (lists / "testlist01.txt").write_text("".join(test + [line.split()[0] + "\r\n" for line in moved]))
    return root
