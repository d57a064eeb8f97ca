"""Pictures of a run, drawn from its record files: training and evaluation curves, the
confusion matrix of the reported model, and optional TensorBoard scalars."""
import math
import os

import utils
from engine.records import TOP5_MIN_CLASSES, load_run, score_path, select, top5_meaningful
from engine.tables import run_title


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


def _no_top5(ax, run):
    """In place of the top-5 panel where top-5 is always 100% (5 classes or fewer)."""
    ax.axis("off")
    ax.text(0.5, 0.5, f"top-5 not shown: {run.num_classes} classes\n(every video is in its top 5 with fewer "
            f"than {TOP5_MIN_CLASSES})", ha="center", va="center", transform=ax.transAxes, color="grey")


def _suptitle(fig, run, what):
    fig.suptitle(f"{what}: {run_title(run)}\nmodel selection: {run.selection}", fontsize=11)


def plot_train(run, path, picture_dir=None):
    fig = _new_figure(11, 7.5)
    axes = fig.subplots(2, 2).ravel()
    x = _epochs(run.train)
    for ax, (col, title, ylabel) in zip(axes, [
            ("Loss", "loss", "cross-entropy"), ("Prec@1", "top-1 accuracy", "clip top-1 (%)"),
            ("Prec@5", "top-5 accuracy", "clip top-5 (%)"), ("lr", "learning rate", "learning rate")]):
        if col == "Prec@5" and not top5_meaningful(run.num_classes):
            _no_top5(ax, run)
            continue
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
        if col == "Prec@5" and not top5_meaningful(run.num_classes):
            _no_top5(ax, run)
            continue
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
