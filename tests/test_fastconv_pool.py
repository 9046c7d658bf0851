"""fastconv max/average pooling against fastconv.reference, the reference against window loops and finite
differences, and the maxpool index conventions (int64, flat ``h*W + w``, ties, NaN)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import reference as ref
from kernel_checks import DTYPES, assert_close, numerical_grad, out_size, pair, randn

RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def check_pools(n, c, h, w, kernel, stride, padding, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = randn(rng, (n, c, h, w), dtype)
    x64 = x.astype(np.float64)

    y, idx = fastconv.maxpool2d_forward(x, kernel, stride, padding)
    y_ref, idx_ref = ref.maxpool2d_forward(x, kernel, stride, padding)
    assert y.dtype == x.dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref)                 # a selection: exact
    np.testing.assert_array_equal(idx, idx_ref)
    dy = randn(rng, y.shape, dtype)
    dy64 = dy.astype(np.float64)
    dx = fastconv.maxpool2d_backward(dy, idx, x.shape)
    assert_close(dx, ref.maxpool2d_backward(dy64, idx_ref, x.shape), dtype,
                 ref.maxpool2d_backward(np.abs(dy64), idx_ref, x.shape), RTOL[dtype])

    for include in (True, False):
        a = fastconv.avgpool2d_forward(x, kernel, stride, padding, include)
        assert_close(a, ref.avgpool2d_forward(x64, kernel, stride, padding, include), dtype,
                     ref.avgpool2d_forward(np.abs(x64), kernel, stride, padding, include), RTOL[dtype])
        da = fastconv.avgpool2d_backward(dy, x.shape, kernel, stride, padding, include)
        assert_close(da, ref.avgpool2d_backward(dy64, x.shape, kernel, stride, padding, include), dtype,
                     ref.avgpool2d_backward(np.abs(dy64), x.shape, kernel, stride, padding, include), RTOL[dtype])


# ------------------------------------------------------------------------------------- named grid
# (N, C, H, W, kernel, stride, padding); stride None means stride = kernel
POOL_CASES = {
    "2x2-tiling": (2, 3, 8, 6, 2, None, 0),
    "2x2-odd-input-not-tiling": (2, 3, 7, 9, 2, None, 0),
    "3x3-stride2-pad1": (2, 2, 9, 9, 3, 2, 1),
    "3x3-stride2-not-tiling": (3, 2, 8, 10, 3, 2, 0),
    "3x3-stride1-pad1": (1, 1, 5, 5, 3, 1, 1),
    "batch1-C1": (1, 1, 6, 7, 2, None, 1),
    "stride-larger-than-kernel": (2, 2, 11, 10, 2, 3, 0),
    "stride3": (2, 2, 13, 11, 3, 3, 1),
    "nonsquare-kernel-3x2": (2, 3, 9, 8, (3, 2), (2, 1), (1, 0)),
    "nonsquare-kernel-2x4": (3, 2, 7, 13, (2, 4), (1, 3), (1, 2)),
    "nonsquare-stride-1x2": (2, 2, 7, 9, 3, (1, 2), (1, 0)),
    "1x1": (2, 3, 5, 4, 1, None, 0),
    "1x1-stride2": (2, 3, 5, 7, 1, 2, 0),
    "kernel-equals-input": (2, 3, 5, 4, (5, 4), None, 0),
    "kernel-larger-than-input-thanks-to-padding": (2, 2, 2, 3, 4, 1, 2),
    "5x5-pad2-stride2": (2, 2, 9, 11, 5, 2, 2),
    "single-pixel": (3, 2, 1, 1, 1, None, 0),
    "many-planes": (5, 16, 17, 15, 3, 2, 1),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(POOL_CASES.values()), ids=list(POOL_CASES))
def test_pools_match_reference_named_grid(case, dtype):
    check_pools(*case, dtype=dtype)


SWEEP = [
    (kernel, stride, (ph, pw))
    for kernel in [(1, 1), (2, 2), (3, 3), (2, 3), (4, 1), (3, 5)]
    for stride in [None, 1, 2, 3, (2, 1)]
    for ph in range(kernel[0] // 2 + 1)
    for pw in range(kernel[1] // 2 + 1)
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kernel,stride,padding", SWEEP, ids=[f"k{k}-s{s}-p{p}" for k, s, p in SWEEP])
def test_pools_match_reference_sweep(kernel, stride, padding, dtype):
    check_pools(3, 2, 9, 7, kernel, stride, padding, dtype, seed=1)


@st.composite
def pool_geometry(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 13))
    w = draw(st.integers(max(1, kw - 2 * pw), 13))
    return draw(st.integers(1, 4)), draw(st.integers(1, 5)), h, w, (kh, kw), stride, (ph, pw)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometry=pool_geometry(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1))
def test_pools_match_reference_random_shapes(geometry, dtype, seed):
    check_pools(*geometry, dtype=dtype, seed=seed)


@settings(max_examples=40, deadline=None)
@given(geometry=pool_geometry(), seed=st.integers(0, 2**31 - 1), levels=st.integers(1, 3))
def test_maxpool_ties_and_nan_match_reference_random_shapes(geometry, seed, levels):
    """Few distinct values (many ties), some -inf (ties with the padding) and, half the time, some NaNs."""
    n, c, h, w, kernel, stride, padding = geometry
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, (n, c, h, w)).astype(np.float64)
    x[rng.random(x.shape) < 0.3] = -np.inf
    if seed % 2:
        x[rng.random(x.shape) < 0.1] = np.nan
    for dtype in DTYPES:
        y, idx = fastconv.maxpool2d_forward(x.astype(dtype), kernel, stride, padding)
        y_ref, idx_ref = ref.maxpool2d_forward(x.astype(dtype), kernel, stride, padding)
        np.testing.assert_array_equal(y, y_ref)             # assert_array_equal treats NaN == NaN
        np.testing.assert_array_equal(idx, idx_ref)


# ------------------------------------------------- the kernels' own paths: 2x2 stride 2, tiling and global windows
FAST_PATHS = {
    "2x2-s2-even": (3, 4, 24, 24, 2, 2, 0),                   # max and average pools' straight-line 2x2 code
    "2x2-s2-odd-rows-and-columns": (2, 3, 13, 11, 2, 2, 0),   # the last row and column are in no window
    "3x3-tiling-with-leftovers": (2, 2, 10, 11, 3, 3, 0),     # average backward: tiling windows, zero leftovers
    "global-7x7": (4, 33, 7, 7, 7, None, 0),                  # one window per plane: a contiguous run
    "global-28x28": (2, 3, 28, 28, 28, None, 0),
    "global-1x9": (3, 2, 1, 9, (1, 9), None, 0),
    "full-width-bands": (2, 3, 12, 5, (4, 5), None, 0),       # one window per band of rows
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(FAST_PATHS.values()), ids=list(FAST_PATHS))
def test_pools_fast_paths_match_reference(case, dtype):
    check_pools(*case, dtype=dtype, seed=3)


@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("nan", [False, True])
def test_maxpool_2x2_ties_infinities_and_nan_match_reference(levels, nan):
    """The 2x2 stride-2 path: many ties (the first maximum wins), -inf and +inf, and planes holding a NaN."""
    rng = np.random.default_rng(levels + 10 * nan)
    x = rng.integers(0, levels, (3, 4, 10, 9)).astype(np.float64)
    x[rng.random(x.shape) < 0.2] = -np.inf
    x[rng.random(x.shape) < 0.05] = np.inf
    if nan:
        x[rng.random(x.shape) < 0.05] = np.nan
    for dtype in DTYPES:
        y, idx = fastconv.maxpool2d_forward(x.astype(dtype), 2)
        y_ref, idx_ref = ref.maxpool2d_forward(x.astype(dtype), 2)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(idx, idx_ref)


# ------------------------------------------------------------------------------ maxpool indices
def test_maxpool_indices_are_flat_int64_positions_in_the_plane():
    rng = np.random.default_rng(2)
    x = rng.permutation(2 * 3 * 7 * 5).reshape(2, 3, 7, 5).astype(np.float64)
    y, idx = fastconv.maxpool2d_forward(x, 3, 2, 1)
    assert idx.dtype == np.int64 and idx.shape == y.shape == (2, 3, 4, 3)
    planes = x.reshape(2, 3, 35)
    for n in range(2):
        for c in range(3):
            np.testing.assert_array_equal(planes[n, c][idx[n, c]], y[n, c])    # x.flat[h*W + w] is the max
    rows, cols = np.divmod(idx, 5)
    i = np.arange(4)[:, None]
    j = np.arange(3)[None, :]
    assert np.all((rows >= np.maximum(2 * i - 1, 0)) & (rows <= 2 * i + 1))   # inside its window
    assert np.all((cols >= np.maximum(2 * j - 1, 0)) & (cols <= 2 * j + 1))


def test_maxpool_ties_go_to_the_first_position_row_major():
    x = np.zeros((1, 1, 4, 4), np.float32)
    y, idx = fastconv.maxpool2d_forward(x, 2)
    np.testing.assert_array_equal(idx[0, 0], [[0, 2], [8, 10]])
    # with padding: the first position *in the input* (padding never wins)
    y, idx = fastconv.maxpool2d_forward(x, 3, 2, 1)
    np.testing.assert_array_equal(idx[0, 0], [[0, 1], [4, 5]])
    # a tie between two maxima later in the window
    x = np.array([[[[0.0, 5.0, 1.0], [5.0, 5.0, 2.0], [1.0, 2.0, 5.0]]]])
    y, idx = fastconv.maxpool2d_forward(x, 3)
    assert y[0, 0, 0, 0] == 5.0 and idx[0, 0, 0, 0] == 1


def test_maxpool_nan_is_the_max_and_the_first_nan_wins():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 1, 0] = np.nan
    x[0, 0, 3, 3] = np.nan
    for dtype in DTYPES:
        y, idx = fastconv.maxpool2d_forward(x.astype(dtype), 2)
        y_ref, idx_ref = ref.maxpool2d_forward(x.astype(dtype), 2)
        assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 1      # first NaN in row-major order
        assert y[0, 0, 0, 1] == 7 and idx[0, 0, 0, 1] == 7
        assert y[0, 0, 1, 0] == 13 and idx[0, 0, 1, 0] == 13
        assert np.isnan(y[0, 0, 1, 1]) and idx[0, 0, 1, 1] == 15
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(idx, idx_ref)


def test_maxpool_nan_first_in_window_then_larger_values():
    x = np.array([[[[np.nan, 9.0], [10.0, np.inf]]]])
    y, idx = fastconv.maxpool2d_forward(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 0
    y_ref, idx_ref = ref.maxpool2d_forward(x, 2)
    np.testing.assert_array_equal(idx, idx_ref)


def test_maxpool_infinities():
    x = np.array([[[[-np.inf, -np.inf, 1.0], [np.inf, 2.0, -np.inf], [-np.inf, -np.inf, -np.inf]]]])
    y, idx = fastconv.maxpool2d_forward(x, 2, 1)
    np.testing.assert_array_equal(y[0, 0], [[np.inf, 2.0], [np.inf, 2.0]])
    np.testing.assert_array_equal(idx[0, 0], [[3, 4], [3, 4]])
    y, idx = fastconv.maxpool2d_forward(np.full((1, 1, 2, 2), -np.inf), 2)
    assert y[0, 0, 0, 0] == -np.inf and idx[0, 0, 0, 0] == 0


def test_maxpool_all_minus_inf_windows_with_padding_point_inside_the_input():
    """A window of -inf values touching the padding: y is -inf, and the index must name an input position
    inside the window (the first one), never a padding position; the reference must agree."""
    x = np.full((1, 1, 3, 3), -np.inf)
    want_idx = [[0, 1], [3, 4]]            # windows 2x2, stride 2, padding 1: first in-input position of each
    for impl in (fastconv, ref):
        y, idx = impl.maxpool2d_forward(x, 2, 2, 1)
        np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), -np.inf))
        np.testing.assert_array_equal(idx[0, 0], want_idx, err_msg=f"{impl.__name__}")


def test_maxpool_backward_accumulates_overlapping_windows():
    x = np.array([[[[1.0, 2.0, 1.0], [2.0, 9.0, 2.0], [1.0, 2.0, 1.0]]]])
    y, idx = fastconv.maxpool2d_forward(x, 2, 1)              # every window picks the centre
    np.testing.assert_array_equal(idx, np.full((1, 1, 2, 2), 4))
    dy = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    dx = fastconv.maxpool2d_backward(dy, idx, x.shape)
    want = np.zeros((1, 1, 3, 3))
    want[0, 0, 1, 1] = 10.0
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("bad", [-1, 12, 10**6])
def test_maxpool_backward_indices_out_of_range_raise(bad):
    dy = np.ones((2, 2, 2, 2))
    _, idx = fastconv.maxpool2d_forward(np.zeros((2, 2, 3, 4)), 2, 1)
    idx = idx.copy()
    idx[1, 0, 1, 1] = bad
    with pytest.raises(ValueError, match="indices"):
        fastconv.maxpool2d_backward(dy, idx, (2, 2, 3, 4))


def test_maxpool_backward_rejects_float_indices():
    dy = np.ones((1, 1, 2, 2))
    with pytest.raises(TypeError, match="indices"):
        fastconv.maxpool2d_backward(dy, np.zeros((1, 1, 2, 2)), (1, 1, 4, 4))


def test_maxpool_backward_accepts_other_integer_index_dtypes():
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 6))
    y, idx = fastconv.maxpool2d_forward(x, 2)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    want = fastconv.maxpool2d_backward(dy, idx, x.shape)
    for dtype in (np.int32, np.uint16):
        np.testing.assert_array_equal(fastconv.maxpool2d_backward(dy, idx.astype(dtype), x.shape), want)


# ----------------------------------------------------------------------------------- avg pooling
def test_avgpool_count_include_pad_divisors():
    x = np.ones((1, 1, 3, 3))
    inc = fastconv.avgpool2d_forward(x, 3, 1, 1, count_include_pad=True)
    exc = fastconv.avgpool2d_forward(x, 3, 1, 1, count_include_pad=False)
    np.testing.assert_allclose(inc[0, 0], np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]]) / 9, rtol=1e-15)
    np.testing.assert_allclose(exc, np.ones((1, 1, 3, 3)), rtol=1e-15)


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 1), ((2, 4), (1, 3), (1, 2)), (5, 1, 2), (2, 2, 1)])
def test_avgpool_with_padding_matches_reference(include, kernel, stride, padding):
    rng = np.random.default_rng(5)
    for dtype in DTYPES:
        x = randn(rng, (2, 3, 7, 8), dtype)
        y = fastconv.avgpool2d_forward(x, kernel, stride, padding, count_include_pad=include)
        y_ref = ref.avgpool2d_forward(x.astype(np.float64), kernel, stride, padding, count_include_pad=include)
        np.testing.assert_allclose(y, y_ref, rtol=RTOL[dtype], atol=RTOL[dtype] * 4)
        dy = randn(rng, y.shape, dtype)
        dx = fastconv.avgpool2d_backward(dy, x.shape, kernel, stride, padding, count_include_pad=include)
        dx_ref = ref.avgpool2d_backward(dy.astype(np.float64), x.shape, kernel, stride, padding,
                                        count_include_pad=include)
        np.testing.assert_allclose(dx, dx_ref, rtol=RTOL[dtype], atol=RTOL[dtype] * 10)
    inc = fastconv.avgpool2d_forward(x, kernel, stride, padding, count_include_pad=True)
    exc = fastconv.avgpool2d_forward(x, kernel, stride, padding, count_include_pad=False)
    assert not np.allclose(inc, exc)        # padding reaches some window: the two modes differ


# ------------------------------------------------------------- the reference, checked independently
def window(i, j, h, w, kernel, stride, padding):
    """In-input positions of output pixel (i, j)'s window, in row-major order."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    return [(i * sh - ph + u, j * sw - pw + v) for u in range(kh) for v in range(kw)
            if 0 <= i * sh - ph + u < h and 0 <= j * sw - pw + v < w]


def naive_pools(x, kernel, stride, padding):
    """Window loops: (max, argmax index h*W+w, avg counting padding, avg over in-input values)."""
    n_, c_, h, w = x.shape
    kernel = pair(kernel)
    stride = kernel if stride is None else pair(stride)
    padding = pair(padding)
    oh, ow = out_size(h, kernel[0], stride[0], padding[0]), out_size(w, kernel[1], stride[1], padding[1])
    mx, arg, inc, exc = (np.zeros((n_, c_, oh, ow)) for _ in range(4))
    arg = arg.astype(np.int64)
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    pos = window(i, j, h, w, kernel, stride, padding)
                    best = pos[0]
                    for p in pos:
                        a, b = x[n, c][p], x[n, c][best]
                        if np.isnan(b):
                            break
                        if np.isnan(a) or a > b:
                            best = p
                    mx[n, c, i, j] = x[n, c][best]
                    arg[n, c, i, j] = best[0] * w + best[1]
                    total = sum(x[n, c][p] for p in pos)
                    inc[n, c, i, j] = total / (kernel[0] * kernel[1])
                    exc[n, c, i, j] = total / len(pos)
    return mx, arg, inc, exc


TINY = [  # (shape, kernel, stride, padding)
    ((1, 1, 4, 4), 2, None, 0),
    ((2, 2, 5, 7), 3, 2, 1),
    ((1, 2, 6, 5), (2, 3), (1, 2), (1, 1)),
    ((2, 1, 7, 7), 3, 3, 0),
    ((1, 1, 3, 4), (3, 4), 1, (1, 2)),
]


@pytest.mark.parametrize("shape,kernel,stride,padding", TINY)
def test_reference_pools_match_window_loops(shape, kernel, stride, padding):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape)
    x.flat[rng.choice(x.size, 2, replace=False)] = np.nan
    x[..., 0, :] = np.round(x[..., 0, :])                 # some ties
    mx, arg, inc, exc = naive_pools(x, kernel, stride, padding)
    for impl in (ref, fastconv):
        y, idx = impl.maxpool2d_forward(x, kernel, stride, padding)
        np.testing.assert_array_equal(y, mx)
        np.testing.assert_array_equal(idx, arg)
        np.testing.assert_allclose(impl.avgpool2d_forward(x, kernel, stride, padding, True), inc, rtol=1e-13)
        np.testing.assert_allclose(impl.avgpool2d_forward(x, kernel, stride, padding, False), exc, rtol=1e-13)


@pytest.mark.parametrize("impl", [ref, fastconv], ids=["reference", "fastconv"])
@pytest.mark.parametrize("shape,kernel,stride,padding", TINY)
def test_pool_backward_matches_finite_differences(impl, shape, kernel, stride, padding):
    rng = np.random.default_rng(7)
    # distinct values 0.01 apart: max pooling is linear within +-h of x
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01
    y, idx = ref.maxpool2d_forward(x, kernel, stride, padding)
    g = rng.standard_normal(y.shape)
    dx = impl.maxpool2d_backward(g, idx, shape)
    num = numerical_grad(lambda: float(np.sum(g * ref.maxpool2d_forward(x, kernel, stride, padding)[0])), x)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)
    for include in (True, False):
        def loss():
            return float(np.sum(g * ref.avgpool2d_forward(x, kernel, stride, padding, include)))
        dx = impl.avgpool2d_backward(g, shape, kernel, stride, padding, include)
        np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("pool", [
    lambda x: fastconv.maxpool2d_forward(x, 2, 1, 1),
    lambda x: fastconv.avgpool2d_forward(x, 2, 1, 1),
])
def test_pooling_an_empty_plane_is_refused(pool):
    """With H or W = 0 every window would lie in the padding: a clear error, not numpy's reshape failure."""
    with pytest.raises(ValueError, match="height and width must be at least 1"):
        pool(np.zeros((1, 1, 0, 3)))
