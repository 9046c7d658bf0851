"""fastconv convolution kernels (conv2d_forward/backward, im2col, col2im) against fastconv.reference.

The reference itself is checked independently here: against a direct nested-loop convolution and a loop
im2col on tiny inputs, by central finite differences (float64), and im2col/col2im by their adjointness.
"""
import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.conv
from fastconv import reference as ref
from kernel_checks import DTYPES, assert_close, numerical_grad, out_size, pair, randn

RTOL = {np.float32: 1e-4, np.float64: 1e-10}

# Every test of this module runs on each instruction set of the float32 engine that this CPU supports.
pytestmark = pytest.mark.usefixtures("each_isa")


@contextlib.contextmanager
def block_bytes(nbytes):
    """Temporarily shrink the convolution's column block (forces many blocks per image)."""
    saved = fastconv.conv.BLOCK_BYTES
    fastconv.conv.BLOCK_BYTES = nbytes
    try:
        yield
    finally:
        fastconv.conv.BLOCK_BYTES = saved


def check_conv(n, c, h, w, k, kernel, stride, padding, bias, dtype, seed=0):
    """Forward and backward (with and without dx) of the kernel against the float64 reference."""
    rng = np.random.default_rng(seed)
    kh, kw = pair(kernel)
    x = randn(rng, (n, c, h, w), dtype)
    wt = randn(rng, (k, c, kh, kw), dtype)
    b = randn(rng, (k,), dtype) if bias else None
    x64, w64 = x.astype(np.float64), wt.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)

    y = fastconv.conv2d_forward(x, wt, b, stride, padding)
    y_ref = ref.conv2d_forward(x64, w64, b64, stride, padding)
    y_mag = ref.conv2d_forward(np.abs(x64), np.abs(w64), None if b is None else np.abs(b64), stride, padding)
    assert_close(y, y_ref, dtype, y_mag, RTOL[dtype])

    dy = randn(rng, y.shape, dtype)
    dx, dw, db = fastconv.conv2d_backward(dy, x, wt, stride, padding)
    dx_ref, dw_ref, db_ref = ref.conv2d_backward(dy.astype(np.float64), x64, w64, stride, padding)
    dx_mag, dw_mag, _ = ref.conv2d_backward(np.abs(dy).astype(np.float64), np.abs(x64), np.abs(w64), stride,
                                            padding)
    assert_close(dx, dx_ref, dtype, dx_mag, RTOL[dtype])
    assert_close(dw, dw_ref, dtype, dw_mag, RTOL[dtype])
    assert_close(db, db_ref, dtype, np.abs(dy).astype(np.float64).sum(axis=(0, 2, 3)), RTOL[dtype])

    none, dw2, db2 = fastconv.conv2d_backward(dy, x, wt, stride, padding, need_dx=False)
    assert none is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


# ------------------------------------------------------------------------------------- named grid
# (N, C, H, W, K, kernel, stride, padding, bias)
CONV_CASES = {
    "pointwise-1x1": (2, 5, 7, 9, 4, 1, 1, 0, True),
    "pointwise-1x1-batch1-C1": (1, 1, 5, 3, 1, 1, 1, 0, False),
    "1x1-stride2": (2, 5, 7, 9, 4, 1, 2, 0, True),
    "1x1-stride-2x3": (3, 2, 9, 10, 3, 1, (2, 3), 0, False),
    "1x1-pad1": (2, 3, 4, 5, 2, 1, 1, 1, True),
    "3x3-batch1-C1": (1, 1, 5, 5, 1, 3, 1, 0, False),
    "3x3-same": (3, 4, 9, 9, 5, 3, 1, 1, True),
    "odd-hw-nonsquare-kernel": (3, 3, 11, 7, 4, (3, 2), 1, (1, 1), True),
    "nonsquare-kernel-2x5": (2, 2, 6, 13, 3, (2, 5), 1, (1, 2), True),
    "stride2-pad1": (2, 3, 9, 9, 3, 3, 2, 1, True),
    "stride2-even-input": (2, 3, 10, 8, 3, 3, 2, 0, False),
    "stride3": (2, 2, 13, 10, 3, 3, 3, 0, True),
    "stride3-pad1": (2, 2, 13, 10, 3, 3, 3, 1, False),
    "stride-larger-than-kernel": (2, 2, 11, 11, 2, 2, 3, 0, True),
    "nonsquare-stride-2x1": (2, 3, 9, 8, 2, (3, 2), (2, 1), (1, 0), True),
    "nonsquare-stride-1x3": (3, 2, 7, 14, 2, (2, 3), (1, 3), (0, 1), True),
    "5x5-pad2": (2, 3, 12, 11, 4, 5, 1, 2, True),
    "5x4-pad-2x1-stride2": (2, 3, 12, 11, 4, (5, 4), 2, (2, 1), True),
    "kernel-equals-input": (2, 2, 4, 3, 3, (4, 3), 1, 0, True),
    "kernel-equals-padded-input": (2, 2, 3, 3, 2, 5, 1, 1, True),
    "padding-larger-than-half-kernel": (2, 2, 5, 6, 2, 3, 1, 3, True),
    "single-pixel-input": (2, 3, 1, 1, 2, 3, 1, 1, True),
    "many-blocks-C64-3x3-40x40": (3, 64, 40, 40, 8, 3, 1, 1, True),
    "many-blocks-C64-stride2": (5, 64, 40, 41, 6, 3, 2, 1, False),
    "many-blocks-pointwise": (3, 300, 30, 30, 4, 1, 1, 0, True),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CONV_CASES.values()), ids=list(CONV_CASES))
def test_conv_matches_reference_named_grid(case, dtype):
    check_conv(*case, dtype=dtype)


def test_grid_really_has_several_blocks_per_image():
    """The 'many-blocks' cases split every image into several column blocks with the default block size."""
    for name, (n, c, h, w, k, kernel, stride, padding, _) in CONV_CASES.items():
        if name.startswith("many-blocks"):
            kh, kw = pair(kernel)
            (sh, sw), (ph, pw) = pair(stride), pair(padding)
            pixels = out_size(h, kh, sh, ph) * out_size(w, kw, sw, pw)
            for dtype in DTYPES:
                block = fastconv.conv._block_pixels(c * kh * kw, pixels, np.dtype(dtype).itemsize)
                assert pixels // block >= 2, (name, dtype, block, pixels)


# Combinatorial sweep: kernel x stride x every padding 0..k//2, small odd inputs, N=3, C=2.
SWEEP = [
    (kernel, stride, (ph, pw))
    for kernel in [(1, 1), (2, 2), (3, 3), (2, 3), (4, 1), (5, 3)]
    for stride in [1, 2, 3, (1, 2), (3, 2)]
    for ph in range(kernel[0] // 2 + 1)
    for pw in range(kernel[1] // 2 + 1)
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kernel,stride,padding", SWEEP, ids=[f"k{k}-s{s}-p{p}" for k, s, p in SWEEP])
def test_conv_matches_reference_sweep(kernel, stride, padding, dtype):
    check_conv(3, 2, 9, 7, 3, kernel, stride, padding, True, dtype, seed=1)


# ------------------------------------------------------------------------------------ block splitting
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(
    "n,c,h,w,kernel,stride,padding",
    [
        (3, 2, 13, 11, 3, 1, 1),        # OW=11 does not divide the block: blocks start mid-row
        (5, 3, 19, 9, (2, 3), (2, 1), (1, 1)),
        (3, 4, 12, 13, 1, 1, 0),        # pointwise path, blocks start mid-row
        (2, 3, 15, 17, 1, 2, 0),        # 1x1 stride 2 (not the pointwise path)
        (3, 1, 7, 200, 3, 1, 1),        # one block covers less than one output row
    ],
)
def test_conv_many_small_blocks_starting_mid_row(monkeypatch, n, c, h, w, kernel, stride, padding, dtype):
    monkeypatch.setattr(fastconv.conv, "BLOCK_BYTES", 1)     # -> the minimum block of about 32 pixels
    kh, kw = pair(kernel)
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    ow = out_size(w, kw, sw, pw)
    pixels = out_size(h, kh, sh, ph) * ow
    block = fastconv.conv._block_pixels(c * kh * kw, pixels, np.dtype(dtype).itemsize)
    assert pixels // block >= 2 and (block % ow != 0 or ow > block)
    check_conv(n, c, h, w, 3, kernel, stride, padding, True, dtype, seed=2)


def test_block_size_does_not_change_the_forward_result():
    """Different block splits give the same convolution (each output pixel is one GEMM dot product)."""
    rng = np.random.default_rng(3)
    x = randn(rng, (3, 5, 21, 19), np.float64)
    w = randn(rng, (4, 5, 3, 3), np.float64)
    b = randn(rng, (4,), np.float64)
    y_ref = ref.conv2d_forward(x, w, b, 1, 1)
    for nbytes in (1, 1000, 5000, 1 << 20):
        with block_bytes(nbytes):
            y = fastconv.conv2d_forward(x, w, b, 1, 1)
            dx, dw, db = fastconv.conv2d_backward(np.ones_like(y), x, w, 1, 1)
        np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
        dx_ref, dw_ref, db_ref = ref.conv2d_backward(np.ones_like(y), x, w, 1, 1)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dw, dw_ref, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(db, db_ref, rtol=1e-12)


# ------------------------------------------------------------------------------------ hypothesis
@st.composite
def conv_geometry(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2 + 1)), draw(st.integers(0, kw // 2 + 1))
    h = draw(st.integers(max(1, kh - 2 * ph), 12))
    w = draw(st.integers(max(1, kw - 2 * pw), 12))
    n, c, k = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    return n, c, h, w, k, (kh, kw), (sh, sw), (ph, pw)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometry=conv_geometry(), bias=st.booleans(), dtype=st.sampled_from(DTYPES),
       small_blocks=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_conv_matches_reference_random_shapes(geometry, bias, dtype, small_blocks, seed):
    with block_bytes(1 if small_blocks else fastconv.conv.BLOCK_BYTES):
        check_conv(*geometry, bias=bias, dtype=dtype, seed=seed)


@settings(max_examples=40, deadline=None)
@given(geometry=conv_geometry(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1))
def test_im2col_col2im_match_reference_random_shapes(geometry, dtype, seed):
    n, c, h, w, _, kernel, stride, padding = geometry
    rng = np.random.default_rng(seed)
    x = randn(rng, (n, c, h, w), dtype)
    cols = fastconv.im2col(x, kernel, stride, padding)
    np.testing.assert_array_equal(cols, ref.im2col(x, kernel, stride, padding))   # a pure copy: exact
    assert cols.dtype == x.dtype and cols.flags.c_contiguous
    c2 = randn(rng, cols.shape, dtype)
    got = fastconv.col2im(c2, x.shape, kernel, stride, padding)
    want = ref.col2im(c2.astype(np.float64), x.shape, kernel, stride, padding)
    mag = ref.col2im(np.abs(c2).astype(np.float64), x.shape, kernel, stride, padding)
    assert_close(got, want, dtype, mag, RTOL[dtype])


# ------------------------------------------------------------- the reference, checked independently
def naive_conv(x, w, b, stride, padding):
    """The definition: y[n,k,i,j] = b[k] + sum_{c,u,v} x[n, c, i*sh - ph + u, j*sw - pw + v] * w[k, c, u, v]."""
    n_, c_, h_, w_ = x.shape
    k_, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    oh, ow = out_size(h_, kh, sh, ph), out_size(w_, kw, sw, pw)
    y = np.zeros((n_, k_, oh, ow))
    for n in range(n_):
        for k in range(k_):
            for i in range(oh):
                for j in range(ow):
                    s = 0.0 if b is None else b[k]
                    for c in range(c_):
                        for u in range(kh):
                            for v in range(kw):
                                hi, wi = i * sh - ph + u, j * sw - pw + v
                                if 0 <= hi < h_ and 0 <= wi < w_:
                                    s += x[n, c, hi, wi] * w[k, c, u, v]
                    y[n, k, i, j] = s
    return y


def naive_im2col(x, kernel, stride, padding):
    n_, c_, h_, w_ = x.shape
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(padding)
    oh, ow = out_size(h_, kh, sh, ph), out_size(w_, kw, sw, pw)
    cols = np.zeros((n_ * oh * ow, c_ * kh * kw))
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                for c in range(c_):
                    for u in range(kh):
                        for v in range(kw):
                            hi, wi = i * sh - ph + u, j * sw - pw + v
                            if 0 <= hi < h_ and 0 <= wi < w_:
                                cols[(n * oh + i) * ow + j, (c * kh + u) * kw + v] = x[n, c, hi, wi]
    return cols


TINY = [  # (N, C, H, W, K, kernel, stride, padding, bias)
    (1, 1, 3, 3, 1, 1, 1, 0, False),
    (2, 2, 5, 4, 3, (3, 2), (2, 1), (1, 0), True),
    (1, 3, 4, 6, 2, 3, (1, 2), 1, True),
    (2, 1, 7, 5, 2, (2, 4), 3, (1, 2), True),
    (1, 2, 2, 3, 2, 4, 2, 2, False),          # padding beyond k//2: some windows see mostly padding
]


@pytest.mark.parametrize("case", TINY)
def test_reference_conv_matches_nested_loop_definition(case):
    n, c, h, w, k, kernel, stride, padding, bias = case
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((k, c) + pair(kernel))
    b = rng.standard_normal(k) if bias else None
    want = naive_conv(x, wt, b, stride, padding)
    np.testing.assert_allclose(ref.conv2d_forward(x, wt, b, stride, padding), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fastconv.conv2d_forward(x, wt, b, stride, padding), want, rtol=1e-12, atol=1e-12)
    cols = naive_im2col(x, kernel, stride, padding)
    np.testing.assert_array_equal(ref.im2col(x, kernel, stride, padding), cols)
    np.testing.assert_array_equal(fastconv.im2col(x, kernel, stride, padding), cols)


@pytest.mark.parametrize("impl", [ref, fastconv], ids=["reference", "fastconv"])
@pytest.mark.parametrize("case", TINY[1:])
def test_conv_backward_matches_finite_differences(impl, case):
    n, c, h, w, k, kernel, stride, padding, _ = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((k, c) + pair(kernel))
    b = rng.standard_normal(k)
    g = rng.standard_normal(ref.conv2d_forward(x, wt, b, stride, padding).shape)

    def loss():
        return float(np.sum(g * ref.conv2d_forward(x, wt, b, stride, padding)))

    dx, dw, db = impl.conv2d_backward(g, x, wt, stride, padding)
    # the loss is linear in each argument, so central differences are exact up to rounding
    np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dw, numerical_grad(loss, wt), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, numerical_grad(loss, b), rtol=1e-6, atol=1e-8)


ADJOINT_CASES = [
    ((2, 3, 7, 6), 3, 1, 1),
    ((1, 2, 8, 9), (2, 3), (2, 3), (1, 1)),
    ((3, 1, 10, 10), 2, 3, 0),                 # stride > kernel: some inputs are in no window
    ((2, 2, 5, 5), 1, 2, 0),
    ((2, 2, 4, 4), 5, 1, 2),
    ((1, 4, 9, 7), (4, 2), (1, 2), (2, 1)),
]


@pytest.mark.parametrize("impl", [ref, fastconv], ids=["reference", "fastconv"])
@pytest.mark.parametrize("shape,kernel,stride,padding", ADJOINT_CASES)
def test_im2col_col2im_are_adjoint(impl, shape, kernel, stride, padding):
    """<im2col(x), c> == <x, col2im(c)> for random x and c."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape)
    cols = impl.im2col(x, kernel, stride, padding)
    c = rng.standard_normal(cols.shape)
    lhs = np.sum(cols * c)
    rhs = np.sum(x * impl.col2im(c, shape, kernel, stride, padding))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


def test_col2im_sums_overlaps():
    """All-ones columns fold to the number of windows covering each input pixel."""
    x_shape = (1, 1, 4, 5)
    cols = np.ones((1 * 4 * 5, 9))                     # 3x3, stride 1, padding 1 -> 4x5 output
    got = fastconv.col2im(cols, x_shape, 3, 1, 1)
    rows = np.array([2, 3, 3, 2])[:, None]
    colz = np.array([2, 3, 3, 3, 2])[None, :]
    np.testing.assert_array_equal(got[0, 0], rows * colz)


# ------------------------------------------------- "same"-width convolutions (one copy per kernel tap)
SAME_WIDTH = [  # stride 1 and OW == W: the kernel unfolds each tap as one shifted run of the input plane
    (3, 2, 9, 9, 3, 1, 1),
    (2, 3, 6, 11, (3, 5), 1, (1, 2)),
    (2, 2, 7, 5, (1, 3), 1, (0, 1)),
    (2, 2, 5, 8, (5, 1), 1, (1, 0)),       # OH != H, OW == W
    (2, 3, 12, 11, 5, 1, 2),
    (1, 1, 1, 1, 3, 1, 1),                 # every tap but the centre lies in the padding
    (2, 2, 2, 1, 5, 1, 2),                 # padding wider than the input
    (3, 1, 4, 7, 7, 1, 3),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("nbytes", [None, 64], ids=["one-block", "tiny-blocks"])
@pytest.mark.parametrize("n,c,h,w,kernel,stride,padding", SAME_WIDTH)
def test_same_width_convolutions_match_reference(n, c, h, w, kernel, stride, padding, nbytes, dtype):
    with block_bytes(nbytes if nbytes is not None else fastconv.conv.BLOCK_BYTES):
        check_conv(n, c, h, w, 3, kernel, stride, padding, True, dtype)
    kh, kw = pair(kernel)
    cols = ref.im2col(np.arange(n * c * h * w, dtype=dtype).reshape(n, c, h, w), kernel, stride, padding)
    got = fastconv.im2col(np.arange(n * c * h * w, dtype=dtype).reshape(n, c, h, w), kernel, stride, padding)
    np.testing.assert_array_equal(got, cols)
    np.testing.assert_array_equal(fastconv.col2im(cols, (n, c, h, w), kernel, stride, padding),
                                  ref.col2im(cols, (n, c, h, w), kernel, stride, padding))
