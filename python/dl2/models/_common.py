"""Helpers shared by the model constructors: activations by name, channel scaling, building."""
import numpy as np

from ..checks import integer, number
from ..containers import Sequential
from ..layers import LeakyReLU, ReLU, Sigmoid, Swish, Tanh

#: Activation layers by name (as accepted by ``activation=`` arguments).
ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "leaky_relu": LeakyReLU, "swish": Swish}


def make_activation(name):
    """A new activation layer from its name (``"relu"``, ``"sigmoid"``, ``"tanh"``, ``"leaky_relu"``, ``"swish"``)."""
    key = str(name).lower().replace("-", "_")
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[key]()


def scaled(channels, width):
    """``round(channels * width)``, at least 1: the channel (or unit) count of a width-scaled model."""
    return max(1, int(round(channels * number(width, "model", "width", lo=0, lo_open=True))))


def image_shape(input_shape, who, default=(1, 28, 28)):
    """``input_shape`` as a ``(C, H, W)`` tuple (``default`` when None); ValueError otherwise."""
    shape = default if input_shape is None else tuple(int(s) for s in np.atleast_1d(input_shape))
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{who}: input_shape must be (C, H, W), got {input_shape!r}")
    return shape


def variant_and_shape(input_shape, small, who):
    """``(small, (C, H, W))``: ``small`` defaults to True for inputs under 64 pixels; the default input is
    ``(1, 28, 28)`` for the small variant and ``(3, 224, 224)`` for the full-size one."""
    if small is None:
        small = input_shape is not None and min(image_shape(input_shape, who)[1:]) < 64
    return small, image_shape(input_shape, who, default=(1, 28, 28) if small else (3, 224, 224))


def check_classes(num_classes, who):
    return integer(num_classes, who, "num_classes", 1)


def build(layers, input_shape, dtype, seed, who):
    """A :class:`Sequential` of ``layers`` built for ``input_shape``; shape errors name the model."""
    try:
        return Sequential(*layers, input_shape=input_shape, dtype=dtype, seed=seed)
    except ValueError as e:
        raise ValueError(f"{who} cannot be built for input_shape {tuple(input_shape)}: {e}") from e
