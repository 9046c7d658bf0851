"""Tests of the normalisation layers: NumPy formulas, running statistics, train vs eval, gradcheck with
non-trivial scales and shifts."""
import numpy as np
import pytest

import dl2


def built(layer, shape, dtype=np.float64):
    layer.build(shape, dtype, np.random.default_rng(0))
    return layer


def randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def randomize_affine(layer, seed=7):
    """Non-trivial gamma/beta so a backward that ignores them cannot pass."""
    rng = np.random.default_rng(seed)
    for p in layer.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1, 1], p.shape)


# ------------------------------------------------------------------------------------------- batch norm
def test_batchnorm1d_training_forward_and_running_stats():
    bn = built(dl2.BatchNorm1D(), (4,))
    randomize_affine(bn)
    x = randn(8, 4) * 3 + 2
    y = bn.forward(x)
    mean, var = x.mean(axis=0), x.var(axis=0)
    np.testing.assert_allclose(y, bn.gamma.data * (x - mean) / np.sqrt(var + 1e-5) + bn.beta.data, rtol=1e-10)
    np.testing.assert_allclose(bn.running_mean, 0.1 * mean, rtol=1e-10)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * x.var(axis=0, ddof=1), rtol=1e-10)   # unbiased


def test_batchnorm2d_statistics_per_channel_and_eval_mode():
    bn = built(dl2.BatchNorm2D(momentum=0.5), (3, 4, 5))
    randomize_affine(bn)
    x = randn(2, 3, 4, 5) + np.array([1.0, -2.0, 5.0])[:, None, None]
    y = bn.forward(x)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    c = (1, 3, 1, 1)
    expected = bn.gamma.data.reshape(c) * (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + 1e-5)
    np.testing.assert_allclose(y, expected + bn.beta.data.reshape(c), rtol=1e-10)
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-10)

    bn.eval()
    x2 = randn(3, 3, 4, 5, seed=2)
    rm, rv = bn.running_mean.copy(), bn.running_var.copy()
    y2 = bn.forward(x2)
    expected = bn.gamma.data.reshape(c) * (x2 - rm.reshape(c)) / np.sqrt(rv.reshape(c) + 1e-5)
    np.testing.assert_allclose(y2, expected + bn.beta.data.reshape(c), rtol=1e-10)
    np.testing.assert_array_equal(bn.running_mean, rm)        # eval does not update the statistics
    assert not np.allclose(y2, bn.train().forward(x2))         # training mode uses batch statistics


def test_batchnorm_running_stats_converge_to_the_population():
    bn = built(dl2.BatchNorm1D(), (2,))
    rng = np.random.default_rng(0)
    for _ in range(300):
        bn.forward(rng.normal([3.0, -1.0], [2.0, 0.5], size=(64, 2)))
    np.testing.assert_allclose(bn.running_mean, [3.0, -1.0], atol=0.15)
    np.testing.assert_allclose(bn.running_var, [4.0, 0.25], rtol=0.1)


@pytest.mark.parametrize("cls, shape", [(dl2.BatchNorm1D, (4,)), (dl2.BatchNorm2D, (3, 2, 3))])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradcheck(cls, shape, training):
    bn = built(cls(), shape)
    randomize_affine(bn)
    bn.running_mean[...] = randn(shape[0], seed=4)
    bn.running_var[...] = np.abs(randn(shape[0], seed=5)) + 0.5
    running = bn.running_mean.copy(), bn.running_var.copy()
    dl2.gradcheck(bn, randn(5, *shape) * 2 + 1, train=training)
    np.testing.assert_array_equal(bn.running_mean, running[0])    # gradcheck restores buffers
    np.testing.assert_array_equal(bn.running_var, running[1])
    assert bn.training


def test_batchnorm_without_affine_and_state_dict():
    bn = built(dl2.BatchNorm2D(affine=False), (3, 2, 2))
    assert bn.parameters() == [] and list(bn.state_dict()) == ["running_mean", "running_var"]
    x = randn(4, 3, 2, 2)
    y = bn.forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    dl2.gradcheck(bn, x)
    state = built(dl2.BatchNorm2D(), (3, 2, 2)).state_dict()
    assert list(state) == ["gamma", "beta", "running_mean", "running_var"]


def test_batchnorm_errors():
    with pytest.raises(ValueError, match="more than one value per channel"):
        built(dl2.BatchNorm1D(), (3,)).forward(np.zeros((1, 3)))
    assert built(dl2.BatchNorm1D(), (3,)).eval().forward(np.ones((1, 3))).shape == (1, 3)
    with pytest.raises(ValueError, match=r"BatchNorm2D: num_features=4 .* 3"):
        built(dl2.BatchNorm2D(num_features=4), (3, 5, 5))
    with pytest.raises(ValueError, match=r"BatchNorm1D expects a per-sample input of shape \(F,\)"):
        built(dl2.BatchNorm1D(), (3, 5, 5))
    with pytest.raises(ValueError, match=r"BatchNorm2D: input has shape \(2, 4, 5, 5\)"):
        built(dl2.BatchNorm2D(), (3, 5, 5)).forward(np.zeros((2, 4, 5, 5)))


# ---------------------------------------------------------------------------- layer / instance / group
def normalize(x, axes, eps=1e-5):
    mean = x.mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)


def test_layernorm_forward_and_gradcheck():
    ln = built(dl2.LayerNorm(), (3, 2, 4))
    assert ln.gamma.shape == (3, 2, 4) and not ln.gamma.regularize and not ln.beta.regularize
    randomize_affine(ln)
    x = randn(5, 3, 2, 4) * 2 + 1
    np.testing.assert_allclose(ln.forward(x), normalize(x, (1, 2, 3)) * ln.gamma.data + ln.beta.data,
                               rtol=1e-10)
    dl2.gradcheck(ln, x)
    flat = built(dl2.LayerNorm(affine=False), (6,))
    assert flat.parameters() == []
    dl2.gradcheck(flat, randn(4, 6))


def test_instancenorm_forward_and_gradcheck():
    inorm = built(dl2.InstanceNorm2D(), (3, 4, 4))
    assert inorm.parameters() == []
    x = randn(2, 3, 4, 4) * 3 - 1
    np.testing.assert_allclose(inorm.forward(x), normalize(x, (2, 3)), rtol=1e-10)
    dl2.gradcheck(inorm, x)
    affine = built(dl2.InstanceNorm2D(affine=True), (3, 4, 4))
    randomize_affine(affine)
    assert affine.gamma.shape == (3, 1, 1)
    np.testing.assert_allclose(affine.forward(x), normalize(x, (2, 3)) * affine.gamma.data + affine.beta.data,
                               rtol=1e-10)
    dl2.gradcheck(affine, x)


@pytest.mark.parametrize("shape, groups", [((6, 3, 2), 3), ((4,), 2), ((4, 2, 2), 1), ((4, 2, 2), 4)])
def test_groupnorm_forward_and_gradcheck(shape, groups):
    gn = built(dl2.GroupNorm(groups), shape)
    randomize_affine(gn)
    x = randn(3, *shape) * 2 + 0.5
    grouped = x.reshape(3, groups, -1)
    expected = normalize(grouped, (2,)).reshape(x.shape) * gn.gamma.data + gn.beta.data
    np.testing.assert_allclose(gn.forward(x), expected, rtol=1e-10)
    dl2.gradcheck(gn, x)


def test_groupnorm_special_cases_and_errors():
    x = randn(2, 4, 3, 3)
    gn_one = built(dl2.GroupNorm(1, affine=False), (4, 3, 3))
    np.testing.assert_allclose(gn_one.forward(x), built(dl2.LayerNorm(affine=False), (4, 3, 3)).forward(x))
    gn_all = built(dl2.GroupNorm(4, affine=False), (4, 3, 3))
    np.testing.assert_allclose(gn_all.forward(x), built(dl2.InstanceNorm2D(), (4, 3, 3)).forward(x))
    with pytest.raises(ValueError, match="4 channels cannot be split into 3 groups"):
        built(dl2.GroupNorm(3), (4, 3, 3))


def test_norms_behave_the_same_in_eval():
    x = randn(3, 4, 2, 2)
    for layer in (dl2.LayerNorm(), dl2.InstanceNorm2D(), dl2.GroupNorm(2)):
        built(layer, (4, 2, 2))
        np.testing.assert_array_equal(layer.forward(x), layer.eval().forward(x))


# ------------------------------------------------------------------------------------ local response norm
def lrn_loops(x, size, alpha, beta, k):
    """b_c = a_c / (k + alpha/size * sum of a_j**2 for j in [c - size//2, c + (size-1)//2]) ** beta."""
    c = x.shape[1]
    y = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c - 1, ch + (size - 1) // 2)
        s = (x[:, lo:hi + 1] ** 2).sum(axis=1)
        y[:, ch] = x[:, ch] / (k + alpha / size * s) ** beta
    return y


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 2.0), (3, 0.5, 0.75, 1.0), (4, 0.8, 1.3, 1.5)])
def test_lrn_forward_and_gradcheck(size, alpha, beta, k):
    lrn = built(dl2.LocalResponseNorm(size, alpha, beta, k), (7, 2, 3))
    x = randn(3, 7, 2, 3) * 2
    np.testing.assert_allclose(lrn.forward(x), lrn_loops(x, size, alpha, beta, k), rtol=1e-12)
    dl2.gradcheck(lrn, x)


def test_lrn_default_is_close_to_scaling_by_k():
    lrn = built(dl2.LocalResponseNorm(), (3, 2, 2))
    x = randn(2, 3, 2, 2) * 0.1
    np.testing.assert_allclose(lrn.forward(x), x / 2.0 ** 0.75, rtol=1e-5)
