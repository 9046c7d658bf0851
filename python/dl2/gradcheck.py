"""Numerical gradient checking by central differences, in float64.

``gradcheck(layer, x)`` checks a built float64 :class:`dl2.Module`; ``gradcheck((forward, backward), inputs)``
checks a pair of functions where ``forward(*inputs)`` returns an array and ``backward(dy)`` returns the
gradient of each input (a single array for a single input, else a tuple in input order).

With a fixed random upstream gradient ``r`` (``np.random.default_rng(seed)``) the scalar checked is
``f = sum(r * forward(...))``; the analytic gradients are ``backward(r)`` (and, for a module, every parameter's
``.grad`` after zeroing) and the numerical ones ``(f(v + eps) - f(v - eps)) / (2 eps)`` for each element ``v``.

Error measure, per element: ``rel = |a - n| / max(|a|, |n|, atol/rtol)`` (a relative error that becomes
``|a - n| / (atol/rtol)`` for gradients smaller than ``atol/rtol``). An element fails when ``rel > rtol``, i.e.
when ``|a - n| > max(atol, rtol*|a|, rtol*|n|)``.
"""
import numpy as np

from .module import Module

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree; the message lists every failing quantity."""


def _f64(name, a):
    a = np.asarray(a)
    if a.dtype != np.float64:
        raise TypeError(f"gradcheck: {name} must be float64 for a meaningful check, got {a.dtype}")
    return a


def _numerical(f, v, eps):
    """Central-difference gradient of scalar ``f()`` with respect to array ``v`` (perturbed in place, restored)."""
    grad = np.zeros(v.shape, dtype=np.float64)
    flat, gflat = v.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        fp = f()
        flat[i] = orig - eps
        fm = f()
        flat[i] = orig
        gflat[i] = (fp - fm) / (2 * eps)
    return grad


def _compare(name, analytic, numeric, atol, rtol, failures):
    """Worst ``rel`` of ``analytic`` vs ``numeric``; append a description to ``failures`` when above ``rtol``."""
    if analytic is None:
        failures.append(f"{name}: backward returned None instead of a gradient")
        return float("inf")
    if np.shape(analytic) != numeric.shape:
        failures.append(f"{name}: analytic gradient has shape {np.shape(analytic)}, expected {numeric.shape}")
        return float("inf")
    a = np.asarray(analytic, dtype=np.float64)
    if numeric.size == 0:
        return 0.0
    rel = np.abs(a - numeric) / np.maximum(np.maximum(np.abs(a), np.abs(numeric)), atol / rtol)
    rel = np.where(np.isnan(rel), np.inf, rel)
    worst = int(np.argmax(rel))
    err = float(rel.reshape(-1)[worst])
    if err > rtol:
        idx = np.unravel_index(worst, numeric.shape)
        failures.append(f"{name}: worst relative error {err:.3g} > rtol {rtol:g} at index {tuple(map(int, idx))}: "
                        f"analytic {a[idx]:.8g}, numerical {numeric[idx]:.8g} "
                        f"({int((rel > rtol).sum())} of {rel.size} elements fail)")
    return err


def gradcheck(fn_or_layer, inputs, params=None, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0, raise_exception=True,
              train=True):
    """Compare analytic and numerical gradients; return ``{name: worst relative error}``.

    ``fn_or_layer``: a built float64 Module (``inputs`` is its input batch ``x``), or a ``(forward, backward)``
    pair (``inputs`` an array or a tuple of arrays; only floating inputs are checked, named ``"input"`` or
    ``"input0"``, ``"input1"``, ...). For a module the names are ``"input"`` (skipped only when the module's
    ``needs_input_grad`` is False and ``backward`` returns ``None``; a ``None`` input gradient of a module that
    needs one is a failure) and the parameter names of ``named_parameters()``; ``params`` (a list of names)
    restricts the parameters checked.

    Module checks run in training mode (``train=False``: evaluation mode); previous modes, buffers (e.g. batch-norm
    running statistics) and parameter values are restored afterwards, and parameter ``.grad`` is left holding the
    analytic gradient. Every submodule with a ``generator`` attribute (a ``np.random.Generator``, as in
    :class:`dl2.Dropout`) gets a fresh ``default_rng(seed)`` before every forward so its random mask is the same
    in every evaluation; the original generators are put back afterwards. It is also an error for ``forward`` to
    modify its input or ``backward`` its upstream gradient.

    Raises :class:`GradcheckError` listing the failures when ``raise_exception`` is true.
    """
    if not (eps > 0 and atol >= 0 and rtol > 0):
        raise ValueError(f"gradcheck: need eps > 0, atol >= 0 and rtol > 0, got {eps}, {atol}, {rtol}")
    if isinstance(fn_or_layer, Module):
        errors, failures = _check_module(fn_or_layer, inputs, params, eps, atol, rtol, seed, train)
    elif isinstance(fn_or_layer, (tuple, list)) and len(fn_or_layer) == 2 and all(map(callable, fn_or_layer)):
        if params is not None:
            raise ValueError("gradcheck: params= applies to modules only")
        errors, failures = _check_pair(*fn_or_layer, inputs, eps, atol, rtol, seed)
    else:
        raise TypeError(f"gradcheck: expected a Module or a (forward, backward) pair, got {fn_or_layer!r}")
    if failures and raise_exception:
        raise GradcheckError("gradient check failed:\n  " + "\n  ".join(failures))
    return errors


def _check_pair(forward, backward, inputs, eps, atol, rtol, seed):
    single = not isinstance(inputs, (tuple, list))
    inputs = [np.asarray(inputs)] if single else [np.asarray(v) for v in inputs]
    floats = [i for i, v in enumerate(inputs) if np.issubdtype(v.dtype, np.floating)]
    for i in floats:
        _f64(f"input{i}", inputs[i])
    names = {i: "input" if len(inputs) == 1 else f"input{i}" for i in floats}
    inputs = [v.copy() if i in names else v for i, v in enumerate(inputs)]   # perturbed in place below
    y = np.asarray(forward(*inputs), dtype=np.float64)
    r = np.random.default_rng(seed).standard_normal(y.shape)
    r_saved = r.copy()
    grads = backward(r)
    failures = []
    if not np.array_equal(r, r_saved):
        failures.append("backward modified its upstream gradient dy in place")
    grads = (grads,) if len(inputs) == 1 else tuple(grads)

    def f():
        return float(np.sum(r_saved * np.asarray(forward(*inputs), dtype=np.float64)))

    errors = {}
    for i, name in names.items():
        errors[name] = _compare(name, grads[i], _numerical(f, inputs[i], eps), atol, rtol, failures)
    return errors, failures


def _check_module(layer, x, params, eps, atol, rtol, seed, train):
    if not layer.built:
        raise RuntimeError("gradcheck: build the module first, e.g. layer.build(x.shape[1:], np.float64, rng)")
    named = list(layer.named_parameters())
    for name, p in named:
        _f64(f"parameter {name!r}", p.data)
    if params is not None:
        unknown = sorted(set(params) - {name for name, _ in named})
        if unknown:
            raise KeyError(f"gradcheck: unknown parameter names {unknown}; the module has {[n for n, _ in named]}")
        named = [(name, p) for name, p in named if name in params]
    x = _f64("input x", x).copy()
    modules = layer.modules()
    modes = [m.training for m in modules]
    buffers = {k: v for k, v in layer.state_dict().items() if k not in dict(layer.named_parameters())}
    stochastic = [m for m in modules if isinstance(getattr(m, "generator", None), np.random.Generator)]
    generators = [m.generator for m in stochastic]
    layer.train(train)
    try:
        def forward():
            for m in stochastic:
                m.generator = np.random.default_rng(seed)
            return layer.forward(x)

        failures = []
        x_saved = x.copy()
        y = forward()
        if not np.array_equal(x, x_saved, equal_nan=True):
            failures.append("forward modified its input x in place")
        r = np.random.default_rng(seed).standard_normal(y.shape)
        r_saved = r.copy()
        layer.zero_grad()
        dx = layer.backward(r)
        if not np.array_equal(r, r_saved):
            failures.append("backward modified its upstream gradient dy in place")
        analytic = {name: p.grad.copy() for name, p in named}

        def f():
            return float(np.sum(r_saved * forward()))

        errors = {}
        if dx is not None or getattr(layer, "needs_input_grad", True):
            errors["input"] = _compare("input", dx, _numerical(f, x, eps), atol, rtol, failures)
        for name, p in named:
            errors[name] = _compare(name, analytic[name], _numerical(f, p.data, eps), atol, rtol, failures)
    finally:
        for m, mode in zip(modules, modes):
            m.training = mode
        for m, g in zip(stochastic, generators):
            m.generator = g
        state = layer.state_dict()
        state.update(buffers)
        layer.load_state_dict(state)
    return errors, failures

