"""Markdown tables of runs, in the original two-stream scripts' style: per-epoch records and a
side-by-side summary that says which protocol chose each reported number."""
from engine.records import EVAL_COLUMNS, TRAIN_COLUMNS, select, top5_meaningful
from utils import markdown_table


def _records_table(rows, columns, top5=True):
    if not rows:
        return "(no readable rows)"
    present = [c for c in columns if rows and c in rows[0] and (top5 or c != "Prec@5")]
    return markdown_table(present, [[r.get(c, "") for c in present] for r in rows])


def run_title(run):
    return f"{run.stream} stream, {run.arch}, {run.consensus} consensus, {run.dataset} split {run.split}"


def epoch_tables(run):
    """The per-epoch tables of one run (train, val when present, test)."""
    sel, top5 = select(run), top5_meaningful(run.num_classes)
    out = [f"## {run_title(run)} ({run.path})", "",
           f"model selection: {run.selection}",
           f"reported epoch: {sel.row['Epoch']}, chosen by {sel.protocol}", "",
           *([] if top5 else [f"top-5 not shown: {run.num_classes} classes, every video is in its top 5", ""]),
           "**train**", "", _records_table(run.train, TRAIN_COLUMNS, top5), ""]
    if run.val:
        out += ["**val** (held out of the training list: whole actor groups, or source films per class)", "",
                _records_table(run.val, EVAL_COLUMNS, top5), ""]
    out += ["**test**", "", _records_table(run.test, EVAL_COLUMNS, top5), ""]
    return "\n".join(out)


SUMMARY_HEADER = ["run", "stream", "arch", "consensus", "data", "selected by", "epoch", "val top-1",
                  "test top-1", "test top-5", "test mean class acc", "last epoch", "last top-1", "last top-5"]


def summary_table(runs):
    """One row per run: the selected epoch's test numbers and the last epoch's."""
    rows = []
    for run in runs:
        sel, last = select(run), run.test[-1]
        top5 = (lambda row: row["Prec@5"]) if top5_meaningful(run.num_classes) else (lambda row: "-")
        rows.append([run.name, run.stream, run.arch, run.consensus, f"{run.dataset} split {run.split}", sel.protocol,
                     sel.row["Epoch"], sel.val_top1 or "-", sel.row["Prec@1"], top5(sel.row),
                     sel.row.get("Mean Class Acc", "-"), last["Epoch"], last["Prec@1"], top5(last)])
    notes = ["", "selected by: 'val top-1' = the epoch with the best top-1 on the run's validation set "
             "(equal top-1: the lower val loss), i.e. its model_best.pth; 'last' = the run has no validation set, its last epoch is reported; "
             "'test top-1 (--select-on-test)' = chosen on the test split itself (--select-on-test), so "
             "its test numbers are optimistic. All accuracies in %, video level; top-5 is '-' for runs of 5 classes "
             "or fewer, where it is always 100.", ""]
    notes += [f"- {run.name}: model selection {run.selection}" for run in runs]
    return "\n".join(["## summary", "", markdown_table(SUMMARY_HEADER, rows, numeric_from=6), *notes])


def build_report(runs, epochs=True):
    parts = [epoch_tables(r) for r in runs] if epochs else []
    return "\n".join(parts + [summary_table(runs)]) + "\n"
