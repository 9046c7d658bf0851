"""dl2 -> ONNX: one walk over the module tree, one handler per layer and container class.

Each handler gets the graph being written, the module, the name of its input tensor and the module's path (as in
``named_modules``: ``"3.body.0"``) and returns the name of its output tensor. Node names are the module paths
(``"<path>/<step>"`` for a layer written as several nodes); initializer names are the ``state_dict`` keys.
"""
import json

import numpy as np
import onnx
from onnx import TensorProto, helper

# the classes by their top-level names, wherever dl2 defines them
from dl2 import (AuxHead, AvgPool2D, BatchNorm1D, BatchNorm2D, Concat, Conv2D, Dropout, Flatten, GlobalAvgPool2D,
                 GlobalMaxPool2D, GroupNorm, InstanceNorm2D, LayerNorm, LeakyReLU, Linear, LocalResponseNorm, LPPool2D,
                 MaxPool2D, Module, ReLU, Residual, Sequential, Sigmoid, Softmax, SqueezeExcite, Swish, Tanh,
                 __version__)
from dl2.serialization import atomic_replace

__all__ = ["export", "to_onnx", "DEFAULT_OPSET", "MIN_OPSET"]

#: Opset written by default (ONNX 1.12+, onnxruntime 1.12+; has LayerNormalization).
DEFAULT_OPSET = 17
#: Oldest opset written: 13 (Softmax over one axis, Unsqueeze with axes as an input).
MIN_OPSET = 13

_ELEM_TYPE = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


class _Graph:
    """The nodes and initializers being written, with unique tensor names.

    Initializers are written straight into ``proto`` (``helper.make_graph``/``make_model`` would copy every
    weight twice more: 1 GB for VGG-16).
    """

    def __init__(self, dtype, opset, keep_aux):
        self.dtype = np.dtype(dtype)
        self.opset = opset
        self.keep_aux = keep_aux
        self.proto = onnx.ModelProto()
        self.nodes = []
        self.aux_outputs = []   # (tensor name, AuxHead)
        self._used = {"input"}

    def unique(self, name):
        base, k = name, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    def const(self, name, array, dtype=None):
        """Add an initializer (in the model's dtype unless ``dtype``); returns its name."""
        name = self.unique(name)
        array = np.asarray(array, dtype=self.dtype if dtype is None else dtype)
        tensor = self.proto.graph.initializer.add()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.raw_data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()  # ONNX: little-endian
        return name

    def param(self, module, path, attr):
        """Initializer for ``module.<attr>`` (a Parameter or buffer; ``attr`` may be a dotted path into a child
        layer, e.g. ``fc1.weight``), named like its ``state_dict`` key."""
        value = module
        for part in attr.split("."):
            value = getattr(value, part)
        return self.const(f"{path}.{attr}" if path else attr, getattr(value, "data", value))

    def node(self, op, inputs, name, **attrs):
        """Add a node with one output, named ``name`` like the node; returns the output name."""
        name = self.unique(name or op)
        self.nodes.append(helper.make_node(op, list(inputs), [name], name=name, **attrs))
        return name


# --------------------------------------------------------------------- layers
def _pads(padding):
    return [padding[0], padding[1], padding[0], padding[1]]


def _conv(g, m, x, path):
    inputs = [x, g.param(m, path, "weight")] + ([g.param(m, path, "bias")] if m.bias is not None else [])
    return g.node("Conv", inputs, path, kernel_shape=list(m.kernel_size), strides=list(m.stride),
                  pads=_pads(m.padding), dilations=[1, 1], group=1)


def _linear(g, m, x, path):
    inputs = [x, g.param(m, path, "weight")] + ([g.param(m, path, "bias")] if m.bias is not None else [])
    return g.node("Gemm", inputs, path)   # weight is (in, out): transB = 0


def _elementwise(op, **attrs):
    def handler(g, m, x, path):
        return g.node(op, [x], path, **attrs)
    return handler


def _leaky_relu(g, m, x, path):
    return g.node("LeakyRelu", [x], path, alpha=m.negative_slope)


def _swish(g, m, x, path):
    z = x if m.beta == 1 else g.node("Mul", [x, g.const(f"{path}.beta", m.beta)], f"{path}/scale")
    s = g.node("Sigmoid", [z], f"{path}/sigmoid")
    return g.node("Mul", [x, s], path)


def _maxpool(g, m, x, path):
    return g.node("MaxPool", [x], path, kernel_shape=list(m.kernel_size), strides=list(m.stride),
                  pads=_pads(m.padding))


def _avgpool(g, m, x, path):
    return g.node("AveragePool", [x], path, kernel_shape=list(m.kernel_size), strides=list(m.stride),
                  pads=_pads(m.padding), count_include_pad=int(m.count_include_pad))


def _lppool(g, m, x, path):
    # ONNX LpPool sums |x|**p; dl2 sums x**p. They agree for even integer p; otherwise write dl2's formula.
    kernel, strides = list(m.kernel_size), list(m.stride)
    if m.p == int(m.p) and int(m.p) % 2 == 0:
        return g.node("LpPool", [x], path, kernel_shape=kernel, strides=strides, p=int(m.p))
    powered = g.node("Pow", [x, g.const(f"{path}.p", m.p)], f"{path}/pow")
    mean = g.node("AveragePool", [powered], f"{path}/mean", kernel_shape=kernel, strides=strides)
    area = m.kernel_size[0] * m.kernel_size[1]
    total = g.node("Mul", [mean, g.const(f"{path}.area", area)], f"{path}/sum")
    return g.node("Pow", [total, g.const(f"{path}.inv_p", 1.0 / m.p)], path)


def _global_pool(op):
    def handler(g, m, x, path):
        if m.keepdims:
            return g.node(op, [x], path)
        return g.node("Flatten", [g.node(op, [x], f"{path}/pool")], path, axis=1)
    return handler


def _flatten(g, m, x, path):
    return g.node("Flatten", [x], path, axis=1)


def _affine_or_constant(g, m, path, shape):
    """Scale and shift initializers: the layer's gamma/beta, or ones/zeros when it has no affine parameters."""
    if m.affine:
        return g.param(m, path, "gamma"), g.param(m, path, "beta")
    return g.const(f"{path}/scale", np.ones(shape)), g.const(f"{path}/shift", np.zeros(shape))


def _batchnorm(g, m, x, path):
    scale, shift = _affine_or_constant(g, m, path, (m.num_features,))
    inputs = [x, scale, shift, g.param(m, path, "running_mean"), g.param(m, path, "running_var")]
    # ONNX: running = momentum * running + (1 - momentum) * batch; dl2 (PyTorch): the other way round.
    return g.node("BatchNormalization", inputs, path, epsilon=m.eps, momentum=1.0 - m.momentum)


def _need_opset(g, path, module, opset, op):
    if g.opset < opset:
        raise ValueError(f"dl2.onnx.export: layer {path} ({type(module).__name__}) needs opset >= {opset} ({op}), "
                         f"got opset {g.opset}")


def _layernorm(g, m, x, path):
    _need_opset(g, path, m, 17, "LayerNormalization")
    scale, shift = _affine_or_constant(g, m, path, m.input_shape)
    return g.node("LayerNormalization", [x, scale, shift], path, axis=1, epsilon=m.eps)


def _channel_affine(g, m, path):
    """Per-channel scale and shift ``(C,)`` (dl2 keeps them as ``(C, 1, ...)``)."""
    c = m.input_shape[0]
    if m.affine:
        return g.const(f"{path}.gamma", m.gamma.data.reshape(c)), g.const(f"{path}.beta", m.beta.data.reshape(c))
    return _affine_or_constant(g, m, path, (c,))


def _instancenorm(g, m, x, path):
    return g.node("InstanceNormalization", [x, *_channel_affine(g, m, path)], path, epsilon=m.eps)


def _groupnorm(g, m, x, path):
    _need_opset(g, path, m, 21, "GroupNormalization with per-channel scales")
    return g.node("GroupNormalization", [x, *_channel_affine(g, m, path)], path, num_groups=m.num_groups,
                  epsilon=m.eps)


def _lrn(g, m, x, path):
    if m.size % 2 == 0:
        raise ValueError(f"dl2.onnx.export: layer {path} (LocalResponseNorm) has an even size {m.size}; ONNX's LRN "
                         f"centres even windows differently from dl2 (and PyTorch), only odd sizes can be exported")
    return g.node("LRN", [x], path, size=m.size, alpha=m.alpha, beta=m.beta, bias=m.k)


def _dropout(g, m, x, path):
    # In inference ONNX Dropout is the identity: dl2's inverted dropout. Textbook dropout scales by 1 - p.
    y = g.node("Dropout", [x, g.const(f"{path}.ratio", m.p)], path if m.mode == "inverted" else f"{path}/dropout")
    if m.mode == "inverted":
        return y
    return g.node("Mul", [y, g.const(f"{path}.keep", 1.0 - m.p)], path)


# --------------------------------------------------------------------- containers
def _child(path, name):
    return f"{path}.{name}" if path else name


def _sequential(g, m, x, path):
    for i, layer in enumerate(m.layers):
        x = _emit(g, layer, x, _child(path, str(i)))
    return x


def _residual(g, m, x, path):
    body = _emit(g, m.body, x, _child(path, "body"))
    shortcut = x if m.shortcut is None else _emit(g, m.shortcut, x, _child(path, "shortcut"))
    return g.node("Add", [body, shortcut], f"{path}/add" if path else "add")


def _concat(g, m, x, path):
    outs = [_emit(g, b, x, _child(path, f"branch{i}")) for i, b in enumerate(m.branches)]
    axis = m.axis % len(m.output_shape) + 1   # per-sample axis -> batched axis
    return g.node("Concat", outs, f"{path}/concat" if path else "concat", axis=axis)


def _squeeze_excite(g, m, x, path):
    s = g.node("GlobalAveragePool", [x], f"{path}/squeeze")
    s = g.node("Flatten", [s], f"{path}/flatten", axis=1)
    z = g.node("Gemm", [s, g.param(m, path, "fc1.weight"), g.param(m, path, "fc1.bias")], f"{path}/fc1")
    a = g.node("Relu", [z], f"{path}/relu")
    u = g.node("Gemm", [a, g.param(m, path, "fc2.weight"), g.param(m, path, "fc2.bias")], f"{path}/fc2")
    gate = g.node("Sigmoid", [u], f"{path}/gate")
    axes = g.const(f"{path}.axes", [2, 3], dtype=np.int64)
    gate = g.node("Unsqueeze", [gate, axes], f"{path}/unsqueeze")
    return g.node("Mul", [x, gate], f"{path}/excite")


def _aux_head(g, m, x, path):
    if g.keep_aux:
        g.aux_outputs.append((_emit(g, m.head, x, _child(path, "head")), m))
    return x


HANDLERS = {
    Sequential: _sequential, Residual: _residual, Concat: _concat, SqueezeExcite: _squeeze_excite,
    AuxHead: _aux_head,
    Conv2D: _conv, Linear: _linear,
    ReLU: _elementwise("Relu"), LeakyReLU: _leaky_relu, Sigmoid: _elementwise("Sigmoid"),
    Tanh: _elementwise("Tanh"), Softmax: _elementwise("Softmax", axis=-1), Swish: _swish,
    MaxPool2D: _maxpool, AvgPool2D: _avgpool, LPPool2D: _lppool,
    GlobalAvgPool2D: _global_pool("GlobalAveragePool"), GlobalMaxPool2D: _global_pool("GlobalMaxPool"),
    Flatten: _flatten, Dropout: _dropout,
    BatchNorm1D: _batchnorm, BatchNorm2D: _batchnorm, LayerNorm: _layernorm, InstanceNorm2D: _instancenorm,
    GroupNorm: _groupnorm,
    LocalResponseNorm: _lrn,
}


def _emit(g, module, x, path):
    handler = HANDLERS.get(type(module))
    if handler is None:
        where = f"layer {path}" if path else "the model"
        raise TypeError(f"dl2.onnx.export: {where} ({type(module).__name__}) has no ONNX form; exportable: "
                        f"{', '.join(sorted(c.__name__ for c in HANDLERS))}")
    return handler(g, module, x, path)


# --------------------------------------------------------------------- the model
def _value_info(name, elem_type, shape):
    return helper.make_tensor_value_info(name, elem_type, ["N"] + [int(s) for s in shape])


def to_onnx(model, opset=DEFAULT_OPSET, keep_aux=False):
    """The ``onnx.ModelProto`` of a built dl2 ``model`` in evaluation semantics, checked (see :func:`export`)."""
    proto = _model_proto(model, opset, keep_aux)
    _checked_bytes(proto)
    return proto


def _model_proto(model, opset, keep_aux):
    if not isinstance(model, Module):
        raise TypeError(f"dl2.onnx.export: expected a dl2 Module, got {type(model).__name__}")
    if not model.built:
        raise ValueError("dl2.onnx.export: the model is not built: build it (or pass input_shape=) first")
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"dl2.onnx.export: opset must be an integer from {MIN_OPSET} to {newest} (the installed "
                         f"onnx's newest), got {opset!r}")
    g = _Graph(model.dtype, int(opset), bool(keep_aux))
    out = _emit(g, model, "input", "")
    if out == "input":   # a model that is the identity in evaluation
        out = g.node("Identity", ["input"], "identity")
    _rename(g.nodes, out, "output")
    elem = _ELEM_TYPE[np.dtype(model.dtype)]
    proto = g.proto
    graph = proto.graph
    graph.name = "dl2"
    graph.doc_string = f"dl2 {type(model).__name__}, evaluation semantics"
    graph.node.extend(g.nodes)
    graph.input.append(_value_info("input", elem, model.input_shape))
    graph.output.append(_value_info("output", elem, model.output_shape))
    graph.output.extend(_value_info(name, elem, head.head_shape) for name, head in g.aux_outputs)
    proto.opset_import.append(helper.make_opsetid("", int(opset)))
    proto.producer_name, proto.producer_version = "dl2", __version__
    # The oldest IR version that has this opset (the installed onnx's newest may be newer than runtimes read).
    proto.ir_version = helper.find_min_ir_version_for(proto.opset_import)
    meta = {"dl2.aux_weights": json.dumps([head.weight for _, head in g.aux_outputs])} if g.aux_outputs else {}
    helper.set_model_props(proto, meta)
    return proto


def _checked_bytes(proto):
    """The serialized model after ``onnx.checker.check_model(full_check=True)`` (checked as bytes: one copy of the
    weights fewer than checking the ModelProto)."""
    data = proto.SerializeToString()
    onnx.checker.check_model(data, full_check=True)
    return data


def _rename(nodes, old, new):
    for node in nodes:
        for seq in (node.input, node.output):
            for i, name in enumerate(seq):
                if name == old:
                    seq[i] = new


def export(model, path, opset=DEFAULT_OPSET, keep_aux=False):
    """Write a built dl2 ``model`` to the ONNX file ``path`` (atomically); returns the ``onnx.ModelProto``.

    The graph computes the model's evaluation-mode output (Dropout is the identity, batch norm uses the running
    statistics): input ``"input"`` of shape ``(N, *model.input_shape)`` and the model's dtype (float32 or
    float64), output ``"output"`` ``(N, *model.output_shape)``, with a dynamic batch dimension ``N``. Weights are
    initializers named by their ``state_dict`` keys, nodes by the dl2 layer path. ``keep_aux=True`` adds the
    outputs of the :class:`dl2.AuxHead` classifiers (GoogLeNet) as further graph outputs ``"<path>.head..."``;
    by default they are dropped. The model passes ``onnx.checker.check_model(full_check=True)`` before it is
    written. A layer without an ONNX form raises ``TypeError`` naming it.
    """
    proto = _model_proto(model, opset, keep_aux)
    data = _checked_bytes(proto)
    atomic_replace(path, lambda f: f.write(data))
    return proto
