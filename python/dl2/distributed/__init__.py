"""Data-parallel training over MPI (mpi4py): the same ``dl2 train`` command on one process or on many.

::

    mpiexec -n 4 python -m dl2 train --model cnn --batch-size 128      # 4 ranks, global batch 128

* :func:`world` -- this process's :class:`World` (rank, size, local rank); without MPI a world of one.
* :class:`DataParallel` -- what :class:`dl2.Trainer` does on several ranks (start-up broadcast and checks,
  data slices, gradient all-reduce, sharded evaluation); :func:`data_parallel` picks it or
  :class:`SingleProcess`.
* :class:`GradientReducer` -- fused, overlapped gradient all-reduce (usable in a hand-written loop).
* :class:`dl2.SyncBatchNorm` -- batch norm with statistics of the global batch.

See ``docs/DISTRIBUTED.md`` for the data split, the cost model, and running on a cluster.
"""
from .parallel import DataParallel, SingleProcess, data_parallel, slice_bounds
from .reducer import DEFAULT_BUCKET_BYTES, GradientReducer, plan_buckets
from .runtime import World, abort, default_threads, where, world

__all__ = ["World", "world", "where", "abort", "default_threads", "DataParallel", "SingleProcess", "data_parallel",
           "slice_bounds", "GradientReducer", "plan_buckets", "DEFAULT_BUCKET_BYTES"]
