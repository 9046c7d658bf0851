"""Weight initialisers.

Every initialiser has the signature ``init(shape, fan_in=None, fan_out=None, rng=None, dtype=np.float32)`` and
returns a new array of ``shape`` and ``dtype``. ``fan_in``/``fan_out`` default to :func:`fans` of ``shape`` in
dl2's layouts: a Linear weight is ``(in, out)`` so ``fan_in = in``; a Conv2D weight is ``(K, C, kh, kw)`` so
``fan_in = C*kh*kw`` and ``fan_out = K*kh*kw``. Values are drawn in float64 and then cast, so one seed gives the
same weights (up to rounding) in float32 and float64.

* ``"xavier"``: normal, std ``1/sqrt(fan_in)`` (the textbook's "Xavier" scaling, also called LeCun normal);
* ``"glorot_uniform"``: uniform on ``[-a, a]``, ``a = sqrt(6/(fan_in + fan_out))`` (Glorot & Bengio, 2010);
* ``"he"``: normal, std ``sqrt(2/fan_in)`` (He et al., 2015), the default of Linear and Conv2D;
* ``"normal"``: normal, std ``0.01`` (``std=`` to change);
* ``"zeros"``, ``"ones"``: constants.

He's factor is ``sqrt(2/n)`` with ``n = fan_in``: a ReLU zeroes half of its input on average, halving the
second moment, and the factor 2 restores unit variance from layer to layer (``1/sqrt(n)`` keeps it only for
symmetric activations such as tanh near 0).

Layers accept ``weight_init`` as one of these names, as a float (a normal with that std, e.g. ``0.01`` for the
vanishing-gradient experiment), or as a callable with the signature above (not saveable in a model config).
"""
import functools
import numbers

import numpy as np

__all__ = ["fans", "xavier", "glorot_uniform", "he", "normal", "zeros", "ones", "get", "INITIALIZERS"]


def fans(shape):
    """``(fan_in, fan_out)`` of a dl2 weight shape: ``(in, out)`` for 2-D, ``(C*kh*kw, K*kh*kw)`` for 4-D."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 4:
        k, c, kh, kw = shape
        return c * kh * kw, k * kh * kw
    raise ValueError(f"cannot infer fan_in/fan_out of a weight of shape {shape}; pass fan_in and fan_out")


def _setup(shape, fan_in, fan_out, rng, dtype):
    shape = tuple(int(s) for s in shape)
    if fan_in is None or fan_out is None:
        fin, fout = fans(shape)
        fan_in = fin if fan_in is None else fan_in
        fan_out = fout if fan_out is None else fan_out
    if fan_in <= 0 or fan_out <= 0:
        raise ValueError(f"fan_in and fan_out must be positive, got {fan_in} and {fan_out} for shape {shape}")
    rng = rng if rng is not None else np.random.default_rng()
    return shape, fan_in, fan_out, rng, np.dtype(dtype)


def xavier(shape, fan_in=None, fan_out=None, rng=None, dtype=np.float32):
    """Normal with std ``1/sqrt(fan_in)`` (the textbook's Xavier initialisation)."""
    shape, fan_in, _, rng, dtype = _setup(shape, fan_in, fan_out, rng, dtype)
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)


def glorot_uniform(shape, fan_in=None, fan_out=None, rng=None, dtype=np.float32):
    """Uniform on ``[-a, a]`` with ``a = sqrt(6/(fan_in + fan_out))`` (variance ``2/(fan_in + fan_out)``)."""
    shape, fan_in, fan_out, rng, dtype = _setup(shape, fan_in, fan_out, rng, dtype)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he(shape, fan_in=None, fan_out=None, rng=None, dtype=np.float32):
    """Normal with std ``sqrt(2/fan_in)`` (He et al., for ReLU)."""
    shape, fan_in, _, rng, dtype = _setup(shape, fan_in, fan_out, rng, dtype)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def normal(shape, fan_in=None, fan_out=None, rng=None, dtype=np.float32, std=0.01):
    """Normal with a fixed ``std`` (default 0.01), independent of the fans."""
    if not std >= 0:
        raise ValueError(f"std must be >= 0, got {std!r}")
    rng = rng if rng is not None else np.random.default_rng()
    return (rng.standard_normal(tuple(shape)) * std).astype(dtype)


def zeros(shape, fan_in=None, fan_out=None, rng=None, dtype=np.float32):
    return np.zeros(tuple(shape), dtype=dtype)


def ones(shape, fan_in=None, fan_out=None, rng=None, dtype=np.float32):
    return np.ones(tuple(shape), dtype=dtype)


#: Initialisers by name, as accepted by :func:`get` and a layer's ``weight_init``.
INITIALIZERS = {
    "xavier": xavier, "glorot_uniform": glorot_uniform, "he": he,
    "normal": normal, "zeros": zeros, "ones": ones,
}


def get(spec):
    """Resolve ``spec`` to an initialiser: a name from :data:`INITIALIZERS`, a float std, or a callable."""
    if isinstance(spec, str):
        try:
            return INITIALIZERS[spec.lower()]
        except KeyError:
            raise ValueError(f"unknown initialiser {spec!r}; choose one of {sorted(INITIALIZERS)}, "
                             f"a float std or a callable") from None
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        if not spec >= 0:
            raise ValueError(f"an initialiser std must be >= 0, got {spec!r}")
        return functools.partial(normal, std=float(spec))
    if callable(spec):
        return spec
    raise TypeError(f"weight_init must be a name, a float std or a callable, got {spec!r}")
