"""fastconv.relu_forward / relu_backward against the NumPy reference (shapes on both sides of the size at which
the kernel starts using threads), their special values and their argument checks."""
import numpy as np
import pytest

import fastconv
from fastconv import reference as ref
from kernel_checks import DTYPES

#: Empty, tiny, odd-sized, a zoo layer's activations (parallel), one value short of and at the parallel size.
SHAPES = [(0,), (1,), (7,), (3, 5), (2, 3, 4, 5), (100, 30, 24, 24), (65535,), (65536,), (2, 0, 3)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
def test_relu_matches_reference(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    y = fastconv.relu_forward(x)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, ref.relu_forward(x))           # a selection: exact
    dx = fastconv.relu_backward(dy, y)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_array_equal(dx, ref.relu_backward(dy, y))
    np.testing.assert_array_equal(dx, np.where(x > 0, dy, 0))      # the mask of the input, from the output


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_relu_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1e-30, 1e-30, 5e-324 if dtype == np.float64 else 1e-45],
                 dtype=dtype)
    y = fastconv.relu_forward(x)
    np.testing.assert_array_equal(y, ref.relu_forward(x))
    assert np.isnan(y[0]) and y[1] == np.inf and y[2] == 0 and y[3] == 0 and y[4] == 0 and y[5] == 0
    assert y[6] == x[6] and y[7] == x[7]                               # tiny positives (a denormal) pass
    dy = np.arange(1, x.size + 1, dtype=dtype)
    dx = fastconv.relu_backward(dy, y)
    np.testing.assert_array_equal(dx, ref.relu_backward(dy, y))
    np.testing.assert_array_equal(dx, [0, 2, 0, 0, 0, 0, 7, 8])       # gradient 0 at 0 and at NaN
    dy_nan = np.full(x.shape, np.nan, dtype)
    np.testing.assert_array_equal(np.isnan(fastconv.relu_backward(dy_nan, y)), y > 0)   # not NaN * 0


def test_relu_accepts_non_contiguous_inputs_and_does_not_modify_them():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 50)).astype(np.float32).T              # a transposed view
    keep = x.copy()
    y = fastconv.relu_forward(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    dy = rng.standard_normal((6, 50)).astype(np.float32).T
    np.testing.assert_array_equal(fastconv.relu_backward(dy, y), np.where(y > 0, dy, 0))
    np.testing.assert_array_equal(x, keep)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_relu_thread_counts_agree(threads):
    x = np.random.default_rng(4).standard_normal((3, 70001)).astype(np.float32)
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(threads)
        y = fastconv.relu_forward(x)
        dx = fastconv.relu_backward(x, y)
    finally:
        fastconv.set_num_threads(before)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(dx, np.where(x > 0, x, 0))


@pytest.mark.parametrize("call, error, match", [
    (lambda: fastconv.relu_forward(np.arange(4)), TypeError, "x must be float32 or float64"),
    (lambda: fastconv.relu_backward(np.ones(3, np.float32), np.ones(4, np.float32)), ValueError,
     r"y must have shape \(3,\)"),
    (lambda: fastconv.relu_backward(np.ones(3, np.float32), np.ones(3)), TypeError, "y has dtype float64"),
    (lambda: fastconv.relu_backward(np.ones(3, np.int32), np.ones(3)), TypeError, "dy must be float32"),
])
def test_relu_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
