"""Small shared pieces: meters, accuracy, atomic file writes, safe loading.

Everything that writes a file here writes it atomically (temporary file in the same
folder, fsync, rename), so a crash or a full disk never destroys the previous good copy.
"""
import csv
import io
import json
import os
import pickle
import tempfile
import warnings

import numpy as np
import torch


class AverageMeter:
    """Running average of a scalar (as in the PyTorch ImageNet example)."""

    def __init__(self):
        self.sum, self.count = 0.0, 0

    def update(self, value, n=1):
        self.sum += float(value) * n
        self.count += n

    @property
    def avg(self):
        return self.sum / max(self.count, 1)


def topk_correct(scores, labels, ks=(1, 5)):
    """Number of rows whose label is among the k highest scores, for each k.

    scores: (N, C), labels: (N,). k larger than C counts every row as correct.
    """
    maxk = min(max(ks), scores.shape[1])
    top = scores.topk(maxk, dim=1).indices  # (N, maxk)
    hit = top.eq(labels.view(-1, 1))  # (N, maxk)
    return [hit[:, :min(k, maxk)].any(dim=1).sum().item() for k in ks]


def accuracy(scores, labels, ks=(1, 5)):
    """Top-k accuracy in percent for each k."""
    n = max(labels.shape[0], 1)
    return [100.0 * c / n for c in topk_correct(scores, labels, ks)]


def confusion_matrix(pred, labels, num_classes):
    """(C, C) counts: row = true class, column = predicted class (numpy int arrays)."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels), np.asarray(pred)), 1)
    return cm


def mean_class_accuracy(pred, labels, num_classes):
    """Mean over the classes present in `labels` of the per-class recall, in percent."""
    cm = confusion_matrix(pred, labels, num_classes)
    support = cm.sum(axis=1)
    present = support > 0
    return 100.0 * float(np.mean(np.diag(cm)[present] / support[present]))


def video_metrics(scores, labels, ks=(1, 5)):
    """Video-level top-1, top-5 and mean class accuracy (%) of (V, C) numpy scores against
    (V,) labels: the numbers in the records and in the fusion tables."""
    top1, top5 = accuracy(torch.from_numpy(scores), torch.from_numpy(labels), ks)
    mca = mean_class_accuracy(scores.argmax(axis=1), labels, scores.shape[1])
    return {"top1": top1, "top5": top5, "mean_class_acc": mca}


def md_cell(value):
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|")


def markdown_table(header, rows, numeric_from=1):
    """Rows of cells -> a Markdown table; columns from `numeric_from` on right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- atomic writes
def check_writable(path, option, folder=True):
    """Fail now, not after hours of work, where `path` cannot be written: ValueError naming
    the option, the path and why. `folder`: path is (or will be made as) a folder, else a
    file. Nothing is created."""
    where = f"{option} {path}" if option else str(path)
    if os.path.isdir(path) and not folder:
        raise ValueError(f"{where}: is a folder; expected a file name")
    if os.path.exists(path) and not os.path.isdir(path) and folder:
        raise ValueError(f"{where}: is a file; expected a folder")
    probe = os.path.abspath(path if folder else os.path.dirname(os.path.abspath(path)))
    while not os.path.exists(probe):  # the nearest existing folder is where things get made
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ValueError(f"{where}: cannot be made, {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{where}: {probe} is not writable (permissions, or a read-only file system)")
    try:  # os.access trusts the permission bits; /proc, /sys and some mounts still refuse a new file
        tempfile.TemporaryFile(dir=probe).close()
    except OSError as e:
        raise ValueError(f"{where}: nothing can be created in {probe} ({e.strerror})") from None


# JSON files the tools write for themselves (engine/outputs.py, tools/prepare_data.py,
# dataloader/synthetic.py, tools/demo.py, tools/study_jobs.py): a user's --json never replaces one.
RECORD_FILES = ("args.json", "prepare_info.json", "synthetic.json", "demo.json", "study_done.json")


def check_input_folder(path, option, expected):
    """ValueError naming `option` unless `path` is an existing folder: a file and a missing path
    are told apart (both used to read "not found")."""
    if not os.path.isdir(path):
        state = "is a file" if os.path.exists(path) else "no such folder"
        raise ValueError(f"{option} {path}: {state}; expected {expected}")


def check_output_file(path, option, suffixes, inputs=()):
    """check_writable for an output file, and never a file the command reads or another kind of
    file: `path` may replace an existing file only if its name ends with one of `suffixes`
    (what the command writes, e.g. ".json"), and must not be one of `inputs` (paths; None skipped)."""
    check_writable(path, option, folder=False)
    if not os.path.exists(path):
        return
    for source in inputs:
        if source and os.path.exists(source) and os.path.samefile(path, source):
            raise ValueError(f"{option} {path}: is also an input of this command; writing it would replace it. "
                             "Give another file name")
    if os.path.basename(path) in RECORD_FILES:
        raise ValueError(f"{option} {path}: is a record the project's tools keep (a run's options, a data set's "
                         "settings or a marker); writing it would replace it. Give another file name")
    if not path.lower().endswith(tuple(suffixes)):
        raise ValueError(f"{option} {path}: exists and is not a {' or '.join(suffixes)} file; writing it would "
                         f"replace it. Give a new file name ending in {suffixes[0]}")


def current_umask():
    """The process's umask, read without changing it where Linux shows it (/proc), else by
    setting and restoring it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, write_fn, mode="wb"):
    """Call write_fn(file) on a temporary file next to `path`, then rename it over `path`.
    The file gets the permissions any new file gets (0666 less the umask), not mkstemp's
    private 0600: results on a shared machine are readable by whom the user's umask allows."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_torch(obj, path):
    atomic_write(path, lambda f: torch.save(obj, f))


def save_pickle(obj, path):
    atomic_write(path, lambda f: pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL))


def save_json(obj, path):
    atomic_write(path, lambda f: json.dump(obj, f, indent=2, sort_keys=True), mode="w")


def save_text(text, path, encoding="utf-8"):
    """Write `text` exactly as given: no newline translation, so CRLF lines stay CRLF."""
    data = text.encode(encoding)
    atomic_write(path, lambda f: f.write(data))


def save_csv(rows, columns, path):
    """Write a list of dicts as CSV with the given column order."""
    def write(f):
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    atomic_write(path, write, mode="w")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- safe loading
# A score file holds plain containers, numbers, strings and numpy arrays. Unpickling can
# run arbitrary code, so only the globals needed to rebuild those are allowed.
_SAFE_GLOBALS = {
    ("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "int", "float",
                              "complex", "str", "bytes", "bytearray", "bool", "slice")
} | {
    ("__builtin__", n) for n in ("dict", "list", "tuple", "set", "frozenset", "int", "float",
                                 "long", "str", "unicode", "bytes", "bool")
} | {
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class UnsafePickleError(ValueError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _SAFE_GLOBALS:
            raise UnsafePickleError(
                f"refusing to load '{module}.{name}': a score file may only contain dicts, "
                "lists, numbers, strings and numpy arrays")
        return super().find_class(module, name)


def load_pickle_safe(path):
    """Load a pickle that may only hold plain data (also Python 2 pickles)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except Exception as e:  # a damaged pickle can fail in many ways inside the unpickler
        raise ValueError(f"{path}: not a readable score pickle ({type(e).__name__}: {e})") from None


def load_checkpoint(path, map_location="cpu"):
    """torch.load with weights_only=True: a checkpoint cannot run code when loaded."""
    expected = "expected a checkpoint.pth or model_best.pth written by spatial_cnn.py / motion_cnn.py"
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a folder; {expected}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: the file is empty (0 bytes); {expected}")
    try:
        with warnings.catch_warnings():
            # A score pickle passed by mistake first draws torch's protocol warning; the
            # error below says what the file is.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        detail = (str(e).strip().splitlines() or [""])[0].split(". ")[0][:100]
        raise ValueError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {detail}); {expected}") from None
