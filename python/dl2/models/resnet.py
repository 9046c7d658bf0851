"""Residual networks with basic blocks: ResNet (He, Zhang, Ren & Sun, "Deep residual learning for image
recognition", CVPR 2016) and SE-ResNet (Hu, Shen & Sun, "Squeeze-and-excitation networks", CVPR 2018)."""
import numpy as np

from ..containers import Residual
from ..layers import BatchNorm2D, Conv2D, GlobalAvgPool2D, Linear, MaxPool2D, ReLU, SqueezeExcite
from ._common import build, check_classes, scaled, variant_and_shape

__all__ = ["ResNet", "SEResNet", "basic_block"]

#: Basic blocks per stage of the ImageNet networks (Table 1 of He et al.).
IMAGENET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def _conv_bn(channels, kernel, stride=1):
    return [Conv2D(channels, kernel, stride=stride, padding=kernel // 2, bias=False), BatchNorm2D()]


def basic_block(in_channels, channels, stride=1, se_reduction=None):
    """``[Residual(body, shortcut), ReLU()]``: body ``Conv 3x3/stride -> BN -> ReLU -> Conv 3x3 -> BN`` (then
    ``SqueezeExcite`` when ``se_reduction`` is given, as in the SE-ResNet module of Hu et al., Fig. 3); shortcut
    the identity, or ``Conv 1x1/stride -> BN`` (projection, option B of He et al.) when the shape changes.
    """
    body = _conv_bn(channels, 3, stride) + [ReLU()] + _conv_bn(channels, 3)
    if se_reduction:
        body.append(SqueezeExcite(se_reduction))
    shortcut = _conv_bn(channels, 1, stride) if stride != 1 or in_channels != channels else None
    return [Residual(body, shortcut), ReLU()]


def _small_blocks(who, depth, blocks):
    """Blocks per stage of a small network, from ``depth = 6n + 2`` or from ``blocks`` (three counts)."""
    if blocks is None:
        depth = 20 if depth is None else depth
        if isinstance(depth, bool) or int(depth) != depth or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"{who}: a small network has depth 6n+2 (8, 14, 20, 32, 44, 56, ...), got {depth!r}")
        return ((depth - 2) // 6,) * 3
    blocks = tuple(np.atleast_1d(blocks).tolist()) if not isinstance(blocks, (list, tuple)) else tuple(blocks)
    if (len(blocks) != 3 or any(isinstance(b, bool) or int(b) != b or b < 0 for b in blocks)
            or not any(blocks)):
        raise ValueError(f"{who}: blocks must be three block counts >= 0 (not all 0), got {blocks!r}")
    blocks = tuple(int(b) for b in blocks)
    if depth is not None and depth != 2 * sum(blocks) + 2:
        raise ValueError(f"{who}: depth {depth!r} does not match blocks {blocks} (depth = 2 * sum(blocks) + 2 = "
                         f"{2 * sum(blocks) + 2}); give one of them")
    return blocks


def _resnet(who, input_shape, num_classes, depth, small, width, se_reduction, dtype, seed, blocks=None):
    small, shape = variant_and_shape(input_shape, small, who)
    num_classes = check_classes(num_classes, who)
    if small:
        counts = _small_blocks(who, depth, blocks)
        stages = [(c, n, s) for c, n, s in zip((16, 32, 64), counts, (1, 2, 2)) if n]
        width = 1.0 if width is None else width
        stem = _conv_bn(scaled(16, width), 3) + [ReLU()]
    else:
        if blocks is not None:
            raise ValueError(f"{who}: blocks applies to the small network only (full size: depth 18 or 34)")
        depth = 18 if depth is None else depth
        if depth not in IMAGENET_BLOCKS:
            raise ValueError(f"{who}: a full-size network has depth 18 or 34 (basic blocks), got {depth!r}")
        stages = [(c, n, 1 if i == 0 else 2) for i, (c, n) in enumerate(zip((64, 128, 256, 512),
                                                                             IMAGENET_BLOCKS[depth]))]
        width = 1.0 if width is None else width
        stem = _conv_bn(scaled(64, width), 7, stride=2) + [ReLU(), MaxPool2D(3, stride=2, padding=1)]
    layers = list(stem)
    in_channels = scaled(16 if small else stages[0][0], width)
    for channels, count, stride in stages:
        channels = scaled(channels, width)
        for b in range(count):
            layers += basic_block(in_channels, channels, stride if b == 0 else 1, se_reduction)
            in_channels = channels
    layers += [GlobalAvgPool2D(), Linear(num_classes)]
    return build(layers, shape, dtype, seed, who)


def ResNet(input_shape=None, num_classes=10, depth=None, *, small=None, width=None, blocks=None, dtype=np.float32,
           seed=None):
    """ResNet with basic blocks (see :func:`basic_block`), BatchNorm after every convolution (convolutions
    without bias), He initialisation, global average pooling and one ``Linear num_classes``.

    Full size (``small=False``, default input ``(3, 224, 224)``, ``depth`` 18 (default) or 34): ``Conv 64@7x7/2
    -> BN -> ReLU -> MaxPool 3/2`` then stages of 64, 128, 256, 512 channels with 2, 2, 2, 2 (ResNet-18) or
    3, 4, 6, 3 (ResNet-34) blocks, the first block of stages 2-4 with stride 2 and a projection shortcut.
    ResNet-18 with 1000 classes has 11,689,512 parameters, ResNet-34 21,797,672 (the published figures).

    Small (``small=True``; the default whenever the input is smaller than 64 pixels; default input
    ``(1, 28, 28)``): the CIFAR-10 networks of He et al., section 4.2 -- ``Conv 16@3x3 -> BN -> ReLU``, then three
    stages of ``n`` blocks with 16, 32, 64 channels (strides 1, 2, 2), ``depth = 6n + 2`` (8, 14, 20 (default),
    32, ...), but with projection shortcuts where the shape changes (the paper's option B; its CIFAR nets use
    zero padding). Small ResNet-20 for ``(1, 28, 28)``: 272,186 parameters with 10 classes.

    ``blocks`` (small networks only): the blocks of each of the three stages instead of ``n, n, n``, e.g.
    ``(0, 2, 2)``; a stage with no blocks is left out together with its stride, ``depth = 2 * sum(blocks) + 2``.
    ``ResNet(blocks=(0, 2, 2), width=2)`` (the ``resnet10w2`` recipe of ``docs/RESULTS.md``): ``Conv 32@3x3`` at
    28x28, two blocks of 64 channels at 14x14 and two of 128 at 7x7, 658,922 parameters; it skips the 28x28
    stage, whose narrow convolutions are the slowest per multiply-add on a CPU.

    ``width`` multiplies every channel count (tests use tiny widths).
    """
    return _resnet("ResNet", input_shape, num_classes, depth, small, width, None, dtype, seed, blocks)


def SEResNet(input_shape=None, num_classes=10, depth=None, *, small=None, width=None, blocks=None, reduction=16,
             dtype=np.float32, seed=None):
    """ResNet (see :func:`ResNet`, same arguments) with a squeeze-and-excitation unit ``SqueezeExcite(reduction)``
    at the end of every residual body, before the addition (Hu et al., "Squeeze-and-excitation networks", 2018,
    Fig. 3; reduction ratio 16). SE-ResNet-18 with 1000 classes: 11,778,592 parameters; small SE-ResNet-20 for
    ``(1, 28, 28)``: 274,559 (channels / 16, at least one hidden unit, per SE unit).
    """
    return _resnet("SEResNet", input_shape, num_classes, depth, small, width, int(reduction), dtype, seed, blocks)
