"""Argument checks shared by dl2's public entry points (layers, containers, losses, optimizers).

Each raises ``TypeError`` for a value of the wrong kind and ``ValueError`` for one out of range, with a message
that starts with the name of the layer or function (``who``) and names the argument. Nothing is coerced
silently: ``Conv2D(2.7, 3)`` is a TypeError, not a layer with 2 channels.
"""
import math
import numbers

import numpy as np

__all__ = ["integer", "number", "real_array"]


def integer(value, who, name, minimum=None):
    """``value`` as an int (Python or NumPy integers; not bools, floats or strings), ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who}: {name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{who}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def number(value, who, name, lo=None, hi=None, lo_open=False, hi_open=False):
    """``value`` as a float (a real number, not a bool), finite, within ``lo``/``hi`` when given (closed bounds
    unless ``lo_open``/``hi_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who}: {name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{who}: {name} must be a finite number, got {value!r}")
    below = lo is not None and (value <= lo if lo_open else value < lo)
    above = hi is not None and (value >= hi if hi_open else value > hi)
    if below or above:
        if hi is None:
            bound = f"{'>' if lo_open else '>='} {lo}"
        elif lo is None:
            bound = f"{'<' if hi_open else '<='} {hi}"
        else:
            bound = f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{who}: {name} must be {bound}, got {value!r}")
    return value


def real_array(x, who, what="input"):
    """``x`` as a NumPy array of real numbers (integers or floats); ``TypeError`` for bool, complex, object,
    string or other dtypes, which would otherwise be coerced (complex silently loses its imaginary part)."""
    try:
        x = np.asarray(x)
    except ValueError as e:   # ragged nested lists
        raise ValueError(f"{who}: {what} is not a rectangular array ({e})") from None
    if x.dtype.kind not in "iuf":
        raise TypeError(f"{who}: {what} must be an array of real numbers (integers or floats), got dtype "
                        f"{x.dtype}")
    return x
