"""The float32 convolution engine (src/fastconv/csrc): instruction-set dispatch, and accuracy on larger shapes.

The grid, sweep and property tests of test_fastconv_conv.py run on every instruction set already; here:
choosing the set (API and ``FASTCONV_ISA``), the FMA-peak probe, and the accuracy bound the engine promises
(docs/PERFORMANCE.md) on shapes with channel counts off the SIMD multiples, planes from 1x1 to 57x57, batches up
to 130 and several thread counts: float32 results within ``2e-4 (|ref| + 1) + 5e-5 max|ref|`` of a float64
reference computed on the same float32 inputs, float64 within ``1e-9 (|ref| + 1)``.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import reference as ref


def test_isa_names_and_default():
    available = fastconv.available_isas()
    assert available[0] == "generic"
    assert set(available) <= {"generic", "avx2", "avx512"}
    assert fastconv.get_isa() in available


def test_set_isa_round_trip_and_errors():
    previous = fastconv.get_isa()
    try:
        for name in fastconv.available_isas():
            fastconv.set_isa(name)
            assert fastconv.get_isa() == name
        with pytest.raises(ValueError, match="instruction set must be one of"):
            fastconv.set_isa("sse9")
        with pytest.raises(ValueError):
            fastconv.set_isa(None)
        unsupported = [n for n in ("avx2", "avx512") if n not in fastconv.available_isas()]
        for name in unsupported:
            with pytest.raises(ValueError, match="not supported by this CPU"):
                fastconv.set_isa(name)
    finally:
        fastconv.set_isa(previous)


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_environment_variable_chooses_the_isa():
    done = _python("import fastconv; print(fastconv.get_isa())", FASTCONV_ISA="generic")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "generic"


def test_environment_variable_with_a_bad_name_fails_at_import():
    done = _python("import fastconv", FASTCONV_ISA="quantum")
    assert done.returncode != 0
    assert "FASTCONV_ISA='quantum'" in done.stderr


def test_fma_peak_probe():
    assert fastconv.measure_fma_peak(1, seconds=0.02) > 0.1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            fastconv.measure_fma_peak(bad)
    with pytest.raises(ValueError):
        fastconv.measure_fma_peak(1, seconds=0)


# (N, C, H, W, K, kernel, stride, padding)
LARGE = [
    (130, 3, 9, 9, 17, 3, 1, 1),       # many tiny images: pixel panels span images
    (2, 257, 7, 7, 130, 3, 1, 1),      # channels just past SIMD multiples, outer-product weight gradient
    (3, 33, 57, 57, 9, 3, 1, 1),       # large odd plane
    (4, 513, 1, 1, 66, 1, 1, 0),       # 1x1 plane
    (5, 100, 3, 3, 512, 3, 1, 1),      # many output channels on a 3x3 plane
    (7, 31, 15, 13, 47, 5, 1, 2),      # 5x5, odd everything
    (3, 19, 23, 23, 37, 3, 2, 1),      # strided (dx from the im2col + BLAS path)
    (33, 130, 3, 3, 257, 3, 1, 1),     # Winograd F(3x3, 3x3) (with 32+ images), its weight gradient too
    (34, 67, 13, 11, 130, 3, 1, 1),    # Winograd F(4x4, 3x3) with partial tiles
]


def _bound_ok(got, want, dtype):
    err = np.abs(got.astype(np.float64) - want)
    if dtype == np.float32:
        bound = 2e-4 * (np.abs(want) + 1) + 5e-5 * np.abs(want).max()
    else:
        bound = 1e-9 * (np.abs(want) + 1)
    return float((err / bound).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", LARGE, ids=[f"{c[0]}x{c[1]}x{c[2]}x{c[3]}-k{c[4]}-{c[5]}x{c[5]}-s{c[6]}"
                                              for c in LARGE])
def test_accuracy_bound_on_large_shapes(each_isa, case, dtype):
    n, c, h, w, k, ks, s, p = case
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c, ks, ks)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    x64, w64, b64 = x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64)
    y_ref = ref.conv2d_forward(x64, w64, b64, s, p)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    dx_ref, dw_ref, db_ref = ref.conv2d_backward(dy.astype(np.float64), x64, w64, s, p)
    for threads in (1, 3):
        fastconv.set_num_threads(threads)
        try:
            y = fastconv.conv2d_forward(x, wt, b, s, p)
            dx, dw, db = fastconv.conv2d_backward(dy, x, wt, s, p)
        finally:
            fastconv.set_num_threads(2)
        for name, got, want in (("y", y, y_ref), ("dx", dx, dx_ref), ("dw", dw, dw_ref), ("db", db, db_ref)):
            ratio = _bound_ok(got, want, dtype)
            assert ratio <= 1, f"{name} with {threads} threads: error is {ratio:.3g} times the bound"


@pytest.mark.parametrize("n,c", [(9, 20), (40, 72)], ids=["gemm", "winograd"])
def test_results_do_not_depend_on_thread_timing(each_isa, n, c):
    """Repeated calls give bitwise the same results (no partial sums added in thread order)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, c, 11, 11)).astype(np.float32)
    wt = rng.standard_normal((100, c, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((n, 100, 11, 11)).astype(np.float32)
    first = fastconv.conv2d_forward(x, wt, None, 1, 1), *fastconv.conv2d_backward(dy, x, wt, 1, 1)
    for _ in range(3):
        again = fastconv.conv2d_forward(x, wt, None, 1, 1), *fastconv.conv2d_backward(dy, x, wt, 1, 1)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)


def test_nan_and_inf_propagate_like_the_reference(each_isa):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    x[0, 1, 2, 3] = np.nan
    x[1, 0, 0, 0] = np.inf
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = fastconv.conv2d_forward(x, wt, None, 1, 1)
    y_ref = ref.conv2d_forward(x.astype(np.float64), wt.astype(np.float64), None, 1, 1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(y_ref))


# One case per algorithm of each pass; the test checks on each instruction set that the case really runs it, so
# every algorithm is held to the reference on every dispatch path (the tile sizes differ per path, hence the
# batch of 40: Winograd needs two vectors of images, 32 on AVX-512).
# (N, C, H, W, K, kernel, stride, padding) -> the algorithm of (forward, dx, dw) it must exercise
ALGORITHM_CASES = [
    ((40, 40, 8, 9, 41, 3, 1, 1), ("winograd", "winograd", None)),    # F(4x4, 3x3): 2x3 tiles, the last partial
    ((40, 40, 10, 9, 41, 3, 1, 1), ("winograd", "winograd", None)),   # F(3x3, 3x3): 4x3 tiles, the last partial
    ((40, 64, 3, 3, 70, 3, 1, 1), ("winograd", "winograd", None)),    # one chunk of tiles: shared input transforms
    ((40, 72, 16, 15, 72, 3, 1, 1), (None, None, "winograd")),       # F(4x4, 3x3) tiles
    ((40, 100, 3, 5, 130, 3, 1, 1), (None, None, "winograd")),       # F(3x3, 3x3) tiles
    ((3, 7, 12, 11, 16, 3, 1, 1), (None, None, "direct")),       # 16 output channels: three input channels a block
    ((40, 5, 13, 9, 40, 3, 1, 0), (None, None, "direct")),       # 40: vector pairs and a single vector
    ((33, 9, 12, 13, 64, 3, 2, 1), (None, None, "direct")),      # strided
    ((3, 8, 9, 70, 10, 3, 1, 1), ("direct", None, None)),
    ((3, 12, 9, 70, 8, 3, 1, 1), (None, "direct", None)),
    ((4, 8, 9, 9, 64, 5, 1, 0), ("gemm", None, "dot-product")),
    ((3, 64, 9, 5, 8, 3, 1, 0), (None, "gemm", None)),
    ((3, 100, 5, 6, 100, 3, 1, 1), (None, None, "outer-product")),
    ((3, 8, 11, 10, 160, 3, 2, 1), ("gemm", "im2col-blas", None)),
    ((3, 8, 28, 28, 12, 3, 2, 1), ("direct", None, None)),        # strided: on the phases of the padded image
    ((2, 9, 27, 29, 10, 5, 2, 2), ("direct", None, None)),
    ((2, 8, 30, 31, 6, 3, 3, 1), ("direct", None, None)),
    ((25, 64, 14, 14, 70, 3, 2, 1), ("direct", None, None)),      # strided, small plane: groups of images
    ((25, 20, 14, 13, 30, 3, 2, 1), ("direct", None, None)),      # (on AVX-512 only with them), the last partial
    ((3, 6, 7, 9, 5, 1, 1, 0), ("im2col-blas", "im2col-blas", "im2col-blas")),
]


@pytest.mark.parametrize("case,expected", ALGORITHM_CASES,
                         ids=["-".join(a or "any" for a in e) for _, e in ALGORITHM_CASES])
def test_every_algorithm_on_every_isa(each_isa, case, expected):
    n, c, h, w, k, ks, s, p = case
    chosen = fastconv.conv_algorithm((n, c, h, w), (k, c, ks, ks), s, p)
    for want, got in zip(expected, (chosen["forward"], chosen["dx"], chosen["dw"])):
        assert want is None or got == want, (each_isa, chosen)
    rng = np.random.default_rng(sum(case))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c, ks, ks)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    x64, w64 = x.astype(np.float64), wt.astype(np.float64)
    y_ref = ref.conv2d_forward(x64, w64, b.astype(np.float64), s, p)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    refs = (y_ref, *ref.conv2d_backward(dy.astype(np.float64), x64, w64, s, p))
    got = (fastconv.conv2d_forward(x, wt, b, s, p), *fastconv.conv2d_backward(dy, x, wt, s, p))
    for name, g, r in zip(("y", "dx", "dw", "db"), got, refs):
        assert _bound_ok(g, r, np.float32) <= 1, name


@pytest.mark.parametrize("plane", [1, 2, 3])
def test_winograd_only_where_its_tiles_save_products(each_isa, plane):
    # a 3x3 tile makes 25 products: too many for the 1 or 4 outputs of 1x1 and 2x2 planes, not for 3x3
    chosen = fastconv.conv_algorithm((64, 64, plane, plane), (64, 64, 3, 3), 1, 1)
    assert (chosen["forward"] == "winograd") == (plane == 3), chosen


@pytest.mark.parametrize("c, plane, k", [(16, 28, 32), (64, 14, 128), (128, 28, 256), (256, 14, 512)])
def test_strided_1x1_convolutions_take_blas_for_the_weight_gradient(each_isa, c, plane, k):
    # the projections of residual networks: a strided gather and one GEMM, faster in BLAS than in the engine
    chosen = fastconv.conv_algorithm((32, c, plane, plane), (k, c, 1, 1), 2, 0)
    assert chosen["dw"] == chosen["dx"] == "im2col-blas", chosen
    assert chosen["forward"] in ("im2col-blas", "direct"), chosen
    padded = fastconv.conv_algorithm((32, c, plane, plane), (k, c, 1, 1), 2, 1)   # not a plain gather
    assert padded["dw"] != "im2col-blas" or c < 64, padded


def test_conv_algorithm_api():
    assert fastconv.conv_algorithm((2, 3, 8, 8), (4, 3, 3, 3), dtype=np.float64) == \
        {"forward": "im2col-blas", "dx": "im2col-blas", "dw": "im2col-blas"}
    with pytest.raises(ValueError, match="channels"):
        fastconv.conv_algorithm((2, 3, 8, 8), (4, 5, 3, 3))
    with pytest.raises(TypeError):
        fastconv.conv_algorithm((2, 3, 8, 8), (4, 3, 3, 3), dtype=np.int32)
    with pytest.raises(ValueError):
        fastconv.conv_algorithm((2, 3, 2, 2), (4, 3, 3, 3))


@pytest.mark.parametrize("case", [((3, 8, 30, 28, 9), (3, 3), (2, 1), (1, 1)),
                                  ((2, 8, 31, 30, 9), (3, 5), (1, 2), (2, 1)),
                                  ((1, 16, 28, 28, 70), (3, 3), (2, 2), (1, 1))],
                         ids=["stride-2x1", "stride-1x2-kernel-3x5", "batch-1-stride-2"])
def test_direct_forward_with_unequal_strides(each_isa, case):
    """The phases of the direct kernel with different row and column strides, and a batch of one image."""
    (n, c, h, w, k), kernel, stride, padding = case
    assert fastconv.conv_algorithm((n, c, h, w), (k, c) + kernel, stride, padding)["forward"] == "direct"
    rng = np.random.default_rng(n + k)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c) + kernel).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    y_ref = ref.conv2d_forward(x.astype(np.float64), wt.astype(np.float64), b.astype(np.float64), stride, padding)
    assert _bound_ok(fastconv.conv2d_forward(x, wt, b, stride, padding), y_ref, np.float32) <= 1


@pytest.mark.parametrize("stride", [1, 2])
def test_nan_and_inf_in_the_direct_kernels(each_isa, stride):
    """The direct forward computes wrapped columns it then drops, and the direct weight gradient reads the padded
    image: neither may spread a NaN or Inf to outputs the reference keeps finite."""
    rng = np.random.default_rng(7 + stride)
    x = rng.standard_normal((3, 8, 28, 28)).astype(np.float32)
    x[0, 2, 5, 27] = np.nan                 # last column: next to the wrapped positions
    x[1, 0, 27, 0] = np.inf                 # first column of the last row
    wt = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    algorithms = fastconv.conv_algorithm(x.shape, wt.shape, stride, 1)
    assert algorithms["forward"] == "direct" and algorithms["dw"] == "direct", algorithms
    x64, w64 = x.astype(np.float64), wt.astype(np.float64)
    y = fastconv.conv2d_forward(x, wt, None, stride, 1)
    y_ref = ref.conv2d_forward(x64, w64, None, stride, 1)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    _, dw, _ = fastconv.conv2d_backward(dy, x, wt, stride, 1, need_dx=False)
    _, dw_ref, _ = ref.conv2d_backward(dy.astype(np.float64), x64, w64, stride, 1)
    for got, want in ((y, y_ref), (dw, dw_ref)):
        np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
