"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document recognition", 1998)."""
import numpy as np

from ..layers import AvgPool2D, Conv2D, Flatten, Linear, MaxPool2D
from ._common import build, check_classes, image_shape, make_activation, scaled

__all__ = ["LeNet5"]


def LeNet5(input_shape=(1, 28, 28), num_classes=10, *, activation="tanh", pool="avg", padding=None, width=1.0,
           dtype=np.float32, seed=None):
    """LeNet-5: ``C1 Conv 6@5x5 -> act -> S2 pool 2 -> C3 Conv 16@5x5 -> act -> S4 pool 2 -> C5 Linear 120 -> act
    -> F6 Linear 84 -> act -> Linear num_classes`` (LeCun et al., 1998, section II.B).

    As in the paper, 28x28 digits are placed in a 32x32 field: ``padding=None`` pads C1 by 2 for a 28x28 input
    (and by 0 otherwise), so C5 sees 16 maps of 5x5. Differences from the paper, as in most modern re-implementations:
    C3 connects to all 6 S2 maps (the paper's connection table leaves some out), S2/S4 are plain pools (the paper's
    have a trainable coefficient and bias), the activation is a plain ``tanh`` (the paper scales it,
    ``1.7159 tanh(2x/3)``) and the output layer is an affine layer instead of Euclidean RBF units.
    ``activation="relu", pool="max"`` gives the common modern variant.

    Parameters for ``(1, 28, 28)`` or ``(1, 32, 32)`` and 10 classes: 61,706 (156 + 2,416 + 48,120 + 10,164 + 850),
    the figure usually quoted for LeNet-5 with full C3 connectivity.
    """
    c, h, w = shape = image_shape(input_shape, "LeNet5")
    num_classes = check_classes(num_classes, "LeNet5")
    if padding is None:
        padding = 2 if (h, w) == (28, 28) else 0
    if pool not in ("avg", "max"):
        raise ValueError(f"LeNet5: pool must be 'avg' or 'max', got {pool!r}")
    Pool = AvgPool2D if pool == "avg" else MaxPool2D
    layers = [Conv2D(scaled(6, width), 5, padding=padding, weight_init="xavier"), make_activation(activation),
              Pool(2),
              Conv2D(scaled(16, width), 5, weight_init="xavier"), make_activation(activation), Pool(2),
              Flatten(),
              Linear(scaled(120, width), weight_init="xavier"), make_activation(activation),
              Linear(scaled(84, width), weight_init="xavier"), make_activation(activation),
              Linear(num_classes, weight_init="xavier")]
    return build(layers, shape, dtype, seed, "LeNet5")
