"""Tests of dl2.losses: values against hand computations, gradients, targets, validation, dtypes."""
import math

import numpy as np
import pytest

import dl2


def randn(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


# ---------------------------------------------------------------------------------- SoftmaxCrossEntropy
def test_uniform_logits_give_log_classes():
    loss = dl2.SoftmaxCrossEntropy()
    value = loss.forward(np.zeros((4, 10)), np.array([0, 3, 9, 5]))
    assert isinstance(value, float)
    assert value == pytest.approx(math.log(10), rel=1e-12)


def test_hand_computed_value_and_gradient():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, math.log(2.0)]])
    labels = np.array([2, 0])
    # row 0: -log(e^3 / (e + e^2 + e^3)); row 1: probabilities (1/4, 1/4, 1/2), target 0 -> log 4
    row0 = -(3 - math.log(math.e + math.e ** 2 + math.e ** 3))
    loss = dl2.SoftmaxCrossEntropy()
    assert loss(logits, labels) == pytest.approx((row0 + math.log(4)) / 2, rel=1e-12)
    p0 = np.exp(logits[0]) / np.exp(logits[0]).sum()
    expected = np.array([p0 - [0, 0, 1], [0.25 - 1, 0.25, 0.5]]) / 2
    np.testing.assert_allclose(loss.backward(), expected, rtol=1e-12)
    np.testing.assert_allclose(loss.probs.sum(axis=1), 1.0)


def test_labels_and_one_hot_agree_and_sum_reduction():
    z, labels = randn(6, 4), np.array([0, 1, 2, 3, 1, 0])
    one_hot = np.eye(4)[labels]
    a, b = dl2.SoftmaxCrossEntropy(), dl2.SoftmaxCrossEntropy()
    assert a.forward(z, labels) == pytest.approx(b.forward(z, one_hot), rel=1e-12)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-12)
    total = dl2.SoftmaxCrossEntropy(reduction="sum")
    assert total.forward(z, labels) == pytest.approx(6 * a.forward(z, labels), rel=1e-12)
    np.testing.assert_allclose(total.backward(), 6 * a.backward(), rtol=1e-12)
    assert dl2.SoftmaxCrossEntropy().forward(z, labels.astype(np.float64)) == pytest.approx(a.forward(z, labels))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("soft", [False, True])
def test_cross_entropy_gradcheck(reduction, soft):
    rng = np.random.default_rng(0)
    t = rng.dirichlet(np.ones(5), size=4) if soft else rng.integers(0, 5, size=4)
    loss = dl2.SoftmaxCrossEntropy(reduction)
    dl2.gradcheck((lambda z: loss.forward(z, t), lambda r: r * loss.backward()), randn(4, 5))


def test_label_smoothing_equals_smoothed_one_hot_targets():
    z, labels = randn(5, 4), np.array([0, 3, 1, 1, 2])
    e = 0.2
    smoothed = (1 - e) * np.eye(4)[labels] + e / 4
    a, b = dl2.SoftmaxCrossEntropy(label_smoothing=e), dl2.SoftmaxCrossEntropy()
    assert a.forward(z, labels) == pytest.approx(b.forward(z, smoothed), rel=1e-12)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-12, atol=1e-15)
    c = dl2.SoftmaxCrossEntropy(label_smoothing=e)
    assert c.forward(z, np.eye(4)[labels]) == pytest.approx(a.forward(z, labels), rel=1e-12)
    dl2.gradcheck((lambda x: a.forward(x, labels), lambda r: r * a.backward()), z)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
            dl2.SoftmaxCrossEntropy(label_smoothing=bad)
    with pytest.raises(TypeError, match="label_smoothing must be a real number"):
        dl2.SoftmaxCrossEntropy(label_smoothing=True)


def test_large_logits_are_finite_and_exact():
    loss = dl2.SoftmaxCrossEntropy()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss.forward(np.array([[1000.0, 0.0], [-1000.0, 0.0]]), np.array([1, 1]))
    assert value == pytest.approx(1000 / 2, rel=1e-12)       # row 0 costs 1000, row 1 costs ~0
    assert np.all(np.isfinite(loss.backward()))


def test_non_finite_logits():
    loss = dl2.SoftmaxCrossEntropy()
    for bad in (np.nan, np.inf):
        z = np.zeros((3, 4))
        z[1, 2] = bad
        with pytest.raises(ValueError, match=r"1 sample\(s\) \(first: row 1\).*diverged"):
            loss.forward(z, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="all -inf"):
        loss.forward(np.full((1, 3), -np.inf), np.array([0]))
    z = np.array([[0.0, -np.inf, 0.0]])                       # an isolated -inf is a probability of 0
    assert loss.forward(z, np.array([0])) == pytest.approx(math.log(2))
    np.testing.assert_allclose(loss.backward(), [[-0.5, 0.0, 0.5]])
    with np.errstate(invalid="raise"):
        assert loss.forward(z, np.array([[0.5, 0.0, 0.5]])) == pytest.approx(math.log(2))


def test_target_validation():
    loss = dl2.SoftmaxCrossEntropy()
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\); got \[-1, 4\]"):
        loss.forward(z, np.array([0, 4, -1]))
    with pytest.raises(ValueError, match="3 logits rows but 2 labels"):
        loss.forward(z, np.array([0, 1]))
    with pytest.raises(ValueError, match="integer class labels"):
        loss.forward(z, np.array([0.5, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"logits' shape \(3, 4\), got \(3, 5\)"):
        loss.forward(z, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="logits must be 2-D"):
        loss.forward(np.zeros((3, 4, 2)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction"):
        dl2.SoftmaxCrossEntropy(reduction="none")
    with pytest.raises(RuntimeError, match="before forward"):
        dl2.SoftmaxCrossEntropy().backward()


def test_cross_entropy_float32():
    loss = dl2.SoftmaxCrossEntropy()
    z = randn(5, 3).astype(np.float32)
    value = loss.forward(z, np.array([0, 1, 2, 0, 1]))
    assert isinstance(value, float)
    assert loss.backward().dtype == np.float32
    reference = dl2.SoftmaxCrossEntropy().forward(z.astype(np.float64), np.array([0, 1, 2, 0, 1]))
    assert value == pytest.approx(reference, rel=1e-6)


# -------------------------------------------------------------------------------------------- MSELoss
def test_mse_hand_computed():
    y = np.array([[1.0, 2.0], [0.0, -1.0]])
    t = np.array([[0.0, 0.0], [0.0, 1.0]])
    loss = dl2.MSELoss()
    # per sample 1/2 * (1 + 4) = 2.5 and 1/2 * 4 = 2; mean 2.25
    assert loss.forward(y, t) == pytest.approx(2.25, rel=1e-12)
    np.testing.assert_allclose(loss.backward(), (y - t) / 2)
    total = dl2.MSELoss(reduction="sum")
    assert total(y, t) == pytest.approx(4.5)
    np.testing.assert_allclose(total.backward(), y - t)


def test_mse_gradcheck_shape_check_and_dtype():
    t = randn(3, 2, 4, seed=2)
    loss = dl2.MSELoss()
    dl2.gradcheck((lambda y: loss.forward(y, t), lambda r: r * loss.backward()), randn(3, 2, 4))
    with pytest.raises(ValueError, match=r"target shape \(3,\) differs from output shape \(3, 1\)"):
        loss.forward(np.zeros((3, 1)), np.zeros(3))
    loss.forward(np.zeros((2, 3), dtype=np.float32), np.ones((2, 3)))
    assert loss.backward().dtype == np.float32
