"""Scratch buffers reused across calls, one set per Python thread.

A fresh large array page-faults on first touch (about 2 us per 4 KiB page here), which can cost more than the
arithmetic of a convolution; the intermediate matrices of a kernel call are therefore taken from these buffers.
They never leave the kernel: results returned to the caller are always new arrays.
"""
import threading

import numpy as np

_local = threading.local()


def scratch(name, shape, dtype):
    """A C-contiguous array of ``shape`` and ``dtype`` backed by this thread's buffer ``name`` (grown as needed)."""
    buffers = _local.__dict__.setdefault("buffers", {})
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = buffers.get(name)
    if buf is None or buf.nbytes < nbytes:
        buf = np.empty(max(nbytes, 64), dtype=np.uint8)
        buffers[name] = buf
    return buf[:nbytes].view(dtype).reshape(shape)


def release():
    """Free this thread's scratch buffers."""
    _local.__dict__.pop("buffers", None)
