"""Where the frames of a video are on disk, and how many there are.

Two layouts are read:
- two-stream (the seed, `ucf101_jpegs_256` + `ucf101_tvl1_flow`):
    jpegs_256/v_<video>/frame000001.jpg, tvl1_flow/{u,v}/v_<video>/frame000001.jpg
- mmaction: rawframes/<Class>/<video>/img_00001.jpg, flow_x_00001.jpg, flow_y_00001.jpg

Frame counts always come from the directories, per modality (a video with N RGB frames
usually has N-1 flow frames, but shared archives are not always consistent). Folder names
are matched without the `v_` prefix and case-insensitively, which also covers UCF101's
HandstandPushups / HandStandPushups spelling.
"""
import os

LAYOUTS = ("auto", "twostream", "mmaction")


def _key(dirname):
    name = dirname[2:] if dirname.startswith("v_") else dirname
    return name.lower()


def _index_dirs(root):
    """{video key: folder path} for the sub-folders of `root`."""
    with os.scandir(root) as it:
        return {_key(e.name): e.path for e in it if e.is_dir()}


def _count(folder, prefix):
    with os.scandir(folder) as it:
        return sum(1 for e in it if e.name.startswith(prefix) and e.name.endswith(".jpg"))


class TwoStreamLayout:
    name = "twostream"

    def __init__(self, rgb_dir, flow_dir):
        # Only the folders of the modality a stream reads must exist; checked by require().
        self.rgb_dir, self.flow_dir = rgb_dir, flow_dir
        u_dir, v_dir = os.path.join(flow_dir, "u"), os.path.join(flow_dir, "v")
        self._rgb = _index_dirs(rgb_dir) if os.path.isdir(rgb_dir) else None
        self._u = _index_dirs(u_dir) if os.path.isdir(u_dir) else None
        self._v = _index_dirs(v_dir) if os.path.isdir(v_dir) else None

    def require(self, modality):
        if modality == "rgb" and self._rgb is None:
            raise FileNotFoundError(f"RGB frame folder not found: {self.rgb_dir} (set --data-root or --rgb-dir)")
        if modality == "flow" and (self._u is None or self._v is None):
            raise FileNotFoundError(f"flow folders not found: {self.flow_dir}/u and {self.flow_dir}/v "
                                    "(set --data-root or --flow-dir)")

    def has(self, video, modality):
        self.require(modality)
        k = video.lower()
        return k in self._rgb if modality == "rgb" else (k in self._u and k in self._v)

    def num_frames(self, video, modality):
        k = video.lower()
        if modality == "rgb":
            return _count(self._rgb[k], "frame")
        return min(_count(self._u[k], "frame"), _count(self._v[k], "frame"))

    def frame_paths(self, video, modality):
        """Function i -> path(s) of frame i (0-based): one RGB path or a (u, v) pair."""
        k = video.lower()
        if modality == "rgb":
            folder = self._rgb[k]
            return lambda i: os.path.join(folder, f"frame{i + 1:06d}.jpg")
        u, v = self._u[k], self._v[k]
        return lambda i: (os.path.join(u, f"frame{i + 1:06d}.jpg"), os.path.join(v, f"frame{i + 1:06d}.jpg"))

    def describe(self, modality):
        return self.rgb_dir if modality == "rgb" else f"{self.flow_dir}/{{u,v}}"


class MMActionLayout:
    name = "mmaction"

    def __init__(self, root):
        self.root = root
        self._dirs = {}
        with os.scandir(root) as classes:
            for c in classes:
                if c.is_dir():
                    self._dirs.update(_index_dirs(c.path))

    def require(self, modality):
        pass  # RGB and flow share the video folders

    def has(self, video, modality):
        return video.lower() in self._dirs

    def num_frames(self, video, modality):
        folder = self._dirs[video.lower()]
        if modality == "rgb":
            return _count(folder, "img_")
        return min(_count(folder, "flow_x_"), _count(folder, "flow_y_"))

    def frame_paths(self, video, modality):
        folder = self._dirs[video.lower()]
        if modality == "rgb":
            return lambda i: os.path.join(folder, f"img_{i + 1:05d}.jpg")
        return lambda i: (os.path.join(folder, f"flow_x_{i + 1:05d}.jpg"), os.path.join(folder, f"flow_y_{i + 1:05d}.jpg"))

    def describe(self, modality):
        return f"{self.root}/<Class>/<video>"


def open_layout(layout, data_root, rgb_dir=None, flow_dir=None, frames_dir=None):
    """Build the layout the user asked for (or detect it under `data_root`).

    Raises FileNotFoundError naming the folders it looked for.
    """
    rgb_dir = rgb_dir or os.path.join(data_root, "jpegs_256")
    flow_dir = flow_dir or os.path.join(data_root, "tvl1_flow")
    frames_dir = frames_dir or os.path.join(data_root, "rawframes")
    if layout == "auto":
        if os.path.isdir(rgb_dir) or os.path.isdir(flow_dir):
            layout = "twostream"
        elif os.path.isdir(frames_dir):
            layout = "mmaction"
        else:
            raise FileNotFoundError(
                f"no frames found under --data-root {data_root}: expected {rgb_dir} and {flow_dir} "
                f"(two-stream layout) or {frames_dir} (mmaction layout); prepare them with "
                "`python -m tools.prepare_data` or point --rgb-dir/--flow-dir/--frames-dir at them")
    if layout == "twostream":
        return TwoStreamLayout(rgb_dir, flow_dir)
    if layout == "mmaction":
        if not os.path.isdir(frames_dir):
            raise FileNotFoundError(f"frame folder not found: {frames_dir} (set --data-root or --frames-dir)")
        return MMActionLayout(frames_dir)
    raise ValueError(f"unknown layout '{layout}' (choose from {', '.join(LAYOUTS)})")
