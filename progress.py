"""Progress that reads well where it goes: a tqdm bar on a terminal, whole lines in a log
file or a pipe (tqdm's carriage-return redraws would pile up there as one endless line)."""
import sys
import time

from tqdm import tqdm

LOG_INTERVAL = 30  # seconds between progress lines when the output is a file or a pipe


class LineProgress:
    """What a progress bar says, for a log file or a pipe: a whole line every `interval`
    seconds and one at the end, where tqdm would redraw one line with carriage returns (a log
    keeps those as hundreds of updates on one line). The tqdm calls the tools use: iterate,
    update, set_postfix, write, close, a context manager."""

    def __init__(self, iterable=None, total=None, desc="", unit="it", disable=False, file=None, leave=True,
                 interval=LOG_INTERVAL, clock=time.monotonic, **_tqdm_only):
        self.iterable, self.desc, self.unit, self.disable, self.leave = iterable, desc, unit, disable, leave
        self.total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
        self.file, self.interval = file or sys.stderr, interval
        self.n, self.postfix, self.closed, self.clock = 0, "", False, clock
        self.start = self.last = clock()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n=1):
        self.n += n
        if self.clock() - self.last >= self.interval:
            self._line()

    def set_postfix(self, **values):
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def write(self, text, file=None):
        print(text, file=file or self.file, flush=True)

    def close(self):
        if not self.closed and self.leave:
            self._line()
        self.closed = True

    def _line(self):
        self.last = self.clock()
        if not self.disable:
            self.write(tqdm.format_meter(self.n, self.total, self.last - self.start, prefix=self.desc, unit=self.unit,
                                         postfix=self.postfix or None, ascii=True))


def progress(iterable=None, file=None, **kwargs):
    """A tqdm progress bar on a terminal; on a file or pipe, a LineProgress that writes a
    line every LOG_INTERVAL seconds. Same arguments as tqdm (file: sys.stderr by default)."""
    file = file or sys.stderr
    if hasattr(file, "isatty") and file.isatty():
        return tqdm(iterable, file=file, dynamic_ncols=True, **kwargs)
    return LineProgress(iterable, file=file, **kwargs)
