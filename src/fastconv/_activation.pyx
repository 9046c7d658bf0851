"""Element-wise activations over flat arrays, one contiguous slab per OpenMP thread: ReLU forward and backward,
and the backward passes of tanh and sigmoid from their forward outputs.

The loops are branch-free (selects and arithmetic) so that the compiler vectorises them; small arrays run on the
calling thread (waking the team costs more than the work).
"""
from cython.parallel cimport prange

from ._slabs cimport bound

ctypedef fused floating:
    float
    double

#: Arrays smaller than this many values run on one thread.
cdef Py_ssize_t PARALLEL_MIN = 1 << 16


# The kernels :func:`run` applies (``Kind.RELU_FORWARD``... in Python).
cpdef enum Kind:
    RELU_FORWARD        # out = max(src, 0)                 (y unused)
    RELU_BACKWARD       # out = src where y > 0, else 0
    TANH_BACKWARD       # out = src * (1 - y*y)
    SIGMOID_BACKWARD    # out = src * y * (1 - y)


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


# The two below evaluate in NumPy's order (``dy * (1 - y*y)``, ``dy * y * (1 - y)``) in the arrays' precision
# (``one`` is typed: Cython writes a bare 1 as the double 1.0, which would widen float32 to double): without FMA
# (the default x86-64 target) they round exactly as fastconv.reference does.
cdef void tanh_backward_slab(const floating *dy, const floating *y, floating *dx, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating one = 1
    for i in range(n):
        dx[i] = dy[i] * (one - y[i] * y[i])


cdef void sigmoid_backward_slab(const floating *dy, const floating *y, floating *dx, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating one = 1
    for i in range(n):
        dx[i] = dy[i] * y[i] * (one - y[i])


cdef void slab(int kind, const floating *src, const floating *y, floating *out, Py_ssize_t n) noexcept nogil:
    if kind == RELU_FORWARD:
        relu_slab(src, out, n)
    elif kind == RELU_BACKWARD:
        relu_backward_slab(src, y, out, n)
    elif kind == TANH_BACKWARD:
        tanh_backward_slab(src, y, out, n)
    else:
        sigmoid_backward_slab(src, y, out, n)


cdef int team(Py_ssize_t n, int num_threads) noexcept nogil:
    return num_threads if n >= PARALLEL_MIN else 1


def run(int kind, const floating[::1] src, const floating[::1] y, floating[::1] out, int num_threads):
    """Apply the kernel ``kind`` (a :class:`Kind`) to flat arrays of equal length: ``src`` is the input (forward)
    or the output's gradient (backward), ``y`` the forward output (unused by ``RELU_FORWARD``), ``out`` the
    result. ReLU's gradient is 0 where ``y <= 0`` (also at 0 and at NaN)."""
    cdef Py_ssize_t n = src.shape[0], part, lo, hi
    cdef int parts = team(n, num_threads)
    if not RELU_FORWARD <= kind <= SIGMOID_BACKWARD:
        raise ValueError(f"unknown activation kernel {kind}")
    if n == 0:
        return
    with nogil:
        for part in prange(parts, schedule="static", num_threads=parts):
            lo = bound(n, parts, part)  # assigned here, so private to the thread
            hi = bound(n, parts, part + 1)
            slab(kind, &src[lo], &y[lo], &out[lo], hi - lo)
