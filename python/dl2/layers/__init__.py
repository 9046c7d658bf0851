"""dl2 layers. Every layer is a :class:`dl2.Module` with an explicit ``forward``/``backward``.

Per-sample shapes (no batch axis) are given to ``build``; batches are ``(N, *shape)``. Inputs are converted to
the layer's dtype (float32 or float64, no copy when they match); a batch whose shape does not fit the built
layer raises ``ValueError`` naming the layer and both shapes. ``needs_input_grad = False`` (set by containers on a
network's first layer) makes ``backward`` skip the input gradient and return ``None``.
"""
from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Swish, Tanh
from .conv import Conv2D
from .dropout import Dropout
from .linear import Affine, Linear
from .normalization import BatchNorm1D, BatchNorm2D, GroupNorm, InstanceNorm2D, LayerNorm, LocalResponseNorm
from .pooling import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, LPPool2D, MaxPool2D
from .reshape import Flatten
from .squeeze_excite import SqueezeExcite
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm

__all__ = [
    "Linear", "Affine", "Conv2D",
    "MaxPool2D", "AvgPool2D", "LPPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "Flatten",
    "BatchNorm1D", "BatchNorm2D", "SyncBatchNorm", "convert_sync_batchnorm", "LayerNorm", "InstanceNorm2D",
    "GroupNorm", "LocalResponseNorm",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Swish", "Softmax", "Dropout", "SqueezeExcite",
]
