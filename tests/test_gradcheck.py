"""Tests of dl2.gradcheck: it must catch wrong backwards (input or parameter gradients, in-place dy
modification), pass correct ones, and leave the module as it found it."""
import numpy as np
import pytest

import dl2
from dl2.module import Module, Parameter


class QuadraticProbe(Module):
    """y = w * x**2 per feature; ``bug`` selects a deliberately wrong backward."""

    def __init__(self, bug=None):
        super().__init__()
        self.bug = bug

    def _build(self, input_shape, dtype, rng):
        self.w = Parameter(rng.uniform(0.5, 1.5, input_shape).astype(dtype))
        return input_shape

    def forward(self, x):
        self._x = x
        return self.w.data * x * x

    def backward(self, dy):
        x = self._x
        dw = (dy * x * x).sum(axis=0)
        dx = 2 * self.w.data * x * dy
        if self.bug == "dx_factor":
            dx = self.w.data * x * dy                 # forgot the 2
        elif self.bug == "dw_sign":
            dw = -dw
        elif self.bug == "dw_first_sample":
            dw = dy[0] * x[0] * x[0]                  # batch sum missing: only visible with N > 1
        elif self.bug == "no_dx":
            dx = None                                 # forgot to return the input gradient
        elif self.bug == "inplace":
            dy *= 2
            dx = 2 * self.w.data * x * (dy / 2)
        self.w.grad += dw
        return dx


def built(layer, shape=(4,)):
    layer.build(shape, np.float64, np.random.default_rng(0))
    return layer


def x_batch():
    return np.random.default_rng(1).standard_normal((3, 4))


def test_correct_layer_passes_and_reports_errors():
    errors = dl2.gradcheck(built(QuadraticProbe()), x_batch())
    assert set(errors) == {"input", "w"}
    assert all(e < 1e-6 for e in errors.values())


@pytest.mark.parametrize("bug, name", [("dx_factor", "input"), ("dw_sign", "w"), ("dw_first_sample", "w")])
def test_wrong_backward_is_caught(bug, name):
    with pytest.raises(dl2.GradcheckError, match=rf"{name}: worst relative error") as info:
        dl2.gradcheck(built(QuadraticProbe(bug)), x_batch())
    assert isinstance(info.value, AssertionError)
    errors = dl2.gradcheck(built(QuadraticProbe(bug)), x_batch(), raise_exception=False)
    assert errors[name] > 1e-4


def test_missing_input_gradient_is_caught_unless_not_needed():
    with pytest.raises(dl2.GradcheckError, match="input: backward returned None instead of a gradient"):
        dl2.gradcheck(built(QuadraticProbe("no_dx")), x_batch())
    layer = built(QuadraticProbe("no_dx"))
    layer.needs_input_grad = False                    # a first layer may skip it: then only w is checked
    assert set(dl2.gradcheck(layer, x_batch())) == {"w"}


def test_inplace_dy_modification_is_caught():
    with pytest.raises(dl2.GradcheckError, match="modified its upstream gradient"):
        dl2.gradcheck(built(QuadraticProbe("inplace")), x_batch())


def test_params_subset_and_unknown_names():
    errors = dl2.gradcheck(built(QuadraticProbe("dx_factor")), x_batch(), params=["w"], raise_exception=False)
    assert set(errors) == {"input", "w"} and errors["w"] < 1e-6
    with pytest.raises(KeyError, match="nope"):
        dl2.gradcheck(built(QuadraticProbe()), x_batch(), params=["nope"])


def test_requires_float64_and_built():
    layer = QuadraticProbe()
    layer.build((4,), np.float32, np.random.default_rng(0))
    with pytest.raises(TypeError, match="float64"):
        dl2.gradcheck(layer, x_batch())
    with pytest.raises(TypeError, match="float64"):
        dl2.gradcheck(built(QuadraticProbe()), x_batch().astype(np.float32))
    with pytest.raises(RuntimeError, match="build"):
        dl2.gradcheck(QuadraticProbe(), x_batch())
    with pytest.raises(TypeError, match="Module or a"):
        dl2.gradcheck(np.sin, x_batch())


def test_function_pair():
    x, t = x_batch(), np.random.default_rng(2).standard_normal((3, 4))
    errors = dl2.gradcheck((lambda a, b: a * np.sin(b), lambda r: (r * np.sin(t), r * x * np.cos(t))), (x, t))
    assert set(errors) == {"input0", "input1"}
    with pytest.raises(dl2.GradcheckError, match="input1"):
        dl2.gradcheck((lambda a, b: a * np.sin(b), lambda r: (r * np.sin(t), r * x * np.sin(t))), (x, t))
    assert set(dl2.gradcheck((np.tanh, lambda r: r * (1 - np.tanh(x) ** 2)), x)) == {"input"}


def test_module_state_is_restored():
    drop = dl2.Dropout(0.5)
    drop.build((50,), np.float64, np.random.default_rng(3))
    twin = dl2.Dropout(0.5)
    twin.build((50,), np.float64, np.random.default_rng(3))
    drop.eval()
    dl2.gradcheck(drop, np.random.default_rng(0).standard_normal((2, 50)))   # runs in training mode
    assert not drop.training
    drop.train()
    ones = np.ones((2, 50))
    np.testing.assert_array_equal(drop.forward(ones), twin.forward(ones))    # generator untouched

    layer = built(QuadraticProbe())
    w = layer.w.data.copy()
    dl2.gradcheck(layer, x_batch())
    np.testing.assert_array_equal(layer.w.data, w)


def test_dropout_mask_fixed_during_check_catches_mask_bugs():
    class MaskIgnored(dl2.Dropout):
        def backward(self, dy):
            return dy / (1 - self.p)                 # forgets the mask
    layer = MaskIgnored(0.5)
    layer.build((6,), np.float64, np.random.default_rng(0))
    with pytest.raises(dl2.GradcheckError, match="input"):
        dl2.gradcheck(layer, x_batch().repeat(2, axis=1))
