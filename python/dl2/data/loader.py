"""Mini-batch iteration over in-memory arrays, optionally prepared ahead in a background thread."""
import queue
import threading

import numpy as np

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate ``(xb, tb)`` mini-batches of ``x`` ``(N, ...)`` and ``t`` ``(N, ...)``.

    With ``shuffle`` every epoch (every ``iter()``) visits the samples in a new permutation drawn from the
    loader's own ``np.random.Generator`` (seeded by ``seed``), each sample exactly once. The last, smaller
    batch is kept unless ``drop_last``. ``transform`` (e.g. a :mod:`dl2.data.augment` pipeline) is applied
    to each ``xb``. Batches are copies, so modifying them never changes ``x`` or ``t``.

    ``prefetch``: with ``N > 0`` a background thread gathers and transforms up to ``N`` batches ahead while the
    consumer works on the current one (the fastconv kernels and most NumPy work release the GIL), so the
    augmentation overlaps training. The batches are exactly those of ``prefetch=0``: the epoch's permutation is
    drawn in the consumer's thread when the epoch starts (so ``rng``'s state between epochs is the same as
    without prefetching), and the one worker calls ``transform`` batch after batch, in order. The worker lives
    for one epoch; it stops (and is joined) when the iteration ends, is closed or is abandoned, and an
    exception raised by ``transform`` is re-raised in the consumer with its traceback. Stopping early leaves
    ``transform``'s generator up to ``N`` batches further on than without prefetching.
    """

    def __init__(self, x, t, batch_size, shuffle=True, seed=None, drop_last=False, transform=None, prefetch=0):
        x, t = np.asarray(x), np.asarray(t)
        if x.ndim == 0 or t.ndim == 0:
            raise ValueError("DataLoader: x and t must be arrays with a sample axis")
        if len(x) == 0:
            raise ValueError("DataLoader: empty dataset")
        if len(x) != len(t):
            raise ValueError(f"DataLoader: x has {len(x)} samples but t has {len(t)}")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if drop_last and batch_size > len(x):
            raise ValueError(f"DataLoader: drop_last with batch_size {batch_size} > {len(x)} samples "
                             "would give no batches")
        if transform is not None and not callable(transform):
            raise TypeError("DataLoader: transform must be callable")
        if isinstance(prefetch, bool) or int(prefetch) != prefetch or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be an integer >= 0 (batches prepared ahead), "
                             f"got {prefetch!r}")
        self.x, self.t = x, t
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.prefetch = int(prefetch)
        self.rng = np.random.default_rng(seed)

    @property
    def num_samples(self):
        return len(self.x)

    def __len__(self):
        """Number of batches per epoch."""
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        n = len(self.x)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        batches = self._batches(order)
        yield from (batches if self.prefetch == 0 else _prefetched(batches, self.prefetch))

    def _batches(self, order):
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            xb, tb = self.x[idx], self.t[idx]
            if self.transform is not None:
                xb = self.transform(xb)
            yield xb, tb

    def __repr__(self):
        return (f"DataLoader({len(self.x)} samples, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, prefetch={self.prefetch}, {len(self)} batches)")


_END = object()


def _prefetched(items, depth):
    """Yield the items of the iterator ``items``, computed by a background thread at most ``depth`` ahead."""
    ready = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def work():
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as e:   # handed to the consumer, which re-raises it
            put(e)

    worker = threading.Thread(target=work, name="dl2-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
