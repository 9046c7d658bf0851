"""Element-wise activations over flat arrays: ReLU forward and backward, one contiguous slab per OpenMP thread.

The loops are branch-free selects that the compiler vectorises; small arrays run on the calling thread (waking
the team costs more than the work).
"""
from cython.parallel cimport prange

from ._slabs cimport bound

ctypedef fused floating:
    float
    double

#: Arrays smaller than this many values run on one thread.
cdef Py_ssize_t PARALLEL_MIN = 1 << 16


cdef void relu_slab(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = 0 if x[i] <= 0 else x[i]       # NaN stays NaN, as in numpy.maximum(x, 0)


cdef void relu_backward_slab(const floating *dy, const floating *y, floating *dx, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g
    for i in range(n):
        g = dy[i]             # loaded unconditionally, so the select below compiles to a blend, not a branch
        dx[i] = g if y[i] > 0 else 0


cdef int team(Py_ssize_t n, int num_threads) noexcept nogil:
    return num_threads if n >= PARALLEL_MIN else 1


def relu(const floating[::1] src, const floating[::1] y, floating[::1] out, bint backward, int num_threads):
    """Forward (``backward`` false): ``out = max(src, 0)``, NaN propagating (``y`` unused). Backward:
    ``out = src`` (the output's gradient) where the forward output ``y > 0``, else 0 (the gradient at 0 is 0).
    Flat arrays of equal length."""
    cdef Py_ssize_t n = src.shape[0], part, lo, hi
    cdef int parts = team(n, num_threads)
    if n == 0:
        return
    with nogil:
        for part in prange(parts, schedule="static", num_threads=parts):
            lo = bound(n, parts, part)  # assigned here, so private to the thread
            hi = bound(n, parts, part + 1)
            if backward:
                relu_backward_slab(&src[lo], &y[lo], &out[lo], hi - lo)
            else:
                relu_slab(&src[lo], &out[lo], hi - lo)
