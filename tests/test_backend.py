"""Tests of the kernel backend switch (dl2.use_backend) and of whole networks on both backends: every zoo model,
forward and backward, in float64 and float32, on fastconv and on fastconv.reference."""
import numpy as np
import pytest

import fastconv
import dl2
from dl2 import models
from dl2.containers import auxiliary_loss

pytestmark = pytest.mark.usefixtures("one_fastconv_thread")

# Small versions of every registry entry: the same layer sequence with a few channels.
NETWORKS = {
    "cnn": lambda dt: models.SmallCNN((1, 8, 8), width=0.5, dtype=dt, seed=0),
    "mlp": lambda dt: models.MLP((1, 6, 6), hidden_sizes=(12, 8), batchnorm=True, dropout=0.2, dtype=dt, seed=0),
    "simple_conv_net": lambda dt: models.SimpleConvNet((1, 10, 10), width=0.2, dtype=dt, seed=0),
    "double_conv_net": lambda dt: models.DoubleConvNet((1, 12, 12), width=0.3, dtype=dt, seed=0),
    "deep_conv_net": lambda dt: models.DeepConvNet((1, 12, 12), width=0.25, dtype=dt, seed=0),
    "bn_cnn": lambda dt: models.BNConvNet((1, 8, 8), width=0.25, dtype=dt, seed=0),
    "lenet5": lambda dt: models.LeNet5((1, 16, 16), width=0.5, dtype=dt, seed=0),
    "alexnet": lambda dt: models.AlexNet((1, 16, 16), width=0.05, dtype=dt, seed=0),
    "vgg": lambda dt: models.VGG((1, 16, 16), depth=11, width=1 / 32, batchnorm=True, dtype=dt, seed=0),
    "googlenet": lambda dt: models.GoogLeNet((1, 16, 16), width=0.05, dtype=dt, seed=0),
    "resnet": lambda dt: models.ResNet((1, 8, 8), depth=8, width=0.25, dtype=dt, seed=0),
    "se_resnet": lambda dt: models.SEResNet((1, 8, 8), depth=8, width=0.25, reduction=2, dtype=dt, seed=0),
}

TOLERANCE = {np.float64: dict(rtol=1e-9, atol=1e-11), np.float32: dict(rtol=2e-3, atol=2e-5)}


def test_every_registry_model_is_covered():
    assert set(NETWORKS) == set(models.REGISTRY)


def _step(model, x, t, backend):
    """One training step's numbers on ``backend``: outputs in training and evaluation mode, the loss, the input
    gradient and every parameter gradient. The model's state and random generators are restored afterwards, so
    both backends see the same weights, statistics and dropout masks."""
    state = model.state_dict()
    generators = [m for m in model.modules() if isinstance(getattr(m, "generator", None), np.random.Generator)]
    loss = dl2.SoftmaxCrossEntropy()
    with dl2.use_backend(backend):
        for m in generators:
            m.generator = np.random.default_rng(7)
        model.train()
        model.zero_grad()
        y = model.forward(x)
        value = loss.forward(y, t)
        dy = loss.backward()
        value += auxiliary_loss(model, loss, t)
        dx = model.backward(dy)
        grads = {name: p.grad.copy() for name, p in model.named_parameters()}
        y_eval = model.eval().forward(x)
    model.load_state_dict(state)
    return y, y_eval, value, dx, grads


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_whole_network_fastconv_matches_reference(name, dtype):
    model = NETWORKS[name](dtype)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3,) + model.input_shape).astype(dtype)
    t = rng.integers(0, 10, 3)
    fast = _step(model, x, t, "fastconv")
    ref = _step(model, x, t, "reference")
    tol = TOLERANCE[dtype]
    for what, a, b in zip(("training output", "evaluation output"), fast[:2], ref[:2]):
        assert a.dtype == b.dtype == dtype, what
        np.testing.assert_allclose(a, b, err_msg=what, **tol)
    assert fast[2] == pytest.approx(ref[2], rel=tol["rtol"])
    np.testing.assert_allclose(fast[3], ref[3], err_msg="input gradient", **tol)
    assert fast[4].keys() == ref[4].keys()
    for key in fast[4]:
        scale = max(1.0, float(np.abs(ref[4][key]).max()))
        np.testing.assert_allclose(fast[4][key], ref[4][key], rtol=tol["rtol"], atol=tol["atol"] * scale,
                                   err_msg=f"gradient of {key}")
    assert any(np.any(g) for g in fast[4].values())   # the comparison is not between two sets of zeros


def test_layers_call_the_active_backend(monkeypatch):
    calls = []
    for module in (fastconv, fastconv.reference):
        original = module.conv2d_forward
        monkeypatch.setattr(module, "conv2d_forward",
                            lambda *a, _o=original, _m=module.__name__, **k: calls.append(_m) or _o(*a, **k))
    model = dl2.Sequential(dl2.Conv2D(2, 3), input_shape=(1, 5, 5), seed=0)
    x = np.ones((1, 1, 5, 5), np.float32)
    model(x)
    with dl2.use_backend("reference") as backend:
        assert backend is fastconv.reference and dl2.get_backend() is fastconv.reference
        model(x)
    model(x)
    assert calls == ["fastconv", "fastconv.reference", "fastconv"]


def test_use_backend_plain_call_and_nesting():
    assert dl2.get_backend() is fastconv
    try:
        dl2.use_backend("reference")                 # a plain call switches for the whole process
        assert dl2.get_backend() is fastconv.reference
        with dl2.use_backend("fastconv"):
            assert dl2.get_backend() is fastconv
        assert dl2.get_backend() is fastconv.reference
    finally:
        dl2.use_backend("fastconv")
    with pytest.raises(RuntimeError):
        with dl2.use_backend("reference"):
            raise RuntimeError("inside the block")
    assert dl2.get_backend() is fastconv              # restored on an exception too


@pytest.mark.parametrize("bad", ["torch", "", None, 3])
def test_use_backend_rejects_unknown_names(bad):
    with pytest.raises(ValueError, match="backend must be one of 'fastconv', 'reference'"):
        dl2.use_backend(bad)
    assert dl2.get_backend() is fastconv
