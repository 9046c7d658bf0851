"""fastconv.linear_forward / linear_backward against the NumPy reference, and their argument checks."""
import numpy as np
import pytest

import fastconv
from fastconv import reference as ref

SHAPES = [(1, 1, 1), (1, 5, 3), (3, 1, 4), (7, 9, 1), (100, 2880, 100), (33, 17, 65), (2, 300, 7)]


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-4), (np.float64, 1e-10)])
@pytest.mark.parametrize("n, n_in, n_out", SHAPES)
def test_linear_matches_reference(n, n_in, n_out, dtype, rtol):
    rng = np.random.default_rng(n * 1000 + n_in + n_out)
    x, w = rng.standard_normal((n, n_in)), rng.standard_normal((n_in, n_out))
    b, dy = rng.standard_normal(n_out), rng.standard_normal((n, n_out))
    want_y = ref.linear_forward(x, w, b)
    want = ref.linear_backward(dy, x, w)
    cast = [a.astype(dtype) for a in (x, w, b, dy)]
    y = fastconv.linear_forward(*cast[:3])
    got = fastconv.linear_backward(cast[3], cast[0], cast[1])
    assert y.dtype == dtype and all(g.dtype == dtype for g in got)
    scale = np.sqrt(n_in) + 1
    np.testing.assert_allclose(y, want_y, rtol=rtol, atol=rtol * scale)
    for g, w_ in zip(got, want):
        np.testing.assert_allclose(g, w_, rtol=rtol, atol=rtol * (np.sqrt(max(n, n_out)) + 1) * scale)


def test_linear_backward_without_dx_and_with_empty_batch():
    rng = np.random.default_rng(0)
    x, w, dy = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal((4, 2))
    dx, dw, db = fastconv.linear_backward(dy, x, w, need_dx=False)
    assert dx is None
    np.testing.assert_allclose(dw, x.T @ dy, rtol=1e-12)
    y = fastconv.linear_forward(np.zeros((0, 3)), w)
    assert y.shape == (0, 2)
    dx, dw, db = fastconv.linear_backward(np.zeros((0, 2)), np.zeros((0, 3)), w)
    assert dx.shape == (0, 3) and not dw.any() and not db.any()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_linear_thread_counts_agree(threads):
    rng = np.random.default_rng(1)
    x, w, dy = (rng.standard_normal(s).astype(np.float32) for s in [(37, 50), (50, 11), (37, 11)])
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        serial = (fastconv.linear_forward(x, w),) + fastconv.linear_backward(dy, x, w)
        fastconv.set_num_threads(threads)
        parallel = (fastconv.linear_forward(x, w),) + fastconv.linear_backward(dy, x, w)
    finally:
        fastconv.set_num_threads(before)
    for a, b in zip(serial, parallel):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_linear_accepts_non_contiguous_inputs():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((6, 4)).T, rng.standard_normal((2, 6)).T   # (4, 6) and (6, 2), transposed views
    np.testing.assert_allclose(fastconv.linear_forward(x, w), x @ w, rtol=1e-12)


@pytest.mark.parametrize("call, error, match", [
    (lambda: fastconv.linear_forward(np.ones((2, 3, 1)), np.ones((3, 2))), ValueError, "x must be 2-D"),
    (lambda: fastconv.linear_forward(np.ones((2, 3)), np.ones((4, 2))), ValueError, "features"),
    (lambda: fastconv.linear_forward(np.ones((2, 3)), np.ones((3, 2)), np.ones(3)), ValueError, "b must have shape"),
    (lambda: fastconv.linear_forward(np.ones((2, 3), int), np.ones((3, 2))), TypeError, "x must be float32"),
    (lambda: fastconv.linear_forward(np.ones((2, 3), np.float32), np.ones((3, 2))), TypeError, "dtype"),
    (lambda: fastconv.linear_backward(np.ones((2, 3)), np.ones((2, 3)), np.ones((3, 2))), ValueError,
     "dy must have shape"),
])
def test_linear_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_linear_is_deterministic_across_many_calls_on_two_threads():
    """Regression: the slab bounds were once shared between OpenMP threads, so about 1 call in 2,000 returned
    another thread's rows. Repeated calls on the same data must be bitwise identical."""
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((64, 512)), rng.standard_normal((512, 10))
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(2)
        first = fastconv.linear_forward(x, w)
        np.testing.assert_allclose(first, x @ w, rtol=1e-12, atol=1e-12)
        mismatches = sum(not np.array_equal(fastconv.linear_forward(x, w), first) for _ in range(5000))
    finally:
        fastconv.set_num_threads(before)
    assert mismatches == 0
