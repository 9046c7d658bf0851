"""AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet classification with deep convolutional neural networks",
NIPS 2012) and a small variant for 28x28 / 32x32 images."""
import numpy as np

from ..layers import Conv2D, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2D, ReLU
from ._common import build, check_classes, scaled, variant_and_shape

__all__ = ["AlexNet"]


def _lrn():
    # The paper's constants: k = 2, n = 5, alpha = 1e-4, beta = 0.75 (section 3.3).
    return LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


def AlexNet(input_shape=None, num_classes=10, *, small=None, dropout=0.5, width=1.0, dtype=np.float32,
            seed=None):
    """AlexNet: five convolutions with ReLU, local response normalisation after the first two, overlapping
    3x3/stride-2 max pooling, and three fully connected layers with dropout 0.5 on the first two.

    Full size (``small=False``, default input ``(3, 224, 224)``): ``Conv 96@11x11/4 pad 2 -> ReLU -> LRN ->
    MaxPool 3/2 -> Conv 256@5x5 pad 2 -> ReLU -> LRN -> MaxPool 3/2 -> Conv 384@3x3 -> ReLU -> Conv 384@3x3 ->
    ReLU -> Conv 256@3x3 -> ReLU -> MaxPool 3/2 -> Dropout -> Linear 4096 -> ReLU -> Dropout -> Linear 4096 ->
    ReLU -> Linear num_classes``. This is the single-tower network (the paper split convolutions 2, 4 and 5 into
    two groups across two GPUs); with 1000 classes it has 62,378,344 parameters, the usual ungrouped figure
    (the grouped original has about 60 M).

    Small (``small=True``, default input ``(1, 28, 28)``; the default whenever the input is smaller than 64
    pixels): the same layer sequence with 5x5 and 3x3 kernels at stride 1, channels 64, 128, 192, 192, 128, and
    Linear 512, 512. For ``(1, 28, 28)`` the maps shrink 28 -> 13 -> 6 -> 2, giving 128*2*2 features; 1,511,690
    parameters with 10 classes. ``width`` scales every channel and hidden-unit count.
    """
    small, shape = variant_and_shape(input_shape, small, "AlexNet")
    num_classes = check_classes(num_classes, "AlexNet")
    if small:
        convs = [(64, 5, 1, 2), (128, 5, 1, 2), (192, 3, 1, 1), (192, 3, 1, 1), (128, 3, 1, 1)]
        hidden = 512
    else:
        convs = [(96, 11, 4, 2), (256, 5, 1, 2), (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1)]
        hidden = 4096
    layers = []
    for i, (k, size, stride, pad) in enumerate(convs):
        layers += [Conv2D(scaled(k, width), size, stride=stride, padding=pad), ReLU()]
        if i < 2:
            layers += [_lrn(), MaxPool2D(3, stride=2)]
    layers += [MaxPool2D(3, stride=2), Flatten()]
    for _ in range(2):
        if dropout:
            layers.append(Dropout(dropout))
        layers += [Linear(scaled(hidden, width)), ReLU()]
    layers.append(Linear(num_classes))
    return build(layers, shape, dtype, seed, "AlexNet")
