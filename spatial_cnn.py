"""Spatial stream: a TSN ResNet (ResNet18 by default, --arch) on single RGB frames.

    python spatial_cnn.py --data-root data/ucf101          # train on UCF101 split 1
    python spatial_cnn.py --help                            # every option

What differs from the motion stream (RGB input, lr 5e-4, batch 25) is engine.streams.SPATIAL;
the options and the training loop are the engine's.
"""
import sys

from engine.streams import SPATIAL
from engine.train import main

if __name__ == "__main__":
    sys.exit(main(SPATIAL))
