"""fastconv batch norm (training forward/backward, inference) against fastconv.reference, NumPy statistics,
the inference formula and finite differences; numerics with a large mean offset."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import reference as ref
from kernel_checks import DTYPES, numerical_grad

RTOL = {np.float32: 1e-4, np.float64: 1e-10}
SHAPES = {
    "2d": (8, 3),
    "2d-batch1": (1, 4),            # one value per channel: variance 0
    "2d-C1": (17, 1),
    "4d": (4, 3, 5, 7),
    "4d-batch1": (1, 5, 3, 3),
    "4d-1x1": (6, 4, 1, 1),
    "4d-many-channels": (3, 33, 9, 8),
    "4d-plane-of-8": (3, 2, 2, 4),              # the kernel sums rows in lanes of 8 values, blocks of 64
    "4d-plane-of-2-blocks-and-a-tail": (4, 3, 11, 13),
    "4d-zoo-plane": (5, 4, 28, 28),
    "2d-many-rows": (300, 40),                  # (N, C): the kernel sums columns
}


def params(rng, c, dtype):
    gamma = rng.uniform(0.5, 2.0, c) * rng.choice([-1.0, 1.0], c)
    beta = rng.standard_normal(c)
    return gamma.astype(dtype), beta.astype(dtype)


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


def channel_axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def per_channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_batchnorm_matches_reference_and_numpy_statistics(shape, dtype):
    rng = np.random.default_rng(0)
    rtol = RTOL[dtype]
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    gamma, beta = params(rng, shape[1], dtype)
    y, mean, invstd = fastconv.batchnorm_forward(x, gamma, beta, eps=1e-5)
    assert y.dtype == mean.dtype == invstd.dtype == np.dtype(dtype)
    assert y.shape == x.shape and mean.shape == invstd.shape == (shape[1],)

    x64, g64, b64 = f64(x, gamma, beta)
    axes = channel_axes(x)
    np.testing.assert_allclose(mean, x64.mean(axis=axes), rtol=rtol, atol=rtol * np.abs(x64).max())
    np.testing.assert_allclose(invstd, 1 / np.sqrt(x64.var(axis=axes) + 1e-5), rtol=rtol)
    y_ref, m_ref, s_ref = ref.batchnorm_forward(x64, g64, b64, eps=1e-5)
    scale = np.abs(per_channel(g64 * s_ref, x)) * np.abs(x64 - per_channel(m_ref, x)) + np.abs(per_channel(b64, x))
    np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=rtol * scale.max())

    dy = rng.standard_normal(shape).astype(dtype)
    dx, dgamma, dbeta = fastconv.batchnorm_backward(dy, x, gamma, mean, invstd)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == np.dtype(dtype)
    dx_ref, dg_ref, db_ref = ref.batchnorm_backward(*f64(dy, x, gamma, mean, invstd))
    m = x.size // shape[1]
    dy_scale = np.abs(dy.astype(np.float64)).sum(axis=axes)
    np.testing.assert_allclose(dbeta, db_ref, rtol=rtol, atol=rtol * dy_scale.max())
    np.testing.assert_allclose(dgamma, dg_ref, rtol=rtol, atol=rtol * (dy_scale * 10).max())
    np.testing.assert_allclose(dx, dx_ref, rtol=rtol,
                               atol=rtol * np.abs(g64 * s_ref).max() * (np.abs(dy).max() + 10 * dy_scale.max() / m))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(5, 3), (3, 4, 6, 5)], ids=["2d", "4d"])
def test_batchnorm_inference_matches_formula(shape, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    gamma, beta = params(rng, shape[1], dtype)
    mean = rng.standard_normal(shape[1]).astype(dtype)
    var = rng.uniform(0.1, 3.0, shape[1]).astype(dtype)
    y = fastconv.batchnorm_inference(x, gamma, beta, mean, var, eps=1e-3)
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape
    x64, g64, b64, m64, v64 = f64(x, gamma, beta, mean, var)
    want = per_channel(g64, x) * (x64 - per_channel(m64, x)) / np.sqrt(per_channel(v64, x) + 1e-3) + per_channel(b64, x)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(y, want, rtol=rtol, atol=rtol * np.abs(want).max())
    np.testing.assert_allclose(ref.batchnorm_inference(x64, g64, b64, m64, v64, eps=1e-3), want, rtol=1e-12)


def test_batchnorm_inference_with_batch_statistics_equals_training_forward():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 4, 4))
    gamma, beta = params(rng, 3, np.float64)
    y, mean, invstd = fastconv.batchnorm_forward(x, gamma, beta, eps=1e-5)
    var = 1 / invstd**2 - 1e-5
    np.testing.assert_allclose(fastconv.batchnorm_inference(x, gamma, beta, mean, var, eps=1e-5), y,
                               rtol=1e-9, atol=1e-9)


def test_batchnorm_output_is_normalised():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 4, 3, 3)) * np.array([1, 10, 0.1, 5])[None, :, None, None] + 7
    ones, zeros = np.ones(4), np.zeros(4)
    y, _, _ = fastconv.batchnorm_forward(x, ones, zeros, eps=0.0)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-12)


def test_batchnorm_single_value_per_channel_gives_beta():
    x = np.array([[3.0, -1.0, 7.0]])
    gamma, beta = np.array([2.0, 3.0, 4.0]), np.array([0.5, -0.5, 1.5])
    y, mean, invstd = fastconv.batchnorm_forward(x, gamma, beta, eps=1e-5)
    np.testing.assert_array_equal(y, beta[None])
    np.testing.assert_array_equal(mean, x[0])
    np.testing.assert_allclose(invstd, 1 / np.sqrt(1e-5), rtol=1e-15)


@pytest.mark.parametrize("std", [1.0, 0.01])
@pytest.mark.parametrize("shape", [(64, 3, 6, 6), (500, 4)], ids=["4d", "2d"])
def test_batchnorm_float32_large_mean_offset(shape, std):
    """x = 1000 + small noise in float32: statistics and output stay accurate (a one-pass E[x^2] - E[x]^2 in
    float32 would lose every digit of the variance). The only unavoidable error is rounding the mean to
    float32 (half an ulp of 1000, i.e. 3e-5), which y inherits scaled by gamma*invstd."""
    rng = np.random.default_rng(4)
    c = shape[1]
    x = (1000 + std * rng.standard_normal(shape)).astype(np.float32)
    gamma, beta = params(rng, c, np.float32)
    y, mean, invstd = fastconv.batchnorm_forward(x, gamma, beta)
    x64, g64, b64 = f64(x, gamma, beta)
    y_ref, m_ref, s_ref = ref.batchnorm_forward(x64, g64, b64)

    ulp = np.spacing(np.float32(1000)).astype(np.float64)
    assert np.all(np.abs(mean - m_ref) <= ulp)                          # the accurate mean, rounded
    np.testing.assert_allclose(invstd, s_ref, rtol=1e-5)
    bound = (np.abs(per_channel(g64 * s_ref, x)) * ulp                    # from the rounded mean
             + 1e-4 * (np.abs(y_ref) + np.abs(per_channel(b64, x))))
    err = np.abs(y - y_ref)
    assert np.all(err <= bound), f"max error {err.max()}, bound there {bound.flat[err.argmax()]}"
    # the normalised output really is normalised (to the accuracy the float32 mean allows)
    xhat = (y.astype(np.float64) - per_channel(b64, x)) / per_channel(g64, x)
    axes = channel_axes(x)
    assert np.all(np.abs(xhat.mean(axis=axes)) <= s_ref * ulp + 1e-3)
    np.testing.assert_allclose(xhat.var(axis=axes), x64.var(axis=axes) * s_ref**2, rtol=1e-3)   # var/(var+eps)

    # backward, given the same (float32) statistics as the reference
    dy = rng.standard_normal(shape).astype(np.float32)
    dx, dgamma, dbeta = fastconv.batchnorm_backward(dy, x, gamma, mean, invstd)
    dx_ref, dg_ref, db_ref = ref.batchnorm_backward(*f64(dy, x, gamma, mean, invstd))
    np.testing.assert_allclose(dbeta, db_ref, rtol=1e-4, atol=1e-4 * np.abs(dy).sum(axis=axes).max())
    np.testing.assert_allclose(dgamma, dg_ref, rtol=1e-4, atol=1e-3 * np.sqrt(x.size / c))
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-4 * np.abs(dx_ref).max())


# ------------------------------------------------------------- the reference, checked independently
@pytest.mark.parametrize("impl", [ref, fastconv], ids=["reference", "fastconv"])
@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 3, 2), (1, 2, 2, 3)])
def test_batchnorm_backward_matches_finite_differences(impl, shape):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = params(rng, shape[1], np.float64)
    g = rng.standard_normal(shape)

    def loss():
        return float(np.sum(g * ref.batchnorm_forward(x, gamma, beta, eps=1e-3)[0]))

    _, mean, invstd = ref.batchnorm_forward(x, gamma, beta, eps=1e-3)
    dx, dgamma, dbeta = impl.batchnorm_backward(g, x, gamma, mean, invstd)
    np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dgamma, numerical_grad(loss, gamma), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dbeta, numerical_grad(loss, beta), rtol=1e-6, atol=1e-8)


def test_reference_batchnorm_forward_matches_definition():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, 2, 3))
    gamma, beta = params(rng, 2, np.float64)
    y, mean, invstd = ref.batchnorm_forward(x, gamma, beta, eps=1e-5)
    for c in range(2):
        vals = x[:, c].ravel()
        mu = sum(vals) / len(vals)
        var = sum((v - mu) ** 2 for v in vals) / len(vals)
        assert mean[c] == pytest.approx(mu, rel=1e-14)
        assert invstd[c] == pytest.approx(1 / np.sqrt(var + 1e-5), rel=1e-14)
        np.testing.assert_allclose(y[:, c], gamma[c] * (x[:, c] - mu) / np.sqrt(var + 1e-5) + beta[c], rtol=1e-13)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(1, 5),
       hw=st.one_of(st.none(), st.tuples(st.integers(1, 6), st.integers(1, 6))),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1))
def test_batchnorm_matches_reference_random_shapes(n, c, hw, dtype, seed):
    rng = np.random.default_rng(seed)
    shape = (n, c) if hw is None else (n, c) + hw
    rtol = RTOL[dtype]
    x = (rng.standard_normal(shape) * rng.uniform(0.1, 10) + rng.uniform(-5, 5)).astype(dtype)
    gamma, beta = params(rng, c, dtype)
    y, mean, invstd = fastconv.batchnorm_forward(x, gamma, beta)
    y_ref, m_ref, s_ref = ref.batchnorm_forward(*f64(x, gamma, beta))
    np.testing.assert_allclose(mean, m_ref, rtol=rtol, atol=rtol * np.abs(x).max())
    np.testing.assert_allclose(invstd, s_ref, rtol=rtol * 10)
    np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=10 * rtol * (np.abs(y_ref).max() + 1))
    dy = rng.standard_normal(shape).astype(dtype)
    dx, dg, db = fastconv.batchnorm_backward(dy, x, gamma, mean, invstd)
    dx_ref, dg_ref, db_ref = ref.batchnorm_backward(*f64(dy, x, gamma, mean, invstd))
    scale = np.abs(dy).sum() + 1
    np.testing.assert_allclose(db, db_ref, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(dg, dg_ref, rtol=rtol, atol=rtol * scale * 10)
    np.testing.assert_allclose(dx, dx_ref, rtol=rtol, atol=rtol * np.abs(gamma * invstd).max() * 10)
