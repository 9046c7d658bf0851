"""Argument validation shared by the public kernels: everything is checked here, before compiled code runs.

:func:`pair` and :func:`output_hw` are public (``fastconv.pair``, ``fastconv.output_hw``): the one definition of
window geometry, used by the kernels, their reference, the dl2 layers and the tests.
"""
import numbers

import numpy as np

FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: The largest matrix dimension the BLAS behind ``scipy.linalg.cython_blas`` takes: its integers are 32-bit C ints.
BLAS_INT_MAX = 2 ** 31 - 1


def float_array(value, name, ndim=None, ndims=None):
    """``value`` as a C-contiguous float32/float64 array (copied only when not contiguous).

    Raises ``TypeError`` for other dtypes and ``ValueError`` for the wrong number of dimensions.
    """
    array = np.asarray(value)
    if array.dtype not in FLOAT_TYPES:
        raise TypeError(
            f"{name} must be float32 or float64, got {array.dtype}; convert it first, e.g. {name}.astype(np.float32)"
        )
    allowed = (ndim,) if ndim is not None else ndims
    if allowed is not None and array.ndim not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(f"{name} must be {want}, got shape {array.shape}")
    return np.ascontiguousarray(array)


def same_dtype(**arrays):
    """Raise ``TypeError`` unless every array (``None`` skipped) has the same dtype."""
    named = [(name, a) for name, a in arrays.items() if a is not None]
    first_name, first = named[0]
    for name, a in named[1:]:
        if a.dtype != first.dtype:
            raise TypeError(f"{name} has dtype {a.dtype} but {first_name} has {first.dtype}; use one float type")


def pair(value, name, minimum):
    """An int or an ``(h, w)`` pair of ints, each ``>= minimum``, as a tuple ``(h, w)``.

    ``name`` names the argument in the errors: ``TypeError`` for non-integers (bools and floats included),
    ``ValueError`` for a sequence that is not a pair or a value below ``minimum``.
    """
    items = tuple(value) if isinstance(value, (tuple, list, np.ndarray)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or a pair (h, w), got {value!r}")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        if item < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(items[0]), int(items[1])


def output_hw(input_hw, kernel, stride, padding, what="kernel"):
    """``(OH, OW)`` of a window of size ``kernel`` sliding over ``input_hw`` zero-padded by ``padding``:
    ``OH = (H + 2*pad_h - kh) // stride_h + 1`` per axis (any number of axes; all arguments are int tuples).

    ``ValueError`` (naming ``what``) when the window does not fit in the padded input.
    """
    out = []
    for size, k, s, p in zip(input_hw, kernel, stride, padding):
        if k > size + 2 * p:
            raise ValueError(
                f"{what} size {tuple(kernel)} is larger than the padded input "
                f"{tuple(d + 2 * q for d, q in zip(input_hw, padding))}"
            )
        out.append((size + 2 * p - k) // s + 1)
    return tuple(out)


def expect_shape(array, shape, name):
    if array.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {array.shape}")


def shape4(value, name):
    """A 4-tuple of non-negative ints (an NCHW shape)."""
    shape = tuple(value)
    if len(shape) != 4 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0 for s in shape):
        raise ValueError(f"{name} must be an (N, C, H, W) tuple of non-negative ints, got {value!r}")
    return tuple(int(s) for s in shape)


def blas_sizes(what, **sizes):
    """Raise ``ValueError`` unless every matrix dimension in ``sizes`` fits the BLAS's 32-bit integers (a larger
    one would be truncated when passed to it, giving a wrong result or a crash)."""
    for name, size in sizes.items():
        if size > BLAS_INT_MAX:
            raise ValueError(f"{what}: {name} = {size} exceeds the BLAS's 32-bit integer limit {BLAS_INT_MAX}; "
                             f"split the batch into smaller ones")
