"""fastconv's public API around the kernels: argument validation, input layouts (non-contiguous, read-only,
lists), empty batches, thread control, concurrent calls from Python threads, and build configuration."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

import fastconv
import fastconv.conv
from fastconv import reference as ref

F32, F64 = np.float32, np.float64


def randn(shape, dtype=F64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.fixture
def restore_threads():
    """Put back fastconv's thread count and every BLAS library's thread count after the test."""
    saved = fastconv.get_num_threads()
    blas = {lib.filepath: lib.num_threads for lib in ThreadpoolController().select(user_api="blas").lib_controllers}
    yield
    fastconv.set_num_threads(saved)
    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        if lib.filepath in blas:
            lib.set_num_threads(blas[lib.filepath])
    assert fastconv.get_num_threads() == saved


# -------------------------------------------------------------------------------- every kernel
def run_all(x, w, b, dy_conv, xp, dy_pool, xb, gamma, beta, dy_bn):
    """Every public kernel on the given inputs; returns a dict name -> tuple of result arrays."""
    out = {}
    out["conv_fwd"] = (fastconv.conv2d_forward(x, w, b, 2, 1),)
    out["conv_bwd"] = fastconv.conv2d_backward(dy_conv, x, w, 2, 1)
    out["conv_bwd_nodx"] = fastconv.conv2d_backward(dy_conv, x, w, 2, 1, need_dx=False)[1:]
    out["im2col"] = (fastconv.im2col(x, np.shape(w)[2:], 2, 1),)
    cols = np.asarray(out["im2col"][0])
    out["col2im"] = (fastconv.col2im(cols * 0.5, np.shape(x), np.shape(w)[2:], 2, 1),)
    y, idx = fastconv.maxpool2d_forward(xp, 3, 2, 1)
    out["maxpool_fwd"] = (y, idx)
    out["maxpool_bwd"] = (fastconv.maxpool2d_backward(dy_pool, idx, np.shape(xp)),)
    out["avgpool_fwd"] = (fastconv.avgpool2d_forward(xp, 3, 2, 1, count_include_pad=False),)
    out["avgpool_bwd"] = (fastconv.avgpool2d_backward(dy_pool, np.shape(xp), 3, 2, 1),)
    y, mean, invstd = fastconv.batchnorm_forward(xb, gamma, beta)
    out["bn_fwd"] = (y, mean, invstd)
    out["bn_bwd"] = fastconv.batchnorm_backward(dy_bn, xb, gamma, mean, invstd)
    out["bn_inf"] = (fastconv.batchnorm_inference(xb, gamma, beta, mean, np.abs(beta)),)
    return out


def inputs(dtype=F64, seed=0, n=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4, 9, 8)).astype(dtype)
    w = rng.standard_normal((5, 4, 3, 2)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    dy_conv = rng.standard_normal((n, 5, 5, 5)).astype(dtype)
    xp = rng.standard_normal((n, 3, 7, 10)).astype(dtype)
    dy_pool = rng.standard_normal((n, 3, 4, 5)).astype(dtype)
    xb = rng.standard_normal((n, 6, 4, 3)).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, 6).astype(dtype)
    beta = rng.standard_normal(6).astype(dtype)
    dy_bn = rng.standard_normal((n, 6, 4, 3)).astype(dtype)
    return [x, w, b, dy_conv, xp, dy_pool, xb, gamma, beta, dy_bn]


def assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for u, v in zip(a[name], b[name]):
            assert u.dtype == v.dtype and u.shape == v.shape, name
            np.testing.assert_array_equal(u, v, err_msg=name)


# ----------------------------------------------------------------------- layouts and input types
def non_contiguous(a):
    """The same values in a non-contiguous view (a transposed copy transposed back, or a strided slice)."""
    if a.ndim >= 2:
        t = np.ascontiguousarray(np.swapaxes(a, -1, -2))
        v = np.swapaxes(t, -1, -2)
    else:
        big = np.empty(a.shape[0] * 3, dtype=a.dtype)
        big[::3] = a
        v = big[::3]
    assert not v.flags.c_contiguous and np.array_equal(v, a)
    return v


KERNELS = {   # name -> (call on the inputs() list, indices of the inputs() it reads)
    "conv_forward": (lambda a: (fastconv.conv2d_forward(a[0], a[1], a[2], 2, 1),), (0, 1, 2)),
    "conv_backward": (lambda a: fastconv.conv2d_backward(a[3], a[0], a[1], 2, 1), (3, 0, 1)),
    "conv_backward_need_dx_false": (lambda a: fastconv.conv2d_backward(a[3], a[0], a[1], 2, 1, need_dx=False)[1:],
                                    (3, 0, 1)),
    "im2col": (lambda a: (fastconv.im2col(a[0], (3, 2), 2, 1),), (0,)),
    "col2im": (lambda a: (fastconv.col2im(a[10], (3, 4, 9, 8), (3, 2), 2, 1),), (10,)),
    "maxpool_forward": (lambda a: fastconv.maxpool2d_forward(a[4], 3, 2, 1), (4,)),
    "maxpool_backward": (lambda a: (fastconv.maxpool2d_backward(a[5], a[11], (3, 3, 7, 10)),), (5, 11)),
    "avgpool_forward": (lambda a: (fastconv.avgpool2d_forward(a[4], 3, 2, 1, count_include_pad=False),), (4,)),
    "avgpool_backward": (lambda a: (fastconv.avgpool2d_backward(a[5], (3, 3, 7, 10), 3, 2, 1),), (5,)),
    "batchnorm_forward": (lambda a: fastconv.batchnorm_forward(a[6], a[7], a[8]), (6, 7, 8)),
    "batchnorm_backward": (lambda a: fastconv.batchnorm_backward(a[9], a[6], a[7], a[12], a[13]), (9, 6, 7, 12, 13)),
    "batchnorm_inference": (lambda a: (fastconv.batchnorm_inference(a[6], a[7], a[8], a[12], a[14]),),
                            (6, 7, 8, 12, 14)),
}


def kernel_inputs(dtype):
    """inputs() plus the arrays some kernels take from others (columns, indices, statistics)."""
    a = inputs(dtype)
    a.append(fastconv.im2col(a[0], (3, 2), 2, 1) * 0.5)                       # 10: cols
    a.append(fastconv.maxpool2d_forward(a[4], 3, 2, 1)[1])                     # 11: indices
    _, mean, invstd = fastconv.batchnorm_forward(a[6], a[7], a[8])
    a += [mean, invstd, np.abs(a[8])]                                          # 12, 13, 14
    return a


LAYOUTS = {
    "non-contiguous": lambda a: non_contiguous(a),
    "fortran-order": lambda a: np.asfortranarray(a),
    "read-only": lambda a: read_only(a),
    "read-only-non-contiguous": lambda a: read_only(non_contiguous(a)),
}


def read_only(a):
    a = a.copy() if a.flags.c_contiguous else a
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(KERNELS))
def test_non_contiguous_and_read_only_inputs_give_identical_results(name, dtype, layout):
    call, used = KERNELS[name]
    args = kernel_inputs(dtype)
    want = call(args)
    changed = [LAYOUTS[layout](a) if i in used else a for i, a in enumerate(args)]
    got = call(changed)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def test_strided_views_of_a_larger_array():
    x, w, b = inputs(F64)[:3]
    big = np.zeros(x.shape[:2] + (2 * x.shape[2], 3 * x.shape[3]))
    big[:, :, ::2, ::3] = x
    view = big[:, :, ::2, ::3]
    np.testing.assert_array_equal(fastconv.conv2d_forward(view, w, b, 2, 1), fastconv.conv2d_forward(x, w, b, 2, 1))
    np.testing.assert_array_equal(fastconv.maxpool2d_forward(view, 3, 2, 1)[0],
                                  fastconv.maxpool2d_forward(x, 3, 2, 1)[0])
    xb = big[:, 0, 1, :].T                                              # (24, 3), a transposed slice
    gamma, beta = np.ones(3), np.zeros(3)
    np.testing.assert_array_equal(fastconv.batchnorm_forward(xb, gamma, beta)[0],
                                  fastconv.batchnorm_forward(np.ascontiguousarray(xb), gamma, beta)[0])


def test_kernels_do_not_modify_their_inputs():
    args = inputs(F64)
    copies = [a.copy() for a in args]
    run_all(*args)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)


def test_results_are_fresh_arrays_not_scratch_buffers():
    """Results must not alias the per-thread scratch buffers: a later call must not change them."""
    x, w, b = inputs(F64)[:3]
    y1 = fastconv.conv2d_forward(x, w, b, 2, 1)
    keep = y1.copy()
    dx1, dw1, db1 = fastconv.conv2d_backward(np.ones_like(y1), x, w, 2, 1)
    keep_b = (dx1.copy(), dw1.copy(), db1.copy())
    fastconv.conv2d_forward(x * 3, w, b, 2, 1)
    fastconv.conv2d_backward(np.ones_like(y1) * 5, x * 2, w, 2, 1)
    np.testing.assert_array_equal(y1, keep)
    for got, kept in zip((dx1, dw1, db1), keep_b):
        np.testing.assert_array_equal(got, kept)


def test_lists_of_floats_are_accepted_as_float64():
    args = inputs(F64)
    want = run_all(*args)
    got = run_all(*[a.tolist() for a in args])
    assert_same(got, want)


def test_lists_of_ints_are_rejected():
    x = np.zeros((1, 1, 4, 4)).tolist()
    x_int = np.zeros((1, 1, 4, 4), dtype=np.int64).tolist()
    w = np.ones((1, 1, 2, 2))
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        fastconv.conv2d_forward(x_int, w)
    with pytest.raises(TypeError, match="w must be float32 or float64"):
        fastconv.conv2d_forward(x, [[[[1, 2], [3, 4]]]])
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        fastconv.maxpool2d_forward(x_int, 2)


def test_float_list_with_float32_array_is_a_dtype_mix():
    """A list of Python floats becomes float64, so it does not combine with float32 arrays."""
    w32 = np.ones((1, 1, 2, 2), F32)
    with pytest.raises(TypeError, match="w has dtype float32 but x has float64"):
        fastconv.conv2d_forward(np.zeros((1, 1, 4, 4)).tolist(), w32)
    with pytest.raises(TypeError, match="gamma"):
        fastconv.batchnorm_forward(np.zeros((2, 3), F32), [1.0, 1.0, 1.0], np.zeros(3, F32))


def test_list_shapes_and_sizes_are_accepted():
    x = randn((2, 3, 6, 6))
    y, idx = fastconv.maxpool2d_forward(x, [2, 3], [2, 1], [1, 0])
    y2, idx2 = fastconv.maxpool2d_forward(x, (2, 3), (2, 1), (1, 0))
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(fastconv.maxpool2d_backward(y, idx.tolist(), list(x.shape)),
                                  fastconv.maxpool2d_backward(y, idx, x.shape))
    np.testing.assert_array_equal(fastconv.im2col(x, np.int64(3), np.int32(1)), fastconv.im2col(x, 3, 1))


# ------------------------------------------------------------------------------------ empty batch
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_batch_zero_returns_empty_arrays_of_the_right_shape(dtype):
    x = np.zeros((0, 3, 9, 8), dtype)
    w = randn((4, 3, 3, 2), dtype)
    y = fastconv.conv2d_forward(x, w, np.zeros(4, dtype), 2, 1)
    assert y.shape == (0, 4, 5, 5) and y.dtype == dtype
    dx, dw, db = fastconv.conv2d_backward(y, x, w, 2, 1)
    assert dx.shape == x.shape and dx.dtype == dtype
    np.testing.assert_array_equal(dw, np.zeros_like(w))
    np.testing.assert_array_equal(db, np.zeros(4, dtype))
    assert dw.dtype == db.dtype == dtype
    assert fastconv.conv2d_backward(y, x, w, 2, 1, need_dx=False)[0] is None
    assert fastconv.im2col(x, (3, 2), 2, 1).shape == (0, 18)
    assert fastconv.col2im(np.zeros((0, 18), dtype), x.shape, (3, 2), 2, 1).shape == x.shape

    yp, idx = fastconv.maxpool2d_forward(x, 3, 2, 1)
    assert yp.shape == idx.shape == (0, 3, 5, 4) and yp.dtype == dtype and idx.dtype == np.int64
    dxp = fastconv.maxpool2d_backward(yp, idx, x.shape)
    assert dxp.shape == x.shape and dxp.dtype == dtype
    ya = fastconv.avgpool2d_forward(x, 3, 2, 1)
    assert ya.shape == (0, 3, 5, 4) and ya.dtype == dtype
    dxa = fastconv.avgpool2d_backward(ya, x.shape, 3, 2, 1)
    assert dxa.shape == x.shape and dxa.dtype == dtype

    ones, zeros = np.ones(3, dtype), np.zeros(3, dtype)
    assert fastconv.batchnorm_inference(x, ones, zeros, zeros, ones).shape == x.shape
    for shape in [(0, 3), (0, 3, 4, 4)]:
        with pytest.raises(ValueError, match="at least one value per channel"):
            fastconv.batchnorm_forward(np.zeros(shape, dtype), ones, zeros)


# --------------------------------------------------------------------------------- bad arguments
X = np.zeros((2, 3, 8, 8))
W = np.zeros((4, 3, 3, 3))
DY = np.zeros((2, 4, 6, 6))       # conv output for stride 1, padding 0
P = np.zeros((2, 3, 4, 4))        # 2x2 pooling output
IDX = np.zeros((2, 3, 4, 4), dtype=np.int64)
G = np.ones(3)

BAD = {
    # wrong number of dimensions
    "conv-x-3d": (lambda: fastconv.conv2d_forward(X[0], W), ValueError, "x must be 4-D"),
    "conv-w-2d": (lambda: fastconv.conv2d_forward(X, W[0, 0]), ValueError, "w must be 4-D"),
    "conv-b-2d": (lambda: fastconv.conv2d_forward(X, W, np.zeros((4, 1))), ValueError, "b must be 1-D"),
    "conv-bwd-dy-3d": (lambda: fastconv.conv2d_backward(DY[0], X, W), ValueError, "dy must be 4-D"),
    "im2col-x-5d": (lambda: fastconv.im2col(X[None], 3), ValueError, "x must be 4-D"),
    "col2im-cols-1d": (lambda: fastconv.col2im(np.zeros(5), X.shape, 3), ValueError, "cols must be 2-D"),
    "maxpool-x-2d": (lambda: fastconv.maxpool2d_forward(X[0, 0], 2), ValueError, "x must be 4-D"),
    "avgpool-x-3d": (lambda: fastconv.avgpool2d_forward(X[0], 2), ValueError, "x must be 4-D"),
    "maxpool-bwd-dy-3d": (lambda: fastconv.maxpool2d_backward(P[0], IDX, X.shape), ValueError, "dy must be 4-D"),
    "avgpool-bwd-dy-5d": (lambda: fastconv.avgpool2d_backward(P[None], X.shape, 2), ValueError, "dy must be 4-D"),
    "bn-x-3d": (lambda: fastconv.batchnorm_forward(X[0], G, G), ValueError, "x must be 2-D or 4-D"),
    "bn-x-1d": (lambda: fastconv.batchnorm_inference(G, G, G, G, G), ValueError, "x must be 2-D or 4-D"),
    "bn-gamma-2d": (lambda: fastconv.batchnorm_forward(X, G[None], G), ValueError, "gamma must be 1-D"),
    # shapes that do not fit together
    "conv-channel-mismatch": (lambda: fastconv.conv2d_forward(X, W[:, :2]), ValueError, "channels"),
    "conv-bwd-channel-mismatch": (lambda: fastconv.conv2d_backward(DY, X, W[:, :2]), ValueError, "channels"),
    "conv-no-filters": (lambda: fastconv.conv2d_forward(X, W[:0]), ValueError, "w must have at least one filter"),
    "conv-bias-length": (lambda: fastconv.conv2d_forward(X, W, np.zeros(3)), ValueError, r"b must have shape \(4,\)"),
    "conv-dy-shape": (lambda: fastconv.conv2d_backward(DY[:, :, :5], X, W), ValueError, "dy must have shape"),
    "conv-dy-batch": (lambda: fastconv.conv2d_backward(DY[:1], X, W), ValueError, "dy must have shape"),
    "conv-dy-stride": (lambda: fastconv.conv2d_backward(DY, X, W, stride=2), ValueError, "dy must have shape"),
    "col2im-cols-shape": (lambda: fastconv.col2im(np.zeros((10, 27)), X.shape, 3), ValueError, "cols must have shape"),
    "col2im-input-shape-3": (lambda: fastconv.col2im(np.zeros((72, 27)), (2, 3, 8), 3), ValueError, "input_shape"),
    "col2im-input-shape-neg": (lambda: fastconv.col2im(np.zeros((72, 27)), (2, 3, -8, 8), 3), ValueError,
                               "input_shape"),
    "col2im-input-shape-float": (lambda: fastconv.col2im(np.zeros((72, 27)), (2, 3, 8.0, 8), 3), ValueError,
                                 "input_shape"),
    "maxpool-bwd-indices-shape": (lambda: fastconv.maxpool2d_backward(P, IDX[:, :, :3], X.shape), ValueError,
                                  "indices must have shape"),
    "maxpool-bwd-input-shape-channels": (lambda: fastconv.maxpool2d_backward(P, IDX, (2, 4, 8, 8)), ValueError,
                                         "input_shape"),
    "maxpool-bwd-input-shape-3": (lambda: fastconv.maxpool2d_backward(P, IDX, (2, 3, 8)), ValueError,
                                  "input_shape"),
    "maxpool-bwd-indices-out-of-range": (lambda: fastconv.maxpool2d_backward(P, IDX + 64, X.shape), ValueError,
                                         "indices"),
    "maxpool-bwd-indices-negative": (lambda: fastconv.maxpool2d_backward(P, IDX - 1, X.shape), ValueError,
                                     "indices"),
    "maxpool-bwd-input-shape-too-small": (lambda: fastconv.maxpool2d_backward(P, IDX + 20, (2, 3, 4, 4)),
                                          ValueError, "indices"),
    "avgpool-bwd-dy-shape": (lambda: fastconv.avgpool2d_backward(P, X.shape, 3), ValueError, "dy must have shape"),
    "avgpool-bwd-input-shape": (lambda: fastconv.avgpool2d_backward(P, (2, 3, 8), 2), ValueError, "input_shape"),
    "avgpool-bwd-input-shape-channels": (lambda: fastconv.avgpool2d_backward(P, (2, 5, 8, 8), 2), ValueError,
                                         "dy must have shape"),
    "bn-gamma-length": (lambda: fastconv.batchnorm_forward(X, np.ones(4), G), ValueError,
                        r"gamma must have shape \(3,\)"),
    "bn-beta-length": (lambda: fastconv.batchnorm_forward(X, G, np.ones(2)), ValueError, "beta must have shape"),
    "bn-bwd-dy-shape": (lambda: fastconv.batchnorm_backward(X[:1], X, G, G, G), ValueError, "dy must have shape"),
    "bn-bwd-mean-length": (lambda: fastconv.batchnorm_backward(X, X, G, G[:2], G), ValueError, "mean must have shape"),
    "bn-bwd-invstd-length": (lambda: fastconv.batchnorm_backward(X, X, G, G, np.ones(5)), ValueError,
                             "invstd must have shape"),
    "bn-inf-running-var-length": (lambda: fastconv.batchnorm_inference(X, G, G, G, G[:1]), ValueError,
                                  "running_var must have shape"),
    "bn-inf-negative-var": (lambda: fastconv.batchnorm_inference(X, G, G, G, -G), ValueError, "running_var"),
    "bn-eps-negative": (lambda: fastconv.batchnorm_forward(X, G, G, eps=-1e-5), ValueError, "eps"),
    "bn-eps-nan": (lambda: fastconv.batchnorm_forward(X, G, G, eps=np.nan), ValueError, "eps"),
    "bn-inf-eps-inf": (lambda: fastconv.batchnorm_inference(X, G, G, G, G, eps=np.inf), ValueError, "eps"),
    # dtypes
    "conv-x-int": (lambda: fastconv.conv2d_forward(X.astype(np.int32), W), TypeError, "x must be float32 or float64"),
    "conv-x-float16": (lambda: fastconv.conv2d_forward(X.astype(np.float16), W), TypeError, "x must be float32"),
    "conv-x-complex": (lambda: fastconv.conv2d_forward(X.astype(complex), W), TypeError, "x must be float32"),
    "conv-x-bool": (lambda: fastconv.conv2d_forward(X.astype(bool), W), TypeError, "x must be float32"),
    "conv-x-longdouble": (lambda: fastconv.conv2d_forward(X.astype(np.longdouble), W.astype(np.longdouble)),
                          TypeError, "x must be float32"),
    "conv-w-int": (lambda: fastconv.conv2d_forward(X, W.astype(np.int64)), TypeError, "w must be float32"),
    "conv-b-float16": (lambda: fastconv.conv2d_forward(X, W, np.zeros(4, np.float16)), TypeError, "b must be float32"),
    "conv-mixed-x-w": (lambda: fastconv.conv2d_forward(X.astype(F32), W), TypeError, "w has dtype float64"),
    "conv-mixed-b": (lambda: fastconv.conv2d_forward(X, W, np.zeros(4, F32)), TypeError, "b has dtype float32"),
    "conv-bwd-mixed-dy": (lambda: fastconv.conv2d_backward(DY.astype(F32), X, W), TypeError, "dy has dtype float32"),
    "conv-bwd-dy-int": (lambda: fastconv.conv2d_backward(DY.astype(np.int16), X, W), TypeError, "dy must be float32"),
    "col2im-cols-int": (lambda: fastconv.col2im(np.zeros((72, 27), int), X.shape, 3), TypeError,
                        "cols must be float32"),
    "maxpool-x-complex": (lambda: fastconv.maxpool2d_forward(X.astype(np.complex64), 2), TypeError,
                          "x must be float32"),
    "maxpool-bwd-dy-int": (lambda: fastconv.maxpool2d_backward(P.astype(int), IDX, X.shape), TypeError,
                           "dy must be float32"),
    "maxpool-bwd-indices-float": (lambda: fastconv.maxpool2d_backward(P, IDX.astype(F64), X.shape), TypeError,
                                  "indices"),
    "maxpool-bwd-indices-bool": (lambda: fastconv.maxpool2d_backward(P, IDX.astype(bool), X.shape), TypeError,
                                 "indices"),
    "avgpool-x-float16": (lambda: fastconv.avgpool2d_forward(X.astype(np.float16), 2), TypeError,
                          "x must be float32"),
    "bn-x-int": (lambda: fastconv.batchnorm_forward(X.astype(int), G, G), TypeError, "x must be float32"),
    "bn-mixed-gamma": (lambda: fastconv.batchnorm_forward(X, G.astype(F32), G), TypeError, "gamma has dtype float32"),
    "bn-bwd-mixed-dy": (lambda: fastconv.batchnorm_backward(X.astype(F32), X, G, G, G), TypeError, "dy has dtype"),
    "bn-inf-mixed-mean": (lambda: fastconv.batchnorm_inference(X, G, G, G.astype(F32), G), TypeError,
                          "running_mean has dtype float32"),
    # strides, paddings, kernel sizes
    "conv-stride-0": (lambda: fastconv.conv2d_forward(X, W, stride=0), ValueError, "stride must be >= 1"),
    "conv-stride-negative": (lambda: fastconv.conv2d_forward(X, W, stride=-1), ValueError, "stride must be >= 1"),
    "conv-stride-pair-0": (lambda: fastconv.conv2d_forward(X, W, stride=(1, 0)), ValueError, "stride"),
    "conv-stride-float": (lambda: fastconv.conv2d_forward(X, W, stride=1.5), TypeError, "stride"),
    "conv-stride-triple": (lambda: fastconv.conv2d_forward(X, W, stride=(1, 1, 1)), ValueError, "stride"),
    "conv-padding-negative": (lambda: fastconv.conv2d_forward(X, W, padding=-1), ValueError, "padding must be >= 0"),
    "conv-bwd-padding-negative": (lambda: fastconv.conv2d_backward(DY, X, W, padding=(0, -2)), ValueError,
                                  "padding"),
    "conv-kernel-larger-than-input": (lambda: fastconv.conv2d_forward(X[:, :, :2], W), ValueError,
                                      "larger than the padded input"),
    "conv-kernel-larger-than-padded-input": (lambda: fastconv.conv2d_forward(X[:, :, :1, :1], W, padding=(1, 0)),
                                             ValueError, "larger than the padded input"),
    "im2col-kernel-float": (lambda: fastconv.im2col(X, 2.5), TypeError, "kernel_size"),
    "im2col-kernel-bool": (lambda: fastconv.im2col(X, True), TypeError, "kernel_size"),
    "im2col-kernel-0": (lambda: fastconv.im2col(X, 0), ValueError, "kernel_size"),
    "im2col-stride-0": (lambda: fastconv.im2col(X, 3, 0), ValueError, "stride"),
    "im2col-kernel-too-large": (lambda: fastconv.im2col(X, 9), ValueError, "larger than the padded input"),
    "col2im-padding-negative": (lambda: fastconv.col2im(np.zeros((72, 27)), X.shape, 3, 1, -1), ValueError,
                                "padding"),
    "maxpool-kernel-float": (lambda: fastconv.maxpool2d_forward(X, 2.5), TypeError, "kernel_size"),
    "maxpool-kernel-true": (lambda: fastconv.maxpool2d_forward(X, True), TypeError, "kernel_size"),
    "maxpool-kernel-pair-float": (lambda: fastconv.maxpool2d_forward(X, (2, 2.0)), TypeError, "kernel_size"),
    "maxpool-kernel-none": (lambda: fastconv.maxpool2d_forward(X, None), TypeError, "kernel_size"),
    "maxpool-kernel-0": (lambda: fastconv.maxpool2d_forward(X, 0), ValueError, "kernel_size"),
    "maxpool-stride-0": (lambda: fastconv.maxpool2d_forward(X, 2, 0), ValueError, "stride must be >= 1"),
    "maxpool-stride-negative": (lambda: fastconv.maxpool2d_forward(X, 2, (-2, 2)), ValueError, "stride"),
    "maxpool-padding-negative": (lambda: fastconv.maxpool2d_forward(X, 2, 2, -1), ValueError, "padding"),
    "maxpool-padding-over-half": (lambda: fastconv.maxpool2d_forward(X, 3, 1, 2), ValueError,
                                  "padding .* at most half the kernel"),
    "maxpool-padding-over-half-2x2": (lambda: fastconv.maxpool2d_forward(X, 2, 1, (0, 2)), ValueError,
                                      "padding .* at most half the kernel"),
    "maxpool-kernel-too-large": (lambda: fastconv.maxpool2d_forward(X[:, :, :3], 4), ValueError,
                                 "larger than the padded input"),
    "avgpool-kernel-float": (lambda: fastconv.avgpool2d_forward(X, 2.5), TypeError, "kernel_size"),
    "avgpool-kernel-true": (lambda: fastconv.avgpool2d_forward(X, (True, 2)), TypeError, "kernel_size"),
    "avgpool-stride-0": (lambda: fastconv.avgpool2d_forward(X, 2, 0), ValueError, "stride"),
    "avgpool-padding-over-half": (lambda: fastconv.avgpool2d_forward(X, 3, 1, 2), ValueError,
                                  "padding .* at most half the kernel"),
    "avgpool-kernel-too-large": (lambda: fastconv.avgpool2d_forward(X, (9, 2)), ValueError,
                                 "larger than the padded input"),
    "avgpool-bwd-kernel-float": (lambda: fastconv.avgpool2d_backward(P, X.shape, 2.0), TypeError, "kernel_size"),
    "avgpool-bwd-padding-over-half": (lambda: fastconv.avgpool2d_backward(P, X.shape, 2, 2, 2), ValueError,
                                      "padding"),
}


@pytest.mark.parametrize("call,exc,match", list(BAD.values()), ids=list(BAD))
def test_bad_arguments_raise_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_reference_backward_signature_matches_the_kernel():
    """The reference is called with the same positional arguments as the kernels (need_dx aside)."""
    x, w = randn((2, 3, 6, 5)), randn((2, 3, 3, 3), seed=1)
    y = fastconv.conv2d_forward(x, w, None, (2, 1), (1, 0))
    got = fastconv.conv2d_backward(y, x, w, (2, 1), (1, 0))
    want = ref.conv2d_backward(y, x, w, (2, 1), (1, 0))
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------ threads
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_thread_count_does_not_change_results(restore_threads, monkeypatch, dtype):
    """1, 2 and 3 threads (more than the cores here), batch 5 (not a multiple of 2 or 3).

    Bitwise: everything but the convolution's weight and bias gradients, which are sums of per-thread
    partial sums (the summation order depends on the thread count): those agree to rounding."""
    monkeypatch.setattr(fastconv.conv, "BLOCK_BYTES", 1)        # several blocks per image
    args = inputs(dtype, seed=3, n=5)
    results = {}
    for t in (1, 2, 3):
        fastconv.set_num_threads(t)
        assert fastconv.get_num_threads() == (t if fastconv.openmp_enabled() else 1)   # a serial build: 1
        results[t] = run_all(*args)
    rtol = 1e-5 if dtype == F32 else 1e-12
    for t in (2, 3):
        for name in results[1]:
            for i, (a, b) in enumerate(zip(results[1][name], results[t][name])):
                if (name, i) in {("conv_bwd", 1), ("conv_bwd", 2), ("conv_bwd_nodx", 0), ("conv_bwd_nodx", 1)}:
                    np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * np.abs(a).max(), err_msg=name)
                else:
                    np.testing.assert_array_equal(b, a, err_msg=f"{name}[{i}] with {t} threads")


def test_large_convolution_identical_across_thread_counts(restore_threads):
    """Default block size, several blocks per image (C=64, 3x3, 40x40), batch 3."""
    x = randn((3, 64, 40, 40), F32, seed=4)
    w = randn((8, 64, 3, 3), F32, seed=5)
    dy = randn((3, 8, 40, 40), F32, seed=6)
    out = {}
    for t in (1, 2, 3):
        fastconv.set_num_threads(t)
        out[t] = (fastconv.conv2d_forward(x, w, None, 1, 1),) + fastconv.conv2d_backward(dy, x, w, 1, 1)
    for t in (2, 3):
        np.testing.assert_array_equal(out[t][0], out[1][0])      # y: each block is computed the same way
        np.testing.assert_array_equal(out[t][1], out[1][1])      # dx: per image
        np.testing.assert_allclose(out[t][2], out[1][2], rtol=1e-5, atol=1e-5 * np.abs(out[1][2]).max())
        np.testing.assert_allclose(out[t][3], out[1][3], rtol=1e-5, atol=1e-5 * np.abs(out[1][3]).max())


@pytest.mark.parametrize("bad", [0, -1, "2", 2.0, True, None])
def test_set_num_threads_rejects_non_positive_ints(restore_threads, bad):
    before = fastconv.get_num_threads()
    with pytest.raises(ValueError, match="threads"):
        fastconv.set_num_threads(bad)
    assert fastconv.get_num_threads() == before


def test_set_num_threads_keeps_the_kernel_blas_single_threaded(restore_threads):
    """The kernels call BLAS from inside their OpenMP region, so the BLAS behind scipy.linalg.cython_blas must
    stay at 1 thread (threads.py's design) whatever set_num_threads is given."""
    kernel_blas = set(fastconv.config()["kernel_blas"])
    assert kernel_blas
    for t in (1, 3, 2):
        fastconv.set_num_threads(t)
        counts = {lib.filepath: lib.num_threads
                  for lib in ThreadpoolController().select(user_api="blas").lib_controllers
                  if lib.filepath in kernel_blas}
        assert counts and all(n == 1 for n in counts.values()), f"after set_num_threads({t}): {counts}"


# ------------------------------------------------------------------------------------- concurrency
def test_concurrent_calls_from_python_threads_match_serial_results():
    """4 Python threads calling every kernel at once, different inputs (and sizes) per thread, several rounds:
    the per-thread scratch workspaces must not be shared."""
    jobs = []
    for seed in range(8):
        n = 1 + seed % 4
        jobs.append(inputs(F32 if seed % 2 else F64, seed=seed, n=n))
    # one large convolution per thread too: several blocks, the workspace grows
    big = [(randn((2 + s % 2, 32, 30 + s, 30), F32, seed=10 + s), randn((6, 32, 3, 3), F32, seed=20 + s))
           for s in range(4)]

    def work_small(args):
        return run_all(*args)

    def work_big(xw):
        x, w = xw
        y = fastconv.conv2d_forward(x, w, None, 1, 1)
        return (y,) + fastconv.conv2d_backward(np.ones_like(y), x, w, 1, 1)

    serial_small = [work_small(a) for a in jobs]
    serial_big = [work_big(a) for a in big]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(4):
            got_small = list(pool.map(work_small, jobs))
            got_big = list(pool.map(work_big, big))
            for got, want in zip(got_small, serial_small):
                assert_same(got, want)
            for got, want in zip(got_big, serial_big):
                for g, w in zip(got, want):
                    np.testing.assert_array_equal(g, w)


# ------------------------------------------------------------------------------------ configuration
CONFIG_KEYS = {"version", "kernel_blas", "numpy", "openmp", "openmp_default_threads", "num_threads",
               "float_types", "blas"}


def test_config_has_the_documented_keys():
    cfg = fastconv.config()
    assert CONFIG_KEYS <= set(cfg)
    assert cfg["version"] == fastconv.__version__
    assert cfg["numpy"] == np.__version__
    assert isinstance(cfg["openmp"], bool)
    assert cfg["num_threads"] == fastconv.get_num_threads()
    assert cfg["float_types"] == ["float32", "float64"]
    assert isinstance(cfg["openmp_default_threads"], int) and cfg["openmp_default_threads"] >= 1
    assert isinstance(cfg["blas"], list) and isinstance(cfg["kernel_blas"], list)


def test_openmp_enabled_agrees_with_config():
    assert fastconv.openmp_enabled() is fastconv.config()["openmp"]
    if not fastconv.openmp_enabled():
        assert fastconv.get_num_threads() == 1


def test_show_config_prints_openmp_and_thread_count(restore_threads, capsys):
    fastconv.set_num_threads(3)
    fastconv.show_config()
    out = capsys.readouterr().out
    assert f"fastconv {fastconv.__version__}" in out
    on = "on" if fastconv.openmp_enabled() else "OFF"
    assert any(line.split()[:2] == ["OpenMP:", on] for line in out.splitlines()), out
    threads = fastconv.get_num_threads()
    assert any(line.split() == ["threads:", str(threads)] for line in out.splitlines()), out
    assert "float32, float64" in out
