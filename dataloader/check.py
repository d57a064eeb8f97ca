"""--check-data: decode every frame of every listed video, in parallel, without training."""
from torch.utils.data import DataLoader, Dataset

import progress


class FrameCheck(Dataset):
    """Item i: (video, number of frames, paths of frames that are unreadable or of the wrong size)."""

    def __init__(self, clips):
        self.clips = clips  # a ClipDataset: its decoding and size rules are the ones training uses

    def __len__(self):
        return len(self.clips.entries)

    def __getitem__(self, i):
        video, _ = self.clips.entries[i]
        n = self.clips.counts[video]
        paths_of = self.clips.layout.frame_paths(video, self.clips.modality)
        bad = [str(paths_of(j)) for j in range(n) if self.clips.read_channels(paths_of, j) is None]
        return video, n, bad


def check_frames(datasets, workers):
    """Check {name: ClipDataset}; print a summary. Returns the number of bad frames."""
    total_videos = total_frames = 0
    bad = []
    for name, clips in datasets.items():
        loader = DataLoader(FrameCheck(clips), batch_size=None, num_workers=workers)
        for video, n, bad_paths in progress.progress(loader, desc=f"checking {name}", mininterval=1):
            total_videos += 1
            total_frames += n
            bad.extend(bad_paths)
    print(f"==> checked {total_videos} videos, {total_frames} frames: {len(bad)} unreadable or of the wrong size")
    for path in bad[:20]:
        print(f"    {path}")
    if len(bad) > 20:
        print(f"    ... and {len(bad) - 20} more")
    return len(bad)
