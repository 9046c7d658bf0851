"""The textbook's convolutional networks ("Deep Learning from Scratch", Saito 2016, ch. 7-8) and a small
batch-normalised CNN for Fashion-MNIST.

Every constructor takes ``width``: a multiplier of every channel and hidden-unit count (``round(n * width)``,
at least 1), so tests can gradient-check the same architecture with a handful of parameters.
"""
import numpy as np

from ..layers import BatchNorm1D, BatchNorm2D, Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU
from ._common import build, check_classes, image_shape, scaled

__all__ = ["SimpleConvNet", "DoubleConvNet", "DeepConvNet", "BNConvNet", "SmallCNN"]


def SimpleConvNet(input_shape=(1, 28, 28), num_classes=10, *, filters=30, kernel_size=5, hidden=100,
                  weight_init="he", width=1.0, dtype=np.float32, seed=None):
    """Saito, "Deep Learning from Scratch", ch. 7 ``SimpleConvNet``:
    ``Conv 30@5x5 (stride 1, no padding) -> ReLU -> MaxPool 2x2 -> Linear 100 -> ReLU -> Linear num_classes``.

    The book initialises every weight with std 0.01; here ``weight_init`` defaults to He (pass ``0.01`` for the
    book's). Parameters for ``(1, 28, 28)``: 433,890 (conv 780, Linear 30*12*12*100+100 = 432,100, Linear 1,010).
    """
    shape = image_shape(input_shape, "SimpleConvNet")
    num_classes = check_classes(num_classes, "SimpleConvNet")
    layers = [Conv2D(scaled(filters, width), kernel_size, weight_init=weight_init), ReLU(), MaxPool2D(2),
              Flatten(), Linear(scaled(hidden, width), weight_init=weight_init), ReLU(),
              Linear(num_classes, weight_init=weight_init)]
    return build(layers, shape, dtype, seed, "SimpleConvNet")


def DoubleConvNet(input_shape=(1, 28, 28), num_classes=10, *, hidden=100, weight_init="he", width=1.0,
                  dtype=np.float32, seed=None):
    """Two convolution stages then two affine layers (the two-conv exercise net of "Deep Learning from
    Scratch", ch. 7):
    ``Conv 10@7x7 pad 1 -> ReLU -> MaxPool 2 -> Conv 20@3x3 pad 1 -> ReLU -> MaxPool 2 -> Linear 100 -> ReLU
    -> Linear num_classes``, He initialisation.

    For ``(1, 28, 28)``: 28 -> 24 -> 12 -> 12 -> 6, so 20*6*6 = 720 features. Parameters: 75,430.
    """
    shape = image_shape(input_shape, "DoubleConvNet")
    num_classes = check_classes(num_classes, "DoubleConvNet")
    layers = [Conv2D(scaled(10, width), 7, padding=1, weight_init=weight_init), ReLU(), MaxPool2D(2),
              Conv2D(scaled(20, width), 3, padding=1, weight_init=weight_init), ReLU(), MaxPool2D(2),
              Flatten(), Linear(scaled(hidden, width), weight_init=weight_init), ReLU(),
              Linear(num_classes, weight_init=weight_init)]
    return build(layers, shape, dtype, seed, "DoubleConvNet")


def DeepConvNet(input_shape=(1, 28, 28), num_classes=10, *, channels=(16, 16, 32, 32, 64, 64), hidden=50,
                dropout=0.5, width=1.0, dtype=np.float32, seed=None):
    """Saito, "Deep Learning from Scratch", ch. 8 ``DeepConvNet`` (a small VGG-like net, ~99.4% on MNIST in the
    book): six 3x3 convolutions ``16, 16, 32, 32, 64, 64``, each followed by ReLU, with a 2x2 max pool after every
    pair, then ``Linear 50 -> ReLU -> Dropout 0.5 -> Linear num_classes -> Dropout 0.5`` (the book also drops out
    the logits). He initialisation throughout, as in the book.

    As in the book every convolution is padded by 1 except the fourth, padded by 2, so a 28x28 input goes
    28 -> 14 -> 16 -> 8 -> 4 and the first affine layer sees 64*4*4 = 1024 features. Parameters for
    ``(1, 28, 28)`` and 10 classes: 123,552 (convolutions 71,792, Linear 1024*50+50 = 51,250, Linear 510).
    """
    shape = image_shape(input_shape, "DeepConvNet")
    num_classes = check_classes(num_classes, "DeepConvNet")
    if len(channels) != 6:
        raise ValueError(f"DeepConvNet: channels must list 6 convolution widths, got {channels!r}")
    layers = []
    for i, c in enumerate(channels):
        layers += [Conv2D(scaled(c, width), 3, padding=2 if i == 3 else 1), ReLU()]
        if i % 2 == 1:
            layers.append(MaxPool2D(2))
    layers += [Flatten(), Linear(scaled(hidden, width)), ReLU()]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Linear(num_classes))
    if dropout:
        layers.append(Dropout(dropout))
    return build(layers, shape, dtype, seed, "DeepConvNet")


def BNConvNet(input_shape=(1, 28, 28), num_classes=10, *, channels=(32, 64), convs_per_stage=1, hidden=128,
              dropout=0.3, width=1.0, dtype=np.float32, seed=None):
    """A small batch-normalised CNN (registry name ``bn_cnn``), sized for Fashion-MNIST on a 2-core CPU: per stage
    ``[Conv 3x3 pad 1 -> BatchNorm2D -> ReLU] * convs_per_stage -> MaxPool 2``, one stage per entry of
    ``channels`` (32, 64), then ``Linear hidden -> BatchNorm1D -> ReLU -> Dropout -> Linear num_classes``
    (``hidden=0``: straight to ``Linear num_classes``). The stage's last ReLU is placed after its pooling: the
    max of ReLUs is the ReLU of the max, and the gradients are the same too, so it is the same network, with
    the ReLU on a quarter of the values.
    Batch normalisation after every convolution and hidden affine layer follows Ioffe & Szegedy, "Batch
    Normalization" (2015); those layers have no bias (the batch norm's shift replaces it). He initialisation.

    Parameters for ``(1, 28, 28)``: 421,866 (most in the 64*7*7 -> 128 affine layer); about 4.2 M
    multiply-adds per image. docs/RESULTS.md records its Fashion-MNIST accuracy.
    """
    shape = image_shape(input_shape, "BNConvNet")
    num_classes = check_classes(num_classes, "BNConvNet")
    layers = []
    for c in channels:
        for _ in range(int(convs_per_stage)):
            layers += [Conv2D(scaled(c, width), 3, padding=1, bias=False), BatchNorm2D(), ReLU()]
        layers[-1:] = [MaxPool2D(2), ReLU()]     # the same function, the ReLU on a quarter of the values
    layers.append(Flatten())
    if hidden:
        layers += [Linear(scaled(hidden, width), bias=False), BatchNorm1D(), ReLU()]
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Linear(num_classes))
    return build(layers, shape, dtype, seed, "BNConvNet")


def SmallCNN(input_shape=(1, 8, 8), num_classes=10, *, channels=(16, 32), width=1.0, dtype=np.float32, seed=None):
    """The default network of ``dl2 train`` (registry name ``cnn``): :func:`BNConvNet` without the hidden affine
    layer, ``[Conv 3x3 pad 1 -> BatchNorm2D -> ReLU -> MaxPool 2] x 2 (16, 32 channels) -> Linear num_classes``
    (each ReLU placed after its pooling, as in :func:`BNConvNet`).
    For the 8x8 digits: 6,138 parameters. Works for any image of at least 4x4 pixels (28x28 MNIST too).
    """
    return BNConvNet(input_shape, num_classes, channels=channels, hidden=0, width=width, dtype=dtype, seed=seed)
