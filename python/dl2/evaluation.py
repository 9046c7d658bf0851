"""Metrics, dataset checks and :func:`evaluate`: a model's loss and metrics on a labelled dataset, without a
trainer or an optimizer::

    model = dl2.load("digits.npz")
    dl2.evaluate(model, x_test, t_test, dl2.SoftmaxCrossEntropy())   # {"loss": ..., "accuracy": ...}
    model.predict(x_test).argmax(axis=1)                             # the predicted classes

``x`` is ``(N, *model.input_shape)``; ``t`` integer labels ``(N,)`` or targets ``(N, *model.output_shape)``.
"""
import numpy as np

from .checks import integer, real_array
from .module import Module

__all__ = ["METRICS", "TTA", "accuracy", "evaluate", "check_data", "check_batch_size", "check_tta",
           "resolve_metrics"]


def _class_indices(t):
    t = np.asarray(t)
    return t.argmax(axis=1) if t.ndim == 2 else t


def accuracy(y, t):
    """Fraction of rows of ``y (N, classes)`` whose argmax equals the label (or the target's argmax)."""
    return float(np.mean(np.argmax(y, axis=1) == _class_indices(t)))


#: Metrics by name: ``fn(y, t) -> float`` (a mean over the batch).
METRICS = {"accuracy": accuracy, "acc": accuracy}


def resolve_metrics(metrics):
    """``[(name, fn)]`` from metric names of :data:`METRICS`, functions ``fn(y, t) -> float`` and ``(name, fn)``
    pairs (kept as they are)."""
    if isinstance(metrics, str) or callable(metrics):
        metrics = (metrics,)
    out = []
    for m in metrics:
        if isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], str) and callable(m[1]):
            out.append(m)
        elif callable(m):
            out.append((getattr(m, "__name__", type(m).__name__), m))
        elif m in METRICS:
            out.append(("accuracy" if m == "acc" else m, METRICS[m]))
        else:
            raise ValueError(f"unknown metric {m!r}; choose from {sorted(METRICS)} or pass a function fn(y, t)")
    return out


def check_batch_size(batch_size, who):
    return integer(batch_size, who, "batch_size", 1)


def check_data(model, x, t, who, metrics=()):
    """``(x, t)`` as arrays, checked against ``model``: same number of samples, per-sample shapes, real finite
    inputs, integer labels in range (or targets of the output's shape). ``metrics``: ``[(name, fn)]``."""
    x, t = real_array(x, who, "x"), real_array(t, who, "t")
    if x.ndim == 0 or t.ndim == 0:
        raise ValueError(f"{who}: x and t must be arrays with a sample axis")
    if len(x) == 0:
        raise ValueError(f"{who}: empty dataset (x has 0 samples)")
    if len(x) != len(t):
        raise ValueError(f"{who}: x has {len(x)} samples but t has {len(t)}")
    if x.shape[1:] != tuple(model.input_shape):
        raise ValueError(f"{who}: samples of x have shape {x.shape[1:]}, the model expects "
                         f"{tuple(model.input_shape)}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{who}: x contains NaN or infinite values")
    out = tuple(model.output_shape)
    if t.ndim == 1 and len(out) == 1 and out[0] > 1:
        if not (np.issubdtype(t.dtype, np.integer) or np.all(t == np.round(t))):
            raise ValueError(f"{who}: 1-D targets must be integer class labels, got dtype {t.dtype}")
        lo, hi = t.min(), t.max()
        if lo < 0 or hi >= out[0]:
            raise ValueError(f"{who}: labels must be in [0, {out[0]}) for a model with {out[0]} outputs, "
                             f"got labels from {lo} to {hi}")
    elif t.shape[1:] != out:
        raise ValueError(f"{who}: targets have per-sample shape {t.shape[1:]} but the model outputs {out}")
    elif any(name == "accuracy" for name, _ in metrics) and len(out) != 1:
        raise ValueError(f"{who}: accuracy needs class scores (N, classes), the model outputs {out}")
    return x, t


#: Test-time augmentations of :func:`evaluate`.
TTA = (None, "flip")


def check_tta(tta, who):
    if tta not in TTA:
        raise ValueError(f"{who}: tta must be None or 'flip', got {tta!r}")
    return tta


def evaluate(model, x, t, loss, metrics=("accuracy",), batch_size=256, tta=None):
    """``{"loss": mean loss, <metric>: value}`` of ``model`` on ``(x, t)`` in evaluation mode, ``batch_size``
    samples at a time (none dropped; the previous modes are restored). ``loss``: a dl2 loss such as
    :class:`dl2.SoftmaxCrossEntropy`; ``metrics``: names from :data:`METRICS`, functions ``fn(y, t) -> float``,
    or ``[(name, fn)]`` pairs. The loss is the data loss only (no weight-decay penalty).

    ``tta="flip"`` (test-time augmentation, images ``(N, C, H, W)`` only): the output for each image is the mean
    of the model's outputs (the logits) for the image and its horizontal mirror; loss and metrics are computed
    on that mean. Averaging logits rather than probabilities works for any loss and output; for a softmax
    classifier it is the normalised geometric mean of the two probability vectors."""
    if not isinstance(model, Module):
        raise TypeError(f"evaluate: expected a dl2 Module, got {type(model).__name__}")
    if not model.built:
        raise RuntimeError("evaluate: the model is not built")
    if not (hasattr(loss, "forward") and hasattr(loss, "backward")):
        raise TypeError(f"evaluate: loss must be a dl2 loss (forward(y, t), backward()), got {loss!r}")
    metrics = resolve_metrics(metrics)
    x, t = check_data(model, x, t, "evaluate", metrics)
    batch_size = check_batch_size(batch_size, "evaluate")
    if check_tta(tta, "evaluate") and x.ndim != 4:
        raise ValueError(f"evaluate: tta='flip' needs images (N, C, H, W), got x of shape {x.shape}")
    sums = {"loss": 0.0}
    sums.update({name: 0.0 for name, _ in metrics})
    with model.eval_mode():
        for i in range(0, len(x), batch_size):
            xb, tb = x[i:i + batch_size], t[i:i + batch_size]
            y = model.forward(xb)
            if tta == "flip":
                y = (np.array(y) + model.forward(np.ascontiguousarray(xb[..., ::-1]))) / 2   # y copied first
            sums["loss"] += float(loss.forward(y, tb)) * len(xb)
            for name, fn in metrics:
                sums[name] += float(fn(y, tb)) * len(xb)
    return {k: v / len(x) for k, v in sums.items()}
