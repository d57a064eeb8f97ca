"""Shared-memory batch buffers that a data worker reuses once the consumer is done with them.

A DataLoader worker hands each batch to the main process in shared memory. By default every
batch gets a fresh segment, and the kernel must allocate and zero its pages as they are
first written: measured on a 2-core VM, writing 23 MB (a flow batch of 8 videos) into fresh
shared memory took 17 ms, into memory written before 0.9 ms, about as long as decoding a
quarter of the batch's JPEGs. So each worker keeps its last few buffers and writes the next
batch into one the consumer has released.

Releasing is explicit, so nothing is overwritten while somebody may still read it: a buffer
starts with a flag byte, the worker sets it to LENT when it fills the buffer, and the
consumer sets it to FREE (`release`) once it has copied the batch out (engine.loop.to_device
after the flip/normalise, or the pin-memory thread after pinning). A consumer that never
releases (`list(loader)`) only costs speed: the worker then allocates. The flag lives in the
batch tensor's own storage, so a batch still crosses the process boundary as one tensor.
"""
import torch

LENT, FREE = 0, 1
HEADER = 64  # bytes before the data: the flag, padded so that the data stays aligned
PREFETCH_FACTOR = 2  # batches a worker prepares ahead (engine.data.make_loader); buffers kept: one more


def _flag(storage):
    """The storage's flag byte as a one-element numpy array (cheaper to test than a tensor)."""
    return torch.empty(0, dtype=torch.uint8).set_(storage, 0, (1,)).numpy()


def release(tensor):
    """`tensor` (a view into a BatchBuffers buffer) will not be read again: the worker may
    overwrite its buffer."""
    _flag(tensor.untyped_storage())[0] = FREE


class BatchBuffers:
    """A worker's pool of at most `keep` shared-memory buffers. keep = prefetch_factor + 1
    covers the steady state: the batches queued for the consumer plus the one it holds."""

    def __init__(self, keep=PREFETCH_FACTOR + 1):
        self.keep = keep
        self.pool = []  # (storage, flag), oldest first

    def take(self, shape):
        """A uint8 tensor of `shape` in a shared-memory buffer, marked LENT. Contents undefined."""
        nbytes = 1
        for s in shape:
            nbytes *= s
        for storage, flag in self.pool:
            if flag[0] == FREE and storage.nbytes() >= HEADER + nbytes:
                flag[0] = LENT
                return _view(storage, shape)
        storage = torch.UntypedStorage._new_shared(HEADER + nbytes)
        flag = _flag(storage)
        flag[0] = LENT
        self.pool.append((storage, flag))
        if len(self.pool) > self.keep:  # forget the oldest; the consumer may still hold it
            self.pool.pop(0)
        return _view(storage, shape)


def _view(storage, shape):
    """A contiguous uint8 tensor of `shape` over the storage's bytes after the header."""
    stride, acc = [], 1
    for s in reversed(shape):
        stride.append(acc)
        acc *= s
    return torch.empty(0, dtype=torch.uint8).set_(storage, HEADER, tuple(shape), tuple(reversed(stride)))
