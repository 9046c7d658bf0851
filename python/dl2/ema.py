"""Exponential moving average of a model's weights (Polyak averaging), for evaluation.

::

    ema = EMA(model, decay=0.999)
    for xb, tb in loader:
        ...; opt.step()
        ema.update()
    with ema.apply():            # the averaged weights, for the block only
        val = dl2.evaluate(model, xv, tv, loss)
    ema.copy_to(model)           # or keep them

Each :meth:`EMA.update` does, for every parameter ``w`` (biases and norm scales included)::

    d = min(decay, (1 + n) / (10 + n)) with warmup (n = updates so far), else decay
    w_ema <- d * w_ema + (1 - d) * w

The warm-up keeps the first averages close to the recent weights instead of the random initialisation
(``d`` = 0.1, 0.18, 0.25, ... until it reaches ``decay``). The average starts as a copy of the weights.

Buffers (batch-norm running statistics) are not averaged: :meth:`apply` and :meth:`copy_to` swap in the averaged
parameters and leave the live model's buffers, so the statistics are the ones training has accumulated (they
are already a moving average; under data-parallel training they are rank 0's, the same on every rank).
"""
import contextlib

import numpy as np

from .checks import number
from .module import Module

__all__ = ["EMA"]


def _named_params(model, who):
    """``[(name, Parameter)]`` of ``model``, a shared Parameter once."""
    if not isinstance(model, Module):
        raise TypeError(f"{who}: expected a dl2 Module, got {type(model).__name__}")
    if not model.built:
        raise ValueError(f"{who}: build the model first")
    out, seen = [], set()
    for name, p in model.named_parameters():
        if id(p) not in seen:
            seen.add(id(p))
            out.append((name, p))
    return out


class EMA:
    """The moving average of ``model``'s parameters; ``decay`` in [0, 1), ``warmup`` as in the module docstring.

    ``shadow``: ``{parameter name: array}`` (the averages, in each parameter's dtype); ``updates``: the number of
    :meth:`update` calls so far.
    """

    def __init__(self, model, decay=0.999, warmup=True):
        self.params = _named_params(model, "EMA")
        self.model = model
        self.decay = number(decay, "EMA", "decay", lo=0, hi=1, hi_open=True)
        if not isinstance(warmup, bool):
            raise TypeError(f"EMA: warmup must be True or False, got {warmup!r}")
        self.warmup = warmup
        self.reset()

    def reset(self):
        """Start the average again from the model's current parameters (``updates`` = 0)."""
        self.shadow = {name: p.data.copy() for name, p in self.params}
        self.updates = 0

    @property
    def current_decay(self):
        """The ``d`` the next :meth:`update` uses."""
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    def update(self):
        """Fold the model's current parameters into the average (call after every optimizer step)."""
        d = self.current_decay
        for name, p in self.params:
            s = self.shadow[name]
            s *= d
            s += (1.0 - d) * p.data
        self.updates += 1

    def copy_to(self, model=None):
        """Write the averaged parameters into ``model`` (default: the averaged model itself), in place."""
        for (name, p), value in zip(self._matching(model), self.shadow.values()):
            p.data[...] = value

    @contextlib.contextmanager
    def apply(self):
        """Context manager: the model holds the averaged parameters inside the block and its own (live) ones
        again after it, exactly, even when the block raises."""
        live = [p.data.copy() for _, p in self.params]
        self.copy_to()
        try:
            yield self.model
        finally:
            for (_, p), value in zip(self.params, live):
                p.data[...] = value

    def _matching(self, model):
        if model is None or model is self.model:
            return self.params
        params = _named_params(model, "EMA.copy_to")
        if [n for n, _ in params] != list(self.shadow) or \
                any(p.data.shape != self.shadow[n].shape for n, p in params):
            raise ValueError("EMA.copy_to: the model's parameters (names, shapes) differ from the averaged model's")
        return params

    # ----------------------------------------------------------------- checkpointing
    def state_dict(self):
        """``{"updates": n, "shadow.<parameter name>": array}`` (copies)."""
        out = {"updates": self.updates}
        out.update({f"shadow.{name}": value.copy() for name, value in self.shadow.items()})
        return out

    def load_state_dict(self, state):
        """Restore from :meth:`state_dict` output; names and shapes must match this model's."""
        expected = {f"shadow.{name}" for name in self.shadow} | {"updates"}
        if set(state) != expected:
            raise KeyError(f"EMA.load_state_dict: missing keys {sorted(expected - set(state))}, "
                           f"unexpected keys {sorted(set(state) - expected)}")
        for name, target in self.shadow.items():
            value = np.asarray(state[f"shadow.{name}"])
            if value.shape != target.shape:
                raise ValueError(f"EMA.load_state_dict: shadow.{name} has shape {value.shape}, "
                                 f"expected {target.shape}")
        for name, target in self.shadow.items():
            target[...] = np.asarray(state[f"shadow.{name}"])
        self.updates = int(np.asarray(state["updates"]))

    def __repr__(self):
        return f"EMA(decay={self.decay}, warmup={self.warmup}, updates={self.updates}, {len(self.params)} params)"
