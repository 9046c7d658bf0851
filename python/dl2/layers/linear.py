"""Fully connected layer."""
import numpy as np

from .. import init
from ..backend import get_backend
from ..checks import integer
from ..module import Module, Parameter
from ._base import LayerMixin, expect_size

__all__ = ["Linear", "Affine"]


class Linear(LayerMixin, Module):
    """``y = x @ W + b``: ``x (N, in)`` -> ``y (N, out)``.

    ``weight`` has shape ``(in, out)`` as in the textbook (transposed relative to PyTorch's ``(out, in)``);
    ``bias`` is ``(out,)`` and not regularised. ``in_features`` is inferred at build; if given it must match.
    The per-sample input must be 1-D: put :class:`Flatten` before a Linear that follows a convolution.

    ``weight_init``: an initialiser name, a float std or a callable (see :mod:`dl2.init`); default ``"he"``.
    """

    def __init__(self, out_features, bias=True, weight_init="he", in_features=None):
        super().__init__()
        self.out_features = integer(out_features, "Linear", "out_features", 1)
        self.in_features = None
        self._given_in_features = None if in_features is None else integer(in_features, "Linear", "in_features", 1)
        self.use_bias = bool(bias)
        self._weight_init = init.get(weight_init)
        self.weight = None
        self.bias = None

    def _build(self, input_shape, dtype, rng):
        if len(input_shape) != 1:
            raise ValueError(f"Linear expects a per-sample input of shape (features,), got {input_shape}; "
                             f"add Flatten() before Linear")
        n_in = input_shape[0]
        expect_size(self, self._given_in_features, n_in, "in_features", input_shape)
        self.in_features = n_in
        shape = (n_in, self.out_features)
        self.weight = Parameter(self._weight_init(shape, n_in, self.out_features, rng, dtype))
        if self.use_bias:
            self.bias = Parameter(np.zeros(self.out_features, dtype=dtype), regularize=False)
        return (self.out_features,)

    def forward(self, x):
        if self.built and np.ndim(x) > 2:
            raise ValueError(f"Linear: input has shape {np.shape(x)}, expected (N, {self.in_features}); "
                             f"add Flatten() before Linear")
        x = self._input(x)
        self._x = x
        return get_backend().linear_forward(x, self.weight.data, None if self.bias is None else self.bias.data)

    def backward(self, dy):
        dx, dw, db = get_backend().linear_backward(dy, self._x, self.weight.data,
                                                   need_dx=self.needs_input_grad)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx


#: The textbook's name for :class:`Linear`.
Affine = Linear
