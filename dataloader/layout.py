"""Where the frames of a video are on disk, and how many there are.

Two layouts are read:
- two-stream (the original two-stream scripts', `ucf101_jpegs_256` + `ucf101_tvl1_flow`):
    jpegs_256/v_<video>/frame000001.jpg, tvl1_flow/{u,v}/v_<video>/frame000001.jpg
- mmaction: rawframes/<Class>/<video>/img_00001.jpg, flow_x_00001.jpg, flow_y_00001.jpg
- packed (written from either by `python -m tools.pack_frames`, see dataloader/packed.py):
    packed/{rgb,u,v}/<video>.pack, one file per video and source; detected first

Frame counts always come from the directories, per modality (a video with N RGB frames
usually has N-1 flow frames, but shared archives are not always consistent). Folder names
are matched without the `v_` prefix and case-insensitively, which also covers UCF101's
HandstandPushups / HandStandPushups spelling.

Every layout implements `FrameLayout` (the interface ClipDataset and the tools read; so does
dataloader.video.MemoryLayout, one video's frames in memory). A new layout is one subclass
here, a branch in `open_layout` (dataloader/frame_dirs.py), and a case in tests/test_layout.py's
interface test.
"""
import abc
import os

from dataloader.packed import SOURCES, SUFFIX, PackCache, PackedFrame

LAYOUTS = ("auto", "twostream", "mmaction", "packed")

# ---------------------------------------------------------------- names on disk
# The one place that spells them; the writers (tools/prepare_data.py, dataloader/synthetic.py)
# use these too. Frame numbers in file names are 1-based.
RGB_DIR = "jpegs_256"      # two-stream RGB folder under --data-root
FLOW_DIR = "tvl1_flow"     # two-stream flow folder, with one sub-folder per component
FLOW_COMPONENTS = ("u", "v")
FRAMES_DIR = "rawframes"   # mmaction folder: <Class>/<video>/ under it
PACKED_DIR = "packed"      # packs (dataloader/packed.py)
PREPARE_INFO = "prepare_info.json"  # tools/prepare_data.py's settings (flow method, frame size) under --out
UCF101_FOLDER_PREFIX = "v_"
TWOSTREAM_PREFIX = "frame"
MMACTION_PREFIXES = {"rgb": "img_", "u": "flow_x_", "v": "flow_y_"}


def twostream_frame_name(number):
    """1 -> 'frame000001.jpg' (RGB and both flow components)."""
    return f"{TWOSTREAM_PREFIX}{number:06d}.jpg"


def mmaction_frame_name(source, number):
    """('rgb' | 'u' | 'v', 1) -> 'img_00001.jpg' | 'flow_x_00001.jpg' | 'flow_y_00001.jpg'."""
    return f"{MMACTION_PREFIXES[source]}{number:05d}.jpg"


def twostream_video_dirs(rgb_dir, flow_dir, folder):
    """(rgb, u, v) folders of the video folder name `folder` in the two-stream layout."""
    return (os.path.join(rgb_dir, folder),) + tuple(os.path.join(flow_dir, c, folder) for c in FLOW_COMPONENTS)


def mmaction_video_dir(frames_dir, class_name, folder):
    """The one folder holding a video's RGB and flow frames in the mmaction layout."""
    return os.path.join(frames_dir, class_name, folder)


def video_from_folder(dirname):
    """The name a split list uses for a video folder: without UCF101's `v_` (the inverse of
    DatasetSpec.folder_for_video in dataloader/catalog.py, whatever the data set)."""
    return dirname[len(UCF101_FOLDER_PREFIX):] if dirname.startswith(UCF101_FOLDER_PREFIX) else dirname


def _key(dirname):
    return video_from_folder(dirname).lower()


def _index_dirs(root):
    """{video key: folder path} for the sub-folders of `root`."""
    with os.scandir(root) as it:
        return {_key(e.name): e.path for e in it if e.is_dir()}


def _count(folder, prefix):
    with os.scandir(folder) as it:
        return sum(1 for e in it if e.name.startswith(prefix) and e.name.endswith(".jpg"))


class FrameLayout(abc.ABC):
    """Where the frames of a set of videos are: the interface ClipDataset (dataloader/datasets.py),
    count_frames, tools.pack_frames and the benchmark read.

    Units, for every method: `modality` is "rgb" or "flow"; a frame count is a number of
    frames of that modality (RGB frames; flow frames = min(u count, v count), usually one
    fewer than the RGB frames); frame indices are 0-based, while the file names on disk are
    1-based (index 0 = frame000001.jpg / img_00001.jpg). `video` is a name as the split lists
    spell it (`ApplyEyeMakeup_g08_c01`, no `v_`), matched case-insensitively by the folder
    layouts. num_frames and frame_paths assume `has(video, modality)` (a KeyError otherwise).
    """
    name: str  # what --layout and messages call it: "twostream", "mmaction", "packed", "memory"

    @abc.abstractmethod
    def require(self, modality):
        """None if this modality can be read at all; else raise FileNotFoundError naming the
        missing folders (and the option that sets them)."""

    @abc.abstractmethod
    def has(self, video, modality):
        """Whether `video` has frames of this modality (flow: both u and v), as a bool."""

    @abc.abstractmethod
    def num_frames(self, video, modality):
        """The number of frames of this modality (int, units above); 0 for an empty folder."""

    @abc.abstractmethod
    def frame_paths(self, video, modality):
        """A function i (0-based) -> the source of frame i: one for RGB, a (u, v) pair for
        flow. A source is what dataloader.datasets.read_frame / read_bytes open: a file path
        (folder layouts), a PackedFrame (packs) or an EncodedFrame of JPEG bytes (memory).
        Nothing is opened here: a missing frame fails when it is read."""

    @abc.abstractmethod
    def describe(self, modality):
        """Where this modality's frames are (a folder or pattern), for messages; a str."""

    @abc.abstractmethod
    def videos(self, modality):
        """Sorted names (as the split lists spell them) of the videos that have this modality;
        raises as `require` does when the modality cannot be read."""


class TwoStreamLayout(FrameLayout):
    name = "twostream"

    def __init__(self, rgb_dir, flow_dir):
        # Only the folders of the modality a stream reads must exist; checked by require().
        self.rgb_dir, self.flow_dir = rgb_dir, flow_dir
        u_dir, v_dir = (os.path.join(flow_dir, c) for c in FLOW_COMPONENTS)
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
            return _count(self._rgb[k], TWOSTREAM_PREFIX)
        return min(_count(self._u[k], TWOSTREAM_PREFIX), _count(self._v[k], TWOSTREAM_PREFIX))

    def frame_paths(self, video, modality):
        k = video.lower()
        if modality == "rgb":
            folder = self._rgb[k]
            return lambda i: os.path.join(folder, twostream_frame_name(i + 1))
        u, v = self._u[k], self._v[k]
        return lambda i: (os.path.join(u, twostream_frame_name(i + 1)), os.path.join(v, twostream_frame_name(i + 1)))

    def describe(self, modality):
        return self.rgb_dir if modality == "rgb" else f"{self.flow_dir}/{{u,v}}"

    def videos(self, modality):
        self.require(modality)
        folders = self._rgb if modality == "rgb" else self._u
        keys = folders.keys() if modality == "rgb" else self._u.keys() & self._v.keys()
        return sorted(video_from_folder(os.path.basename(folders[k])) for k in keys)


class MMActionLayout(FrameLayout):
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
            return _count(folder, MMACTION_PREFIXES["rgb"])
        return min(_count(folder, MMACTION_PREFIXES["u"]), _count(folder, MMACTION_PREFIXES["v"]))

    def frame_paths(self, video, modality):
        folder = self._dirs[video.lower()]
        if modality == "rgb":
            return lambda i: os.path.join(folder, mmaction_frame_name("rgb", i + 1))
        return lambda i: (os.path.join(folder, mmaction_frame_name("u", i + 1)),
                          os.path.join(folder, mmaction_frame_name("v", i + 1)))

    def describe(self, modality):
        return f"{self.root}/<Class>/<video>"

    def videos(self, modality):
        return sorted(video_from_folder(os.path.basename(d)) for d in self._dirs.values())


class PackedLayout(FrameLayout):
    name = "packed"

    def __init__(self, root):
        self.root = root
        self._packs = {}  # source -> {video key: pack path}
        for source in ("rgb", "u", "v"):
            folder = os.path.join(root, source)
            if os.path.isdir(folder):
                with os.scandir(folder) as it:
                    self._packs[source] = {_key(e.name[:-len(SUFFIX)]): e.path for e in it
                                           if e.name.endswith(SUFFIX) and e.is_file()}
        self._cache = PackCache()

    def require(self, modality):
        missing = [s for s in SOURCES[modality] if s not in self._packs]
        if missing:
            raise FileNotFoundError(f"no packed {modality} frames: {', '.join(os.path.join(self.root, s) for s in missing)} "
                                    "not found (pack them with python -m tools.pack_frames, or read the frame folders with --layout twostream / mmaction)")

    def has(self, video, modality):
        self.require(modality)
        return all(video.lower() in self._packs[s] for s in SOURCES[modality])

    def num_frames(self, video, modality):
        """From the packs' indexes; a truncated or corrupt pack raises PackError naming it."""
        return min(len(self._cache.get(self._packs[s][video.lower()])) for s in SOURCES[modality])

    def frame_paths(self, video, modality):
        """Function i -> the PackedFrame(s) of frame i: one for RGB, a (u, v) pair for flow."""
        paths = [self._packs[s][video.lower()] for s in SOURCES[modality]]
        if modality == "rgb":
            return lambda i: PackedFrame(self._cache, paths[0], i)
        return lambda i: (PackedFrame(self._cache, paths[0], i), PackedFrame(self._cache, paths[1], i))

    def describe(self, modality):
        return os.path.join(self.root, "{" + ",".join(SOURCES[modality]) + "}")

    def videos(self, modality):
        self.require(modality)
        keys = set.intersection(*(set(self._packs[s]) for s in SOURCES[modality]))
        return sorted(os.path.basename(self._packs[SOURCES[modality][0]][k])[:-len(SUFFIX)] for k in keys)
