"""The BASELINE of tools/benchmark.py: training items loaded the way the original two-stream
scripts loaded them (PIL per frame, per-frame float transforms, default collate). Not used
for training; the benchmark sets the project's loader against it on the same items."""
import io

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms

from dataloader.sampling import random_crop_box, sample_train_positions, stack_indices
from dataloader.transforms import FLOW_MEAN, FLOW_STD, RGB_MEAN, RGB_STD


class ClassicClipDataset(Dataset):
    """BASELINE ONLY - not used for training. Training items loaded the way the original
    two-stream code did: one PIL `Image.open` per frame, per-frame torchvision transforms
    (crop, flip, ToTensor, Normalize) in float, the flow stack built by per-frame torch.cat,
    float items through the default collate.

    It draws the same positions, crop and flip as ClipDataset for an (index, epoch) item
    (same generator, same calls in the same order), and applies what the project applies
    (flow u -> 255 - u when mirrored, channel order u1, v1, ..., uL, vL, the same
    normalisation), so its output is the project's network input, computed the old way.
    Item: (clip float32 (K, C, crop, crop), label, index).
    """

    INVERT_U = True  # the tests switch it off to show that the comparison catches a missing inversion

    def __init__(self, entries, counts, layout, modality, *, frame_size, stack=10, crop_size=224,
                 num_segments=3, seed=0):
        self.entries, self.counts, self.layout, self.modality = entries, counts, layout, modality
        self.span = stack if modality == "flow" else 1
        self.crop, self.num_segments, self.seed = crop_size, num_segments, seed
        self.frame_size = tuple(frame_size)
        if modality == "rgb":
            self.normalize = transforms.Normalize(RGB_MEAN, RGB_STD)
        else:
            self.normalize = transforms.Normalize([FLOW_MEAN], [FLOW_STD])

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, item):
        index, epoch = item
        rng = np.random.default_rng([self.seed, epoch, index])  # as ClipDataset
        video, label = self.entries[index]
        n = self.counts[video]
        paths_of = self.layout.frame_paths(video, self.modality)
        h, w = self.frame_size
        c = self.crop
        positions = sample_train_positions(n, self.num_segments, self.span, rng)
        top, left = random_crop_box(h, w, c, rng)
        flip = bool(rng.random() < 0.5)
        ops = [transforms.Lambda(lambda im: TF.crop(im, top, left, c, c))]
        if flip:
            ops.append(transforms.RandomHorizontalFlip(p=1.0))
        ops.append(transforms.ToTensor())
        per_frame = transforms.Compose(ops)
        segments = []
        for p in positions:
            if self.modality == "rgb":
                with open_image(paths_of(int(p))) as im:
                    segments.append(self.normalize(per_frame(im.convert("RGB"))))
                continue
            stack = None
            for i in stack_indices(int(p), self.span, n):
                u_path, v_path = paths_of(int(i))
                with open_image(u_path) as im:
                    u = per_frame(im.convert("L"))
                with open_image(v_path) as im:
                    v = per_frame(im.convert("L"))
                if flip and self.INVERT_U:
                    u = 1.0 - u  # a mirrored flow field points the other way horizontally
                uv = torch.cat([self.normalize(u), self.normalize(v)])
                stack = uv if stack is None else torch.cat([stack, uv])
            segments.append(stack)
        return torch.stack(segments), label, index


def open_image(path):
    """PIL image of a frame file, or of a PackedFrame's bytes (--layout packed)."""
    return Image.open(path if isinstance(path, str) else io.BytesIO(path.read()))
