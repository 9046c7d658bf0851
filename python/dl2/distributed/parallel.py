"""What :class:`dl2.Trainer` does differently when it trains on several ranks (:class:`DataParallel`).

* Start-up: every rank's model must have the same parameters and buffers (names, shapes, dtypes) and every
  rank must be given the same amount of data, else a ``ValueError`` on every rank (not a hang inside an
  all-reduce). Then the parameters, buffers, optimizer state and shuffling generator of rank 0 are broadcast,
  so every rank starts identical whatever its seeds.
* Data: the training loader's permutation is the same on every rank (same generator). Each global batch of
  ``B`` samples (``batch_size`` is the global batch) is cut into ``size`` consecutive slices: rank ``r`` gets
  ``B // size`` samples, plus one when ``r < B % size``. A batch with fewer samples than ranks (only the last
  batch of an epoch can be one) is skipped by every rank.
* Randomness: the model's own generators (Dropout) get a different stream on every rank; augmentation
  (``transform``) is applied to each rank's slice, with that rank's generator.
* Gradients: averaged over the global batch by a :class:`~dl2.distributed.reducer.GradientReducer` (each
  rank's gradient weighted by its share of the batch), overlapped with the backward pass.
* Evaluation: each rank evaluates one consecutive shard of the data; loss and metric sums are added over the
  ranks, so every rank gets the global numbers (as do the epoch's training loss and metrics).
* Buffers: rank 0's (running statistics of per-rank batch norm) are broadcast after every epoch, as DDP's
  ``broadcast_buffers`` does, so evaluation, checkpoints and saved models agree on every rank.

:func:`data_parallel` returns a :class:`SingleProcess` (every method the identity) in a world of one.
"""
import numpy as np

from .reducer import DEFAULT_BUCKET_BYTES, GradientReducer
from .runtime import world as _world

__all__ = ["DataParallel", "SingleProcess", "data_parallel", "slice_bounds"]


def slice_bounds(n, size, rank):
    """``(lo, hi)`` of rank ``rank``'s slice when ``n`` items are cut into ``size`` consecutive slices."""
    q, rem = divmod(int(n), int(size))
    lo = rank * q + min(rank, rem)
    return lo, lo + q + (1 if rank < rem else 0)


class SingleProcess:
    """The training of one process: nothing to share (the interface of :class:`DataParallel`)."""

    size, rank, is_root = 1, 0, True

    def start(self, optimizer, rng, plan):
        pass

    def broadcast_buffers(self):
        """Rank 0's buffers (running statistics) on every rank; at start-up and after every epoch."""
        for module in self.model.modules():
            for array in module._buffers.values():
                self.world.broadcast_array(array)

    def stop(self):
        pass

    def loader(self, loader):
        return loader

    def sync_gradients(self):
        pass

    def shard(self, x, t):
        return x, t

    def reduce_sums(self, sums, count):
        return sums, count


def _signature(model):
    return [(kind, name, tuple(np.shape(v)), np.asarray(v).dtype.str)
            for kind, items in (("parameter", [(n, p.data) for n, p in model.named_parameters()]),
                                ("buffer", [(k, v) for k, v in model.state_dict().items()
                                            if k not in dict(model.named_parameters())]))
            for name, v in items]


def _first_difference(theirs, root):
    for a, b in zip(theirs, root):
        if a != b:
            return (f"{a[0]} {a[1]!r} with shape {a[2]} and dtype {np.dtype(a[3])} there, "
                    f"{b[0]} {b[1]!r} with shape {b[2]} and dtype {np.dtype(b[3])} on rank 0")
    return f"{len(theirs)} parameters and buffers there, {len(root)} on rank 0"


class DataParallel:
    """Data-parallel training of ``model`` over the ranks of ``world`` (default: :func:`dl2.distributed.world`).

    Creating it checks that every rank holds the same architecture. ``bucket_bytes`` and ``overlap`` go to
    the :class:`~dl2.distributed.reducer.GradientReducer`, attached by :meth:`start` and removed by
    :meth:`stop`; its ``stats`` (communication time) stay readable as ``self.stats`` afterwards.
    """

    def __init__(self, model, world=None, bucket_bytes=DEFAULT_BUCKET_BYTES, overlap=True):
        self.world = world if world is not None else _world()
        if self.world.comm is None:
            raise RuntimeError("DataParallel needs an MPI world (run under mpiexec with mpi4py installed)")
        self.size, self.rank, self.is_root = self.world.size, self.world.rank, self.world.is_root
        self.model, self.bucket_bytes, self.overlap = model, bucket_bytes, overlap
        self.reducer, self.stats = None, {}
        self._check_same("model", _signature(model), _first_difference)

    def _check_same(self, what, mine, describe):
        every = self.world.gather(mine)
        for r, theirs in enumerate(every):
            if theirs != every[0]:
                raise ValueError(f"data-parallel start-up: the {what} on rank {r} differs from rank 0's: "
                                 f"{describe(theirs, every[0])}")

    # ----------------------------------------------------------------- a training run
    def start(self, optimizer, rng, plan):
        """Check ``plan`` (sizes that fix the number of steps) and broadcast rank 0's training state."""
        self._check_same("training plan", plan,
                         lambda theirs, root: f"{theirs} there, {root} on rank 0 (number of samples, "
                                              "batch size, epochs, validation samples must agree)")
        samples, batch_size = plan[0], plan[1]
        if min(samples, batch_size) < self.size:
            raise ValueError(f"data-parallel training on {self.size} ranks needs a (global) batch size and a "
                             f"number of samples of at least {self.size}, got batch size {batch_size} and "
                             f"{samples} samples")
        for p in self.model.parameters():
            self.world.broadcast_array(p.data)
        self.broadcast_buffers()
        for state in getattr(optimizer, "state", []):
            for array in state.values():
                self.world.broadcast_array(array)
        rng.bit_generator.state = self.world.broadcast(rng.bit_generator.state)
        self._decorrelate_generators()
        self.reducer = GradientReducer(self.model, self.world.comm.Dup(), self.bucket_bytes, self.overlap)
        self.stats = self.reducer.stats

    def _decorrelate_generators(self):
        """Give the model's own generators (Dropout masks) a different stream on every rank, derived from
        their current state and the rank."""
        for module in self.model.modules():
            for gen in list(vars(module).values()):
                if isinstance(gen, np.random.Generator):
                    seed = int(gen.integers(2 ** 63))
                    fresh = type(gen.bit_generator)(np.random.SeedSequence((seed, self.rank)))
                    gen.bit_generator.state = fresh.state

    def broadcast_buffers(self):
        """Rank 0's buffers (running statistics) on every rank; at start-up and after every epoch."""
        for module in self.model.modules():
            for array in module._buffers.values():
                self.world.broadcast_array(array)

    def stop(self):
        if self.reducer is not None:
            self.reducer.detach()
            self.reducer.comm.Free()
            self.reducer = None

    def loader(self, loader):
        """Wrap a :class:`dl2.data.DataLoader` of global batches: it yields this rank's slices, to which the
        loader's ``transform`` (augmentation) is then applied (it is taken off ``loader``)."""
        transform, loader.transform = loader.transform, None
        return _RankSlices(loader, self, transform)

    def sync_gradients(self):
        self.reducer.finish()

    # ----------------------------------------------------------------- evaluation and metrics
    def shard(self, x, t):
        """This rank's consecutive shard of ``(x, t)`` (every rank must pass data of the same length)."""
        self._check_same("evaluation data length", len(x),
                         lambda theirs, root: f"{theirs} samples there, {root} on rank 0")
        lo, hi = slice_bounds(len(x), self.size, self.rank)
        return x[lo:hi], t[lo:hi]

    def reduce_sums(self, sums, count):
        """``(sums, count)`` added over the ranks (``sums``: a dict of floats)."""
        keys = list(sums)
        total = self.world.sum([count] + [sums[k] for k in keys])
        return {k: float(v) for k, v in zip(keys, total[1:])}, float(total[0])


class _RankSlices:
    """This rank's slices of the global batches of ``loader`` (see the module docstring)."""

    def __init__(self, loader, parallel, transform):
        self.loader, self.parallel, self.transform = loader, parallel, transform

    def _sizes(self):
        n, b, size = self.loader.num_samples, self.loader.batch_size, self.parallel.size
        sizes = [b] * (n // b) + ([n % b] if n % b and not self.loader.drop_last else [])
        return [s for s in sizes if s >= size]

    def __len__(self):
        return len(self._sizes())

    @property
    def num_samples(self):
        """Samples this rank sees per epoch."""
        p = self.parallel
        bounds = [slice_bounds(s, p.size, p.rank) for s in self._sizes()]
        return sum(hi - lo for lo, hi in bounds)

    def __iter__(self):
        p = self.parallel
        for xb, tb in self.loader:
            if len(xb) < p.size:
                continue
            lo, hi = slice_bounds(len(xb), p.size, p.rank)
            p.reducer.begin((hi - lo) / len(xb))
            xb = xb[lo:hi]
            yield (xb if self.transform is None else self.transform(xb)), tb[lo:hi]
        p.broadcast_buffers()      # per-rank batch norm: evaluate and save with rank 0's statistics


def data_parallel(model, mode="auto", **options):
    """A :class:`DataParallel` for ``model`` when ``mode`` is True, or ``"auto"`` in a world of more than one
    rank; else a :class:`SingleProcess`. ``options`` go to :class:`DataParallel`. A ``DataParallel`` (or
    ``SingleProcess``) instance is returned as it is (to choose ``bucket_bytes`` or ``overlap``)."""
    if isinstance(mode, (DataParallel, SingleProcess)):
        if isinstance(mode, DataParallel) and mode.model is not model:
            raise ValueError("data_parallel: this DataParallel was made for another model")
        return mode
    if mode not in ("auto", True, False):
        raise ValueError(f"data_parallel must be 'auto', True, False or a DataParallel, got {mode!r}")
    if mode is True or (mode == "auto" and _world().size > 1):
        return DataParallel(model, **options)
    return SingleProcess()
