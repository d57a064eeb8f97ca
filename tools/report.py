"""Per-run records (CSV, score files) as seed-style Markdown tables and PNG curves.

    python -m tools.report record/spatial                       # per-epoch tables + summary
    python -m tools.report runs/spatial_mean runs/spatial_max runs/spatial_var --plots
    python -m tools.report runs/* --summary-only --output report.md

Each run's numbers are read verbatim from its train.csv / val.csv / test.csv. The reported
epoch of a run is chosen by that run's own selection protocol (args.json 'selection'):
the best validation top-1 when the run has a val.csv, the best test top-1 only for runs
trained with --select-on-test (flagged as optimistic), else the last epoch. The tables
always say which protocol chose each number.

--plots (re)draws, in each run folder (and --picture-dir), train_<stream>_<consensus>.png,
test_<stream>_<consensus>.png and confusion_<stream>_<consensus>.png. The engine calls
plot_run() after every epoch; tensorboard_writer() / tensorboard_log() are the optional
TensorBoard scalars.
"""
import argparse
import json
import math
import os
import sys
from dataclasses import dataclass

import utils

# The engine's record columns (engine.TRAIN_COLUMNS / EVAL_COLUMNS). Not imported from
# engine: that would pull in torchvision and make the report command slow to start.
TRAIN_COLUMNS = ["Epoch", "Batch Time", "Data Time", "Loss", "Prec@1", "Prec@5", "lr"]
EVAL_COLUMNS = ["Epoch", "Batch Time", "Loss", "Prec@1", "Prec@5", "Mean Class Acc"]
BEST_SCORES, LAST_SCORES = "video_scores_best.pkl", "video_scores.pkl"
PROG = "tools.report"


class RecordError(ValueError):
    """A run folder without usable records; the message names the folder."""


# ---------------------------------------------------------------- reading a run
@dataclass
class Run:
    path: str
    args: dict    # args.json ({} if missing)
    meta: dict    # the score file's meta ({} if none), a fallback for args.json
    train: list   # rows: {column: str}, verbatim from the CSV
    val: list
    test: list

    def _get(self, key, default="?"):
        value = self.args.get(key, self.meta.get(key))
        return default if value is None else value

    @property
    def stream(self):
        return self._get("stream")

    @property
    def consensus(self):
        return self._get("consensus")

    @property
    def dataset(self):
        return self._get("dataset")

    @property
    def split(self):
        return self._get("split")

    @property
    def selection(self):
        return self._get("selection", "unknown (no args.json)")

    @property
    def name(self):
        return os.path.basename(os.path.normpath(self.path))

    @property
    def tag(self):
        return f"{self.stream}_{self.consensus}"


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
    if not os.path.isdir(run_dir):
        raise RecordError(f"{run_dir}: no such folder")
    missing = [f for f in ("train.csv", "test.csv") if not os.path.isfile(os.path.join(run_dir, f))]
    if missing:
        raise RecordError(f"{run_dir}: no training records here ({' and '.join(missing)} missing); "
                          "pass the --out folder of a spatial_cnn.py / motion_cnn.py run")
    rows = {}
    for name in ("train", "val", "test"):
        path = os.path.join(run_dir, f"{name}.csv")
        rows[name] = utils.read_csv(path) if os.path.isfile(path) else []
    if not rows["test"]:
        raise RecordError(f"{run_dir}: test.csv holds no epoch yet")
    args = _read_json(os.path.join(run_dir, "args.json"))
    # The score file's meta only stands in for a missing args.json (reading it costs time).
    meta = {} if "stream" in args else _read_meta(run_dir)
    return Run(run_dir, args, meta, **rows)


# ---------------------------------------------------------------- model selection
@dataclass
class Selection:
    row: dict       # the test.csv row of the selected epoch
    protocol: str   # short: which records chose it
    val_top1: str   # the val top-1 that chose it ('' when val did not choose)


def _first_best(rows):
    """The engine's model_best rule (engine.update_best): the highest Prec@1, equal top-1
    going to the lower loss, and the earlier epoch on a full tie."""
    return max(rows, key=lambda r: (float(r["Prec@1"]), -float(r["Loss"])))  # max() keeps the first


def _test_row(run, epoch):
    for r in run.test:
        if r["Epoch"] == epoch:
            return r
    raise RecordError(f"{run.path}: val.csv has epoch {epoch} but test.csv does not")


def select(run):
    """The run's reported epoch by its own protocol; never the best test epoch silently."""
    if run.args.get("select_on_test"):
        return Selection(_first_best(run.test), "test top-1 (seed protocol: optimistic)", "")
    if run.val:
        best = _first_best(run.val)
        return Selection(_test_row(run, best["Epoch"]), "val top-1", best["Prec@1"])
    return Selection(run.test[-1], "last (no validation set)", "")


# ---------------------------------------------------------------- Markdown
def _cell(value):
    return str(value).replace("|", "\\|")


def markdown_table(header, rows, numeric_from=1):
    """Rows of strings -> a Markdown table; columns from `numeric_from` right-aligned."""
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _records_table(rows, columns):
    present = [c for c in columns if rows and c in rows[0]]
    return markdown_table(present, [[r.get(c, "") for c in present] for r in rows])


def run_title(run):
    return f"{run.stream} stream, {run.consensus} consensus, {run.dataset} split {run.split}"


def epoch_tables(run):
    """The seed's per-epoch tables of one run (train, val when present, test)."""
    sel = select(run)
    out = [f"## {run_title(run)} ({run.path})", "",
           f"model selection: {run.selection}",
           f"reported epoch: {sel.row['Epoch']}, chosen by {sel.protocol}", "",
           "**train**", "", _records_table(run.train, TRAIN_COLUMNS), ""]
    if run.val:
        out += ["**val** (held-out actor groups of the training list)", "", _records_table(run.val, EVAL_COLUMNS), ""]
    out += ["**test**", "", _records_table(run.test, EVAL_COLUMNS), ""]
    return "\n".join(out)


SUMMARY_HEADER = ["run", "stream", "consensus", "data", "selected by", "epoch", "val top-1",
                  "test top-1", "test top-5", "test mean class acc", "last epoch", "last top-1", "last top-5"]


def summary_table(runs):
    """One row per run: the selected epoch's test numbers and the last epoch's."""
    rows = []
    for run in runs:
        sel, last = select(run), run.test[-1]
        rows.append([run.name, run.stream, run.consensus, f"{run.dataset} split {run.split}", sel.protocol,
                     sel.row["Epoch"], sel.val_top1 or "-", sel.row["Prec@1"], sel.row["Prec@5"],
                     sel.row.get("Mean Class Acc", "-"), last["Epoch"], last["Prec@1"], last["Prec@5"]])
    notes = ["", "selected by: 'val top-1' = the epoch with the best top-1 on the run's validation set "
             "(equal top-1: the lower val loss), i.e. its model_best.pth; 'last' = the run has no validation set, its last epoch is reported; "
             "'test top-1 (seed protocol)' = chosen on the test split itself (--select-on-test), so "
             "its test numbers are optimistic. All accuracies in %, video level.", ""]
    notes += [f"- {run.name}: model selection {run.selection}" for run in runs]
    return "\n".join(["## summary", "", markdown_table(SUMMARY_HEADER, rows, numeric_from=5), *notes])


def build_report(runs, epochs=True):
    parts = [epoch_tables(r) for r in runs] if epochs else []
    return "\n".join(parts + [summary_table(runs)]) + "\n"


# ---------------------------------------------------------------- pictures
def _floats(rows, column):
    out = []
    for r in rows:
        try:
            out.append(float(r[column]))
        except (KeyError, TypeError, ValueError):
            out.append(math.nan)
    return out


def _epochs(rows):
    return [int(float(r["Epoch"])) for r in rows]


def _new_figure(width, height):
    # A bare Figure on the Agg canvas: no pyplot, so no global figure list to leak into
    # when the engine redraws every epoch, and no GUI backend on a headless server.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, picture_dir):
    """Write the PNG atomically (a reader never sees half a file), plus a copy in picture_dir."""
    utils.atomic_write(path, lambda f: fig.savefig(f, format="png"))
    written = [path]
    if picture_dir:
        with open(path, "rb") as f:
            data = f.read()
        copy = os.path.join(picture_dir, os.path.basename(path))
        utils.atomic_write(copy, lambda f: f.write(data))
        written.append(copy)
    return written


def _scale_for(ax, values, ratio=50.0):
    """Log scale when positive values span more than `ratio` (diverging test losses; the LR
    passes ratio=1: its 10x steps read best on a log axis)."""
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > ratio:
        ax.set_yscale("log")


def _panel(ax, series, title, ylabel, selected=None, log_ratio=50.0):
    """series: [(label, epochs, values, style)]; selected: (epoch, label) or None."""
    from matplotlib.ticker import MaxNLocator
    values, epochs = [], []
    for label, x, y, style in series:
        ax.plot(x, y, style, label=label, markersize=4)
        values, epochs = values + y, epochs + x
    if selected is not None:
        ax.axvline(selected[0], color="grey", linestyle=":", label=selected[1])
    _scale_for(ax, values, log_ratio)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    if epochs and min(epochs) == max(epochs):  # one epoch: MaxNLocator would fall back to fractions
        ax.set_xticks([epochs[0]])
        ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def _suptitle(fig, run, what):
    fig.suptitle(f"{what}: {run_title(run)}\nmodel selection: {run.selection}", fontsize=11)


def plot_train(run, path, picture_dir=None):
    fig = _new_figure(11, 7.5)
    axes = fig.subplots(2, 2).ravel()
    x = _epochs(run.train)
    for ax, (col, title, ylabel) in zip(axes, [
            ("Loss", "loss", "cross-entropy"), ("Prec@1", "top-1 accuracy", "clip top-1 (%)"),
            ("Prec@5", "top-5 accuracy", "clip top-5 (%)"), ("lr", "learning rate", "learning rate")]):
        _panel(ax, [("train", x, _floats(run.train, col), "o-")], title, ylabel,
               log_ratio=1.0 if col == "lr" else 50.0)
    _suptitle(fig, run, "training")
    fig.tight_layout()
    return _save(fig, path, picture_dir)


def plot_eval(run, path, picture_dir=None):
    fig = _new_figure(11, 7.5)
    axes = fig.subplots(2, 2).ravel()
    sel = select(run)
    marker = (int(float(sel.row["Epoch"])), f"reported: epoch {sel.row['Epoch']} ({sel.protocol})")
    sets = [("val", run.val, "s--"), ("test", run.test, "o-")]
    for ax, (col, title, ylabel) in zip(axes, [
            ("Loss", "loss", "cross-entropy (video level)"), ("Prec@1", "top-1 accuracy", "video top-1 (%)"),
            ("Prec@5", "top-5 accuracy", "video top-5 (%)"),
            ("Mean Class Acc", "mean class accuracy", "mean class acc (%)")]):
        series = [(name, _epochs(rows), _floats(rows, col), style) for name, rows, style in sets if rows]
        _panel(ax, series, title, ylabel, marker)
    _suptitle(fig, run, "evaluation")
    fig.tight_layout()
    return _save(fig, path, picture_dir)


MAX_ANNOTATED = 20   # above this many classes, cell numbers become unreadable
MAX_TICKS = 26       # tick labels per axis on large matrices


def _load_confusion(run_dir):
    """(confusion (C, C), classes, meta, is_best) or None when the run has no score file."""
    path, best = score_path(run_dir)
    if path is None:
        return None
    data = utils.load_pickle_safe(path)
    import numpy as np
    cm = np.asarray(data["confusion"])
    classes = list(data.get("classes") or range(cm.shape[0]))
    return cm, [str(c) for c in classes], data.get("meta") or {}, best


def plot_confusion(run, path, picture_dir=None):
    loaded = _load_confusion(run.path)
    if loaded is None:
        return []
    import numpy as np
    cm, classes, meta, best = loaded
    n = len(classes)
    support = cm.sum(axis=1, keepdims=True)
    recall = 100.0 * cm / np.maximum(support, 1)  # rows = true class; colour = % of that class
    side = min(max(6.0, 0.13 * n + 3), 16.0)
    fig = _new_figure(side + 1.5, side)
    ax = fig.subplots()
    im = ax.imshow(recall, cmap="Blues", vmin=0, vmax=100, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label("% of the true class's test videos")
    step = max(1, math.ceil(n / MAX_TICKS))
    ticks = list(range(0, n, step))
    labels = [classes[i] if step == 1 else f"{i} {classes[i]}" for i in ticks]
    small = "small" if n <= MAX_ANNOTATED else "x-small"
    ax.set_xticks(ticks, labels, rotation=90, fontsize=small)
    ax.set_yticks(ticks, labels, fontsize=small)
    if n <= MAX_ANNOTATED:
        for i, j in zip(*np.nonzero(cm)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize="small",
                    color="white" if recall[i, j] > 60 else "black")
    ax.set_xlabel("predicted class" + ("" if step == 1 else f" (every {step}th labelled)"))
    ax.set_ylabel("true class")
    which = (f"model of epoch {meta.get('epoch', '?')}, " + ("selected by " + run.selection if best
             else "last epoch (no video_scores_best.pkl)"))
    scores = f"test top-1 {meta.get('top1', '?')}%, mean class acc {meta.get('mean_class_acc', '?')}%"
    ax.set_title(f"confusion matrix: {run_title(run)}\n{which}\n{scores}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, picture_dir)


def picture_paths(run):
    """The run's train, evaluation and confusion-matrix PNGs."""
    return [os.path.join(run.path, f"{kind}_{run.tag}.png") for kind in ("train", "test", "confusion")]


def _picture_sources(run):
    """The files each picture is drawn from, in picture_paths order."""
    def files(*names):
        return [os.path.join(run.path, n) for n in ("args.json", *names)]
    scores, _ = score_path(run.path)
    return [files("train.csv"), files("val.csv", "test.csv"), files(*([scores] if scores else []))]


def _stale(path, sources, picture_dir):
    if not os.path.isfile(path):
        return True
    if picture_dir and not os.path.isfile(os.path.join(picture_dir, os.path.basename(path))):
        return True
    newest = max((os.path.getmtime(f) for f in sources if os.path.isfile(f)), default=0)
    return os.path.getmtime(path) <= newest


def plot_run(run_dir, picture_dir=None, force=False):
    """(Re)draw a run's train, evaluation and confusion-matrix PNGs from its records.

    Only pictures older than their records are redrawn (force=True: all), so calling it
    after every epoch costs about a second: the curves change every epoch, the confusion
    matrix only when the best model does. Returns the paths written.
    """
    run = load_run(run_dir)
    written = []
    for path, sources, draw in zip(picture_paths(run), _picture_sources(run),
                                   (plot_train, plot_eval, plot_confusion)):
        if force or _stale(path, sources, picture_dir):
            written += draw(run, path, picture_dir)
    return written


# ---------------------------------------------------------------- TensorBoard (optional)
class TensorBoardUnavailable(ValueError):
    """A ValueError so that the stream CLIs report it like a bad option: one line, exit 2."""


# record column -> scalar name; tags are '<name>/<split>' so TensorBoard draws the
# train, val and test curves of one metric on the same chart.
TB_SCALARS = {"Loss": "loss", "Prec@1": "top1", "Prec@5": "top5", "Mean Class Acc": "mean_class_acc",
              "lr": "lr", "Batch Time": "batch_time", "Data Time": "data_time"}


def tensorboard_writer(run_dir):
    """A SummaryWriter logging to RUN_DIR/tensorboard; TensorBoardUnavailable if the
    optional tensorboard package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise TensorBoardUnavailable(f"TensorBoard logging needs the tensorboard package ({e}): "
                                     "pip install tensorboard") from None
    return SummaryWriter(log_dir=os.path.join(run_dir, "tensorboard"))


def tensorboard_log(writer, epoch, rows):
    """rows: {'train': row, 'val': row, 'test': row} (record rows; None or missing skipped)."""
    for split, row in rows.items():
        for column, name in TB_SCALARS.items():
            if row and row.get(column) is not None:
                writer.add_scalar(f"{name}/{split}", float(row[column]), epoch)
    writer.flush()


# ---------------------------------------------------------------- command line
def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Exit status: 0 ok, 2 bad arguments or a folder without records.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="the --out folder of a spatial_cnn.py / motion_cnn.py run")
    p.add_argument("--plots", action="store_true", help="also (re)draw each run's PNG curves and confusion matrix")
    p.add_argument("--picture-dir", metavar="DIR", help="with --plots: also copy the PNGs here")
    p.add_argument("--summary-only", action="store_true", help="only the side-by-side summary, no per-epoch tables")
    p.add_argument("--output", metavar="FILE", help="also write the report to FILE (Markdown)")
    return p


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed by argparse
        return e.code if isinstance(e.code, int) else 2
    try:
        runs = [load_run(d) for d in args.runs]
        text = build_report(runs, epochs=not args.summary_only)
    except (RecordError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.output:
        utils.atomic_write(args.output, lambda f: f.write(text), mode="w")
    if args.plots:
        for run in runs:
            for path in plot_run(run.path, args.picture_dir, force=True):
                print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
