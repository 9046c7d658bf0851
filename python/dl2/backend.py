"""The kernel backend the layers run on: the compiled ``fastconv`` kernels (default) or their plain-NumPy
specification ``fastconv.reference``.

Layers never call ``fastconv`` by name; they call ``get_backend().conv2d_forward(...)`` and so on (the functions
of :mod:`fastconv`, with the same names and signatures in both backends). So a whole network can run on the
reference kernels, e.g. to check the compiled ones or to debug::

    dl2.use_backend("reference")              # process-wide, until the next call
    with dl2.use_backend("reference"):        # only inside the block; the previous backend comes back after
        y = model(x)

The choice is process-wide (not per thread).
"""
import fastconv

__all__ = ["BACKENDS", "use_backend", "get_backend", "backend_name"]

#: Backends by name: modules holding the kernel functions.
BACKENDS = {"fastconv": fastconv, "reference": fastconv.reference}

_active = "fastconv"


def get_backend():
    """The active backend: the module whose ``conv2d_forward``, ``linear_forward``... the layers call."""
    return BACKENDS[_active]


def backend_name():
    """The name of the active backend (``"fastconv"`` or ``"reference"``)."""
    return _active


class use_backend:
    """Make ``name`` (``"fastconv"`` or ``"reference"``) the active backend at once; used as a context manager,
    restore the previous backend when the block ends (also on an exception)."""

    def __init__(self, name):
        global _active
        if not isinstance(name, str) or name not in BACKENDS:
            raise ValueError(f"use_backend: backend must be one of {', '.join(map(repr, BACKENDS))}, got {name!r}")
        self.previous = _active
        _active = name

    def __enter__(self):
        return get_backend()

    def __exit__(self, *exc):
        global _active
        _active = self.previous
        return False

    def __repr__(self):
        return f"use_backend({_active!r})"
