"""Batch-norm cases: training-mode batch norm (batch statistics), forward and forward + backward
(dx, dgamma, dbeta). Target: forward + backward <= 1.0x PyTorch.
"""
import numpy as np

import fastconv
from fastconv import reference

from fcbench import Case, leaf, randn, smoke, to_numpy

EPS = 1e-5

BN_SHAPES = [(100, 16, 28, 28), (32, 64, 56, 56), (100, 100)]
SMOKE_BN_SHAPES = [(3, 4, 5, 5), (2, 3, 4, 4), (6, 5)]


def _bn_inputs(case):
    shape = case.params["shape"]
    rng = case.rng()
    x = randn(rng, shape) * np.float32(2) + np.float32(0.5)
    gamma = randn(rng, (shape[1],))
    beta = randn(rng, (shape[1],))
    dy = randn(rng, shape)
    return x, gamma, beta, dy


def _bn_forward(case, impl):
    """Training-mode forward (batch statistics); compared on ``y``."""
    x, gamma, beta, _ = _bn_inputs(case)
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, gt, bt = (torch.from_numpy(a) for a in (x, gamma, beta))

        def run():
            with torch.no_grad():
                return F.batch_norm(xt, None, None, gt, bt, training=True, eps=EPS)
        return run, to_numpy
    module = fastconv if impl == "fastconv" else reference
    return (lambda: module.batchnorm_forward(x, gamma, beta, EPS)), lambda r: to_numpy(r[0])


def _bn_fwd_bwd(case, impl):
    x, gamma, beta, dy = _bn_inputs(case)
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, gt, bt = (leaf(torch, a) for a in (x, gamma, beta))
        dyt = torch.from_numpy(dy)

        def run():
            xt.grad = gt.grad = bt.grad = None
            F.batch_norm(xt, None, None, gt, bt, training=True, eps=EPS).backward(dyt)
            return xt.grad, gt.grad, bt.grad
        return run, lambda r: to_numpy(*r)
    module = fastconv if impl == "fastconv" else reference

    def run():
        _, mean, invstd = module.batchnorm_forward(x, gamma, beta, EPS)
        return module.batchnorm_backward(dy, x, gamma, mean, invstd)
    return run, lambda r: to_numpy(*r)


def _bn_label(shape):
    return "x".join(map(str, shape)) + (" (2-D)" if len(shape) == 2 else "")


def batchnorm_cases():
    shapes = SMOKE_BN_SHAPES if smoke() else BN_SHAPES
    cases = []
    for backward, builder in ((False, _bn_forward), (True, _bn_fwd_bwd)):
        for shape in shapes:
            size = float(np.prod(shape))
            # forward: read x, write y; backward: read dy and x, write dx (per-channel vectors neglected)
            nbytes = 4 * size * (2 + 3 if backward else 2)
            kernel = f"batchnorm {'fwd+bwd' if backward else 'forward'}"
            cases.append(Case("batchnorm", kernel, _bn_label(shape), builder, {"shape": shape}, bytes=nbytes,
                              targets=(("torch_ratio", "<=", 1.0),) if backward else ()))
    return cases
