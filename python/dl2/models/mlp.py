"""The multi-layer perceptron of "Deep Learning from Scratch" (Saito, 2016), ch. 5-6, with all its switches."""
import numpy as np

from ..layers import BatchNorm1D, Dropout, Flatten, Linear
from ._common import build, check_classes, make_activation

__all__ = ["MLP"]

#: The textbook's names for its two weight scalings (``weight_init_std='relu'`` / ``'sigmoid'``).
_INIT_ALIASES = {"relu": "he", "sigmoid": "xavier"}


def MLP(input_shape=(1, 28, 28), hidden_sizes=(100, 100), num_classes=10, *, activation="relu", weight_init="he",
        batchnorm=False, dropout=0.0, dropout_mode="inverted", dtype=np.float32, seed=None):
    """A fully connected classifier: ``[Linear -> (BatchNorm1D) -> activation -> (Dropout)] * len(hidden_sizes)
    -> Linear(num_classes)``, as the ``MultiLayerNetExtend`` of Saito, "Deep Learning from Scratch" (2016),
    ch. 6 (batch norm after the affine layer and before the activation; dropout after the activation).

    * ``input_shape``: any per-sample shape; images are flattened first (``(1, 28, 28)`` -> 784 inputs).
    * ``hidden_sizes``: units of each hidden layer (``()`` gives a softmax regression).
    * ``activation``: ``"relu"``, ``"sigmoid"``, ``"tanh"``, ``"leaky_relu"`` or ``"swish"``.
    * ``weight_init``: a :mod:`dl2.init` name (``"he"``, ``"xavier"``...), a float standard deviation (e.g.
      ``0.01``) or the textbook's aliases ``"relu"`` (He) and ``"sigmoid"`` (Xavier); used for every Linear.
    * ``batchnorm``: insert a :class:`~dl2.BatchNorm1D` after each hidden Linear.
    * ``dropout``: drop probability after each hidden activation (0 disables); ``dropout_mode`` as in
      :class:`~dl2.Dropout` (``"textbook"`` scales at test time as the book does).

    Weight decay (L2) and L1 regularisation are not part of the network: they are options of the optimizer,
    e.g. ``dl2.optim.SGD(model.parameters(), lr=0.01, weight_decay=0.1, l1=0.0)``, which adds
    ``weight_decay * W`` to the gradient of every weight (not of biases or batch-norm scales) -- the textbook's
    ``weight_decay_lambda``.

    Parameters for the default 784-100-100-10 net: 89,610 (``784*100+100 + 100*100+100 + 100*10+10``).
    """
    num_classes = check_classes(num_classes, "MLP")
    if not 0 <= dropout < 1:
        raise ValueError(f"MLP: dropout must be in [0, 1), got {dropout!r}")
    if isinstance(weight_init, str):
        weight_init = _INIT_ALIASES.get(weight_init.lower(), weight_init)
    shape = tuple(int(s) for s in np.atleast_1d(input_shape))
    layers = [Flatten()] if len(shape) != 1 else []
    for units in hidden_sizes:
        layers.append(Linear(int(units), weight_init=weight_init))
        if batchnorm:
            layers.append(BatchNorm1D())
        layers.append(make_activation(activation))
        if dropout:
            layers.append(Dropout(dropout, mode=dropout_mode))
    layers.append(Linear(num_classes, weight_init=weight_init))
    return build(layers, shape, dtype, seed, "MLP")

