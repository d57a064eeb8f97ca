"""Where a run executes: the device, the torchrun process group, CPU threads, memory
pages, and the signals that stop a run cleanly."""
import datetime
import os
import signal
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0


SINGLE_PROCESS = DistInfo()


def init_distributed(device_choice, timeout_minutes):
    """Join the torchrun job if there is one (NCCL on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    # A dead peer makes collectives fail after the timeout instead of hanging forever.
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=timeout_minutes))
    return info


def pick_device(choice, info=SINGLE_PROCESS):
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda, but PyTorch sees no CUDA GPU (use --device cpu)")
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def default_amp(device):
    """bfloat16 autocast where the device does it fast: CUDA GPUs with bf16; not the CPU."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def autocast(device, enabled):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def enable_huge_pages():
    """Let PyTorch back large CPU tensors with transparent huge pages (its THP_MEM_ALLOC_ENABLE,
    pytorch/pytorch#93888). A CPU batch of flow is ~100 MB written fresh every step; with
    4 KiB pages most of that time goes to page faults (4x slower here). PyTorch reads the
    variable at its first CPU allocation, so this must run before any tensor exists; it
    does nothing where the kernel has THP switched off or the user set the variable."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            if "[never]" in f.read():
                return
    except OSError:  # not Linux
        return
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def set_cpu_threads(workers, info=SINGLE_PROCESS):
    """On the CPU, leave the data workers their cores: oversubscribed OpenMP threads spin
    against the workers and a training step gets several times slower."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores // info.world_size - workers))


def all_reduce_sum(values, device, info):
    """Sum a list of numbers over all processes (a no-op for one process)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if info.enabled:
        dist.all_reduce(t)
    return t.tolist()


def sync_buffers(model, info):
    """Give every process rank 0's BatchNorm statistics. DDP broadcasts buffers only at
    the start of each forward, so after the last step they differ per process; without
    this each process would evaluate a slightly different model than the one saved."""
    if info.enabled:
        for buf in model.buffers():
            dist.broadcast(buf, 0)


# What gloo's RuntimeErrors say when a peer is gone. Most name their source file (.../gloo/...);
# an operation that times out also closes the connection under every other operation in
# flight (DDP's gradient all-reduce, say), which then fails with a bare "Application timeout
# caused pair closure".
GLOO_PEER_LOST = ("gloo", "pair closure", "closed by peer", "reset by peer")


def lost_peer(e):
    """A collective failed because another process of the job died or stopped responding
    (gloo raises a RuntimeError, NCCL a DistError)."""
    return isinstance(e, dist.DistError) or any(words in str(e) for words in GLOO_PEER_LOST)


def lost_peer_message(e):
    """One line instead of a traceback that does not say which process is gone."""
    rank, world = dist.get_rank(), dist.get_world_size()
    others = [r for r in range(world) if r != rank]
    who = f"rank {others[0]}" if len(others) == 1 else "another rank (of " + ", ".join(map(str, others)) + ")"
    detail = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return (f"error: rank {rank}: {who} stopped responding or died; the job stops "
            f"(its log, or torchrun's summary on its node, says why). {detail}")


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived; the run stops after the current step."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalFlag:
    """Remember a first SIGINT/SIGTERM instead of dying mid-write; a second SIGINT
    interrupts at once. The training loop polls `raise_if_set` after every step."""

    def __init__(self):
        self.signum = None
        self.previous = {}
        self.pid = None

    def install(self):
        self.pid = os.getpid()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        # Forked DataLoader workers inherit this handler, and Ctrl-C (SIGINT to the process
        # group) reaches them too: only the process that installed it reacts and speaks.
        if os.getpid() != self.pid:
            return
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n==> {signal.Signals(signum).name}: stopping after the current step", file=sys.stderr, flush=True)

    def raise_if_set(self):
        if self.signum is not None:
            raise StopRequested(self.signum)
