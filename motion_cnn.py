"""Motion stream: TSN ResNet18 on stacks of L TV-L1 flow frames (2L channels).

    python motion_cnn.py --data-root data/ucf101           # train on UCF101 split 1
    python motion_cnn.py --help                             # every option
"""
import sys

from engine import StreamSpec, main

MOTION = StreamSpec(
    name="motion", modality="flow", lr=1e-2, batch_size=32,
    description="Train or evaluate the motion (stacked optical flow) stream of a two-stream TSN ResNet18.")

if __name__ == "__main__":
    sys.exit(main(MOTION))
