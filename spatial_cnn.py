"""Spatial stream: TSN ResNet18 on single RGB frames.

    python spatial_cnn.py --data-root data/ucf101          # train on UCF101 split 1
    python spatial_cnn.py --help                            # every option
"""
import sys

from engine import StreamSpec, main

SPATIAL = StreamSpec(
    name="spatial", modality="rgb", lr=5e-4, batch_size=25,
    description="Train or evaluate the spatial (RGB) stream of a two-stream TSN ResNet18.")

if __name__ == "__main__":
    sys.exit(main(SPATIAL))
