"""Whether fastconv was compiled with OpenMP, and how many threads OpenMP would use by default."""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fc_openmp_enabled(void) { return 1; }
    static int fc_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int fc_openmp_enabled(void) { return 0; }
    static int fc_max_threads(void) { return 1; }
    #endif
    """
    int fc_openmp_enabled()
    int fc_max_threads()


def openmp_enabled():
    """True when the kernels were compiled with OpenMP (and so can use several cores)."""
    return bool(fc_openmp_enabled())


def openmp_max_threads():
    """OpenMP's default thread count (``OMP_NUM_THREADS`` or the core count); 1 without OpenMP."""
    return fc_max_threads()
