"""Tests of the one window-geometry helper (fastconv.pair, fastconv.output_hw) and that the kernels, the reference
and the dl2 layers raise the same exception type for the same mistake."""
import numpy as np
import pytest

import fastconv
import dl2
from fastconv import reference


def test_pair_accepts_ints_and_pairs():
    assert fastconv.pair(3, "k", 1) == (3, 3)
    assert fastconv.pair((2, 5), "k", 1) == (2, 5)
    assert fastconv.pair([0, 1], "p", 0) == (0, 1)
    assert fastconv.pair(np.int64(4), "k", 1) == (4, 4)
    assert all(type(v) is int for v in fastconv.pair(np.array([2, 3]), "k", 1))


@pytest.mark.parametrize("value, error, message", [
    (2.7, TypeError, "k must be an int or a pair of ints, got 2.7"),
    (True, TypeError, "k must be an int or a pair of ints"),
    ("3", TypeError, "k must be an int or a pair"),
    ((1, 2, 3), ValueError, r"k must be an int or a pair \(h, w\), got \(1, 2, 3\)"),
    ((2, 0), ValueError, r"k must be >= 1, got \(2, 0\)"),
    (-1, ValueError, "k must be >= 1"),
])
def test_pair_errors(value, error, message):
    with pytest.raises(error, match=message):
        fastconv.pair(value, "k", 1)


def test_output_hw():
    assert fastconv.output_hw((28, 28), (5, 5), (1, 1), (0, 0)) == (24, 24)
    assert fastconv.output_hw((7, 8), (3, 2), (2, 3), (1, 0)) == (4, 3)     # (7+2-3)//2+1, (8-2)//3+1
    assert fastconv.output_hw((5,), (5,), (1,), (0,)) == (1,)
    with pytest.raises(ValueError, match=r"kernel size \(5, 5\) is larger than the padded input \(4, 4\)"):
        fastconv.output_hw((2, 2), (5, 5), (1, 1), (1, 1))


# The same mistake everywhere: the compiled kernel, its reference and the dl2 layer raise the same type.
SAME_MISTAKE = [
    ("float kernel", TypeError, lambda f: f.maxpool2d_forward(np.ones((1, 1, 4, 4)), 2.5),
     lambda: dl2.MaxPool2D(2.5)),
    ("triple stride", ValueError, lambda f: f.avgpool2d_forward(np.ones((1, 1, 4, 4)), 2, (1, 1, 1)),
     lambda: dl2.AvgPool2D(2, stride=(1, 1, 1))),
    ("negative padding", ValueError, lambda f: f.conv2d_forward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), None,
                                                                1, -1),
     lambda: dl2.Conv2D(1, 3, padding=-1)),
    ("kernel too large", ValueError, lambda f: f.conv2d_forward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3))),
     lambda: dl2.Sequential(dl2.Conv2D(1, 3), input_shape=(1, 2, 2))),
]


@pytest.mark.parametrize("what, error, kernel_call, layer_call", SAME_MISTAKE, ids=[c[0] for c in SAME_MISTAKE])
def test_same_mistake_same_exception(what, error, kernel_call, layer_call):
    for backend in (fastconv, reference):
        with pytest.raises(error):
            kernel_call(backend)
    with pytest.raises(error):
        layer_call()


def test_sizes_beyond_the_blas_32_bit_integers_are_refused_before_any_work():
    big = 2 ** 31                       # one more than a 32-bit BLAS integer can hold; zero-size arrays, no memory
    with pytest.raises(ValueError, match=r"linear: batch = 2147483648 exceeds the BLAS's 32-bit integer limit"):
        fastconv.linear_forward(np.zeros((big, 0), np.float32), np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="linear: out_features = 2147483648 exceeds"):
        fastconv.linear_backward(np.zeros((0, big), np.float32), np.zeros((0, 0), np.float32),
                                 np.zeros((0, big), np.float32))

