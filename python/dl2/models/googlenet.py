"""GoogLeNet / Inception v1 (Szegedy et al., "Going deeper with convolutions", CVPR 2015)."""
import numpy as np

from ..containers import AuxHead, Concat
from ..layers import (AvgPool2D, Conv2D, Dropout, Flatten, GlobalAvgPool2D, Linear, LocalResponseNorm, MaxPool2D,
                      ReLU)
from ._common import build, check_classes, scaled, variant_and_shape

__all__ = ["GoogLeNet", "inception", "INCEPTION_CONFIGS"]

#: Table 1 of the paper: ``#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj`` of each Inception module.
INCEPTION_CONFIGS = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def _conv(channels, kernel, stride=1, padding=0):
    return [Conv2D(channels, kernel, stride=stride, padding=padding), ReLU()]


def inception(c1, c3r, c3, c5r, c5, pool_proj):
    """An Inception module (Fig. 2b of the paper): four branches concatenated on the channel axis --
    ``1x1``; ``1x1 reduce -> 3x3``; ``1x1 reduce -> 5x5``; ``3x3 max pool (stride 1) -> 1x1 projection`` -- every
    convolution followed by ReLU. Output channels ``c1 + c3 + c5 + pool_proj``; the spatial size is kept.
    """
    return Concat(_conv(c1, 1),
                  _conv(c3r, 1) + _conv(c3, 3, padding=1),
                  _conv(c5r, 1) + _conv(c5, 5, padding=2),
                  [MaxPool2D(3, stride=1, padding=1)] + _conv(pool_proj, 1))


def _aux_head(num_classes, width, pool, weight):
    """The auxiliary classifier of section 5: ``AvgPool -> Conv 128@1x1 -> ReLU -> Linear 1024 -> ReLU ->
    Dropout 0.7 -> Linear num_classes``, its loss weighted by ``weight`` (0.3) in training only."""
    return AuxHead([pool] + _conv(scaled(128, width), 1) +
                   [Flatten(), Linear(scaled(1024, width)), ReLU(), Dropout(0.7), Linear(num_classes)],
                   weight=weight)


def GoogLeNet(input_shape=None, num_classes=10, *, small=None, width=None, aux_weight=0.3, dropout=0.4,
              dtype=np.float32, seed=None):
    """GoogLeNet: a stem of plain convolutions, nine Inception modules (see :func:`inception`, channel counts from
    Table 1 of Szegedy et al. times ``width``), global average pooling, ``Dropout 0.4`` and ``Linear num_classes``.
    Two auxiliary classifiers (:class:`dl2.AuxHead`, loss weight ``aux_weight`` = 0.3) sit after modules 4a and 4d;
    they only act in training mode (the :class:`dl2.Trainer` adds their losses) and are skipped in evaluation.

    Full size (``small=False``, default input ``(3, 224, 224)``): ``Conv 64@7x7/2 -> ReLU -> MaxPool 3/2 -> LRN ->
    Conv 64@1x1 -> ReLU -> Conv 192@3x3 -> ReLU -> LRN -> MaxPool 3/2 -> 3a, 3b -> MaxPool 3/2 -> 4a..4e ->
    MaxPool 3/2 -> 5a, 5b`` (224 -> 112 -> 56 -> 28 -> 14 -> 7; pools pad by 1 where the paper rounds up); aux
    heads pool 5x5/3. With 1000 classes: 6,998,552 parameters without the auxiliary heads (Table 1 of the paper
    adds up to about 6.8 M), 13,378,280 with them.

    Small (``small=True``; the default whenever the input is smaller than 64 pixels; default input ``(1, 28, 28)``,
    ``width=0.25`` by default): ``Conv 3x3 -> ReLU -> Conv 3x3 -> ReLU -> MaxPool 2`` (28 -> 14), 3a, 3b,
    ``MaxPool 3/2`` (-> 7), 4a..4e, ``MaxPool 3/2`` (-> 4), 5a, 5b, and aux heads pooling 3x3/2; 10 classes:
    the small GoogLeNet has 538,058 parameters, 161,492 of them in the two aux heads.
    """
    small, shape = variant_and_shape(input_shape, small, "GoogLeNet")
    num_classes = check_classes(num_classes, "GoogLeNet")
    if width is None:
        width = 0.25 if small else 1.0

    def module(name):
        return inception(*(scaled(c, width) for c in INCEPTION_CONFIGS[name]))

    if small:
        layers = _conv(scaled(64, width), 3, padding=1) + _conv(scaled(192, width), 3, padding=1) + [MaxPool2D(2)]
        aux_pool = lambda: AvgPool2D(3, stride=2)  # noqa: E731
    else:
        layers = (_conv(scaled(64, width), 7, stride=2, padding=3) + [MaxPool2D(3, stride=2, padding=1),
                                                                      LocalResponseNorm()]
                  + _conv(scaled(64, width), 1) + _conv(scaled(192, width), 3, padding=1)
                  + [LocalResponseNorm(), MaxPool2D(3, stride=2, padding=1)])
        aux_pool = lambda: AvgPool2D(5, stride=3)  # noqa: E731
    layers += [module("3a"), module("3b"), MaxPool2D(3, stride=2, padding=1), module("4a")]
    if aux_weight:
        layers.append(_aux_head(num_classes, width, aux_pool(), aux_weight))
    layers += [module("4b"), module("4c"), module("4d")]
    if aux_weight:
        layers.append(_aux_head(num_classes, width, aux_pool(), aux_weight))
    layers += [module("4e"), MaxPool2D(3, stride=2, padding=1), module("5a"), module("5b"), GlobalAvgPool2D()]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Linear(num_classes))
    return build(layers, shape, dtype, seed, "GoogLeNet")
