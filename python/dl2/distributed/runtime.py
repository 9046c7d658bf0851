"""The MPI world of this process: rank, size, local rank; a single process without MPI is a world of one.

MPI is looked for (``from mpi4py import MPI``) only when the process was started by an MPI launcher
(``mpiexec``/``mpirun`` of MPICH, Intel MPI or Open MPI, Slurm's ``srun`` with PMI-2 or PMIx), or when mpi4py
was already imported. ``DL2_MPI=0`` never uses MPI; ``DL2_MPI=1`` always does. mpi4py is an optional extra:
``pip install "dl2[distributed]"``.

In a world of more than one rank, :func:`world` also

* installs a ``sys.excepthook`` that prints the traceback of an uncaught exception and then calls
  ``MPI_Abort``, so a failing rank ends every rank instead of leaving them waiting in a collective;
* lowers fastconv's thread count to ``cores // ranks on this node`` (at least 1) when the ranks would otherwise
  oversubscribe the node's cores and ``OMP_NUM_THREADS`` is not set.
"""
import os
import sys
import time

import numpy as np

__all__ = ["World", "world", "where", "abort", "default_threads"]

# Environment variables that MPI launchers set in the processes they start.
_LAUNCHER_VARS = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")


class World:
    """The ranks this process trains with.

    ``comm`` is an ``mpi4py.MPI.Intracomm`` (None in a world of one), ``rank`` in ``[0, size)``,
    ``local_rank`` / ``local_size`` the rank and count of the processes on this node. ``is_root`` is rank 0,
    the one that prints and writes files.
    """

    def __init__(self, comm=None):
        self.comm = comm
        if comm is None:
            self.rank, self.size, self.local_rank, self.local_size = 0, 1, 0, 1
            self.library = None
            return
        from mpi4py import MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        local = comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self.library = " ".join(MPI.Get_library_version().splitlines()[0].split())

    @property
    def is_root(self):
        return self.rank == 0

    def where(self):
        """``" (rank r of n)"`` in a world of more than one rank, else ``""`` (for messages)."""
        return f" (rank {self.rank} of {self.size})" if self.size > 1 else ""

    # ----------------------------------------------------------------- collectives (identities for one rank)
    def sum(self, values):
        """Element-wise sum over the ranks of a float64 vector (every rank gets the result)."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        if self.size == 1:
            return values.copy()
        out = np.empty_like(values)
        self.comm.Allreduce(values, out)
        return out

    def gather(self, obj):
        """``[obj of rank 0, obj of rank 1, ...]`` on every rank (small picklable objects)."""
        return [obj] if self.size == 1 else self.comm.allgather(obj)

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (small picklable objects)."""
        return obj if self.size == 1 else self.comm.bcast(obj, root=0)

    def broadcast_array(self, array):
        """Overwrite ``array`` (contiguous) in place with rank 0's."""
        if self.size > 1:
            self.comm.Bcast(array, root=0)

    def describe(self):
        """One line for ``dl2 info``."""
        if self.comm is not None:
            return (f"{self.size} ranks ({self.local_size} on this node), this is rank {self.rank}; "
                    f"{self.library}")
        import importlib.util
        if importlib.util.find_spec("mpi4py") is None:
            return "1 process, no MPI (mpi4py is not installed: pip install 'dl2[distributed]')"
        return "1 process, no MPI (mpi4py is installed: start under mpiexec to train data-parallel)"

    def __repr__(self):
        if self.comm is None:
            return "World(1 process, no MPI)"
        return (f"World(rank {self.rank} of {self.size}, local rank {self.local_rank} of {self.local_size}, "
                f"{self.library})")


_world = None


def _launched_by_mpi():
    return any(name in os.environ for name in _LAUNCHER_VARS)


def _launcher_size():
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def _discover():
    setting = os.environ.get("DL2_MPI", "auto").strip().lower()
    if setting not in ("auto", "0", "1"):
        raise ValueError(f"DL2_MPI must be 0, 1 or auto, got {setting!r}")
    if setting == "0" or (setting == "auto" and not _launched_by_mpi() and "mpi4py.MPI" not in sys.modules):
        return World(None)
    try:
        from mpi4py import MPI
    except ImportError as e:
        size = _launcher_size()
        if setting == "1" or size > 1:
            raise RuntimeError(f"dl2.distributed: started by an MPI launcher ({size or '?'} ranks) but mpi4py "
                               f"cannot be imported ({e}); install it with: pip install 'dl2[distributed]'") from None
        return World(None)
    return World(MPI.COMM_WORLD)


def world():
    """The :class:`World` of this process (found on the first call, then cached)."""
    global _world
    if _world is None:
        found = _discover()
        if found.size > 1:
            _install_abort_hook(found)
            _limit_threads(found)
        _world = found
    return _world


# --------------------------------------------------------------------- faults
def where():
    """``" (rank r of n)"`` once a world of several ranks has been found, else ``""`` (for error messages)."""
    return _world.where() if _world is not None else ""


#: Seconds between a failing rank's last message and ``MPI_Abort``: the launcher forwards each rank's output
#: asynchronously, and an abort that comes at once can end the job before the message (or that of another rank
#: failing at the same moment) has been passed on.
ABORT_GRACE_S = 0.5


def _flush_and_abort(comm, code):
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(ABORT_GRACE_S)
    comm.Abort(code)


def abort(code=1):
    """In a world of more than one rank: flush and end EVERY rank with exit status ``code`` (``MPI_Abort``).

    Does nothing in a world of one, or when no world was found (the caller then exits with ``code`` as usual).
    """
    if _world is not None and _world.size > 1:
        _flush_and_abort(_world.comm, code)


def _install_abort_hook(w):
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        previous(exc_type, exc, tb)
        print(f"dl2.distributed: uncaught {exc_type.__name__} on rank {w.rank} of {w.size}: aborting every rank",
              file=sys.stderr)
        _flush_and_abort(w.comm, 1)

    sys.excepthook = hook


# --------------------------------------------------------------------- threads
def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads(local_size=None):
    """fastconv threads per rank when ``local_size`` ranks share this node: ``max(1, cores // local_size)``."""
    local_size = world().local_size if local_size is None else int(local_size)
    return max(1, _cores() // max(1, local_size))


def _limit_threads(w):
    if os.environ.get("OMP_NUM_THREADS"):
        return
    import fastconv
    if fastconv.get_num_threads() * w.local_size > _cores():
        fastconv.set_num_threads(default_threads(w.local_size))
