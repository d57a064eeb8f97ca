"""Pack each video's frame files into one file per source (rgb, u, v), for slow disks.

    python -m tools.pack_frames --data-root data/ucf101            # writes data/ucf101/packed/
    python spatial_cnn.py --data-root data/ucf101                   # now reads the packs

Reads the two-stream or mmaction layout under --data-root and writes
packed/rgb/<video>.pack, packed/u/<video>.pack, packed/v/<video>.pack (format in
dataloader/packed.py: the JPEG bytes unchanged, plus an index). Training and --check-data
then read the packs (`--layout auto` prefers them; `--layout twostream` still reads the
folders). Worth it where opening files is slow (network file systems, spinning disks, the
original two-stream scripts' setup); on a local SSD with the frames in the page cache it changes little (see the
README's performance section).

Each pack is written to a temporary file and renamed when complete, so an interrupted run
can be started again. A rerun skips the packs that are up to date and repacks the others:
a pack is up to date when it is complete, holds as many frames as the folder has, and its
frame files still have the total size and latest modification time recorded in the pack
(dataloader/packed.py) -- so a frame fixed or replaced since is packed again. That costs a
stat() per frame file, not a read. Packs written by older code carry no such record: they
count as up to date when their frame count matches, as before (a frame replaced since is
not noticed in them; --force repacks everything). Nor is a frame replaced by a file of the
same total size and modification time (say cp -p of an equally large file).
A video with a missing or unreadable frame file is reported and not packed (exit status 1).
"""
import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

import utils
from dataloader.frame_dirs import FrameDirs, open_layout
from dataloader.layout import PACKED_DIR
from dataloader.packed import SOURCES, SUFFIX, PackError, PackFile, write_pack
from engine.arg_types import OneLineParser, int_up_to


class EmptyVideo(ValueError):
    """A video folder without a single frame: nothing to pack, which is not success."""


class WriteFailed(OSError):
    """A pack that could not be written (--out, not the frames, is the problem)."""


def sources_record(paths):
    """(total bytes, latest st_mtime_ns) of the frame files: what a pack records of them."""
    stats = [os.stat(path) for path in paths]
    return sum(st.st_size for st in stats), max(st.st_mtime_ns for st in stats)


def pack_state(path, n, record):
    """'fresh' (up to date: see the module docstring), 'changed' (a complete pack of other
    frames) or 'missing' (no pack, or one cut short or damaged)."""
    try:
        pack = PackFile(path)
    except (OSError, PackError):
        return "missing"
    try:
        same = len(pack) == n and pack.source in (None, record)  # None: older code's pack, count only
        return "fresh" if same else "changed"
    finally:
        pack.close()


def pack_video(layout, video, modality, out, force=False):
    """Write the packs of one video and modality that are not up to date (force: all).
    Returns (packs written, packs up to date, packs written because their frames changed)."""
    n = layout.num_frames(video, modality)  # flow: u and v packs both hold min(u, v) frames
    if n == 0:
        raise EmptyVideo(f"no {modality} frames in its folder")
    paths_of = layout.frame_paths(video, modality)
    written = fresh = changed = 0
    for k, source in enumerate(SOURCES[modality]):
        dst = os.path.join(out, source, video + SUFFIX)
        paths = [p[k] if isinstance(p, tuple) else p for p in map(paths_of, range(n))]
        # Recorded before the frames are read: a frame changed while being packed then
        # shows as changed on the next run, never the other way round.
        record = sources_record(paths)
        state = "missing" if force else pack_state(dst, n, record)
        if state == "fresh":
            fresh += 1
            continue
        frames = []
        for path in paths:
            with open(path, "rb") as f:
                frames.append(f.read())
        try:
            write_pack(dst, frames, record)
        except OSError as e:
            raise WriteFailed(f"cannot write {dst}: {e.strerror or e}") from None
        written, changed = written + 1, changed + (state == "changed")
    return written, fresh, changed


def check_out_outside_frames(out, dirs):
    """Packs written into a frame folder would look like videos there (rgb/, u/, v/)."""
    out = os.path.abspath(out)
    for option, folder in (("--rgb-dir", dirs.rgb), ("--flow-dir", dirs.flow), ("--frames-dir", dirs.frames)):
        folder = os.path.abspath(folder)
        if out == folder or out.startswith(folder + os.sep):
            raise ValueError(f"--out {out}: is inside the frame folder it packs ({option} {folder}), where the packs "
                             "would look like videos; give a folder outside it (default DATA_ROOT/packed)")


def pack_all(layout, jobs, out, args):
    """Pack every (video, modality) of `jobs`, `args.workers` at a time, with a progress bar:
    (packs written, already complete, replaced as changed, failures, failures to write)."""
    written = fresh = changed = 0
    failed, unwritable = [], []
    with ThreadPoolExecutor(args.workers) as pool, tqdm(total=len(jobs), unit="video", dynamic_ncols=True) as bar:
        futures = {pool.submit(pack_video, layout, v, m, out, args.force): (v, m) for v, m in jobs}
        try:
            for future in futures:  # in submission order; the pool runs ahead
                try:
                    w, f, c = future.result()
                    written, fresh, changed = written + w, fresh + f, changed + c
                except (OSError, EmptyVideo) as e:
                    failed.append(f"{futures[future][0]} ({futures[future][1]}): {e}")
                    unwritable += [e] if isinstance(e, WriteFailed) else []
                bar.update()
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)  # the videos being packed finish; no new one starts
            raise
    return written, fresh, changed, failed, unwritable


def build_parser():
    p = OneLineParser(prog="python -m tools.pack_frames", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-root", required=True, help="folder with jpegs_256/ + tvl1_flow/ or rawframes/")
    p.add_argument("--layout", choices=("auto", "twostream", "mmaction"), default="auto", help="layout to read")
    p.add_argument("--rgb-dir", help="RGB frame folder (default DATA_ROOT/jpegs_256)")
    p.add_argument("--flow-dir", help="flow folder with u/ and v/ (default DATA_ROOT/tvl1_flow)")
    p.add_argument("--frames-dir", help="mmaction rawframes folder (default DATA_ROOT/rawframes)")
    p.add_argument("--out", help="where the packs go (default DATA_ROOT/packed, where training looks)")
    p.add_argument("--modality", nargs="+", choices=("rgb", "flow"), default=["rgb", "flow"],
                   help="which frames to pack")
    p.add_argument("--workers", type=int_up_to(256, "threads"), default=8,
                   help="videos packed at the same time (threads: disk-bound)")
    p.add_argument("--force", action="store_true",
                   help="repack every video, also those whose packs are up to date")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    out = args.out or os.path.join(args.data_root, PACKED_DIR)
    try:
        # Before any video is read: a --data-root that is no folder, --out below a file, a
        # file, a folder one cannot write, or inside the frames it packs.
        utils.check_input_folder(args.data_root, "--data-root", "the folder with jpegs_256/ + tvl1_flow/ or rawframes/")
        utils.check_writable(out, "--out", folder=True)
        dirs = FrameDirs(args.rgb_dir, args.flow_dir, args.frames_dir)
        layout = open_layout(args.layout, args.data_root, dirs, allow_packed=False)
        check_out_outside_frames(out, dirs.under(args.data_root))
        jobs = [(v, m) for m in args.modality for v in layout.videos(m)]
        if not jobs:
            raise ValueError(f"no video folders to pack under --data-root {args.data_root} "
                             f"({' and '.join(layout.describe(m) for m in args.modality)})")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # The folders appear with their first pack (utils.atomic_write): a run that packs nothing
    # leaves no empty packed/ behind, which --layout auto would otherwise prefer to the frames.
    try:
        written, fresh, changed, failed, unwritable = pack_all(layout, jobs, out, args)
    except KeyboardInterrupt:  # the packs written so far are whole (atomic); the rest are redone
        print(f"\ninterrupted: the packs written so far in {out} are complete; run the same command again to "
              "pack the rest", file=sys.stderr)
        return 130
    print(f"{out}: {written} packs written, {fresh} already complete, {len(failed)} videos failed"
          + (f"; {changed} of the written replace packs whose frame files changed" if changed else ""),
          file=sys.stderr)
    for line in failed:
        print(f"  not packed: {line}", file=sys.stderr)
    if not written and not fresh:
        if unwritable:
            print(f"error: nothing packed: --out {out} cannot be written ({unwritable[0]})", file=sys.stderr)
        else:
            print(f"error: nothing packed: none of the {len(jobs)} video folders under --data-root "
                  f"{args.data_root} holds a readable frame", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
