"""What differs between the two streams: a StreamSpec each. The CLIs (spatial_cnn.py,
motion_cnn.py) and the tools (benchmark, study) take them from here."""
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamSpec:
    name: str          # 'spatial' | 'motion': records, checkpoints, score files
    modality: str      # 'rgb' | 'flow'
    lr: float          # the original two-stream scripts' learning rates
    batch_size: int    # and batch sizes
    description: str
    script: str        # the CLI that trains it (named in resume hints)


SPATIAL = StreamSpec(
    name="spatial", modality="rgb", lr=5e-4, batch_size=25, script="spatial_cnn.py",
    description="Train or evaluate the spatial (RGB) stream of a two-stream TSN network (ResNet18 by default; --arch).")

MOTION = StreamSpec(
    name="motion", modality="flow", lr=1e-2, batch_size=32, script="motion_cnn.py",
    description="Train or evaluate the motion (stacked optical flow) stream of a two-stream TSN network (ResNet18 by default; --arch).")

STREAMS = {s.name: s for s in (SPATIAL, MOTION)}


def in_channels(spec, stack):
    """Network input channels: 3 for RGB, 2L for a stack of L flow frames (u, v each)."""
    return 3 if spec.modality == "rgb" else 2 * stack
