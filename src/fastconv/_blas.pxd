"""The one BLAS routine the kernels use, for float and double, from SciPy's ``cython_blas``.

Called from inside OpenMP regions: fastconv keeps this BLAS single-threaded (see ``threads.py``).
"""
from scipy.linalg.cython_blas cimport dgemm, sgemm

ctypedef fused floating:
    float
    double


cdef inline void gemm(char *ta, char *tb, int m, int n, int k, floating alpha, const floating *a, int lda,
                      const floating *b, int ldb, floating beta, floating *c, int ldc) noexcept nogil:
    """Column-major ``C = alpha*op(A) op(B) + beta*C`` (Fortran BLAS convention).

    A row-major product ``C = A @ B`` is the column-major ``C^T = B^T A^T``: pass ``B`` first.
    """
    if floating is float:
        sgemm(ta, tb, &m, &n, &k, &alpha, <float *>a, &lda, <float *>b, &ldb, &beta, c, &ldc)
    else:
        dgemm(ta, tb, &m, &n, &k, &alpha, <double *>a, &lda, <double *>b, &ldb, &beta, c, &ldc)
