# Splitting ``range(total)`` into near-equal slabs, one per OpenMP thread (shared by the element-wise kernels).

cdef inline Py_ssize_t bound(Py_ssize_t total, Py_ssize_t parts, Py_ssize_t i) noexcept nogil:
    """Start of slab ``i`` of ``parts`` near-equal slabs of ``range(total)``."""
    return total * i // parts
