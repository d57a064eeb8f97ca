"""What a run prints on the console: the per-epoch lines (in the format of the original
two-stream scripts, which users compare with) and errors in one line."""


def one_line(e):
    """The message of an error; for one a DataLoader worker raised, the worker's own message
    (the last line of the worker traceback torch puts into the re-raised error)."""
    text = str(e)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        kind, sep, message = last.partition(": ")
        text = message if sep and kind.rsplit(".", 1)[-1] == type(e).__name__ else last
    return text


def print_row(stage, epoch, total, row, top5=True):
    """The original two-stream scripts' console lines for one stage of an epoch (without
    Prec@5 where it is meaningless: 5 classes or fewer)."""
    print(f"==> Epoch:[{epoch}/{total}][{stage} stage]")
    timing = f"Time [{row['Batch Time']}]" + (f" Data [{row['Data Time']}]" if "Data Time" in row else "")
    print(timing)
    print(f"Loss [{row['Loss']}] Prec@1 [{row['Prec@1']}]" + (f" Prec@5 [{row['Prec@5']}]" if top5 else "")
          + (f" Mean class [{row['Mean Class Acc']}]" if "Mean Class Acc" in row else ""))
    if "lr" in row:
        print(f"LR {row['lr']}")
    print(flush=True)


def _duration(seconds):
    h, rest = divmod(int(round(seconds)), 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def _row(rows, epoch):
    return next((r for r in rows if int(r["Epoch"]) == epoch), None)


def _figures(row):
    return f"top-1 {float(row['Prec@1']):.2f}, mean class accuracy {float(row['Mean Class Acc']):.2f}"


def run_summary(name, arch, out, history, best, elapsed, files):
    """The closing lines of a training run: what was selected, by which protocol, with its
    figures, how long it took, and where each output is. `files`: the names in `out`."""
    epochs = [r["Epoch"] for r in history["train"]]
    lines = [f"==> {name} stream ({arch}) finished: epochs {epochs[0]}-{epochs[-1]} in {_duration(elapsed)}"
             if epochs else f"==> {name} stream ({arch}): nothing trained"]
    if best is not None:
        chosen, test = _row(history[best["split"]], best["epoch"]), _row(history["test"], best["epoch"])
        on = ("the validation set" if best["split"] == "val"
              else "the TEST split (--select-on-test: optimistic, not a held-out measurement)")
        lines.append(f"==> selected epoch {best['epoch']} on {on}: " + (f"validation {_figures(chosen)}; "
                     if best["split"] == "val" else "") + f"test {_figures(test)}")
    elif history["test"]:
        last = history["test"][-1]
        lines.append(f"==> no model selection (no validation set): the last epoch, {last['Epoch']}, has test "
                     f"{_figures(last)}")
    described = [("model_best.pth", "the selected model"), ("checkpoint.pth", "the last epoch, to resume from"),
                 ("video_scores_best.pkl", "the selected model's test scores (fusion.py --spatial/--motion)"),
                 ("video_scores_val.pkl", "its validation scores (fusion.py --fit-weights-on)"),
                 ("video_scores.pkl", "the last evaluation's test scores")]
    lines.append(f"==> outputs in {out}:")
    lines += [f"      {f:<24} {what}" for f, what in described if f in files]
    records = [f for f in ("train.csv", "val.csv", "test.csv") if f in files]
    lines.append(f"      {', '.join(records)}: per-epoch records (python -m tools.report {out})")
    pictures = sorted(f for f in files if f.endswith(".png"))
    if pictures:
        lines.append(f"      {', '.join(pictures)}: curves and confusion matrix")
    return "\n".join(lines)
