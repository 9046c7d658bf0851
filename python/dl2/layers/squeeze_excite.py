"""Squeeze-and-excitation (Hu, Shen & Sun, "Squeeze-and-excitation networks", CVPR 2018): channel attention."""
import numpy as np

from ..checks import integer
from ..module import Module
from ._base import LayerMixin, expect_rank
from .activations import _sigmoid as sigmoid
from .linear import Linear

__all__ = ["SqueezeExcite"]


class SqueezeExcite(LayerMixin, Module):
    """Rescale each channel of ``x (N, C, H, W)`` by a gate computed from the whole image; output shape = input.

    ``s = mean_hw(x)`` ``(N, C)``, ``g = sigmoid(fc2(relu(fc1(s))))`` ``(N, C)``, ``y = x * g[:, :, None, None]``.
    ``fc1 = Linear(max(1, C // reduction))`` (He initialisation) and ``fc2 = Linear(C)`` (Xavier) are ordinary
    :class:`Linear` layers, so their weights have Linear's ``(in, out)`` layout and are named ``fc1.weight``,
    ``fc1.bias``, ``fc2.weight``, ``fc2.bias``. The paper's reduction ratio is 16.
    """

    def __init__(self, reduction=16):
        super().__init__()
        self.reduction = integer(reduction, "SqueezeExcite", "reduction", 1)

    def _build(self, input_shape, dtype, rng):
        expect_rank(self, input_shape, 3, "(C, H, W)")
        c = input_shape[0]
        self.fc1 = Linear(max(1, c // self.reduction), weight_init="he")
        self.fc2 = Linear(c, weight_init="xavier")
        self.fc1.build((c,), dtype, rng)
        self.fc2.build(self.fc1.output_shape, dtype, rng)
        return input_shape

    def forward(self, x):
        x = self._input(x, "channels")
        z = self.fc1.forward(x.mean(axis=(2, 3)))
        self._relu = z > 0
        g = sigmoid(self.fc2.forward(z * self._relu))
        self._x, self._g = x, g
        return x * g[:, :, None, None]

    def backward(self, dy):
        if not hasattr(self, "_g"):
            raise RuntimeError("SqueezeExcite: backward called before forward")
        x, g = self._x, self._g
        du = np.einsum("nchw,nchw->nc", dy, x) * g * (1 - g)     # gradient wrt fc2's output
        ds = self.fc1.backward(self.fc2.backward(du) * self._relu)
        if not self.needs_input_grad:
            return None
        hw = x.shape[2] * x.shape[3]
        return dy * g[:, :, None, None] + (ds / hw)[:, :, None, None]
