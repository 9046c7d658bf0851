"""fastconv.relu_forward / relu_backward, tanh_backward and sigmoid_backward against the NumPy reference (shapes
on both sides of the size at which the kernel starts using threads), their special values and their argument
checks."""
import numpy as np
import pytest

import fastconv
from fastconv import reference as ref
from kernel_checks import DTYPES, assert_close

#: Empty, tiny, odd-sized, a zoo layer's activations (parallel), one value short of and at the parallel size.
SHAPES = [(0,), (1,), (7,), (3, 5), (2, 3, 4, 5), (100, 30, 24, 24), (65535,), (65536,), (2, 0, 3)]

#: The arithmetic backward kernels by name: their forward (in NumPy) and the size of the terms of ``dx`` (the same
#: expression on absolute values: it bounds what rounding can change, in any order of evaluation or with FMA).
SMOOTH = {
    "tanh": (np.tanh, lambda dy, y: np.abs(dy) * (1 + y * y)),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), lambda dy, y: np.abs(dy) * np.abs(y) * (1 + np.abs(y))),
}
RTOL = {np.float32: 1e-6, np.float64: 1e-14}


def smooth_backward(name, module=fastconv):
    return getattr(module, f"{name}_backward")


def assert_smooth_matches_reference(name, dy, y):
    """The kernel's ``dx`` is the reference's to rounding (exact when both evaluate in NumPy's order)."""
    dx = smooth_backward(name)(dy, y)
    assert dx.dtype == dy.dtype and dx.shape == dy.shape
    assert_close(dx, smooth_backward(name, ref)(dy, y), dy.dtype, SMOOTH[name][1](dy, y), RTOL[dy.dtype.type])
    return dx


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


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
def test_smooth_backward_matches_reference(shape, dtype, name):
    rng = np.random.default_rng(sum(shape))
    x = (3 * rng.standard_normal(shape)).astype(dtype)            # reaches |y| near 1, where 1 - y*y cancels
    dy = rng.standard_normal(shape).astype(dtype)
    y = SMOOTH[name][0](x).astype(dtype)
    assert_smooth_matches_reference(name, dy, y)


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


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_smooth_backward_special_values(name, dtype):
    """NaN, infinities, signed zeros and denormals in ``dy`` and in ``y`` (every pair) propagate as in NumPy;
    where the forward saturates (tanh: ``y = +-1``, sigmoid: ``y = 0, 1``) a finite ``dy`` gives a zero gradient."""
    tiny = 5e-324 if dtype == np.float64 else 1e-45
    values = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, tiny, -1.0, 1.0, 0.5, 2.0], dtype=dtype)
    dy, y = (a.reshape(-1) for a in np.meshgrid(values, values, indexing="ij"))
    dx = smooth_backward(name)(dy, y)
    with np.errstate(invalid="ignore", over="ignore"):
        want = smooth_backward(name, ref)(dy, y)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, want)                # NaN where NumPy has NaN, the same infinities
    number = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(dx[number]), np.signbit(want[number]))     # signed zeros too
    saturated = (np.abs(y) == 1) if name == "tanh" else ((y == 0) | (y == 1))
    assert (dx[saturated & np.isfinite(dy)] == 0).all()


def test_relu_accepts_non_contiguous_inputs_and_does_not_modify_them():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 50)).astype(np.float32).T              # a transposed view
    keep = x.copy()
    y = fastconv.relu_forward(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    dy = rng.standard_normal((6, 50)).astype(np.float32).T
    np.testing.assert_array_equal(fastconv.relu_backward(dy, y), np.where(y > 0, dy, 0))
    np.testing.assert_array_equal(x, keep)


@pytest.mark.parametrize("name", SMOOTH)
def test_smooth_backward_accepts_non_contiguous_inputs_and_does_not_modify_them(name):
    rng = np.random.default_rng(5)
    y = SMOOTH[name][0](rng.standard_normal((6, 50))).T                 # transposed views, float64
    dy = rng.standard_normal((50, 6, 2))[:, :, 0]                       # a strided slice
    keep_y, keep_dy = y.copy(), dy.copy()
    dx = assert_smooth_matches_reference(name, dy, y)
    assert dx.flags.c_contiguous
    np.testing.assert_array_equal(y, keep_y)
    np.testing.assert_array_equal(dy, keep_dy)


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


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_smooth_backward_thread_counts_agree(threads, name):
    """Each element is computed alone, so every split into slabs gives the same bits."""
    rng = np.random.default_rng(6)
    y = SMOOTH[name][0](rng.standard_normal((3, 70001))).astype(np.float32)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        one = smooth_backward(name)(dy, y)
        fastconv.set_num_threads(threads)
        dx = assert_smooth_matches_reference(name, dy, y)
    finally:
        fastconv.set_num_threads(before)
    np.testing.assert_array_equal(dx, one)


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


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("dy, y, error, match", [
    (np.ones(3, np.float32), np.ones(4, np.float32), ValueError, r"y must have shape \(3,\)"),
    (np.ones((2, 3)), np.ones((3, 2)), ValueError, r"y must have shape \(2, 3\), got \(3, 2\)"),
    (np.ones(3, np.float32), np.ones(3), TypeError, "y has dtype float64 but dy has float32"),
    (np.ones(3, np.int32), np.ones(3), TypeError, "dy must be float32 or float64, got int32"),
    (np.ones(3), np.ones(3, np.float16), TypeError, "y must be float32 or float64, got float16"),
    (np.ones(3), [True, False, True], TypeError, "y must be float32 or float64, got bool"),
])
def test_smooth_backward_bad_input(name, dy, y, error, match):
    with pytest.raises(error, match=match):
        smooth_backward(name)(dy, y)


def test_activation_kernel_rejects_an_unknown_kind():
    a = np.ones(3)
    with pytest.raises(ValueError, match="unknown activation kernel 99"):
        fastconv._activation.run(99, a, a, np.empty(3), 1)
