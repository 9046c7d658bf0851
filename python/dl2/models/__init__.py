"""Model zoo: functions returning built :class:`dl2.Sequential` networks.

Every constructor takes ``input_shape`` (per sample, ``(C, H, W)`` for images), ``num_classes`` (default 10),
``dtype`` and ``seed``, and returns a network already built for that input. The convolutional ones take
``width``, a multiplier of every channel count. The classic architectures (AlexNet, VGG, GoogLeNet, ResNet)
come in their full ImageNet size and in a ``small`` variant for 28x28 inputs, chosen automatically when the
input is smaller than 64 pixels.

=====================  ==========================  ==========================================================
registry name          constructor                 follows
=====================  ==========================  ==========================================================
``cnn``                :func:`SmallCNN`            the default of ``dl2 train``: two conv + batch-norm stages
``mlp``                :func:`MLP`                 Saito, "Deep Learning from Scratch" (2016), ch. 5-6
``simple_conv_net``    :func:`SimpleConvNet`       same book, ch. 7
``double_conv_net``    :func:`DoubleConvNet`       same book, ch. 7 (two conv stages)
``deep_conv_net``      :func:`DeepConvNet`         same book, ch. 8
``bn_cnn``             :func:`BNConvNet`           small CNN with batch norm (Ioffe & Szegedy, 2015)
``lenet5``             :func:`LeNet5`              LeCun et al. (1998)
``alexnet``            :func:`AlexNet`             Krizhevsky et al. (2012)
``vgg``                :func:`VGG`                 Simonyan & Zisserman (2015)
``googlenet``          :func:`GoogLeNet`           Szegedy et al. (2015)
``resnet``             :func:`ResNet`              He et al. (2016)
``se_resnet``          :func:`SEResNet`            Hu et al. (2018)
=====================  ==========================  ==========================================================

``dl2.models.get("resnet", (1, 28, 28), 10, depth=20)`` builds one by name; ``dl2 train --model`` looks models
up here and nowhere else (add your own with ``dl2.models.REGISTRY["mine"] = constructor``, a function taking
``input_shape``, ``num_classes`` and keyword arguments such as ``seed``).
"""
import inspect

from .alexnet import AlexNet
from .convnets import BNConvNet, DeepConvNet, DoubleConvNet, SimpleConvNet, SmallCNN
from .googlenet import GoogLeNet
from .lenet import LeNet5
from .mlp import MLP
from .resnet import ResNet, SEResNet
from .vgg import VGG

__all__ = ["SmallCNN", "MLP", "SimpleConvNet", "DoubleConvNet", "DeepConvNet", "BNConvNet", "LeNet5", "AlexNet", "VGG",
           "GoogLeNet", "ResNet", "SEResNet", "REGISTRY", "get", "names"]

#: Model constructors by registry name.
REGISTRY = {
    "cnn": SmallCNN,
    "mlp": MLP,
    "simple_conv_net": SimpleConvNet,
    "double_conv_net": DoubleConvNet,
    "deep_conv_net": DeepConvNet,
    "bn_cnn": BNConvNet,
    "lenet5": LeNet5,
    "alexnet": AlexNet,
    "vgg": VGG,
    "googlenet": GoogLeNet,
    "resnet": ResNet,
    "se_resnet": SEResNet,
}


def _key(name):
    return str(name).strip().lower().replace("-", "_")


def names():
    """The registry names, sorted."""
    return sorted(REGISTRY)


def get(name, input_shape=None, num_classes=10, **kwargs):
    """Build the model registered as ``name`` (``-`` and ``_`` are interchangeable, case is ignored) for
    ``input_shape`` and ``num_classes``; ``kwargs`` go to the constructor (e.g. ``depth=11, batchnorm=True`` for
    ``vgg``, ``dtype``, ``seed``). ``input_shape=None`` uses the constructor's default."""
    key = _key(name)
    if key not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(names())}")
    params = inspect.signature(REGISTRY[key]).parameters
    if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            takes = ", ".join(k for k in params if k not in ("input_shape", "num_classes"))
            raise TypeError(f"model {key!r} has no argument {', '.join(map(repr, unknown))}; it takes {takes}")
    if input_shape is not None:
        kwargs["input_shape"] = tuple(int(s) for s in input_shape)
    return REGISTRY[key](num_classes=num_classes, **kwargs)
