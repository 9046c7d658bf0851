"""Helpers shared by the fastconv kernel tests (imported by test files; pytest puts tests/ on sys.path)."""
import numpy as np

import fastconv

DTYPES = [np.float32, np.float64]


def pair(v):
    return fastconv.pair(v, "size", 0)


def out_size(size, k, s, p):
    return fastconv.output_hw((size,), (k,), (s,), (p,))[0]


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def assert_close(got, want, dtype, magnitude, rtol):
    """Elementwise ``|got - want| <= rtol * (|want| + |magnitude|)``; NaN matches NaN.

    ``magnitude`` bounds the accumulated size of the summands of each element (the same operation on absolute
    values), so the tolerance follows what rounding can actually produce, element by element.
    """
    assert got.dtype == np.dtype(dtype)
    assert got.shape == want.shape
    err = np.abs(got.astype(np.float64) - want)
    bound = rtol * (np.abs(want) + np.abs(magnitude))
    bad = ~((err <= bound) | (np.isnan(got) & np.isnan(want)))
    assert not bad.any(), (
        f"{bad.sum()} of {bad.size} elements differ; first at {np.argwhere(bad)[0]}: "
        f"got {got[bad][0]!r}, want {want[bad][0]!r} (bound {bound[bad][0]:.3g})")


def numerical_grad(f, a, h=1e-6):
    """Central differences of the scalar ``f()`` with respect to every element of ``a`` (modified in place)."""
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + h
        fp = f()
        a[idx] = old - h
        fm = f()
        a[idx] = old
        g[idx] = (fp - fm) / (2 * h)
    return g
