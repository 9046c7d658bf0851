"""Tests of dl2.init: statistics of large tensors, fans, the resolver, dtypes, and the layers' use of them."""
import numpy as np
import pytest

import dl2
from dl2 import init


def rng():
    return np.random.default_rng(0)


def test_he_std_and_mean():
    w = init.he((1000, 500), rng=rng())
    assert abs(w.std() / np.sqrt(2 / 1000) - 1) < 0.03
    assert abs(w.mean()) < 0.01 * w.std()
    assert w.shape == (1000, 500) and w.dtype == np.float32


def test_xavier_is_one_over_sqrt_fan_in():
    w = init.xavier((800, 300), rng=rng(), dtype=np.float64)
    assert w.dtype == np.float64
    assert abs(w.std() / np.sqrt(1 / 800) - 1) < 0.03


def test_glorot_uniform_bounds_and_variance():
    w = init.glorot_uniform((400, 600), rng=rng())
    limit = np.sqrt(6 / 1000)
    assert w.min() >= -limit and w.max() <= limit
    assert abs(w.var() / (2 / 1000) - 1) < 0.03


def test_conv_fans_and_explicit_fans():
    assert init.fans((30, 16, 5, 5)) == (16 * 25, 30 * 25)
    assert init.fans((100, 10)) == (100, 10)
    w = init.he((64, 32, 3, 3), rng=rng())
    assert abs(w.std() / np.sqrt(2 / (32 * 9)) - 1) < 0.03
    w = init.he((1000, 1000), fan_in=50, rng=rng())
    assert abs(w.std() / np.sqrt(2 / 50) - 1) < 0.03
    with pytest.raises(ValueError, match="fan_in"):
        init.he((3, 4, 5))


def test_normal_zeros_ones():
    assert abs(init.normal((1000, 100), rng=rng()).std() / 0.01 - 1) < 0.03
    assert abs(init.normal((1000, 100), rng=rng(), std=0.5).std() / 0.5 - 1) < 0.03
    assert np.all(init.zeros((3, 2)) == 0) and np.all(init.ones((3, 2), dtype=np.float64) == 1)


def test_same_seed_same_weights_in_both_dtypes():
    a = init.he((20, 10), rng=np.random.default_rng(5), dtype=np.float32)
    b = init.he((20, 10), rng=np.random.default_rng(5), dtype=np.float64)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_get_resolver():
    assert init.get("he") is init.he and init.get("Xavier") is init.xavier
    assert abs(init.get(0.2)((500, 400), rng=rng()).std() / 0.2 - 1) < 0.03
    custom = init.get(lambda shape, fan_in, fan_out, rng, dtype: np.full(shape, 3.0, dtype))
    assert np.all(custom((2, 2), 2, 2, rng(), np.float32) == 3)
    with pytest.raises(ValueError, match="unknown initialiser 'lecun'"):
        init.get("lecun")
    with pytest.raises(ValueError, match=">= 0"):
        init.get(-1.0)
    with pytest.raises(TypeError):
        init.get(None)


@pytest.mark.parametrize("name, std", [("he", np.sqrt(2 / 400)), ("xavier", np.sqrt(1 / 400)), (0.01, 0.01)])
def test_layers_use_weight_init(name, std):
    lin = dl2.Linear(300, weight_init=name)
    lin.build((400,), np.float32, rng())
    assert abs(lin.weight.data.std() / std - 1) < 0.03
    lin2 = dl2.Linear(3, weight_init=lambda shape, fan_in, fan_out, rng, dtype: np.ones(shape, dtype))
    lin2.build((4,), np.float64, rng())
    assert np.all(lin2.weight.data == 1)
