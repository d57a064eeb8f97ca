"""Motion stream: a TSN ResNet (ResNet18 by default, --arch) on stacks of L TV-L1 flow frames (2L channels).

    python motion_cnn.py --data-root data/ucf101           # train on UCF101 split 1
    python motion_cnn.py --help                             # every option

What differs from the spatial stream (flow input, --stack L, lr 1e-2, batch 32) is
engine.streams.MOTION; the options and the training loop are the engine's.
"""
import sys

from engine.streams import MOTION
from engine.train import main

if __name__ == "__main__":
    sys.exit(main(MOTION))
