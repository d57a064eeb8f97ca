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


def print_row(stage, epoch, total, row):
    """The original two-stream scripts' console lines for one stage of an epoch."""
    print(f"==> Epoch:[{epoch}/{total}][{stage} stage]")
    timing = f"Time [{row['Batch Time']}]" + (f" Data [{row['Data Time']}]" if "Data Time" in row else "")
    print(timing)
    print(f"Loss [{row['Loss']}] Prec@1 [{row['Prec@1']}] Prec@5 [{row['Prec@5']}]"
          + (f" Mean class [{row['Mean Class Acc']}]" if "Mean Class Acc" in row else ""))
    if "lr" in row:
        print(f"LR {row['lr']}")
    print(flush=True)
