"""A run's record files: what the engine writes into --out each epoch, how the reports read
them back, and the one rule that picks the reported epoch (model_best).

    train.csv            Epoch, Batch Time, Data Time, Loss, Prec@1, Prec@5, lr
    val.csv, test.csv    Epoch, Batch Time, Loss, Prec@1, Prec@5, Mean Class Acc (video level)
    args.json            the options, the stream, the model-selection protocol
    video_scores*.pkl    per-video test scores (what fusion.py reads)
    video_scores_val.pkl per-video validation scores of model_best (fusion.py --fit-weights-on)
"""
import csv
import io
import json
import os
from dataclasses import dataclass, field

import numpy as np

import utils
from network.backbones import DEFAULT_ARCH

TRAIN_COLUMNS = ["Epoch", "Batch Time", "Data Time", "Loss", "Prec@1", "Prec@5", "lr"]
EVAL_COLUMNS = ["Epoch", "Batch Time", "Loss", "Prec@1", "Prec@5", "Mean Class Acc"]
BEST_SCORES, LAST_SCORES = "video_scores_best.pkl", "video_scores.pkl"
VAL_SCORES = "video_scores_val.pkl"  # the validation set's scores of the model in BEST_SCORES
TOP5_MIN_CLASSES = 6  # with 5 classes or fewer every video is in its top 5: top-5 is always 100%


def top5_meaningful(num_classes):
    """Whether top-5 says anything (unknown class counts: assume it does)."""
    return num_classes is None or num_classes >= TOP5_MIN_CLASSES
# What a finished run leaves in --out (args.json alone is not a run: it is written with
# the first epoch's records). A new run never replaces these silently.
RUN_FILES = ("checkpoint.pth", "model_best.pth", "train.csv", "val.csv", "test.csv", LAST_SCORES, BEST_SCORES,
             VAL_SCORES)


def finished_files(out):
    """The files of a finished run in the folder `out` (none if it does not exist)."""
    return [f for f in RUN_FILES if os.path.isfile(os.path.join(out, f))]


# ---------------------------------------------------------------- the best-epoch rule
def selection_key(row):
    """model_best follows the highest video top-1; equal top-1 (small validation sets tie
    often) goes to the lower loss. Works on fresh rows (numbers) and on CSV rows (text)."""
    return float(row["Prec@1"]), -float(row["Loss"])


def update_best(best, row, split, epoch):
    """(new best, improved) after an epoch whose `split` evaluation gave `row`."""
    if best is None or selection_key(row) > (best["top1"], -best["loss"]):
        return {"split": split, "top1": row["Prec@1"], "loss": row["Loss"], "epoch": epoch}, True
    return best, False


# ---------------------------------------------------------------- writing
def score_file(dataset, scores, classes, meta):
    """The video_scores.pkl payload that fusion.py reads."""
    labels = np.array([y for _, y in dataset.entries])
    cm = utils.confusion_matrix(scores.argmax(1), labels, len(classes))
    return {"scores": {v: scores[i].astype(np.float32) for i, (v, _) in enumerate(dataset.entries)},
            "labels": {v: int(y) for v, y in dataset.entries},
            "classes": list(classes), "confusion": cm, "meta": meta}


def write_records(out, history):
    utils.save_csv(history["train"], TRAIN_COLUMNS, os.path.join(out, "train.csv"))
    utils.save_csv(history["test"], EVAL_COLUMNS, os.path.join(out, "test.csv"))
    if history["val"]:
        utils.save_csv(history["val"], EVAL_COLUMNS, os.path.join(out, "val.csv"))


# ---------------------------------------------------------------- reading
class RecordError(ValueError):
    """A run folder without usable records; the message names the folder."""


REQUIRED = ("Epoch", "Loss", "Prec@1")  # what the tables and the best-epoch rule cannot do without


def read_records(path, columns):
    """(rows, warnings) of a record CSV. The engine writes whole files atomically, each row
    ending in a newline, so a file cut short (a copy, a full disk elsewhere) or edited by
    hand shows as an unknown or partial header, a last row without its newline, a row with
    too few fields, or a cell that is not a number. Such rows are left out, never shown as
    numbers; each warning names the file and line. The engine writes UTF-8: bytes that are
    not (a file saved in another encoding, or not a text file) are such a problem too."""
    with open(path, "rb") as f:
        # surrogateescape keeps each undecodable byte as one character, so the rows around
        # it still parse and the warning can name its line and byte.
        text = f.read().decode("utf-8", errors="surrogateescape")
    if not text.strip():
        return [], [f"{path}: the file is empty; no records read from it"]
    try:
        lines = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:  # e.g. a binary file: a "field" longer than the csv module allows
        return [], [f"{path}: not a CSV file ({e}); no records read from it"]
    cut = not text.endswith("\n")  # the last line lost its end: cut mid-line
    header = lines[0]
    unknown = [c for c in header if c not in columns]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing or (cut and len(lines) == 1):
        byte = _foreign_byte(header)
        why = (f"not UTF-8 text ({byte}; the engine writes UTF-8)" if byte else
               f"not a record header (expected {','.join(columns)}; the file is cut short or not a record file)")
        return [], [f"{path}: line 1: {why}; no records read from it"]
    rows, warnings = [], []
    for number, cells in enumerate(lines[1:], 2):
        problem = None
        if _foreign_byte(cells):
            problem = f"not UTF-8 text ({_foreign_byte(cells)})"
        elif number == len(lines) and cut:
            problem = "cut short (the line has no end)"
        elif len(cells) != len(header):
            problem = f"{len(cells)} fields for {len(header)} columns"
        else:
            bad = [c for c, v in zip(header, cells) if not _is_number(v)]
            if bad:
                problem = f"not a number in {', '.join(bad)}"
        if problem:
            warnings.append(f"{path}: line {number}: {problem}; row left out")
        else:
            rows.append(dict(zip(header, cells)))
    return rows, warnings


def _foreign_byte(cells):
    """'byte 0xNN' of the first byte in `cells` that was not UTF-8 (see read_records), else ''."""
    for char in "".join(cells):
        if "\udc80" <= char <= "\udcff":
            return f"byte 0x{ord(char) - 0xdc00:02x}"
    return ""


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- reading a run
@dataclass
class RunRecords:
    """A run folder as written by the engine: its options and its per-epoch records."""
    path: str
    args: dict    # args.json ({} if missing)
    meta: dict    # the score file's meta ({} if none), a fallback for args.json
    train: list   # rows: {column: str}, verbatim from the CSV
    val: list
    test: list
    warnings: list = field(default_factory=list)  # malformed lines left out, one line each

    def _get(self, key, default="?"):
        value = self.args.get(key, self.meta.get(key))
        return default if value is None else value

    @property
    def stream(self):
        return self._get("stream")

    @property
    def arch(self):
        return self._get("arch", DEFAULT_ARCH)  # runs from before --arch were all DEFAULT_ARCH

    @property
    def consensus(self):
        return self._get("consensus")

    @property
    def num_classes(self):
        """From args.json (since runs record it), else the score file's class list, else None."""
        n = self.args.get("num_classes")
        return n if n is not None else self.meta.get("num_classes")

    @property
    def dataset(self):
        return self._get("dataset")

    @property
    def split(self):
        return self._get("split")

    @property
    def selection(self):
        return self._get("selection", "unknown (no readable args.json)")

    @property
    def name(self):
        return os.path.basename(os.path.normpath(self.path))

    @property
    def tag(self):
        return f"{self._get('stream', 'unknown')}_{self._get('consensus', 'unknown')}"  # file names: no '?'


def _read_json(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def score_path(run_dir):
    """(path, is_best) of the score file that represents the run's selected model:
    video_scores_best.pkl, else video_scores.pkl (last epoch), else (None, False)."""
    for name, best in ((BEST_SCORES, True), (LAST_SCORES, False)):
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            return path, best
    return None, False


def _read_meta(run_dir):
    path, _ = score_path(run_dir)
    if path is None:
        return {}
    try:
        meta = utils.load_pickle_safe(path).get("meta")
    except (ValueError, AttributeError, OSError):
        return {}
    return meta if isinstance(meta, dict) else {}


def load_run(run_dir):
    """Read a run folder's records; RecordError if it has none."""
    if os.path.isfile(run_dir):
        # One of a run's own files (test.csv, a score file...): its folder is the run.
        name = os.path.basename(run_dir)
        hint = (f"; pass the folder that holds it: {os.path.dirname(run_dir) or '.'}"
                if name in RUN_FILES + ("args.json",) or name.endswith(".png") else "")
        raise RecordError(f"{run_dir}: is a file; expected a run folder (the --out folder of a spatial_cnn.py / "
                          f"motion_cnn.py run){hint}")
    if not os.path.isdir(run_dir):
        raise RecordError(f"{run_dir}: no such folder")
    missing = [f for f in ("train.csv", "test.csv") if not os.path.isfile(os.path.join(run_dir, f))]
    if missing:
        raise RecordError(f"{run_dir}: no training records here ({' and '.join(missing)} missing); "
                          "pass the --out folder of a spatial_cnn.py / motion_cnn.py run")
    rows, warnings = {}, []
    for name, columns in (("train", TRAIN_COLUMNS), ("val", EVAL_COLUMNS), ("test", EVAL_COLUMNS)):
        path = os.path.join(run_dir, f"{name}.csv")
        rows[name], problems = read_records(path, columns) if os.path.isfile(path) else ([], [])
        warnings += problems
    if not rows["test"]:
        raise RecordError(f"{run_dir}: test.csv holds no readable epoch"
                          + (f" ({warnings[-1]})" if warnings else " yet"))
    args_path = os.path.join(run_dir, "args.json")
    args = _read_json(args_path)
    if os.path.isfile(args_path) and not args:
        warnings.append(f"{args_path}: not a readable JSON object; the run's options are taken from its score "
                        "file where it has them")
    # The score file's meta only stands in for a missing args.json (reading it costs time).
    meta = {} if "stream" in args else _read_meta(run_dir)
    return RunRecords(run_dir, args, meta, **rows, warnings=warnings)


# ---------------------------------------------------------------- model selection
@dataclass
class Selection:
    row: dict       # the test.csv row of the selected epoch
    protocol: str   # short: which records chose it
    val_top1: str   # the val top-1 that chose it ('' when val did not choose)


def best_row(rows):
    """The record row that model_best follows: the best by selection_key, the earlier
    epoch on a full tie (max() keeps the first)."""
    return max(rows, key=selection_key)


def _test_row(run, epoch):
    for r in run.test:
        if r["Epoch"] == epoch:
            return r
    raise RecordError(f"{run.path}: val.csv has epoch {epoch} but test.csv does not")


def select(run):
    """The run's reported epoch by its own protocol; never the best test epoch silently."""
    if run.args.get("select_on_test"):
        return Selection(best_row(run.test), "test top-1 (--select-on-test: optimistic)", "")
    if run.val:
        best = best_row(run.val)
        return Selection(_test_row(run, best["Epoch"]), "val top-1", best["Prec@1"])
    return Selection(run.test[-1], "last (no validation set)", "")
