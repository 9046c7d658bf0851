"""Tests of dl2.layers (except normalisation): forward against NumPy / fastconv.reference, backward by gradcheck
in float64, float32 end to end, shape errors, Dropout train/eval."""
import warnings

import numpy as np
import pytest

import dl2
from fastconv import reference


def built(layer, shape, dtype=np.float64, seed=0):
    layer.build(shape, dtype, np.random.default_rng(seed))
    return layer


def randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def away_from_zero(*shape, seed=1, gap=0.1):
    """Random values with |x| >= gap (no ReLU kink within a finite-difference step)."""
    x = randn(*shape, seed=seed)
    return np.sign(x) * (np.abs(x) + gap)


def distinct(*shape, seed=1):
    """A random permutation of a grid with spacing 0.1: every max is unique by a wide margin."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n) * 0.1 - n * 0.05).reshape(shape)


# ----------------------------------------------------------------------------------------------- Linear
def test_linear_forward_is_x_at_w_plus_b():
    lin = built(dl2.Linear(3), (5,))
    lin.bias.data[...] = [0.5, -1.0, 2.0]
    x = randn(4, 5)
    assert lin.weight.shape == (5, 3) and lin.bias.shape == (3,)
    np.testing.assert_allclose(lin.forward(x), x @ lin.weight.data + lin.bias.data, rtol=1e-12)
    assert lin.weight.regularize and not lin.bias.regularize
    assert lin.output_shape == (3,) and lin.in_features == 5
    assert dl2.Affine is dl2.Linear


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(bias):
    lin = built(dl2.Linear(4, bias=bias), (6,))
    if bias:
        lin.bias.data[...] = randn(4, seed=3)
    errors = dl2.gradcheck(lin, randn(5, 6))
    assert set(errors) == ({"input", "weight", "bias"} if bias else {"input", "weight"})


def test_linear_backward_adds_into_grad_and_keeps_dy():
    lin = built(dl2.Linear(2), (3,))
    x, dy = randn(4, 3), randn(4, 2, seed=2)
    dy_copy = dy.copy()
    lin.forward(x)
    lin.backward(dy)
    lin.backward(dy)
    np.testing.assert_allclose(lin.weight.grad, 2 * x.T @ dy)
    np.testing.assert_allclose(lin.bias.grad, 2 * dy.sum(axis=0))
    np.testing.assert_array_equal(dy, dy_copy)


def test_linear_needs_input_grad_false_returns_none_but_fills_grads():
    lin = built(dl2.Linear(2), (3,))
    lin.needs_input_grad = False
    x, dy = randn(4, 3), randn(4, 2, seed=2)
    lin.forward(x)
    assert lin.backward(dy) is None
    np.testing.assert_allclose(lin.weight.grad, x.T @ dy)


def test_linear_shape_errors_are_clear():
    with pytest.raises(ValueError, match="Flatten"):
        built(dl2.Linear(10), (3, 4, 4))
    with pytest.raises(ValueError, match=r"Linear: in_features=7 .* 5"):
        built(dl2.Linear(10, in_features=7), (5,))
    lin = built(dl2.Linear(10, in_features=5), (5,))
    with pytest.raises(ValueError, match=r"Linear: input has shape \(2, 6\), expected \(N, 5\)"):
        lin.forward(np.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"\(2, 5, 1, 1\), expected \(N, 5\); add Flatten"):
        lin.forward(np.zeros((2, 5, 1, 1)))
    with pytest.raises(RuntimeError, match="not built"):
        dl2.Linear(3).forward(np.zeros((2, 4)))


# ----------------------------------------------------------------------------------------------- Conv2D
@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 0), (3, 2, 1), ((2, 3), (2, 1), (1, 0)), (1, 1, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_forward_matches_reference(kernel, stride, padding, dtype):
    conv = built(dl2.Conv2D(4, kernel, stride=stride, padding=padding), (3, 7, 6), dtype)
    conv.bias.data[...] = randn(4, seed=5)
    x = randn(2, 3, 7, 6).astype(dtype)
    y = conv.forward(x)
    expected = reference.conv2d_forward(x.astype(np.float64), conv.weight.data.astype(np.float64),
                                        conv.bias.data.astype(np.float64), stride, padding)
    assert y.dtype == dtype and y.shape == (2,) + conv.output_shape
    np.testing.assert_allclose(y, expected, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-5)


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1)])
def test_conv2d_gradcheck(stride, padding):
    conv = built(dl2.Conv2D(2, 3, stride=stride, padding=padding), (2, 5, 5))
    conv.bias.data[...] = [0.3, -0.2]
    dl2.gradcheck(conv, randn(3, 2, 5, 5))


def test_conv2d_first_layer_skips_input_grad():
    conv = built(dl2.Conv2D(2, 3), (1, 5, 5))
    x, dy = randn(2, 1, 5, 5), randn(2, 2, 3, 3, seed=4)
    conv.forward(x)
    conv.needs_input_grad = False
    assert conv.backward(dy) is None
    _, dw, db = reference.conv2d_backward(dy, x, conv.weight.data)
    np.testing.assert_allclose(conv.weight.grad, dw, rtol=1e-10)
    np.testing.assert_allclose(conv.bias.grad, db, rtol=1e-10)


def test_conv2d_build_shapes_params_and_errors():
    conv = built(dl2.Conv2D(30, kernel_size=5), (1, 28, 28))
    assert conv.output_shape == (30, 24, 24)
    assert conv.weight.shape == (30, 1, 5, 5) and conv.bias.shape == (30,) and not conv.bias.regularize
    assert built(dl2.Conv2D(8, 3, padding=1, bias=False), (3, 8, 8)).bias is None
    with pytest.raises(ValueError, match=r"Conv2D expects a per-sample input of shape \(C, H, W\)"):
        built(dl2.Conv2D(3, 3), (10,))
    with pytest.raises(ValueError, match=r"Conv2D: in_channels=3 .* 1"):
        built(dl2.Conv2D(3, 3, in_channels=3), (1, 8, 8))
    with pytest.raises(ValueError, match="larger than the padded input"):
        built(dl2.Conv2D(3, 5), (1, 4, 4))
    with pytest.raises(ValueError, match=r"Conv2D: input has shape \(2, 2, 8, 8\), expected \(N, 3, \.\.\., \.\.\.\)"):
        conv = built(dl2.Conv2D(3, 3), (3, 8, 8))
        conv.forward(np.zeros((2, 2, 8, 8)))


def test_conv2d_accepts_other_spatial_sizes():
    conv = built(dl2.Conv2D(2, 3, padding=1), (1, 8, 8))
    assert conv.forward(np.zeros((1, 1, 5, 7))).shape == (1, 2, 5, 7)


def test_conv2d_he_init_uses_c_kh_kw_as_fan_in():
    conv = built(dl2.Conv2D(64, 3), (32, 10, 10))
    expected = np.sqrt(2 / (32 * 3 * 3))
    assert abs(conv.weight.data.std() / expected - 1) < 0.03


def test_weight_init_by_float_and_config_round_trip():
    conv = built(dl2.Conv2D(100, 3, weight_init=0.01), (10, 5, 5))
    assert abs(conv.weight.data.std() / 0.01 - 1) < 0.05
    config = conv.get_config()
    assert config == {"class": "Conv2D", "args": {"out_channels": 100, "kernel_size": 3, "weight_init": 0.01}}
    clone = dl2.from_config(config)
    assert built(clone, (10, 5, 5)).weight.shape == conv.weight.shape
    with pytest.raises(TypeError, match="callable"):
        dl2.Linear(3, weight_init=dl2.init.zeros).get_config()
    with pytest.raises(ValueError, match="unknown initialiser"):
        dl2.Linear(3, weight_init="kaiming_magic")


# ---------------------------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 1))])
def test_maxpool_matches_reference_and_gradcheck(kernel, stride, padding):
    pool = built(dl2.MaxPool2D(kernel, stride, padding), (2, 6, 7))
    x = distinct(3, 2, 6, 7)
    y = pool.forward(x)
    expected, _ = reference.maxpool2d_forward(x, kernel, stride, padding)
    np.testing.assert_array_equal(y, expected)
    assert y.shape[1:] == pool.output_shape
    dl2.gradcheck(pool, x)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1)])
def test_avgpool_matches_reference_and_gradcheck(kernel, stride, padding, count_include_pad):
    pool = built(dl2.AvgPool2D(kernel, stride, padding, count_include_pad), (2, 6, 7))
    x = randn(3, 2, 6, 7)
    expected = reference.avgpool2d_forward(x, kernel, stride, padding, count_include_pad)
    np.testing.assert_allclose(pool.forward(x), expected, rtol=1e-12)
    dl2.gradcheck(pool, x)


def test_pool_stride_defaults_to_kernel_and_padding_limit():
    assert built(dl2.MaxPool2D(2), (3, 8, 8)).output_shape == (3, 4, 4)
    assert built(dl2.AvgPool2D(3, stride=1), (3, 8, 8)).output_shape == (3, 6, 6)
    with pytest.raises(ValueError, match="at most half the kernel"):
        dl2.MaxPool2D(2, padding=2)


def lp_pool_numpy(x, p, k, s):
    """(sum over each k x k window of x**p) ** (1/p), by explicit loops."""
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    y = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = (x[:, :, i * s:i * s + k, j * s:j * s + k] ** p).sum(axis=(2, 3)) ** (1 / p)
    return y


@pytest.mark.parametrize("p, k, s", [(2, 2, 2), (3.5, 3, 1), (1, 2, 1)])
def test_lppool_forward_and_gradcheck(p, k, s):
    pool = built(dl2.LPPool2D(p, k, stride=s), (2, 6, 6))
    x = np.abs(randn(3, 2, 6, 6)) + 0.1
    np.testing.assert_allclose(pool.forward(x), lp_pool_numpy(x, p, k, s), rtol=1e-12)
    dl2.gradcheck(pool, x)


def test_lppool_relations_to_sum_and_max():
    x = np.abs(randn(2, 3, 4, 4)) + 0.1
    p1 = built(dl2.LPPool2D(1, 2), (3, 4, 4)).forward(x)
    np.testing.assert_allclose(p1, 4 * reference.avgpool2d_forward(x, 2), rtol=1e-12)
    big = built(dl2.LPPool2D(200, 2), (3, 4, 4)).forward(x)
    np.testing.assert_allclose(big, reference.maxpool2d_forward(x, 2)[0], rtol=0.01)


def test_lppool_zero_window_has_zero_gradient():
    pool = built(dl2.LPPool2D(2, 2), (1, 4, 4))
    x = np.abs(randn(1, 1, 4, 4)) + 0.1
    x[0, 0, :2, :2] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = pool.forward(x)
        dx = pool.backward(np.ones_like(y))
    assert y[0, 0, 0, 0] == 0
    assert np.all(dx[0, 0, :2, :2] == 0) and np.all(np.isfinite(dx))
    with pytest.raises(ValueError, match="p must be"):
        dl2.LPPool2D(0.5, 2)


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pools(keepdims):
    x = distinct(3, 4, 5, 6)
    gap = built(dl2.GlobalAvgPool2D(keepdims=keepdims), (4, 5, 6))
    gmp = built(dl2.GlobalMaxPool2D(keepdims=keepdims), (4, 5, 6))
    np.testing.assert_allclose(gap.forward(x), x.mean(axis=(2, 3), keepdims=keepdims), rtol=1e-12)
    np.testing.assert_array_equal(gmp.forward(x), x.max(axis=(2, 3), keepdims=keepdims))
    assert gap.output_shape == ((4, 1, 1) if keepdims else (4,)) == gmp.output_shape
    dl2.gradcheck(gap, x)
    dl2.gradcheck(gmp, x)


def test_flatten():
    flat = built(dl2.Flatten(), (3, 4, 5))
    x = randn(2, 3, 4, 5)
    y = flat.forward(x)
    assert flat.output_shape == (60,)
    np.testing.assert_array_equal(y, x.reshape(2, 60))
    np.testing.assert_array_equal(flat.backward(y), x)
    dl2.gradcheck(flat, x)


# ------------------------------------------------------------------------------------------ activations
def sigmoid_ref(x):
    return 1 / (1 + np.exp(-x))


ACTIVATIONS = [
    (dl2.ReLU, {}, lambda x: np.maximum(x, 0)),
    (dl2.LeakyReLU, {"negative_slope": 0.1}, lambda x: np.where(x > 0, x, 0.1 * x)),
    (dl2.Sigmoid, {}, sigmoid_ref),
    (dl2.Tanh, {}, np.tanh),
    (dl2.Swish, {"beta": 1.7}, lambda x: x * sigmoid_ref(1.7 * x)),
    (dl2.Softmax, {}, lambda x: np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)),
]


@pytest.mark.parametrize("cls, kwargs, formula", ACTIVATIONS, ids=[a[0].__name__ for a in ACTIVATIONS])
def test_activation_forward_and_gradcheck(cls, kwargs, formula):
    act = built(cls(**kwargs), (3, 5))
    x = away_from_zero(4, 3, 5)
    np.testing.assert_allclose(act.forward(x), formula(x), rtol=1e-12, atol=1e-15)
    dl2.gradcheck(act, x)


def test_leaky_relu_default_slope():
    act = built(dl2.LeakyReLU(), (2,))
    np.testing.assert_allclose(act.forward(np.array([[-2.0, 3.0]])), [[-0.02, 3.0]])


def test_sigmoid_and_swish_are_stable_for_large_inputs():
    x = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        s = built(dl2.Sigmoid(), (5,)).forward(x)
        w = built(dl2.Swish(), (5,)).forward(x)
    np.testing.assert_allclose(s, [[0.0, sigmoid_ref(-50.0), 0.5, sigmoid_ref(50.0), 1.0]], rtol=1e-12)
    np.testing.assert_allclose(w, [[0.0, -50 * sigmoid_ref(-50.0), 0.0, 50 * sigmoid_ref(50.0), 1000.0]],
                               rtol=1e-12)


def test_softmax_is_stable_and_sums_to_one():
    sm = built(dl2.Softmax(), (3,))
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = sm.forward(np.array([[1000.0, 1000.0, -1000.0], [0.0, 1.0, 2.0]]))
    np.testing.assert_allclose(y[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(y.sum(axis=1), 1.0)


@pytest.mark.parametrize("cls, grad", [(dl2.Tanh, lambda y: 1 - y * y), (dl2.Sigmoid, lambda y: y * (1 - y))],
                         ids=["Tanh", "Sigmoid"])
@pytest.mark.parametrize("backend", ["fastconv", "reference"])
def test_tanh_and_sigmoid_backward_in_float32(cls, grad, backend):
    """The kernels' gradient in the layer's dtype, on either backend; none without ``needs_input_grad``."""
    act = built(cls(), (6, 5, 5), dtype=np.float32)
    x = randn(4, 6, 5, 5).astype(np.float32)
    dy = randn(4, 6, 5, 5).astype(np.float32)
    with dl2.use_backend(backend):
        y = act.forward(x)
        dx = act.backward(dy)
        assert dx.dtype == np.float32
        np.testing.assert_allclose(dx, dy * grad(y), rtol=1e-6, atol=1e-7)
        act.needs_input_grad = False
        act.forward(x)
        assert act.backward(dy) is None


def test_relu_does_not_modify_its_input():
    relu = built(dl2.ReLU(), (4,))
    x = randn(3, 4)
    x_copy = x.copy()
    relu.forward(x)
    np.testing.assert_array_equal(x, x_copy)


# ------------------------------------------------------------------------------------------------ Dropout
def test_dropout_inverted_train_and_eval():
    drop = built(dl2.Dropout(0.3, seed=0), (1000,))
    x = np.ones((20, 1000))
    y = drop.forward(x)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7)
    np.testing.assert_array_equal(drop.backward(x), y)          # the same mask and scale
    drop.eval()
    np.testing.assert_array_equal(drop.forward(x), x)
    np.testing.assert_array_equal(drop.backward(x), x)


def test_dropout_textbook_mode_scales_at_inference():
    drop = built(dl2.Dropout(0.25, mode="textbook", seed=0), (1000,))
    x = np.full((20, 1000), 2.0)
    y = drop.forward(x)
    assert set(np.unique(y)) == {0.0, 2.0}
    drop.eval()
    np.testing.assert_allclose(drop.forward(x), 1.5)
    assert abs(y.mean() - 1.5) < 0.02     # same expectation in training and evaluation


def test_dropout_generators():
    a = built(dl2.Dropout(0.5, seed=7), (50,)).forward(np.ones((4, 50)))
    b = built(dl2.Dropout(0.5, seed=7), (50,), seed=123).forward(np.ones((4, 50)))
    np.testing.assert_array_equal(a, b)                       # seed= wins over the build rng
    c = built(dl2.Dropout(0.5), (50,), seed=11).forward(np.ones((4, 50)))
    d = built(dl2.Dropout(0.5), (50,), seed=11).forward(np.ones((4, 50)))
    np.testing.assert_array_equal(c, d)                       # no seed: the build rng is used
    assert not np.array_equal(a, c)


def test_dropout_validation_and_gradcheck():
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
            dl2.Dropout(p)
    with pytest.raises(ValueError, match="mode"):
        dl2.Dropout(0.5, mode="alpha")
    drop = built(dl2.Dropout(0.5, seed=3), (6,))
    dl2.gradcheck(drop, randn(4, 6))
    assert np.all(built(dl2.Dropout(0.0), (6,)).forward(np.ones((2, 6))) == 1)


# ---------------------------------------------------------------------------------------- SqueezeExcite
def test_squeeze_excite_matches_definition_and_gradcheck():
    se = dl2.SqueezeExcite(reduction=2)
    model = dl2.Sequential(dl2.Conv2D(4, 3, padding=1), se, input_shape=(2, 5, 5), dtype=np.float64, seed=0)
    assert isinstance(se.fc1, dl2.Linear) and isinstance(se.fc2, dl2.Linear)
    assert se.fc1.weight.shape == (4, 2) and se.fc2.weight.shape == (2, 4)     # Linear's (in, out) layout
    assert [name for name, _ in se.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    se.fc1.bias.data[...] = [0.3, -0.2]   # nonzero biases so the check is not blind to them
    se.fc2.bias.data[...] = [0.1, -0.1, 0.2, 0.0]
    x = randn(3, 4, 5, 5)
    s = x.mean(axis=(2, 3))
    hidden = np.maximum(s @ se.fc1.weight.data + se.fc1.bias.data, 0)
    g = 1 / (1 + np.exp(-(hidden @ se.fc2.weight.data + se.fc2.bias.data)))
    np.testing.assert_allclose(se.forward(x), x * g[:, :, None, None], rtol=1e-12)
    dl2.gradcheck(model, randn(3, 2, 5, 5))


def test_squeeze_excite_needs_images_and_a_positive_reduction():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        dl2.Sequential(dl2.SqueezeExcite(), input_shape=(16,))
    with pytest.raises(ValueError, match="SqueezeExcite: reduction must be >= 1"):
        dl2.SqueezeExcite(0)
    for bad in (2.5, True):
        with pytest.raises(TypeError, match="SqueezeExcite: reduction must be an integer"):
            dl2.SqueezeExcite(bad)


# --------------------------------------------------------------------------------- float32 end to end
FLOAT32_CASES = [
    (lambda: dl2.Linear(4), (6,)),
    (lambda: dl2.Conv2D(3, 3, padding=1), (2, 5, 5)),
    (lambda: dl2.MaxPool2D(2), (2, 4, 4)),
    (lambda: dl2.AvgPool2D(2), (2, 4, 4)),
    (lambda: dl2.LPPool2D(2, 2), (2, 4, 4)),
    (lambda: dl2.GlobalAvgPool2D(), (2, 4, 4)),
    (lambda: dl2.GlobalMaxPool2D(), (2, 4, 4)),
    (lambda: dl2.Flatten(), (2, 4, 4)),
    (lambda: dl2.BatchNorm1D(), (6,)),
    (lambda: dl2.BatchNorm2D(), (2, 4, 4)),
    (lambda: dl2.LayerNorm(), (2, 4, 4)),
    (lambda: dl2.InstanceNorm2D(affine=True), (2, 4, 4)),
    (lambda: dl2.GroupNorm(2), (4, 3, 3)),
    (lambda: dl2.LocalResponseNorm(3), (4, 3, 3)),
    (lambda: dl2.ReLU(), (6,)),
    (lambda: dl2.LeakyReLU(), (6,)),
    (lambda: dl2.Sigmoid(), (6,)),
    (lambda: dl2.Tanh(), (6,)),
    (lambda: dl2.Swish(), (6,)),
    (lambda: dl2.Softmax(), (6,)),
    (lambda: dl2.Dropout(0.5), (6,)),
]


@pytest.mark.parametrize("make, shape", FLOAT32_CASES, ids=[f"case{i}" for i in range(len(FLOAT32_CASES))])
@pytest.mark.parametrize("training", [True, False])
def test_float32_stays_float32(make, shape, training):
    layer = built(make(), shape, np.float32)
    layer.train(training)
    x = np.abs(randn(3, *shape)).astype(np.float32) + np.float32(0.1)
    y = layer.forward(x)
    assert y.dtype == np.float32
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    for name, p in layer.named_parameters():
        assert p.data.dtype == p.grad.dtype == np.float32, name
    for name, b in layer.state_dict().items():
        assert b.dtype == np.float32, name
    assert layer.forward(x.astype(np.float64)).dtype == np.float32    # inputs are converted to the layer dtype
