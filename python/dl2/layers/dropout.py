"""Dropout."""
import numpy as np

from ..checks import number
from ..module import Module
from ._base import LayerMixin

__all__ = ["Dropout"]


class Dropout(LayerMixin, Module):
    """Zero each input with probability ``p`` in training. Shapes are preserved.

    ``mode="inverted"`` (default): training output ``x * mask / (1 - p)``, evaluation is the identity.
    ``mode="textbook"``: training output ``x * mask``, evaluation ``x * (1 - p)``. Both give the same expected
    value in training and evaluation.

    Masks come from ``self.generator``: ``np.random.default_rng(seed)`` when ``seed`` is given, else the ``rng``
    passed to :meth:`build`. ``dl2.gradcheck`` replaces ``generator`` by a freshly seeded one before every
    forward so the mask is the same in every evaluation.
    """

    MODES = ("inverted", "textbook")

    def __init__(self, p=0.5, mode="inverted", seed=None):
        super().__init__()
        self.p = number(p, "Dropout", "p", lo=0, hi=1, hi_open=True)
        if mode not in self.MODES:
            raise ValueError(f"Dropout: mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.generator = None if seed is None else np.random.default_rng(seed)

    def _build(self, input_shape, dtype, rng):
        if self.generator is None:
            self.generator = rng
        return input_shape

    def forward(self, x):
        x = self._input(x, "any")
        if self.training:
            keep = self.generator.random(x.shape, dtype=np.float32) >= self.p
            scale = 1 / (1 - self.p) if self.mode == "inverted" else 1.0
            self._scale = keep.astype(x.dtype) * scale
        else:
            self._scale = 1.0 if self.mode == "inverted" else 1 - self.p
        return x * self._scale

    def backward(self, dy):
        return dy * self._scale if self.needs_input_grad else None
