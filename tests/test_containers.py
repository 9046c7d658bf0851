"""Tests of dl2.containers: Sequential, Residual, Concat, AuxHead."""
import numpy as np
import pytest

import dl2
from dl2.containers import AuxHead, Concat, Residual, Sequential, aux_heads, auxiliary_loss
from dl2.gradcheck import gradcheck
from dl2.layers import (BatchNorm2D, Conv2D, Dropout, Flatten, GlobalAvgPool2D, Linear, MaxPool2D, ReLU,
                        SqueezeExcite, Tanh)
from dl2.losses import SoftmaxCrossEntropy

F64 = np.float64


def batch(shape, seed=0, dtype=F64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------- Sequential
def test_sequential_builds_immediately_and_infers_sizes():
    model = Sequential(Conv2D(4, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Linear(7),
                       input_shape=(1, 8, 8), seed=0)
    assert model.built
    assert [layer.output_shape for layer in model] == [(4, 8, 8), (4, 8, 8), (4, 4, 4), (64,), (7,)]
    assert model.layers[4].weight.shape == (64, 7)
    assert model.output_shape == (7,)
    y = model(batch((5, 1, 8, 8)))
    assert y.shape == (5, 7) and y.dtype == np.float32  # input cast to the model dtype
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "4.weight", "4.bias"]


def test_sequential_deferred_build_and_seed():
    a = Sequential(Linear(5), ReLU(), Linear(3), seed=3)
    assert not a.built
    with pytest.raises(RuntimeError, match="build"):
        a(np.zeros((2, 4)))
    assert a.build((4,)) == (3,)
    b = Sequential(Linear(5), ReLU(), Linear(3), input_shape=(4,), seed=3)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and np.array_equal(pa.data, pb.data)
    c = Sequential(Linear(5), ReLU(), Linear(3), input_shape=(4,), seed=4)
    assert not np.array_equal(c.layers[0].weight.data, b.layers[0].weight.data)


def test_sequential_input_shape_error_names_both_shapes():
    model = Sequential(Flatten(), Linear(3), input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"\(1, 8, 8\).*\(1, 28, 28\)"):
        model(np.zeros((2, 1, 28, 28), np.float32))


def test_layer_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"layer 1 \(Linear\).*Flatten"):
        Sequential(Conv2D(2, 3), Linear(10), input_shape=(1, 8, 8))
    with pytest.raises(TypeError, match="argument 1"):
        Sequential(Linear(3), "relu")


def test_sequential_dtype_float64_and_nesting():
    inner = Sequential(Linear(6), Tanh())
    model = Sequential(inner, Linear(2), input_shape=(3,), dtype=F64, seed=0)
    assert inner.built and inner.dtype == F64 and model.layers[1].weight.dtype == F64
    assert model(batch((4, 3))).dtype == F64
    assert [n for n, _ in model.named_parameters()] == ["0.0.weight", "0.0.bias", "1.weight", "1.bias"]


def test_summary_lists_layers_shapes_and_total():
    model = Sequential(Conv2D(4, 3, padding=1), BatchNorm2D(), ReLU(), Flatten(), Linear(10),
                       input_shape=(1, 8, 8), seed=0)
    text = model.summary(print_fn=None)
    for name in ("Conv2D", "BatchNorm2D", "ReLU", "Flatten", "Linear", "(N, 4, 8, 8)", "(N, 256)", "(N, 10)"):
        assert name in text
    total = 4 * 9 + 4 + 4 + 4 + 256 * 10 + 10
    assert model.num_parameters() == total
    assert f"Total parameters: {total:,}" in text


def test_sequential_gradcheck_float64():
    model = Sequential(Conv2D(3, 3, padding=1), Tanh(), MaxPool2D(2), Flatten(), Linear(4),
                       input_shape=(2, 4, 4), dtype=F64, seed=0)
    errors = gradcheck(model, batch((3, 2, 4, 4)))
    assert "input" in errors and "0.weight" in errors and "4.bias" in errors


# --------------------------------------------------------------------- needs_input_grad
def test_first_parameterised_layer_skips_input_gradient_when_not_needed():
    def make():
        return Sequential(Flatten(), Linear(5), Tanh(), Linear(3), input_shape=(2, 2), dtype=F64, seed=1)

    full, lean = make(), make()
    lean.needs_input_grad = False
    assert lean.layers[1].needs_input_grad is False   # first layer with parameters
    assert lean.layers[3].needs_input_grad is True
    x, dy = batch((4, 2, 2)), batch((4, 3), seed=1)
    full(x)
    lean(x)
    assert full.backward(dy).shape == (4, 2, 2)
    assert lean.backward(dy) is None
    for (_, a), (_, b) in zip(full.named_parameters(), lean.named_parameters()):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12)
    lean.needs_input_grad = True
    assert lean.layers[1].needs_input_grad is True
    lean(x)
    assert lean.backward(dy).shape == (4, 2, 2)


def test_inner_layers_keep_input_gradients():
    # Only the first layer may skip dx: inside a residual block or after it, gradients are needed.
    model = Sequential(Conv2D(2, 3, padding=1), Residual(Sequential(Conv2D(2, 3, padding=1), ReLU())),
                       input_shape=(1, 4, 4), dtype=F64, seed=0)
    model.needs_input_grad = False
    assert model.layers[0].needs_input_grad is False
    assert model.layers[1].body.layers[0].needs_input_grad is True
    y = model(batch((2, 1, 4, 4)))
    assert model.backward(np.ones_like(y)) is None
    assert np.abs(model.layers[0].weight.grad).sum() > 0


def test_residual_as_first_layer_propagates_the_flag():
    model = Sequential(Residual(Conv2D(2, 3, padding=1), shortcut=Conv2D(2, 1)), Flatten(), Linear(2),
                       input_shape=(1, 4, 4), dtype=F64, seed=0)
    ref = Sequential(Residual(Conv2D(2, 3, padding=1), shortcut=Conv2D(2, 1)), Flatten(), Linear(2),
                     input_shape=(1, 4, 4), dtype=F64, seed=0)
    model.needs_input_grad = False
    assert model.layers[0].body.needs_input_grad is False and model.layers[0].shortcut.needs_input_grad is False
    x, dy = batch((3, 1, 4, 4)), batch((3, 2), seed=2)
    model(x), ref(x)
    assert model.backward(dy) is None and ref.backward(dy) is not None
    for (_, a), (_, b) in zip(model.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12)


# --------------------------------------------------------------------- Residual
def test_residual_identity_gradcheck():
    block = Residual(Sequential(Conv2D(3, 3, padding=1), Tanh(), Conv2D(3, 3, padding=1)))
    model = Sequential(block, Tanh(), input_shape=(3, 4, 4), dtype=F64, seed=0)
    x = batch((2, 3, 4, 4))
    # identity shortcut: y = body(x) + x
    np.testing.assert_allclose(block.forward(x), block.body.forward(x) + x)
    gradcheck(model, x)


def test_residual_projection_shortcut_gradcheck():
    body = Sequential(Conv2D(4, 3, stride=2, padding=1), BatchNorm2D(), ReLU(), Conv2D(4, 3, padding=1))
    model = Sequential(Residual(body, shortcut=[Conv2D(4, 1, stride=2), BatchNorm2D()]), ReLU(),
                       input_shape=(2, 6, 6), dtype=F64, seed=0)
    assert model.output_shape == (4, 3, 3)
    gradcheck(model, batch((3, 2, 6, 6)))


def test_residual_shape_mismatch_is_a_clear_build_error():
    with pytest.raises(ValueError, match="projection shortcut"):
        Sequential(Residual(Conv2D(4, 3, stride=2, padding=1)), input_shape=(2, 6, 6))
    with pytest.raises(ValueError, match=r"body output shape \(4, 3, 3\).*shortcut output shape \(4, 6, 6\)"):
        Sequential(Residual(Conv2D(4, 3, stride=2, padding=1), shortcut=Conv2D(4, 1)), input_shape=(2, 6, 6))


# --------------------------------------------------------------------- Concat
def test_concat_inception_block_gradcheck():
    block = Concat(Conv2D(2, 1),
                   Sequential(Conv2D(2, 1), ReLU(), Conv2D(3, 3, padding=1)),
                   Sequential(MaxPool2D(3, stride=1, padding=1), Conv2D(1, 1)))
    model = Sequential(block, Tanh(), input_shape=(3, 5, 5), dtype=F64, seed=0)
    assert model.output_shape == (6, 5, 5)
    x = batch((2, 3, 5, 5))
    y = block.forward(x)
    np.testing.assert_allclose(y[:, :2], block.branch0.forward(x))
    np.testing.assert_allclose(y[:, 2:5], block.branch1.forward(x))
    gradcheck(model, x)


def test_concat_mismatched_branches():
    with pytest.raises(ValueError, match="differ outside the concatenation axis"):
        Sequential(Concat(Conv2D(2, 1), Conv2D(2, 3)), input_shape=(1, 5, 5))


# --------------------------------------------------------------------- AuxHead
def _aux_model():
    head = Sequential(GlobalAvgPool2D(), Linear(5), Tanh(), Linear(3))
    return Sequential(Conv2D(3, 3, padding=1), Tanh(), AuxHead(head, weight=0.4), Conv2D(4, 3, padding=1), Tanh(),
                      Flatten(), Linear(3), input_shape=(2, 4, 4), dtype=F64, seed=0)


def test_aux_head_identity_and_eval_mode():
    model = _aux_model()
    aux = model.layers[2]
    assert aux_heads(model) == [aux]
    assert aux.output_shape == (3, 4, 4) and aux.head_shape == (3,)
    x = batch((4, 2, 4, 4))
    y = model(x)
    assert aux.aux_output.shape == (4, 3)
    model.eval()
    np.testing.assert_allclose(model(x), y)   # the head does not change the trunk
    assert aux.aux_output is None
    assert auxiliary_loss(model, SoftmaxCrossEntropy(), np.zeros(4, int)) == 0.0
    # its parameters are part of the model (so the optimizer trains them)
    assert any(n.startswith("2.head.") for n, _ in model.named_parameters())


def test_aux_head_total_loss_gradient_matches_finite_differences():
    """The gradient of main + weight * aux loss wrt every parameter (trunk and head) and the input."""
    model = _aux_model()
    x = batch((5, 2, 4, 4))
    t = np.array([0, 1, 2, 1, 0])
    loss = SoftmaxCrossEntropy()
    named = list(model.named_parameters())

    def total_loss(*arrays):
        for (_, p), a in zip(named, arrays[:-1]):
            p.data[...] = a
        y = model.forward(arrays[-1])
        main = loss.forward(y, t)
        aux = auxiliary_loss(model, loss, t)
        return np.array(main + aux)

    def gradients(dtotal):
        model.zero_grad()
        y = model.forward(x)
        loss.forward(y, t)
        dy = loss.backward()
        model.auxiliary_loss(loss, t)
        dx = model.backward(dy)
        return tuple(dtotal * p.grad for _, p in named) + (dtotal * dx,)

    inputs = tuple(p.data.copy() for _, p in named) + (x,)
    errors = gradcheck((total_loss, gradients), inputs)
    assert len(errors) == len(named) + 1

    # and the aux term really contributes: without it the trunk's first conv gets another gradient
    model.zero_grad()
    y = model.forward(x)
    loss.forward(y, t)
    model.backward(loss.backward())
    g_main = model.layers[0].weight.grad.copy()
    assert np.abs(model.layers[2].head.layers[1].weight.grad).sum() == 0   # head untouched without aux loss
    gradients(1.0)
    assert not np.allclose(g_main, model.layers[0].weight.grad)


def test_auxiliary_loss_value_is_weighted_head_loss():
    model = _aux_model()
    x, t = batch((3, 2, 4, 4)), np.array([2, 0, 1])
    model(x)
    aux = model.layers[2]
    expected = 0.4 * SoftmaxCrossEntropy().forward(aux.aux_output, t)
    assert auxiliary_loss(model, SoftmaxCrossEntropy(), t) == pytest.approx(expected)


# --------------------------------------------------------------------- config
def test_config_round_trip_rebuilds_same_architecture():
    model = Sequential(Conv2D(4, 3, padding=1), BatchNorm2D(), ReLU(),
                       Residual([Conv2D(4, 3, padding=1), ReLU()]), SqueezeExcite(2),
                       Concat(Conv2D(2, 1), Conv2D(2, 3, padding=1)), AuxHead([GlobalAvgPool2D(), Linear(10)]),
                       Dropout(0.2), GlobalAvgPool2D(), Linear(10), input_shape=(1, 8, 8), seed=5)
    cfg = dl2.to_config(model)
    import json
    clone = dl2.from_config(json.loads(json.dumps(cfg)))
    assert clone.built and clone.input_shape == (1, 8, 8) and clone.dtype == np.float32
    assert repr(clone).splitlines()[1:] == repr(model).splitlines()[1:]   # same layers
    assert [(n, p.shape) for n, p in clone.named_parameters()] == [(n, p.shape) for n, p in model.named_parameters()]
    clone.load_state_dict(model.state_dict())
    model.eval(), clone.eval()
    x = batch((2, 1, 8, 8), dtype=np.float32)
    assert np.array_equal(model(x), clone(x))
    # the generic dl2.from_config works on the module part too
    assert isinstance(dl2.from_config(model.get_config()), Sequential)


# --------------------------------------------------------------------- slicing
def test_slice_shares_the_trained_layers_without_reinitialising():
    model = Sequential(Conv2D(3, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Linear(4),
                       input_shape=(1, 6, 6), seed=0)
    model[0].weight.data[...] = 0.25                 # "trained" weights
    features = model[:3]
    assert features.built and features.input_shape == (1, 6, 6) and features.output_shape == (3, 3, 3)
    assert features[0] is model[0] and np.all(features[0].weight.data == 0.25)
    x = np.random.default_rng(0).random((2, 1, 6, 6), dtype=np.float32)
    np.testing.assert_array_equal(features(x), model[2](model[1](model[0](x))))
    head = model[3:]
    assert head.input_shape == (3, 3, 3) and head.output_shape == (4,)
    np.testing.assert_array_equal(head(features(x)), model(x))
    assert not Sequential(Linear(2), Linear(3))[:1].built     # a slice of an unbuilt model is unbuilt
