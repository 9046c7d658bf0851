"""Optimizers, learning-rate schedules and gradient clipping.

Every optimizer takes ``params`` (a list of :class:`dl2.Parameter`, e.g. ``model.parameters()``) and updates
``p.data`` in place from ``p.grad``, in the parameter's own dtype::

    opt = Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    for xb, tb in loader:
        opt.zero_grad()
        loss = criterion(model(xb), tb) + opt.penalty()
        model.backward(criterion.backward())
        opt.step()

Regularisation is added to the gradient (never written into ``p.grad``) for parameters whose
``regularize`` flag is True (or all of them with ``regularize_all=True``)::

    g = p.grad + weight_decay * w + l1 * sign(w)

which is exactly the gradient of :meth:`Optimizer.penalty`, ``0.5 * weight_decay * sum(w**2) + l1 * sum(|w|)``
(note the ½: ``weight_decay`` is the coefficient of ``w`` in the gradient). Adding ``penalty()`` to the loss is
only for reporting; the optimizer already applies the gradient.

``decoupled_weight_decay=True`` (Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019) takes
``weight_decay`` out of the gradient and shrinks the regularised weights directly, before each update::

    w <- w * (1 - lr * weight_decay);   then the optimizer's update with g = p.grad + l1 * sign(w)

For plain SGD this equals L2 (coupled) decay; for momentum and adaptive methods it does not, and it is not the
gradient of any loss term, so :meth:`Optimizer.penalty` then reports only the L1 part. ``Adam`` with it is AdamW.
"""
import math

import numpy as np

from .checks import integer, number
from .module import Parameter

__all__ = [
    "Optimizer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam",
    "ConstantLR", "StepLR", "CosineLR", "OneCycleLR", "clip_grad_norm",
]


def _as_param_list(params, who):
    """A list of distinct Parameters (shared ones kept once, in first-seen order)."""
    if isinstance(params, Parameter):
        raise TypeError(f"{who}: params must be a list of Parameter, not a single Parameter")
    if hasattr(params, "parameters") and callable(params.parameters):
        raise TypeError(f"{who}: pass model.parameters(), not the model itself")
    out, seen = [], set()
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"{who}: expected Parameter, got {type(p).__name__}")
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    if not out:
        raise ValueError(f"{who}: empty params list (does the model have parameters? was it built?)")
    return out


def _check_positive(name, value, who):
    return number(value, who, name, lo=0, lo_open=True)


def _check_nonneg(name, value, who):
    return number(value, who, name, lo=0)


def _check_unit(name, value, who):
    """A coefficient in [0, 1)."""
    return number(value, who, name, lo=0, hi=1, hi_open=True)


class Optimizer:
    """Base class. Subclasses set ``state_names`` and implement ``_update(p, g, state)`` (``g`` may be ``p.grad``
    itself: read it, never write into it).

    ``state`` is a list (one entry per parameter) of dicts ``name -> array`` shaped like the parameter.
    ``t`` counts the calls to :meth:`step`; ``lr`` may be changed between steps (schedules do). Default
    learning rates (each optimizer's signature): SGD, Momentum, Nesterov and AdaGrad 0.01 (the textbook's),
    RMSProp and Adam 0.001.
    """

    state_names = ()

    def __init__(self, params, lr=0.01, weight_decay=0.0, l1=0.0, regularize_all=False,
                 decoupled_weight_decay=False):
        who = type(self).__name__
        self.params = _as_param_list(params, who)
        self.lr = _check_positive("lr", lr, who)
        self.weight_decay = _check_nonneg("weight_decay", weight_decay, who)
        self.l1 = _check_nonneg("l1", l1, who)
        self.regularize_all = bool(regularize_all)
        if not isinstance(decoupled_weight_decay, bool):
            raise TypeError(f"{who}: decoupled_weight_decay must be True or False, got {decoupled_weight_decay!r}")
        self.decoupled_weight_decay = decoupled_weight_decay
        self.t = 0
        self.state = [{name: np.zeros_like(p.data) for name in self.state_names} for p in self.params]

    # ----------------------------------------------------------------- regularisation
    def _regularized(self, p):
        return self.regularize_all or p.regularize

    def _gradient(self, p):
        """``p.grad`` plus the (coupled) weight-decay / L1 terms where they apply: a new array when a term is
        added, otherwise ``p.grad`` itself (no copy per step), so updates must not write into it."""
        coupled = self.weight_decay and not self.decoupled_weight_decay
        if not (self._regularized(p) and (coupled or self.l1)):
            return p.grad
        g = np.array(p.grad, dtype=p.data.dtype, copy=True)
        if coupled:
            g += self.weight_decay * p.data
        if self.l1:
            g += self.l1 * np.sign(p.data)
        return g

    def penalty(self):
        """``0.5 * weight_decay * sum(w**2) + l1 * sum(|w|)`` over the regularised parameters (a float).

        With ``decoupled_weight_decay`` only ``l1 * sum(|w|)``: the decoupled decay is no loss term's gradient.
        """
        total = 0.0
        for p in self.params:
            if self._regularized(p):
                w = p.data.reshape(-1)   # a view: no copy of the weights
                if self.weight_decay and not self.decoupled_weight_decay:
                    total += 0.5 * self.weight_decay * float(np.dot(w, w))
                if self.l1:
                    total += self.l1 * float(np.linalg.norm(w, 1))
        return total

    # ----------------------------------------------------------------- stepping
    def step(self):
        """Update every parameter once from its current ``grad`` (in place)."""
        self.t += 1
        shrink = 1.0 - self.lr * self.weight_decay if self.decoupled_weight_decay else 1.0
        for p, state in zip(self.params, self.state):
            g = self._gradient(p)          # before the decay: L1's sign(w) is of the weights the gradient saw
            if shrink != 1.0 and self._regularized(p):
                p.data *= shrink
            self._update(p, g, state)

    def _update(self, p, g, state):
        raise NotImplementedError

    def zero_grad(self):
        for p in self.params:
            p.grad[...] = 0

    # ----------------------------------------------------------------- checkpointing
    def state_dict(self):
        """Flat dict for ``np.savez``: ``optimizer``, ``step``, ``lr`` and ``state.<i>.<name>`` arrays (copies)."""
        out = {"optimizer": type(self).__name__, "step": self.t, "lr": self.lr}
        for i, state in enumerate(self.state):
            for name, array in state.items():
                out[f"state.{i}.{name}"] = array.copy()
        return out

    def load_state_dict(self, state):
        """Restore from :meth:`state_dict` output (or a loaded ``.npz``); shapes must match this optimizer."""
        who = type(self).__name__
        kind = str(np.asarray(state.get("optimizer", who)))
        if kind != who:
            raise ValueError(f"{who}.load_state_dict: state was saved by {kind}")
        expected = {f"state.{i}.{name}" for i, s in enumerate(self.state) for name in s} | {"step", "lr"}
        given = {k for k in state if k != "optimizer"}
        if expected != given:
            raise KeyError(f"{who}.load_state_dict: missing keys {sorted(expected - given)}, "
                           f"unexpected keys {sorted(given - expected)}")
        for i, s in enumerate(self.state):
            for name, target in s.items():
                value = np.asarray(state[f"state.{i}.{name}"])
                if value.shape != target.shape:
                    raise ValueError(f"{who}.load_state_dict: state.{i}.{name} has shape {value.shape}, "
                                     f"expected {target.shape}")
        for i, s in enumerate(self.state):
            for name, target in s.items():
                target[...] = np.asarray(state[f"state.{i}.{name}"])
        self.t = int(np.asarray(state["step"]))
        self.lr = float(np.asarray(state["lr"]))

    def __repr__(self):
        decoupled = ", decoupled_weight_decay=True" if self.decoupled_weight_decay else ""
        return (f"{type(self).__name__}(lr={self.lr}, weight_decay={self.weight_decay}{decoupled}, l1={self.l1}, "
                f"{len(self.params)} params)")


class SGD(Optimizer):
    """Plain gradient descent: ``w <- w - lr * g``."""

    def _update(self, p, g, state):
        p.data -= self.lr * g


class Momentum(Optimizer):
    """Classical momentum: ``v <- momentum * v - lr * g``; ``w <- w + v``."""

    state_names = ("v",)

    def __init__(self, params, lr=0.01, momentum=0.9, weight_decay=0.0, l1=0.0, regularize_all=False,
                 decoupled_weight_decay=False):
        super().__init__(params, lr, weight_decay, l1, regularize_all, decoupled_weight_decay)
        self.momentum = _check_unit("momentum", momentum, type(self).__name__)

    def _update(self, p, g, state):
        v = state["v"]
        v *= self.momentum
        v -= self.lr * g
        p.data += v


class Nesterov(Momentum):
    """Nesterov momentum, written on the look-ahead point so it needs only the gradient at ``w``.

    ``v <- momentum * v - lr * g``; ``w <- w + momentum * v - lr * g`` (with the new ``v``). This is the
    textbook update "evaluate g at w + momentum * v" after the change of variable ``w' = w + momentum * v``.
    """

    def _update(self, p, g, state):
        v = state["v"]
        v *= self.momentum
        v -= self.lr * g
        p.data += self.momentum * v - self.lr * g


class AdaGrad(Optimizer):
    """AdaGrad: ``r <- r + g**2``; ``w <- w - lr * g / (sqrt(r) + eps)``."""

    state_names = ("r",)

    def __init__(self, params, lr=0.01, eps=1e-8, weight_decay=0.0, l1=0.0, regularize_all=False,
                 decoupled_weight_decay=False):
        super().__init__(params, lr, weight_decay, l1, regularize_all, decoupled_weight_decay)
        self.eps = _check_nonneg("eps", eps, type(self).__name__)

    def _update(self, p, g, state):
        r = state["r"]
        r += g * g
        p.data -= self.lr * g / (np.sqrt(r) + self.eps)


class RMSProp(Optimizer):
    """RMSProp: ``r <- decay * r + (1 - decay) * g**2``; ``w <- w - lr * g / (sqrt(r) + eps)``.

    ``alpha`` is accepted as another name for ``decay``.
    """

    state_names = ("r",)

    def __init__(self, params, lr=0.001, decay=0.99, eps=1e-8, weight_decay=0.0, l1=0.0,
                 regularize_all=False, alpha=None, decoupled_weight_decay=False):
        super().__init__(params, lr, weight_decay, l1, regularize_all, decoupled_weight_decay)
        who = type(self).__name__
        self.decay = _check_unit("decay", decay if alpha is None else alpha, who)
        self.eps = _check_nonneg("eps", eps, who)

    def _update(self, p, g, state):
        r = state["r"]
        r *= self.decay
        r += (1.0 - self.decay) * g * g
        p.data -= self.lr * g / (np.sqrt(r) + self.eps)


class Adam(Optimizer):
    """Adam with bias correction (``t`` = number of steps so far, counting this one)::

        m <- b1 * m + (1 - b1) * g;   v <- b2 * v + (1 - b2) * g**2
        w <- w - lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)
    """

    state_names = ("m", "v")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, l1=0.0,
                 regularize_all=False,
                 decoupled_weight_decay=False):
        super().__init__(params, lr, weight_decay, l1, regularize_all, decoupled_weight_decay)
        who = type(self).__name__
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{who}: betas must be a pair (b1, b2), got {betas!r}")
        self.betas = (_check_unit("betas[0]", betas[0], who), _check_unit("betas[1]", betas[1], who))
        self.eps = _check_nonneg("eps", eps, who)

    def _update(self, p, g, state):
        b1, b2 = self.betas
        m, v = state["m"], state["v"]
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * g * g
        m_hat = m / (1.0 - b1 ** self.t)
        v_hat = v / (1.0 - b2 ** self.t)
        p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


# --------------------------------------------------------------------- schedules
INTERVALS = ("epoch", "batch")


class _Schedule:
    """Sets ``optimizer.lr`` from a step count ``t``; call :meth:`step` once per epoch (``interval="epoch"``,
    the default) or after every optimizer step (``interval="batch"``). :class:`dl2.Trainer` does either,
    following ``interval``. The schedule's units (``warmup``, ``step_size``, ``t_max``...) are epochs or steps
    accordingly.

    ``warmup``: units of linear warm-up first, ``lr = base_lr * (t + 1) / (warmup + 1)`` for ``t = 0 ..
    warmup - 1`` (set at once for ``t = 0``), so per batch the lr rises from about 0 to ``base_lr``; the schedule
    proper then starts, its ``t = 0`` being ``t = warmup``. ``base_lr`` is the optimizer's lr when the schedule
    is created.
    """

    def __init__(self, optimizer, warmup=0, interval="epoch"):
        who = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{who}: expected an Optimizer, got {type(optimizer).__name__}")
        if interval not in INTERVALS:
            raise ValueError(f"{who}: interval must be 'epoch' or 'batch', got {interval!r}")
        self.optimizer = optimizer
        self.interval = interval
        self.base_lr = optimizer.lr
        self.warmup = integer(warmup, who, f"warmup ({'epochs' if interval == 'epoch' else 'steps'})", 0)
        self.t = 0
        if self.warmup:
            self.optimizer.lr = self.lr   # the first warm-up step's; without warm-up t = 0 runs at base_lr

    def get_lr(self, t):
        """The schedule's lr ``t`` units after the warm-up."""
        raise NotImplementedError

    @property
    def lr(self):
        """The lr of the current epoch or step (warm-up included)."""
        if self.t < self.warmup:
            return self.base_lr * (self.t + 1) / (self.warmup + 1)
        return self.get_lr(self.t - self.warmup)

    def step(self):
        """Advance one epoch or step and set the optimizer's lr; returns the new lr."""
        self.t += 1
        self.optimizer.lr = self.lr
        return self.optimizer.lr

    def state_dict(self):
        return {"t": self.t, "base_lr": self.base_lr}

    def load_state_dict(self, state):
        self.t = int(np.asarray(state["t"] if "t" in state else state["epoch"]))   # older checkpoints: "epoch"
        self.base_lr = float(np.asarray(state["base_lr"]))
        self.optimizer.lr = self.lr

    def __repr__(self):
        return f"{type(self).__name__}(base_lr={self.base_lr:g}, interval={self.interval!r}, t={self.t})"


class ConstantLR(_Schedule):
    """``lr = base_lr`` (useful with ``warmup``)."""

    def get_lr(self, t):
        return self.base_lr


class StepLR(_Schedule):
    """``lr = base_lr * gamma ** (t // step_size)``."""

    def __init__(self, optimizer, step_size, gamma=0.1, warmup=0, interval="epoch"):
        super().__init__(optimizer, warmup, interval)
        self.step_size = integer(step_size, "StepLR", "step_size", 1)
        self.gamma = _check_positive("gamma", gamma, "StepLR")

    def get_lr(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)


class CosineLR(_Schedule):
    """``lr = lr_min + (base_lr - lr_min) * (1 + cos(pi * t / t_max)) / 2``; stays at ``lr_min`` after."""

    def __init__(self, optimizer, t_max, lr_min=0.0, warmup=0, interval="epoch"):
        super().__init__(optimizer, warmup, interval)
        self.t_max = integer(t_max, "CosineLR", "t_max", 1)
        self.lr_min = _check_nonneg("lr_min", lr_min, "CosineLR")
        if self.lr_min > self.base_lr:
            raise ValueError(f"CosineLR: lr_min ({self.lr_min}) is above the optimizer's lr ({self.base_lr})")

    def get_lr(self, t):
        return _anneal(self.base_lr, self.lr_min, min(t, self.t_max) / self.t_max, "cos")


def _anneal(start, end, x, shape):
    """From ``start`` (x = 0) to ``end`` (x = 1): ``shape`` ``"cos"``,
    ``start + (end - start) * (1 - cos(pi x)) / 2``, or ``"linear"``, ``start + (end - start) * x``."""
    if shape == "cos":
        x = 0.5 * (1.0 - math.cos(math.pi * x))
    return start + (end - start) * x


class OneCycleLR(_Schedule):
    """The one-cycle policy (Smith & Topin, "Super-convergence", 2018), stepped per batch over ``total_steps``.

    With ``p = pct_start * (total_steps - 1)``: the lr goes from ``max_lr / div_factor`` at step 0 up to
    ``max_lr`` at step ``p``, then down to ``max_lr / (div_factor * final_div_factor)`` at the last step
    ``total_steps - 1`` (and stays there). ``anneal``: ``"cos"`` (half-cosine pieces) or ``"linear"``.
    ``max_lr`` defaults to the optimizer's lr (``base_lr``). The momentum is not cycled.
    """

    def __init__(self, optimizer, total_steps, max_lr=None, pct_start=0.25, div_factor=25.0, final_div_factor=1e4,
                 anneal="cos"):
        super().__init__(optimizer, warmup=0, interval="batch")
        who = type(self).__name__
        self.total_steps = integer(total_steps, who, "total_steps", 2)
        if max_lr is not None:
            self.base_lr = _check_positive("max_lr", max_lr, who)
        self.pct_start = number(pct_start, who, "pct_start", lo=0, hi=1, lo_open=True, hi_open=True)
        self.div_factor = number(div_factor, who, "div_factor", lo=1)
        self.final_div_factor = number(final_div_factor, who, "final_div_factor", lo=1)
        if anneal not in ("cos", "linear"):
            raise ValueError(f"{who}: anneal must be 'cos' or 'linear', got {anneal!r}")
        self.anneal = anneal
        self.optimizer.lr = self.lr

    def get_lr(self, t):
        peak = self.pct_start * (self.total_steps - 1)
        start = self.base_lr / self.div_factor
        if t <= peak:
            return _anneal(start, self.base_lr, t / peak, self.anneal)
        x = min(1.0, (t - peak) / (self.total_steps - 1 - peak))
        return _anneal(self.base_lr, start / self.final_div_factor, x, self.anneal)


# --------------------------------------------------------------------- clipping
def clip_grad_norm(params, max_norm):
    """Scale every ``p.grad`` in place so their joint L2 norm is at most ``max_norm``.

    Returns the total norm before clipping (a float). Gradients are left untouched when the norm is
    not finite, so the caller can detect and skip that step.
    """
    params = _as_param_list(params, "clip_grad_norm")
    max_norm = _check_positive("max_norm", max_norm, "clip_grad_norm")
    total = math.sqrt(sum(float(np.sum(np.square(p.grad, dtype=np.float64))) for p in params))
    if math.isfinite(total) and total > max_norm:
        scale = max_norm / total
        for p in params:
            p.grad *= scale
    return total
