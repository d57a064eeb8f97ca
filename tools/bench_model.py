"""tools/benchmark.py's model measurements: the training step alone, end-to-end training
through engine.loop.train_one_epoch (with the share of time spent waiting for data), and
video-level evaluation through engine.loop.evaluate."""
import time

import torch.nn.functional as F

from engine.data import make_loader
from engine.loop import evaluate, train_one_epoch
from engine.runtime import autocast
from tools.bench_loader import ItemSampler, release, synchronize, training_items


class WaitTimer:
    """Wraps a loader; adds up the time spent waiting in next(), i.e. waiting for data."""

    def __init__(self, loader):
        self.loader, self.wait = loader, 0.0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        it = iter(self.loader)
        while True:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                self.wait += time.perf_counter() - t
                return
            self.wait += time.perf_counter() - t
            yield batch


def train_step(model, optimizer, x, y, device, amp):
    with autocast(device, amp):
        out = model(x)
    loss = F.cross_entropy(out.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()  # as train_one_epoch: one host sync per step


def measure_step(model, optimizer, batch, device, args, loop):
    x, y = batch
    model.train()
    for _ in range(args.warmup):
        train_step(model, optimizer, x, y, device, loop.amp)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.step_batches):
        train_step(model, optimizer, x, y, device, loop.amp)
    synchronize(device)
    return args.step_batches * x.shape[0] / (time.perf_counter() - start)


def measure_train(model, optimizer, train, device, args, loop):
    """(samples/s, fraction of the wall time spent waiting for data) of engine.loop.train_one_epoch."""
    b = args.batch_size
    offset = (args.warmup + args.batches) * b * args.repeats  # items the loader timing did not use
    items = training_items(len(train), args.seed, offset + (args.warmup + args.train_batches) * b)[offset:]
    sampler = ItemSampler(items[:args.warmup * b])
    loader = make_loader(train, b, device, args.workers, args.seed, sampler=sampler, persistent=True)
    try:
        train_one_epoch(model, loader, optimizer, device, 0, loop)  # warm-up
        synchronize(device)
        sampler.items = items[args.warmup * b:]
        timed = WaitTimer(loader)
        start = time.perf_counter()
        train_one_epoch(model, timed, optimizer, device, 1, loop)
        synchronize(device)
        wall = time.perf_counter() - start
    finally:
        release(loader)
    return len(sampler.items) / wall, timed.wait / wall


def measure_eval(model, test, device, loop):
    """Videos/s of engine.loop.evaluate (its own short-lived loader, worker start-up included),
    after a warm-up evaluation of one batch of videos."""
    evaluate(model, test.with_entries(test.entries[:loop.test_batch_size]), device, loop, desc="warm-up")
    synchronize(device)
    start = time.perf_counter()
    evaluate(model, test, device, loop, desc="benchmark")
    synchronize(device)
    return len(test) / (time.perf_counter() - start)
