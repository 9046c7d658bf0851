"""VGG (Simonyan & Zisserman, "Very deep convolutional networks for large-scale image recognition", ICLR 2015),
configurations A, B, D and E (VGG-11, -13, -16, -19), with a small variant for 28x28 images."""
import numpy as np

from ..layers import BatchNorm2D, Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU
from ._common import build, check_classes, scaled, variant_and_shape

__all__ = ["VGG", "VGG_CONFIGS"]

#: Convolutions per stage for each depth (Table 1 of the paper; stage widths 64, 128, 256, 512, 512).
VGG_CONFIGS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)


def VGG(input_shape=None, num_classes=10, depth=16, *, small=None, batchnorm=False, dropout=0.5, width=None,
        dtype=np.float32, seed=None):
    """VGG-``depth`` (11, 13, 16 or 19): stages of 3x3 convolutions (padding 1, each followed by ReLU, or by
    BatchNorm2D and ReLU with ``batchnorm=True`` -- the "VGG-BN" variant, whose convolutions then have no bias)
    with stage widths 64, 128, 256, 512, 512 times ``width``. A stage's last ReLU is placed after its max pool:
    the max of ReLUs is the ReLU of the max, with the same gradients, so it is the same network, with the ReLU
    on a quarter of the values.

    Full size (``small=False``, default input ``(3, 224, 224)``): a 2x2 max pool after each of the five stages
    (224 -> 7), then ``Linear 4096 -> ReLU -> Dropout -> Linear 4096 -> ReLU -> Dropout -> Linear num_classes``.
    With 1000 classes VGG-16 has 138,357,544 parameters and VGG-11 132,863,336 (the paper's "133 M" and
    "138 M").

    Small (``small=True``; the default whenever the input is smaller than 64 pixels; default input
    ``(1, 28, 28)``): the same stages with ``width=0.5`` by default (32, 64, 128, 256, 256 channels), max
    pooling only after stages 1, 2 and 3 (28 -> 14 -> 7 -> 3), then ``Linear 512*width -> ReLU -> Dropout ->
    Linear num_classes`` (one hidden affine layer instead of two of 4096). For ``(1, 28, 28)`` and 10 classes the
    small VGG-16 has 4,272,234 parameters (4,274,346 with batch norm), the small VGG-11 with batch norm 2,899,690,
    and 726,394 with ``width=0.25`` (the network of docs/RESULTS.md).
    """
    if depth not in VGG_CONFIGS:
        raise ValueError(f"VGG: depth must be one of {sorted(VGG_CONFIGS)}, got {depth!r}")
    small, shape = variant_and_shape(input_shape, small, "VGG")
    num_classes = check_classes(num_classes, "VGG")
    if width is None:
        width = 0.5 if small else 1.0
    pools = (True, True, True, False, False) if small else (True,) * 5
    layers = []
    for n_convs, channels, pool in zip(VGG_CONFIGS[depth], _WIDTHS, pools):
        for _ in range(n_convs):
            if batchnorm:
                layers += [Conv2D(scaled(channels, width), 3, padding=1, bias=False), BatchNorm2D(), ReLU()]
            else:
                layers += [Conv2D(scaled(channels, width), 3, padding=1), ReLU()]
        if pool:
            layers[-1:] = [MaxPool2D(2), ReLU()]   # the same function, the ReLU on a quarter of the values
    layers.append(Flatten())
    for _ in range(1 if small else 2):
        layers += [Linear(scaled(512 if small else 4096, width)), ReLU()]
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Linear(num_classes))
    return build(layers, shape, dtype, seed, "VGG")
