"""Gradient averaging across ranks: fused buckets, each all-reduced as soon as its layers' backward is done.

The parameters are grouped, in reverse registration order (roughly the order in which ``backward`` finishes
them), into buckets of about ``bucket_bytes``. Each bucket owns one contiguous buffer and every parameter's
``grad`` becomes a view into it (no copies). The ``backward`` of every module that owns parameters is wrapped;
when the last owner of a bucket has finished its backward, the bucket is scaled by this rank's share of the
global batch and a non-blocking ``MPI_Iallreduce`` (sum) is started on it, so the communication of the late
layers overlaps the backward of the early ones (as PyTorch DDP does). :meth:`GradientReducer.finish` starts
what is left and waits for everything: each ``grad`` then holds ``sum_r share_r * grad_r``, which is the
gradient of the loss averaged over the global batch (with equal slices: the plain average over the ranks).
"""
import time

import numpy as np

__all__ = ["GradientReducer", "plan_buckets", "DEFAULT_BUCKET_BYTES"]

#: Default bucket size: 1 MiB of gradients per all-reduce.
DEFAULT_BUCKET_BYTES = 1 << 20


def plan_buckets(params, bucket_bytes=DEFAULT_BUCKET_BYTES):
    """The buckets of ``params`` (repeats dropped): lists of parameters in reverse order, each of one dtype,
    a new one started when the next parameter would take it past ``bucket_bytes`` (a larger parameter gets a
    bucket of its own)."""
    unique, seen = [], set()
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            unique.append(p)
    buckets, group, size = [], [], 0
    for p in reversed(unique):
        if group and (size + p.data.nbytes > bucket_bytes or p.dtype != group[0].dtype):
            buckets.append(group)
            group, size = [], 0
        group.append(p)
        size += p.data.nbytes
    return buckets + ([group] if group else [])


class _Bucket:
    def __init__(self, params, dtype):
        self.params = params
        self.buffer = np.zeros(sum(p.size for p in params), dtype=dtype)
        self.owners = set()
        self.waiting = 0
        self.request = None


class GradientReducer:
    """All-reduce the gradients of ``model``'s parameters over ``comm`` (an ``mpi4py`` communicator).

    ``bucket_bytes``: target size of a fused buffer. ``overlap``: start each bucket's all-reduce during the
    backward pass (True) or all of them after it (False; the same result, for measuring what overlap buys).
    Use as ``begin(share)`` before the backward pass, then ``finish()`` after it; ``detach()`` gives the
    parameters their own gradient arrays back and unwraps the modules. ``stats`` accumulates ``steps``,
    ``bytes`` (per rank, per step), ``issue_seconds`` (time in MPI calls made during backward) and
    ``wait_seconds`` (time in :meth:`finish`: communication not hidden behind the backward pass).
    """

    def __init__(self, model, comm, bucket_bytes=DEFAULT_BUCKET_BYTES, overlap=True):
        from mpi4py import MPI
        self._mpi = MPI
        if isinstance(bucket_bytes, bool) or int(bucket_bytes) != bucket_bytes or bucket_bytes < 1:
            raise ValueError(f"GradientReducer: bucket_bytes must be a positive integer, got {bucket_bytes!r}")
        self.comm, self.overlap = comm, bool(overlap)
        owner_of = {}
        for _, module in model.named_modules():
            for p in module._params.values():
                owner_of.setdefault(id(p), module)
        self.buckets = [_Bucket(group, group[0].dtype) for group in plan_buckets(model.parameters(), bucket_bytes)]
        self._buckets_of = {}
        for bucket in self.buckets:
            offset = 0
            for p in bucket.params:
                view = bucket.buffer[offset:offset + p.size].reshape(p.shape)
                view[...] = p.grad
                p.grad = view
                offset += p.size
                owner = owner_of[id(p)]
                if id(owner) not in bucket.owners:
                    bucket.owners.add(id(owner))
                    self._buckets_of.setdefault(id(owner), (owner, []))[1].append(bucket)
        for owner, _ in self._buckets_of.values():
            if "backward" in vars(owner):
                raise RuntimeError(f"GradientReducer: {type(owner).__name__}.backward is already wrapped "
                                   "(is another reducer attached to this model?)")
            object.__setattr__(owner, "backward", self._wrap(owner, owner.backward))
        self.share = 1.0
        self.active = False
        self.stats = {"steps": 0, "bytes": int(sum(b.buffer.nbytes for b in self.buckets)),
                      "buckets": len(self.buckets), "issue_seconds": 0.0, "wait_seconds": 0.0}

    def _wrap(self, owner, backward):
        def wrapped(dy):
            dx = backward(dy)
            if self.active:
                self._ready(owner)
            return dx
        return wrapped

    # ----------------------------------------------------------------- one step
    def begin(self, share):
        """Arm for one backward pass; ``share`` = this rank's samples / samples of the global batch."""
        self.share = float(share)
        for bucket in self.buckets:
            bucket.waiting = len(bucket.owners)
            bucket.request = None
        self.active = True

    def _ready(self, owner):
        t0 = time.perf_counter()
        for bucket in self._buckets_of[id(owner)][1]:
            if bucket.request is not None:
                raise RuntimeError(f"GradientReducer: {type(owner).__name__}.backward ran again after its "
                                   "gradients were sent (a module used twice in one step?); use overlap=False")
            bucket.waiting -= 1
            if bucket.waiting == 0 and self.overlap:
                self._start(bucket)
        started = [b.request for b in self.buckets if b.request is not None]
        if started:
            self._mpi.Request.Testall(started)   # lets MPI progress the transfers already under way
        self.stats["issue_seconds"] += time.perf_counter() - t0

    def _start(self, bucket):
        if self.share != 1.0:
            bucket.buffer *= bucket.buffer.dtype.type(self.share)
        bucket.request = self.comm.Iallreduce(self._mpi.IN_PLACE, bucket.buffer, op=self._mpi.SUM)

    def finish(self):
        """Start the buckets not yet started, wait for every all-reduce; the gradients are then global."""
        if not self.active:
            raise RuntimeError("GradientReducer.finish: begin(share) was not called for this step")
        t0 = time.perf_counter()
        for bucket in self.buckets:
            if bucket.request is None:
                self._start(bucket)
        self._mpi.Request.Waitall([b.request for b in self.buckets])
        for bucket in self.buckets:
            bucket.request = None
        self.active = False
        self.stats["wait_seconds"] += time.perf_counter() - t0
        self.stats["steps"] += 1

    def detach(self):
        """Give every parameter its own ``grad`` array again and remove the backward wrappers."""
        for bucket in self.buckets:
            for p in bucket.params:
                p.grad = p.grad.copy()
        for owner, _ in self._buckets_of.values():
            if "backward" in vars(owner):
                object.__delattr__(owner, "backward")
        self._buckets_of = {}
        self.buckets = []
        self.active = False
