"""Fully connected layer ``y = x @ w + b`` (``w`` is ``(in, out)``, as in the textbook) on the OpenMP team.

Each thread multiplies its own slab with a single-threaded BLAS GEMM (the same BLAS and the same rule as the
convolution kernels), so a network's matrix products never start a second pool of threads.
Row-major ``C = A @ B`` is computed as the column-major product ``C^T = B^T A^T``.
"""
from cython.parallel cimport prange

from ._blas cimport floating, gemm
from ._slabs cimport bound


def forward(const floating[:, ::1] x, const floating[:, ::1] w, floating[:, ::1] y, int num_threads):
    """``y (N, out) = x (N, in) @ w (in, out)``, rows split between threads."""
    cdef Py_ssize_t N = x.shape[0], I = x.shape[1], O = w.shape[1], part, lo, hi
    with nogil:
        for part in prange(num_threads, schedule="static", num_threads=num_threads):
            lo = bound(N, num_threads, part)  # assigned here, so private to the thread
            hi = bound(N, num_threads, part + 1)
            if hi > lo:
                gemm("N", "N", O, hi - lo, I, 1, &w[0, 0], O, &x[lo, 0], I, 0, &y[lo, 0], O)


def backward_input(const floating[:, ::1] dy, const floating[:, ::1] w, floating[:, ::1] dx, int num_threads):
    """``dx (N, in) = dy (N, out) @ w.T``, rows split between threads."""
    cdef Py_ssize_t N = dy.shape[0], O = dy.shape[1], I = w.shape[0], part, lo, hi
    with nogil:
        for part in prange(num_threads, schedule="static", num_threads=num_threads):
            lo = bound(N, num_threads, part)  # assigned here, so private to the thread
            hi = bound(N, num_threads, part + 1)
            if hi > lo:
                gemm("T", "N", I, hi - lo, O, 1, &w[0, 0], O, &dy[lo, 0], O, 0, &dx[lo, 0], I)


def backward_weight(const floating[:, ::1] dy, const floating[:, ::1] x, floating[:, ::1] dw, int num_threads):
    """``dw (in, out) = x.T @ dy``, rows of ``dw`` (input features) split between threads."""
    cdef Py_ssize_t N = dy.shape[0], O = dy.shape[1], I = x.shape[1], part, lo, hi
    with nogil:
        for part in prange(num_threads, schedule="static", num_threads=num_threads):
            lo = bound(I, num_threads, part)  # assigned here, so private to the thread
            hi = bound(I, num_threads, part + 1)
            if hi > lo:
                gemm("N", "T", O, hi - lo, N, 1, &dy[0, 0], O, &x[0, lo], I, 0, &dw[lo, 0], O)
