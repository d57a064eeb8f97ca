"""Which frame layout the command line names: the folder options (--rgb-dir, --flow-dir,
--frames-dir, --packed-dir) with their defaults under --data-root, and `open_layout`, which
detects the layout and opens it (dataloader/layout.py has the layouts themselves)."""
import os
from dataclasses import dataclass

from dataloader.layout import (FLOW_DIR, FRAMES_DIR, LAYOUTS, PACKED_DIR, RGB_DIR, MMActionLayout, PackedLayout,
                               TwoStreamLayout)


@dataclass(frozen=True)
class FrameDirs:
    """Frame folders given on the command line (--rgb-dir, --flow-dir, --frames-dir,
    --packed-dir); None = the default name under the data root."""
    rgb: str | None = None       # two-stream RGB folder (DATA_ROOT/jpegs_256)
    flow: str | None = None      # two-stream flow folder with u/ and v/ (DATA_ROOT/tvl1_flow)
    frames: str | None = None    # mmaction folder (DATA_ROOT/rawframes)
    packed: str | None = None    # packs (DATA_ROOT/packed)

    # The folders each layout reads, per modality, as the option names them.
    READS = {"twostream": {"rgb": ("rgb",), "flow": ("flow",)}, "mmaction": {"rgb": ("frames",), "flow": ("frames",)},
             "packed": {"rgb": ("packed",), "flow": ("packed",)}}

    def given(self):
        """The folders named on the command line (not None), in the layouts' order."""
        return [f for f in ("packed", "frames", "rgb", "flow") if getattr(self, f)]

    def unread(self, kind, modality):
        """'--flow-dir X'-style names of the given folders that would be silently ignored: those
        layout `kind` never reads, and a missing one of the other modality (an existing one is
        fine: a script may pass both streams the same --rgb-dir and --flow-dir)."""
        other = "flow" if modality == "rgb" else "rgb"
        return [f"--{f}-dir {getattr(self, f)}" for f in self.given() if f not in self.READS[kind][modality]
                and not (f in self.READS[kind][other] and os.path.isdir(getattr(self, f)))]

    def under(self, data_root):
        """The same with every None replaced by its default under `data_root`."""
        return FrameDirs(self.rgb or os.path.join(data_root, RGB_DIR), self.flow or os.path.join(data_root, FLOW_DIR),
                         self.frames or os.path.join(data_root, FRAMES_DIR),
                         self.packed or os.path.join(data_root, PACKED_DIR))


def open_layout(kind, data_root, dirs=None, allow_packed=True):
    """The FrameLayout of --layout `kind` (one of LAYOUTS) with the folders `dirs` (a FrameDirs;
    None = all defaults under `data_root`). "auto" detects it, packs first, since a user who
    packed the frames wants them read; allow_packed=False never reads packs (pack_frames).

    Raises FileNotFoundError naming the folders it looked for.
    """
    given = (dirs or FrameDirs()).given()
    for field in given:
        path = getattr(dirs, field)
        if os.path.exists(path) and not os.path.isdir(path):
            raise NotADirectoryError(f"--{field}-dir {path}: is a file; expected a folder")
    d = (dirs or FrameDirs()).under(data_root)
    if kind == "auto" and given:  # a folder named on the command line says which layout is meant
        kind = {"packed": "packed", "frames": "mmaction"}.get(given[0], "twostream")
    if kind == "auto":
        if allow_packed and os.path.isdir(d.packed):
            kind = "packed"
        elif os.path.isdir(d.rgb) or os.path.isdir(d.flow):
            kind = "twostream"
        elif os.path.isdir(d.frames):
            kind = "mmaction"
        else:
            raise FileNotFoundError(
                f"no frames found under --data-root {data_root}: expected {d.rgb} and {d.flow} "
                f"(two-stream layout) or {d.frames} (mmaction layout); prepare them with "
                "`python -m tools.prepare_data` or point --rgb-dir/--flow-dir/--frames-dir at them")
    if kind == "twostream":
        return TwoStreamLayout(d.rgb, d.flow)
    if kind == "mmaction":
        if not os.path.isdir(d.frames):
            raise FileNotFoundError(f"frame folder not found: {d.frames} (set --data-root or --frames-dir)")
        return MMActionLayout(d.frames)
    if kind == "packed" and allow_packed:
        if not os.path.isdir(d.packed):
            raise FileNotFoundError(f"packed frame folder not found: {d.packed} (set --data-root or --packed-dir; "
                                    "write it with python -m tools.pack_frames)")
        return PackedLayout(d.packed)
    raise ValueError(f"unknown layout '{kind}' (choose from {', '.join(LAYOUTS)})")
