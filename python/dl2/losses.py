"""Loss functions. Not Modules: ``value = loss.forward(output, target)`` (also ``loss(output, target)``) returns a
Python float and ``loss.backward()`` returns the gradient with respect to ``output`` for that last call, in
``output``'s dtype. ``reduction="mean"`` (default) averages over the batch (the gradient is then already divided
by ``N``); ``reduction="sum"`` sums.
"""
import numpy as np

from .checks import number, real_array

__all__ = ["SoftmaxCrossEntropy", "MSELoss"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _float_batch(a, name, who):
    a = real_array(a, who, name)
    if a.dtype not in _FLOATS:
        a = a.astype(np.float64)
    if a.ndim < 1 or a.shape[0] == 0:
        raise ValueError(f"{who}: {name} must be a non-empty batch (N, ...), got shape {a.shape}")
    return a


class _Loss:
    REDUCTIONS = ("mean", "sum")

    def __init__(self, reduction="mean"):
        if reduction not in self.REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {self.REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._grad = None

    def _reduce(self, per_sample, grad):
        """Store the reduced gradient; return the reduced loss as a Python float (accumulated in float64)."""
        n = per_sample.shape[0]
        total = float(np.sum(per_sample, dtype=np.float64))
        if self.reduction == "mean":
            grad /= n
            total /= n
        self._grad = grad
        return total

    def backward(self):
        """Gradient of the last :meth:`forward` value with respect to its first argument."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        return self._grad

    def __call__(self, output, target):
        return self.forward(output, target)

    def __repr__(self):
        extra = f", label_smoothing={self.label_smoothing}" if getattr(self, "label_smoothing", 0) else ""
        return f"{type(self).__name__}(reduction={self.reduction!r}{extra})"


class SoftmaxCrossEntropy(_Loss):
    """Softmax followed by cross-entropy, on raw ``logits (N, classes)``.

    ``t`` is either integer labels ``(N,)`` in ``[0, classes)`` or target probabilities (e.g. one-hot)
    ``(N, classes)``. Per sample ``L = -sum_j t_j log softmax(z)_j``, computed with log-sum-exp so large logits
    do not overflow (uniform logits give ``log(classes)``). Gradient per sample: ``softmax(z) * sum(t) - t``
    (``softmax(z) - t`` for probability rows), divided by ``N`` with ``reduction="mean"``.

    ``label_smoothing`` ``e`` in ``[0, 1)`` replaces each target row by ``(1 - e) * t + e * sum(t) / classes``
    (for labels: ``1 - e + e/classes`` on the label, ``e/classes`` elsewhere; Szegedy et al., 2016).

    Logits with NaN or ``+inf``, or a row that is entirely ``-inf``, raise ``ValueError`` (the network has
    usually diverged); isolated ``-inf`` logits are allowed (probability 0).
    After ``forward``, ``probs`` holds the softmax ``(N, classes)``.
    """

    def __init__(self, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        self.label_smoothing = number(label_smoothing, "SoftmaxCrossEntropy", "label_smoothing", lo=0, hi=1,
                                      hi_open=True)

    def forward(self, logits, t):
        who = type(self).__name__
        z = _float_batch(logits, "logits", who)
        if z.ndim != 2:
            raise ValueError(f"{who}: logits must be 2-D (N, classes), got shape {z.shape}")
        n, classes = z.shape
        zmax = z.max(axis=1, keepdims=True)
        bad = np.isnan(z).any(axis=1) | ~np.isfinite(zmax[:, 0])
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(f"{who}: logits of {rows.size} sample(s) (first: row {rows[0]}) contain NaN or +inf "
                             f"or are all -inf; the network has probably diverged (lower the learning rate) "
                             f"or its input contains NaN")
        shifted = z - zmax
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.probs = np.exp(logp)
        t = np.asarray(t)
        e = self.label_smoothing
        if t.ndim == 1:
            labels = self._labels(t, n, classes)
            per_sample = -logp[np.arange(n), labels]
            grad = self.probs.copy()
            grad[np.arange(n), labels] -= 1
            if e:
                per_sample = (1 - e) * per_sample - (e / classes) * logp.sum(axis=1)
                grad[np.arange(n), labels] += e
                grad -= e / classes
        elif t.ndim == 2:
            if t.shape != z.shape:
                raise ValueError(f"{who}: target probabilities must have the logits' shape {z.shape}, got {t.shape}")
            real_array(t, who, "target probabilities")
            t = t.astype(z.dtype, copy=False)
            if e:
                t = (1 - e) * t + (e / classes) * t.sum(axis=1, keepdims=True)
            per_sample = -(t * np.where(t != 0, logp, 0)).sum(axis=1)   # 0 * log 0 counts as 0
            grad = self.probs * t.sum(axis=1, keepdims=True) - t
        else:
            raise ValueError(f"{who}: targets must be labels (N,) or probabilities (N, classes), got shape {t.shape}")
        return self._reduce(per_sample, grad)

    @staticmethod
    def _labels(t, n, classes):
        who = "SoftmaxCrossEntropy"
        if t.shape != (n,):
            raise ValueError(f"{who}: {n} logits rows but {t.shape[0]} labels")
        if not np.issubdtype(t.dtype, np.integer):
            if not (np.issubdtype(t.dtype, np.floating) and np.all(t == np.round(t))):
                raise ValueError(f"{who}: 1-D targets must be integer class labels, got dtype {t.dtype}")
            t = t.astype(np.int64)
        out = (t < 0) | (t >= classes)
        if out.any():
            raise ValueError(f"{who}: labels must be in [0, {classes}); got {np.unique(t[out])[:10].tolist()} "
                             f"at {out.sum()} position(s)")
        return t


class MSELoss(_Loss):
    """Half squared error: per sample ``L = 1/2 * sum_features (y - t)**2``, averaged over the batch.

    So ``reduction="mean"`` gives ``1/(2N) * sum (y - t)**2`` and the gradient ``(y - t) / N`` (the textbook's
    ``1/2 sum (y - t)**2`` per sample; note the ``1/2`` and that features are summed, not averaged, unlike
    PyTorch's ``MSELoss``). ``t`` must have exactly ``y``'s shape (no broadcasting).
    """

    def forward(self, y, t):
        who = type(self).__name__
        y = _float_batch(y, "y", who)
        t = real_array(t, who, "target")
        if t.shape != y.shape:
            raise ValueError(f"{who}: target shape {t.shape} differs from output shape {y.shape} "
                             f"(reshape the target, e.g. t.reshape({y.shape}); no broadcasting is done)")
        diff = y - t.astype(y.dtype, copy=False)
        per_sample = 0.5 * (diff * diff).reshape(y.shape[0], -1).sum(axis=1)
        return self._reduce(per_sample, diff)
