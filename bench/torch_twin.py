"""The same network in PyTorch: :func:`twin` walks a built dl2 model and builds the equivalent ``torch.nn.Module``
with the dl2 model's current weights (and batch-norm running statistics) copied in.

Every dl2 layer and container has a counterpart: ``torch.nn`` modules where one computes the same function, small
modules below where none does (Residual, Concat, AuxHead, SqueezeExcite, the global pools with ``keepdims``,
Swish with ``beta != 1``, textbook-mode Dropout). dl2's ``Linear`` weight is ``(in, out)``, PyTorch's
``(out, in)``; per-channel affine parameters of InstanceNorm2D / GroupNorm are ``(C, 1, 1)`` in dl2 and ``(C,)`` in
PyTorch: :class:`Twin` converts both ways. Used by the zoo training steps (``cases_train.py``) and checked by
``tests/test_bench_smoke.py`` (same outputs, same gradients).

Importing this module imports PyTorch.
"""
import numpy as np
import torch
from torch import nn

import dl2


class Twin:
    """``module``: the ``torch.nn.Module``; ``pairs``: ``(dl2 Parameter, torch Parameter, transposed)`` for every
    parameter, in dl2's ``model.parameters()`` order; ``aux_heads``: the modules standing for dl2's ``AuxHead``."""

    def __init__(self, module, pairs, aux_heads):
        self.module, self.pairs, self.aux_heads = module, pairs, aux_heads

    @staticmethod
    def _to_dl2(tensor, param, transposed):
        a = tensor.detach().numpy()
        return (a.T if transposed else a).reshape(param.shape)

    def parameters(self):
        """The PyTorch parameters as NumPy arrays in dl2's layouts (same order as ``model.parameters()``)."""
        return [self._to_dl2(t, p, tr) for p, t, tr in self.pairs]

    def gradients(self):
        """The PyTorch gradients (``.grad``) in dl2's layouts; zeros for a parameter without one."""
        return [np.zeros(p.shape, p.dtype) if t.grad is None else self._to_dl2(t.grad, p, tr)
                for p, t, tr in self.pairs]


# ============================================================================================ small modules
class Residual(nn.Module):
    def __init__(self, body, shortcut):
        super().__init__()
        self.body, self.shortcut = body, shortcut

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


class Concat(nn.Module):
    def __init__(self, branches, dim):
        super().__init__()
        self.branches, self.dim = nn.ModuleList(branches), dim

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], dim=self.dim)


class AuxHead(nn.Module):
    """Identity on the trunk; in training mode also keeps ``aux_output = head(x)`` (its loss has ``weight``)."""

    def __init__(self, head, weight):
        super().__init__()
        self.head, self.weight, self.aux_output = head, weight, None

    def forward(self, x):
        self.aux_output = self.head(x) if self.training else None
        return x


class SqueezeExcite(nn.Module):
    """``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``."""

    def __init__(self, channels, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(channels, hidden), nn.Linear(hidden, channels)

    def forward(self, x):
        g = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * g[:, :, None, None]


class GlobalPool(nn.Module):
    """Mean or max over H and W, keeping them as ``(N, C, 1, 1)`` or not (``(N, C)``)."""

    def __init__(self, kind, keepdims):
        super().__init__()
        self.kind, self.keepdims = kind, keepdims

    def forward(self, x):
        y = x.mean(dim=(2, 3), keepdim=True) if self.kind == "avg" else torch.amax(x, dim=(2, 3), keepdim=True)
        return y if self.keepdims else y.flatten(1)


class Swish(nn.Module):
    def __init__(self, beta):
        super().__init__()
        self.beta = beta

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)


class TextbookDropout(nn.Module):
    """``x * mask`` in training, ``x * (1 - p)`` in evaluation (dl2's ``Dropout(mode="textbook")``)."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.training:
            return x * (torch.rand_like(x) >= self.p).to(x.dtype)
        return x * (1 - self.p)


# ============================================================================================ the walk
def _copy(pairs, param, target, transposed=False):
    """Copy dl2 ``param`` into the torch parameter ``target`` and remember the pair."""
    if param is None:
        return
    data = param.data.T if transposed else param.data
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(data).reshape(tuple(target.shape))))
    pairs.append((param, target, transposed))


def _affine(pairs, layer, module):
    if layer.affine:
        _copy(pairs, layer.gamma, module.weight)
        _copy(pairs, layer.beta, module.bias)
    return module


def _batchnorm(layer, pairs):
    cls = nn.BatchNorm1d if isinstance(layer, dl2.BatchNorm1D) else nn.BatchNorm2d
    m = cls(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine)
    with torch.no_grad():
        m.running_mean.copy_(torch.from_numpy(np.asarray(layer.running_mean)))
        m.running_var.copy_(torch.from_numpy(np.asarray(layer.running_var)))
    return _affine(pairs, layer, m)


def _conv(layer, pairs):
    m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                  bias=layer.bias is not None)
    _copy(pairs, layer.weight, m.weight)
    _copy(pairs, layer.bias, m.bias)
    return m


def _linear(layer, pairs):
    m = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    _copy(pairs, layer.weight, m.weight, transposed=True)
    _copy(pairs, layer.bias, m.bias)
    return m


def _squeeze_excite(layer, pairs):
    channels, hidden = layer.fc1.weight.shape       # dl2's fc1/fc2 are Linear layers: weights (in, out)
    m = SqueezeExcite(channels, hidden)
    for src, dst in ((layer.fc1, m.fc1), (layer.fc2, m.fc2)):
        _copy(pairs, src.weight, dst.weight, transposed=True)
        _copy(pairs, src.bias, dst.bias)
    return m


def _dropout(layer, pairs):
    return nn.Dropout(layer.p) if layer.mode == "inverted" else TextbookDropout(layer.p)


#: dl2 class -> ``convert(layer, pairs, walk) -> torch module`` (``walk`` converts a child module).
CONVERTERS = {
    dl2.Sequential: lambda layer, pairs, walk: nn.Sequential(*[walk(child) for child in layer.layers]),
    dl2.Residual: lambda layer, pairs, walk: Residual(walk(layer.body),
                                                      None if layer.shortcut is None else walk(layer.shortcut)),
    dl2.Concat: lambda layer, pairs, walk: Concat([walk(b) for b in layer.branches],
                                                  layer.axis % len(layer.input_shape) + 1),
    dl2.AuxHead: lambda layer, pairs, walk: AuxHead(walk(layer.head), layer.weight),
    dl2.SqueezeExcite: lambda layer, pairs, walk: _squeeze_excite(layer, pairs),
    dl2.Conv2D: lambda layer, pairs, walk: _conv(layer, pairs),
    dl2.Linear: lambda layer, pairs, walk: _linear(layer, pairs),
    dl2.MaxPool2D: lambda layer, pairs, walk: nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding),
    dl2.AvgPool2D: lambda layer, pairs, walk: nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding,
                                                           count_include_pad=layer.count_include_pad),
    dl2.LPPool2D: lambda layer, pairs, walk: nn.LPPool2d(layer.p, layer.kernel_size, layer.stride),
    dl2.GlobalAvgPool2D: lambda layer, pairs, walk: GlobalPool("avg", layer.keepdims),
    dl2.GlobalMaxPool2D: lambda layer, pairs, walk: GlobalPool("max", layer.keepdims),
    dl2.Flatten: lambda layer, pairs, walk: nn.Flatten(),
    dl2.BatchNorm1D: lambda layer, pairs, walk: _batchnorm(layer, pairs),
    dl2.BatchNorm2D: lambda layer, pairs, walk: _batchnorm(layer, pairs),
    dl2.SyncBatchNorm: lambda layer, pairs, walk: _batchnorm(layer, pairs),   # one process: plain batch norm
    dl2.LayerNorm: lambda layer, pairs, walk: _affine(pairs, layer, nn.LayerNorm(
        layer.input_shape, eps=layer.eps, elementwise_affine=layer.affine)),
    dl2.InstanceNorm2D: lambda layer, pairs, walk: _affine(pairs, layer, nn.InstanceNorm2d(
        layer.input_shape[0], eps=layer.eps, affine=layer.affine)),
    dl2.GroupNorm: lambda layer, pairs, walk: _affine(pairs, layer, nn.GroupNorm(
        layer.num_groups, layer.input_shape[0], eps=layer.eps, affine=layer.affine)),
    dl2.LocalResponseNorm: lambda layer, pairs, walk: nn.LocalResponseNorm(layer.size, layer.alpha, layer.beta,
                                                                           layer.k),
    dl2.ReLU: lambda layer, pairs, walk: nn.ReLU(),
    dl2.LeakyReLU: lambda layer, pairs, walk: nn.LeakyReLU(layer.negative_slope),
    dl2.Sigmoid: lambda layer, pairs, walk: nn.Sigmoid(),
    dl2.Tanh: lambda layer, pairs, walk: nn.Tanh(),
    dl2.Swish: lambda layer, pairs, walk: nn.SiLU() if layer.beta == 1 else Swish(layer.beta),
    dl2.Softmax: lambda layer, pairs, walk: nn.Softmax(dim=-1),
    dl2.Dropout: lambda layer, pairs, walk: _dropout(layer, pairs),
}


def twin(model):
    """A :class:`Twin` of the built dl2 ``model``, in its dtype and train/eval mode.

    Raises ``ValueError`` if ``model`` is not built and ``TypeError`` for a module class without a PyTorch
    counterpart (named in the message).
    """
    if not model.built:
        raise ValueError(f"torch_twin: {type(model).__name__} is not built (build it for an input shape first)")
    pairs, aux_heads = [], []

    def walk(layer):
        convert = next((CONVERTERS[c] for c in type(layer).__mro__ if c in CONVERTERS), None)
        if convert is None:
            raise TypeError(f"torch_twin: no PyTorch counterpart for {type(layer).__name__}")
        module = convert(layer, pairs, walk)
        if isinstance(module, AuxHead):
            aux_heads.append(module)
        return module.train(layer.training)

    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if model.dtype == np.float64 else torch.float32)
    try:           # new torch parameters in the model's dtype, so that copying in the weights rounds nothing
        module = walk(model)
    finally:
        torch.set_default_dtype(saved)
    order = {id(p): i for i, p in enumerate(model.parameters())}
    pairs.sort(key=lambda pair: order[id(pair[0])])
    return Twin(module, pairs, aux_heads)
