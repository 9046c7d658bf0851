"""Accuracy of fastconv's convolutions on the benchmark's shapes, against a float64 reference.

For every shape of ``cases_conv.py`` the float32 inputs of the benchmark are rounded once; fastconv computes
``y``, ``dx`` and ``dw`` in float32 and in float64 from those same values, and :mod:`fastconv.reference` computes
them in float64 (batch chunk by chunk, to bound its im2col memory). The error of each output is reported as
the largest elementwise ratio of the error to its bound, so a value <= 1 passes:

* float32: ``|got - ref| / (2e-4 * (|ref| + 1) + 5e-5 * max|ref|)``;
* float64: ``|got - ref| / (1e-9 * (|ref| + 1))``.

PyTorch's float32 convolution (when installed) gets the float32 ratio too, for comparison.
"""
import time

import numpy as np

import fastconv
from fastconv import reference

import cases_conv
import fcbench

F32_REL, F32_ABS_OF_MAX, F64_REL = 2e-4, 5e-5, 1e-9
OUTPUTS = ("y", "dx", "dw")
#: Bytes of reference im2col columns per chunk of images (float64).
CHUNK_BYTES = 2 ** 28


def float32_ratio(got, ref):
    """``max |got - ref| / (2e-4 (|ref| + 1) + 5e-5 max|ref|)`` over the elements."""
    err = np.abs(np.asarray(got, dtype=np.float64) - ref)
    return float(np.max(err / (F32_REL * (np.abs(ref) + 1) + F32_ABS_OF_MAX * np.max(np.abs(ref)))))


def float64_ratio(got, ref):
    """``max |got - ref| / (1e-9 (|ref| + 1))`` over the elements."""
    return float(np.max(np.abs(np.asarray(got) - ref) / (F64_REL * (np.abs(ref) + 1))))


def reference64(s, x, w, b, dy):
    """``(y, dx, dw)`` of shape ``s`` in float64 by :mod:`fastconv.reference`, a chunk of images at a time."""
    oh, ow = s.out_hw
    chunk = max(1, CHUNK_BYTES // (8 * oh * ow * s.c * s.kh * s.kw))
    ys, dxs, dw = [], [], np.zeros(w.shape)
    for i in range(0, s.n, chunk):
        ys.append(reference.conv2d_forward(x[i:i + chunk], w, b, s.stride, s.pad))
        dx, dw_part, _ = reference.conv2d_backward(dy[i:i + chunk], x[i:i + chunk], w, s.stride, s.pad)
        dxs.append(dx)
        dw += dw_part
    return np.concatenate(ys), np.concatenate(dxs), dw


def _fastconv(s, x, w, b, dy):
    y = fastconv.conv2d_forward(x, w, b, s.stride, s.pad)
    dx, dw, _ = fastconv.conv2d_backward(dy, x, w, s.stride, s.pad)
    return y, dx, dw


def _torch(s, x, w, b, dy):
    import torch
    import torch.nn.functional as F

    xt, wt, bt = (fcbench.leaf(torch, a) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, s.stride, s.pad)
    y.backward(torch.from_numpy(dy))
    return fcbench.to_numpy(y, xt.grad, wt.grad)


def shape_accuracy(s, seed=0):
    """The error ratios of one shape: ``{"float32": {output: ratio}, "float64": ..., "torch_float32": ... or
    None, "algorithm": name or None, "seconds": wall time}``."""
    start = time.perf_counter()
    x, w, b, dy = cases_conv.conv_inputs(s, np.random.default_rng(seed))       # float32, rounded once
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    ref = reference64(s, x64, w64, b64, dy64)
    row = {"shape": s.label, "algorithm": cases_conv.algorithm(s)}
    row["float32"] = dict(zip(OUTPUTS, map(float32_ratio, _fastconv(s, x, w, b, dy), ref)))
    row["float64"] = dict(zip(OUTPUTS, map(float64_ratio, _fastconv(s, x64, w64, b64, dy64), ref)))
    row["torch_float32"] = (dict(zip(OUTPUTS, map(float32_ratio, _torch(s, x, w, b, dy), ref)))
                            if fcbench.torch_or_none() is not None else None)
    row["seconds"] = time.perf_counter() - start
    return row


def accuracy_table():
    """:func:`shape_accuracy` of every convolution shape of this run (smoke or full size)."""
    return [shape_accuracy(s) for s in cases_conv.shapes()]
