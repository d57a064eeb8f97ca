"""Argument types and the parser every command shares: a bad number is one line naming the
option and the range it must be in ("argument --lr: must be greater than 0, got -0.1"),
before anything is read, written or started."""
import argparse
import math
import os


def _number(kind, text):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got '{text}'") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got '{text}'")
    return value


def in_range(kind, ok, rule):
    """An argparse type: a number of `kind` for which ok(value) holds, else '<rule>'."""
    def parse(text):
        value = _number(kind, text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value
    return parse


positive_int = in_range(int, lambda v: v >= 1, "at least 1")
non_negative_int = in_range(int, lambda v: v >= 0, "0 or more")
positive_float = in_range(float, lambda v: v > 0, "greater than 0")
non_negative_float = in_range(float, lambda v: v >= 0, "0 or more")


def int_up_to(limit, why, low=1):
    """An int in [low, limit]. The upper bounds stop a typo (an extra zero or three) before it
    allocates terabytes or forks thousands of processes; `why` says where the limit comes from."""
    return in_range(int, lambda v: low <= v <= limit, f"{low}..{limit} ({why})")


FLOAT32_MAX = 3.4e38  # the weights are float32: a larger step size cannot even be applied
learning_rate = in_range(float, lambda v: 0 < v <= FLOAT32_MAX, f"greater than 0 and at most {FLOAT32_MAX:g} (float32 weights)")
decay = in_range(float, lambda v: 0 <= v <= 1, "in [0, 1]")                   # SGD weight decay
momentum_factor = in_range(float, lambda v: 0 <= v < 1, "in [0, 1): 1 or more never forgets a gradient")
MAX_TIMEOUT_MINUTES = 7 * 24 * 60
probability = in_range(float, lambda v: 0 <= v < 1, "in [0, 1)")       # dropout: 1 would drop everything
shrink_factor = in_range(float, lambda v: 0 < v < 1, "between 0 and 1 (exclusive)")  # ReduceLROnPlateau


SEED_LIMIT = 2 ** 32 - 1  # numpy's and most tools' seed range; torch adds the process rank to it
seed_number = int_up_to(SEED_LIMIT, "32 bits", low=0)


def worker_count(low=0):
    """Processes (or threads) that share this machine's cores: more than 4 a core only thrash."""
    cores = os.cpu_count() or 1
    return int_up_to(4 * cores, f"4 per CPU core, {cores} here", low=low)


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line naming the option, not the whole usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (--help lists every option)\n")


def auto_or_count(text):
    """'auto' or a whole number >= 0 (an option whose default depends on other options or on the data)."""
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number, got '{text}'") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 'auto' or at least 0, got {n}")
    return n


class Once(argparse.Action):
    """An option that may be given once: a second value (a pasted command line, a typo for the
    other stream's option) is an error, not silently the one that counts."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} given twice ({getattr(namespace, self.dest)} and {values}); give it once")
        setattr(namespace, self.dest, values)
