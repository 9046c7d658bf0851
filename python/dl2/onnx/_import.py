"""ONNX -> dl2, in three steps.

1. **Constants.** Initializers, ``Constant`` nodes and every node whose inputs are all constant (PyTorch's
   ``Identity`` of a shared weight, ``Unsqueeze`` of a constant, ...) are evaluated with ONNX's reference
   evaluator. The remaining nodes compute on the activations.
2. **Structure.** The activation nodes must form the graph of nested dl2 containers: a chain of one-input
   nodes, where a tensor used by several nodes (a fork) is joined again by one ``Add`` (:class:`dl2.Residual`),
   ``Concat`` (:class:`dl2.Concat`) or ``Mul`` (:class:`dl2.SqueezeExcite` or :class:`dl2.Swish` gating). The
   join of a fork is the first tensor that every path from the fork goes through (its post-dominator), found by
   sweeping the nodes in topological order. Branches that end in a further graph output are auxiliary heads
   (:class:`dl2.AuxHead`).
3. **Layers.** Each node becomes a layer (a "spec": class, arguments and weights) using the shapes of ONNX shape
   inference; neighbouring specs are fused where ONNX splits a dl2 layer (``MatMul`` + ``Add`` -> ``Linear``,
   ``GlobalAveragePool`` + ``Flatten`` -> ``GlobalAvgPool2D()``, ``Dropout`` + ``Mul`` -> textbook dropout). The
   model is built for the graph's input shape and the weights are copied in, their shapes checked.

Everything dl2 cannot express exactly raises :class:`OnnxImportError` naming the node and the problem.
"""
import json
import os

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

# the classes by their top-level names, wherever dl2 defines them
from dl2 import (AuxHead, AvgPool2D, BatchNorm1D, BatchNorm2D, Concat, Conv2D, Dropout, Flatten, GlobalAvgPool2D,
                 GlobalMaxPool2D, GroupNorm, InstanceNorm2D, LayerNorm, LeakyReLU, Linear, LocalResponseNorm, LPPool2D,
                 MaxPool2D, Parameter, ReLU, Residual, Sequential, Sigmoid, Softmax, SqueezeExcite, Swish, Tanh)

__all__ = ["load", "from_onnx", "OnnxImportError", "SUPPORTED_OPS"]


class OnnxImportError(ValueError):
    """The file is not a readable ONNX model, or its graph cannot be expressed exactly in dl2."""


#: Operators of the default ONNX domain that :func:`load` reads (on activations; any operator may compute
#: constants).
SUPPORTED_OPS = ("Add", "AveragePool", "BatchNormalization", "Concat", "Conv", "Dropout", "Flatten", "Gemm",
                 "GlobalAveragePool", "GlobalMaxPool", "GroupNormalization", "Identity", "InstanceNormalization", "LRN",
                 "LayerNormalization", "LeakyRelu", "LpPool", "MatMul", "MaxPool", "Mul", "ReduceMax",
                 "ReduceMean", "Relu", "Reshape", "Sigmoid", "Softmax", "Squeeze", "Tanh", "Unsqueeze")

_DTYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64}

#: Operators whose output has the shape and type of their first input.
_SAME_SHAPE = ("BatchNormalization", "Dropout", "GroupNormalization", "Identity", "InstanceNormalization", "LRN",
               "LayerNormalization", "LeakyRelu", "Relu", "Sigmoid", "Softmax", "Tanh")


def _where(node):
    return f"node {node.name!r} ({node.op_type})" if node.name else f"a {node.op_type} node (no name)"


class _Spec:
    """A layer or container to create: ``cls(**args)`` (or a pseudo-layer ``op`` to be fused away), the weights
    to copy in after building (attribute -> array) and the node it comes from."""

    def __init__(self, cls, node, args=None, weights=None, children=None, op=None, value=None):
        self.cls, self.node, self.args = cls, node, dict(args or {})
        self.weights = dict(weights or {})
        self.children = children
        self.op, self.value = op, value


# ===================================================================== reading the file
def load(path):
    """Read the ONNX file ``path`` as a built dl2 model (in evaluation mode, as the graph computes).

    See :func:`from_onnx`. A missing file raises FileNotFoundError; a truncated or non-ONNX file, or a graph
    dl2 cannot express, raises :class:`OnnxImportError` (a ValueError).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        proto = onnx.load(path)
    except (DecodeError, RuntimeError, ValueError, UnicodeDecodeError) as e:
        raise OnnxImportError(f"{path}: not an ONNX model, or a truncated one ({type(e).__name__}: {e})") from None
    try:
        return from_onnx(proto)
    except OnnxImportError as e:
        raise OnnxImportError(f"{path}: {e}") from None


def from_onnx(proto):
    """A built dl2 :class:`~dl2.Sequential` computing the graph of ``proto`` (an ``onnx.ModelProto``).

    The graph must have one input ``(N, *shape)`` of float32 or float64 with a static per-sample shape. The
    model's layers are those of the operators in :data:`SUPPORTED_OPS` (with the attribute values dl2 can
    express: 2-D windows, symmetric ``pads``, ``auto_pad`` NOTSET or VALID, ``ceil_mode`` 0 or equivalent to it,
    no dilation, ``group`` 1, ...), arranged in :class:`~dl2.Residual`, :class:`~dl2.Concat`,
    :class:`~dl2.SqueezeExcite` and :class:`~dl2.AuxHead` containers. The model is returned in evaluation mode;
    ``train()`` (which :class:`dl2.Trainer` calls) switches Dropout and batch norm to training behaviour.
    """
    if not isinstance(proto, onnx.ModelProto):
        raise TypeError(f"dl2.onnx.from_onnx: expected an onnx.ModelProto, got {type(proto).__name__}")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxImportError(f"not a valid ONNX model ({first})") from None
    return _Importer(proto).model()


# ===================================================================== the importer
class _Importer:
    def __init__(self, proto):
        self.proto = proto
        graph = proto.graph
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        if self.opset is None:
            raise OnnxImportError("the model imports no version of the default ONNX operator set")
        self.consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise OnnxImportError(f"dl2 models have one input; the graph has {len(inputs)} "
                                  f"({', '.join(i.name for i in inputs) or 'none'})")
        self.input = inputs[0].name
        self.dtype, self.input_shape = self._input_type(inputs[0])
        self.outputs = [o.name for o in graph.output]
        self.nodes = self._activation_nodes(graph.node)
        self.shapes = self._infer_shapes()
        self._index_graph()

    # ----------------------------------------------------------------- inputs, constants, shapes
    @staticmethod
    def _input_type(value):
        t = value.type.tensor_type
        if t.elem_type not in _DTYPES:
            name = onnx.TensorProto.DataType.Name(t.elem_type) if t.elem_type else "unknown"
            raise OnnxImportError(f"input {value.name!r} has element type {name}; dl2 models take float32 or "
                                  f"float64")
        dims = t.shape.dim if t.HasField("shape") else []
        per_sample = [d.dim_value if d.HasField("dim_value") else None for d in dims[1:]]
        if not dims or any(d is None or d < 1 for d in per_sample):
            shown = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
            raise OnnxImportError(f"input {value.name!r} has shape {shown}; dl2 needs (N, ...) with a static "
                                  f"per-sample shape")
        return np.dtype(_DTYPES[t.elem_type]), tuple(per_sample)

    def _activation_nodes(self, nodes):
        """The nodes that compute on the input; the others are evaluated into ``self.consts``."""
        active, live = [], {self.input}
        for node in nodes:
            if node.domain not in ("", "ai.onnx"):
                raise OnnxImportError(f"{_where(node)}: operator domain {node.domain!r} is not supported "
                                      f"(only the default ONNX domain)")
            if any(i in live for i in node.input if i):
                if node.op_type not in SUPPORTED_OPS:
                    hint = (" -- shapes computed at run time, e.g. PyTorch's x.view(x.size(0), -1): write "
                            "torch.flatten(x, 1)" if node.op_type == "Shape" else "")
                    raise OnnxImportError(f"{_where(node)}: operator {node.op_type} is not supported by dl2 "
                                          f"(supported: {', '.join(SUPPORTED_OPS)}){hint}")
                active.append(node)
                live.update(o for o in node.output if o)
            else:
                self._fold(node)
        return active

    def _fold(self, node):
        """Evaluate a node whose inputs are all constants."""
        if node.op_type.startswith("Random") or node.op_type in ("Bernoulli", "Multinomial"):
            raise OnnxImportError(f"{_where(node)}: a random operator cannot become a constant of a dl2 model")
        missing = [i for i in node.input if i and i not in self.consts]
        if missing:
            raise OnnxImportError(f"{_where(node)}: input {missing[0]!r} is neither the graph input, a constant nor "
                                  f"computed before the node (the graph is not topologically sorted?)")
        from onnx.reference import ReferenceEvaluator
        feeds = {i: self.consts[i] for i in node.input if i}
        inputs = [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                  for i, v in feeds.items()]
        outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
        graph = helper.make_graph([node], "fold", inputs, outputs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        try:
            values = ReferenceEvaluator(model).run(None, feeds)
        except Exception as e:  # the reference evaluator raises many types
            raise OnnxImportError(f"{_where(node)}: cannot evaluate this constant expression "
                                  f"({type(e).__name__}: {e})") from None
        for name, value in zip([o for o in node.output if o], values):
            self.consts[name] = np.asarray(value)

    def _infer_shapes(self):
        """``{tensor: shape}`` by ONNX shape inference (strict: a graph whose shapes conflict is rejected).

        Some operators defined as ONNX functions (GroupNormalization) get no inferred output; those of
        :data:`_SAME_SHAPE` are given their input's type and the inference is run again.
        """
        # Shape inference copies the model: give it the large weights as typed inputs instead of their data.
        graph = self.proto.graph
        small = [t for t in graph.initializer if int(np.prod(t.dims)) <= 1024]
        large = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in graph.initializer
                 if int(np.prod(t.dims)) > 1024]
        inits = {t.name for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in inits] + large
        value_info = list(graph.value_info)
        while True:
            light = helper.make_model(helper.make_graph(graph.node, graph.name, inputs, graph.output, small,
                                                        value_info=value_info),
                                      opset_imports=self.proto.opset_import, ir_version=self.proto.ir_version)
            inferred = self._run_inference(light, strict=False)
            typed = {v.name: v for v in list(inferred.value_info) + list(inferred.input) + list(inferred.output)
                     if v.type.tensor_type.HasField("shape")}
            missing = [n for n in graph.node if n.op_type in _SAME_SHAPE and n.input[0] in typed
                       and n.output[0] not in typed]
            for n in missing:
                value = onnx.ValueInfoProto()
                value.CopyFrom(typed[n.input[0]])
                value.name = n.output[0]
                value_info.append(value)
            if not missing:
                break
        self._run_inference(light, strict=True)
        return {name: tuple(d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim)
                for name, v in typed.items()}

    @staticmethod
    def _run_inference(model, strict):
        try:
            return onnx.shape_inference.infer_shapes(model, strict_mode=strict).graph
        except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError) as e:
            message = " ".join(str(e).split())
            raise OnnxImportError(f"ONNX shape inference rejects the graph, its shapes or types do not line up "
                                  f"({message})") from None

    def _shape(self, name, node):
        """Per-sample shape (without the batch axis) of tensor ``name``, all dimensions known."""
        shape = self.shapes.get(name)
        if shape is None or len(shape) < 1 or any(d is None for d in shape[1:]):
            raise OnnxImportError(f"{_where(node)}: the shape of tensor {name!r} is unknown after ONNX shape "
                                  f"inference ({shape}); dl2 needs static per-sample shapes")
        return tuple(shape[1:])

    # ----------------------------------------------------------------- graph indexing
    def _act_inputs(self, node):
        return [i for i in node.input if i and i not in self.consts]

    def _index_graph(self):
        self.producer, self.consumers = {}, {}
        for k, node in enumerate(self.nodes):
            for o in node.output:
                if o:
                    self.producer[o] = k
            for i in self._act_inputs(node):
                self.consumers.setdefault(i, []).append(k)
        for name in self.outputs:
            if name not in self.producer and name != self.input:
                raise OnnxImportError(f"graph output {name!r} is not computed from the input (a constant output?)")
        # ancestors[tensor]: bit k set when node k is on a path to the tensor (the node producing it included)
        self.ancestors = {self.input: 0}
        for k, node in enumerate(self.nodes):
            bits = 1 << k
            for i in self._act_inputs(node):
                bits |= self.ancestors.get(i, 0)
            for o in node.output:
                if o:
                    self.ancestors[o] = bits
        self.main = self.outputs[0]
        self.main_bits = self.ancestors[self.main]
        self.aux_done = set()
        self.covered = set()

    def _output(self, k):
        """The one output of node ``k`` the graph uses."""
        node = self.nodes[k]
        used = [o for o in node.output if o and (o in self.consumers or o in self.outputs)]
        if len(used) != 1:
            extra = ", ".join(repr(o) for o in used[1:]) or "none"
            what = (f"its further outputs ({extra}) are used" if len(used) > 1 else "its output is unused")
            raise OnnxImportError(f"{_where(self.nodes[k])}: {what}; dl2 layers have exactly one output")
        return used[0]

    def _sequence(self, start, end):
        """The tree of items between tensors ``start`` and ``end``: ``("node", k)``, ``("fork", k, [branches])``
        (joined by node ``k``) and ``("aux", items, output)``."""
        items, cur = [], start
        region = self.ancestors[end]
        while True:
            items += self._aux_branches(cur)
            if cur == end:
                return items
            ahead = [k for k in self.consumers.get(cur, []) if region >> k & 1]
            if len(ahead) == 1 and self._act_inputs(self.nodes[ahead[0]]) == [cur]:
                k = ahead[0]
                self._cover(k)
                items.append(("node", k))
                cur = self._output(k)
                continue
            if not ahead:
                raise OnnxImportError(f"tensor {cur!r} does not lead to {end!r}")
            k = self._join(cur, end)
            self._cover(k)
            branches = [self._sequence(cur, i) for i in self._act_inputs(self.nodes[k])]
            items.append(("fork", k, branches))
            cur = self._output(k)

    def _cover(self, k):
        if k in self.covered:
            raise OnnxImportError(f"{_where(self.nodes[k])}: its output feeds branches that are joined at different "
                                  f"places; dl2 containers would have to duplicate it (and untie its weights)")
        self.covered.add(k)

    def _aux_branches(self, cur):
        """Items for the branches from ``cur`` that end in a graph output other than the main one."""
        items = []
        for k in self.consumers.get(cur, []):
            if self.main_bits >> k & 1 or k in self.aux_done:
                continue
            target = next((o for o in self.outputs[1:] if self.ancestors.get(o, 0) >> k & 1), None)
            if target is None:
                continue   # a dead end: no graph output needs it
            self.aux_done.update(j for j in range(len(self.nodes)) if self.ancestors[target] >> j & 1
                                 and not self.main_bits >> j & 1)
            items.append(("aux", self._sequence(cur, target), target))
        return items

    def _join(self, fork, end):
        """Index of the node that joins the paths leaving tensor ``fork`` (towards tensor ``end``)."""
        region = self.ancestors[end]
        pending = {fork: sum(1 for k in self.consumers[fork] if region >> k & 1 for i in
                             self._act_inputs(self.nodes[k]) if i == fork)}
        reached = {fork}
        first = self.producer[fork] + 1 if fork in self.producer else 0
        for k in range(first, len(self.nodes)):
            node = self.nodes[k]
            ins = self._act_inputs(node)
            if not region >> k & 1 or not any(i in reached for i in ins):
                continue
            outside = [i for i in ins if i not in reached]
            if outside:
                raise OnnxImportError(
                    f"{_where(node)}: combines tensor {outside[0]!r} with the block that starts at {fork!r}; dl2 "
                    f"containers only join branches that start from the same tensor")
            for i in ins:
                pending[i] -= 1
                if not pending[i]:
                    del pending[i]
            out = self._output(k)
            reached.add(out)
            if out == end:
                return k
            uses = sum(1 for j in self.consumers.get(out, []) if region >> j & 1 for i in
                       self._act_inputs(self.nodes[j]) if i == out)
            if uses:
                pending[out] = uses
            if list(pending) == [out]:
                return k
        raise OnnxImportError(f"the branches leaving tensor {fork!r} are never joined")

    # ----------------------------------------------------------------- the model
    def model(self):
        items = self._sequence(self.input, self.main)
        used = {k for k in range(len(self.nodes)) if self.main_bits >> k & 1} | self.aux_done
        stray = [self.nodes[k] for k in sorted(used - self.covered)]
        if stray:
            raise OnnxImportError(f"{_where(stray[0])}: not part of a chain of dl2 layers and containers")
        specs = self._specs(items)
        if not specs:
            raise OnnxImportError("the graph computes nothing from its input (no layers)")
        made = []
        model = Sequential(*[self._make(s, made) for s in specs], dtype=self.dtype)
        try:
            model.build(self.input_shape, self.dtype, np.random.default_rng(0))
        except (ValueError, TypeError) as e:
            raise OnnxImportError(f"the graph's shapes do not line up in dl2: {e}") from None
        for module, spec in made:
            self._copy_weights(module, spec)
        expected = self.shapes.get(self.main)
        if expected is not None and all(d is not None for d in expected[1:]) and \
                tuple(expected[1:]) != model.output_shape:
            raise OnnxImportError(f"the dl2 model's output shape (N, {model.output_shape}) differs from the graph "
                                  f"output {self.main!r} {expected}")
        return model.eval()

    def _copy_weights(self, module, spec):
        for attr, array in spec.weights.items():
            target = module
            for part in attr.split("."):        # a dotted path reaches into a child layer (SqueezeExcite's fc1)
                target = getattr(target, part)
            data = target.data if isinstance(target, Parameter) else target
            array = np.asarray(array)
            if array.shape != data.shape:
                raise OnnxImportError(f"{_where(spec.node)}: {attr} has shape {array.shape} but the layer built for "
                                      f"its input needs {data.shape} (the graph's shapes do not line up)")
            data[...] = array.astype(self.dtype, copy=False)

    def _make(self, spec, made):
        """The module of ``spec`` (``made`` collects ``(module, spec)`` for the weight copy)."""
        if spec.op is not None:
            raise OnnxImportError(f"{_where(spec.node)}: {spec.op} cannot be expressed by a dl2 layer here")
        seq = (lambda specs: Sequential(*[self._make(s, made) for s in specs]))
        try:
            if spec.cls is Residual:
                body, shortcut = spec.children
                module = Residual(seq(body), None if shortcut is None else seq(shortcut))
            elif spec.cls is Concat:
                module = Concat(*[seq(b) for b in spec.children], **spec.args)
            elif spec.cls is AuxHead:
                module = AuxHead(seq(spec.children), **spec.args)
            else:
                module = spec.cls(**spec.args)
        except (ValueError, TypeError) as e:
            raise OnnxImportError(f"{_where(spec.node)}: {e}") from None
        made.append((module, spec))
        return module

    # ----------------------------------------------------------------- items -> specs
    def _specs(self, items):
        specs = []
        for item in items:
            if item[0] == "node":
                specs += self._layer(self.nodes[item[1]])
            elif item[0] == "fork":
                specs.append(self._fork(self.nodes[item[1]], item[2]))
            else:
                specs.append(self._aux(item[1], item[2]))
        return _fuse(specs)

    def _aux(self, items, output):
        head = self._specs(items)
        if not head:
            raise OnnxImportError(f"graph output {output!r} repeats a tensor of the main path; dl2 auxiliary heads "
                                  f"compute something")
        weights = json.loads({p.key: p.value for p in self.proto.metadata_props}.get("dl2.aux_weights", "[]"))
        index = self.outputs.index(output) - 1
        weight = weights[index] if index < len(weights) else 0.3
        return _Spec(AuxHead, self.nodes[self.producer[output]], {"weight": weight}, children=head)

    def _fork(self, node, branches):
        specs = [self._specs(b) for b in branches]
        if node.op_type == "Add" and len(specs) == 2:
            nonempty = [s for s in specs if s]
            if not nonempty:
                raise OnnxImportError(f"{_where(node)}: x + x cannot be expressed in dl2")
            children = (specs[0], specs[1]) if len(nonempty) == 2 else (nonempty[0], None)
            return _Spec(Residual, node, children=children)
        if node.op_type == "Concat":
            if any(not s for s in specs):
                raise OnnxImportError(f"{_where(node)}: a Concat input is the block's input itself; dl2 Concat "
                                      f"branches must compute something")
            rank = 1 + len(self._shape(self._act_inputs(node)[0], node))
            axis = _attrs(node).get("axis", 1)
            axis = axis + rank if axis < 0 else axis
            if axis < 1:
                raise OnnxImportError(f"{_where(node)}: concatenation along the batch axis is not supported")
            return _Spec(Concat, node, {"axis": axis - 1}, children=specs)
        if node.op_type == "Mul" and len(specs) == 2 and sum(1 for s in specs if not s) == 1:
            return _gate(node, specs[0] or specs[1])
        raise OnnxImportError(f"{_where(node)}: joins {len(specs)} branches from one tensor; dl2 joins branches "
                              f"only by Add (Residual, two inputs), Concat, or Mul as x * sigmoid(...) gating "
                              f"(squeeze-and-excitation, Swish)")

    # ----------------------------------------------------------------- one node -> specs
    def _const(self, node, position, what):
        name = node.input[position] if len(node.input) > position else ""
        if not name:
            return None
        if name not in self.consts:
            raise OnnxImportError(f"{_where(node)}: the {what} ({name!r}) must be a constant (initializer)")
        return self.consts[name]

    def _layer(self, node):
        handler = getattr(self, "_op_" + node.op_type, None)
        if handler is None:
            raise OnnxImportError(f"{_where(node)}: {node.op_type} of a single computed tensor (and constants) "
                                  f"cannot be expressed in dl2")
        return handler(node, _attrs(node), self._shape(self._act_inputs(node)[0], node))

    def _op_Identity(self, node, a, shape):
        return []

    def _op_Relu(self, node, a, shape):
        return [_Spec(ReLU, node)]

    def _op_Sigmoid(self, node, a, shape):
        return [_Spec(Sigmoid, node)]

    def _op_Tanh(self, node, a, shape):
        return [_Spec(Tanh, node)]

    def _op_LeakyRelu(self, node, a, shape):
        return [_Spec(LeakyReLU, node, {"negative_slope": a.get("alpha", 0.01)})]

    def _op_Softmax(self, node, a, shape):
        rank = len(shape) + 1
        axis = a.get("axis", -1 if self.opset >= 13 else 1)
        if axis % rank != rank - 1:
            raise OnnxImportError(f"{_where(node)}: softmax over axis {axis} of a rank-{rank} tensor; dl2's Softmax "
                                  f"is over the last axis")
        return [_Spec(Softmax, node)]

    def _op_Conv(self, node, a, shape):
        weight = self._const(node, 1, "weight")
        bias = self._const(node, 2, "bias")
        if weight.ndim != 4:
            raise OnnxImportError(f"{_where(node)}: only 2-D convolutions are supported, the weight has shape "
                                  f"{weight.shape}")
        if a.get("group", 1) != 1:
            raise OnnxImportError(f"{_where(node)}: group={a['group']} (grouped or depthwise convolution) is not "
                                  f"supported; dl2's Conv2D has group 1")
        _check_kernel(node, a, weight.shape[2:])
        stride, padding = _window(node, a, shape, weight.shape[2:])
        weights = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
        return [_Spec(Conv2D, node, {"out_channels": weight.shape[0], "kernel_size": tuple(weight.shape[2:]),
                                     "stride": stride, "padding": padding, "bias": bias is not None}, weights)]

    def _op_Gemm(self, node, a, shape):
        if a.get("transA", 0):
            raise OnnxImportError(f"{_where(node)}: transA=1 is not supported (the input must be (N, features))")
        weight, bias = self._const(node, 1, "weight (B)"), self._const(node, 2, "bias (C)")
        if a.get("alpha", 1.0) != 1.0 or (bias is not None and a.get("beta", 1.0) != 1.0):
            raise OnnxImportError(f"{_where(node)}: alpha={a.get('alpha', 1.0)}, beta={a.get('beta', 1.0)}; dl2's "
                                  f"Linear computes x @ W + b (alpha = beta = 1)")
        weight = weight.T if a.get("transB", 0) else weight
        return self._linear(node, shape, weight, bias)

    def _op_MatMul(self, node, a, shape):
        if node.input[0] in self.consts:
            raise OnnxImportError(f"{_where(node)}: constant @ activation is not supported (dl2's Linear is x @ W)")
        return self._linear(node, shape, self._const(node, 1, "weight"), None)

    def _linear(self, node, shape, weight, bias):
        if len(shape) != 1 or weight.ndim != 2:
            raise OnnxImportError(f"{_where(node)}: dl2's Linear maps (N, features) with a 2-D weight; the input "
                                  f"is (N, {', '.join(map(str, shape))}) and the weight {weight.shape}")
        weights = {"weight": weight}
        if bias is not None:
            if bias.size != weight.shape[1] and bias.size != 1:
                raise OnnxImportError(f"{_where(node)}: bias of shape {bias.shape} for {weight.shape[1]} outputs")
            weights["bias"] = np.broadcast_to(bias.reshape(-1), (weight.shape[1],))
        return [_Spec(Linear, node, {"out_features": weight.shape[1], "bias": bias is not None}, weights)]

    def _op_Add(self, node, a, shape):
        return [self._elementwise_const(node, "Add", shape)]

    def _op_Mul(self, node, a, shape):
        return [self._elementwise_const(node, "Mul", shape)]

    def _elementwise_const(self, node, op, shape):
        const = [self.consts[i] for i in node.input if i in self.consts]
        if len(const) != 1:
            raise OnnxImportError(f"{_where(node)}: {op} of a tensor with itself is not supported")
        value = const[0]
        if value.ndim == len(shape) + 1 and value.shape[0] == 1:
            value = value[0]
        try:
            value = np.broadcast_to(value, shape)
        except ValueError:
            raise OnnxImportError(f"{_where(node)}: {op} of a constant of shape {const[0].shape} to a tensor of "
                                  f"shape (N, {', '.join(map(str, shape))}) is not per sample") from None
        return _Spec(None, node, op=f"{op} of a constant of shape {const[0].shape}", value=value)

    def _pool(self, node, a, shape):
        kernel = tuple(a.get("kernel_shape", ()))
        if len(kernel) != 2 or len(shape) != 3:
            raise OnnxImportError(f"{_where(node)}: only 2-D pooling of (N, C, H, W) is supported (kernel_shape "
                                  f"{list(kernel)}, input (N, {', '.join(map(str, shape))}))")
        _check_kernel(node, a, kernel)
        if a.get("storage_order", 0) != 0:
            raise OnnxImportError(f"{_where(node)}: storage_order=1 is not supported")
        stride, padding = _window(node, a, shape, kernel)
        return kernel, stride, padding

    def _op_MaxPool(self, node, a, shape):
        kernel, stride, padding = self._pool(node, a, shape)
        return [_Spec(MaxPool2D, node, {"kernel_size": kernel, "stride": stride, "padding": padding})]

    def _op_AveragePool(self, node, a, shape):
        kernel, stride, padding = self._pool(node, a, shape)
        return [_Spec(AvgPool2D, node, {"kernel_size": kernel, "stride": stride, "padding": padding,
                                        "count_include_pad": bool(a.get("count_include_pad", 0))})]

    def _op_LpPool(self, node, a, shape):
        kernel, stride, padding = self._pool(node, a, shape)
        p = a.get("p", 2)
        if p % 2 or any(padding):
            raise OnnxImportError(f"{_where(node)}: p={p}, pads {padding}; dl2's LPPool2D sums x**p, equal to ONNX's "
                                  f"|x|**p only for even p, and has no padding")
        return [_Spec(LPPool2D, node, {"p": p, "kernel_size": kernel, "stride": stride})]

    def _global(self, node, cls, shape, keepdims=True):
        if len(shape) != 3:
            raise OnnxImportError(f"{_where(node)}: global pooling of (N, C, H, W) only, the input is "
                                  f"(N, {', '.join(map(str, shape))})")
        return [_Spec(cls, node, {"keepdims": bool(keepdims)})]

    def _op_GlobalAveragePool(self, node, a, shape):
        return self._global(node, GlobalAvgPool2D, shape)

    def _op_GlobalMaxPool(self, node, a, shape):
        return self._global(node, GlobalMaxPool2D, shape)

    def _reduce(self, node, a, shape, cls):
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self._const(node, 1, "axes").tolist()
        rank = len(shape) + 1
        if axes is None or sorted(int(x) % rank for x in axes) != [2, 3] or rank != 4:
            raise OnnxImportError(f"{_where(node)}: only a reduction over axes (2, 3) of (N, C, H, W) is supported "
                                  f"(global pooling), got axes {axes} of a rank-{rank} input")
        return self._global(node, cls, shape, a.get("keepdims", 1))

    def _op_ReduceMean(self, node, a, shape):
        return self._reduce(node, a, shape, GlobalAvgPool2D)

    def _op_ReduceMax(self, node, a, shape):
        return self._reduce(node, a, shape, GlobalMaxPool2D)

    def _op_Flatten(self, node, a, shape):
        axis = a.get("axis", 1)
        if axis % (len(shape) + 1) != 1:
            raise OnnxImportError(f"{_where(node)}: Flatten with axis={axis}; dl2 flattens (N, ...) to (N, features) "
                                  f"(axis 1)")
        return [] if len(shape) == 1 else [_Spec(Flatten, node)]

    def _reshape(self, node, a, shape):
        out = self._shape(self._output(self.nodes.index(node)), node)
        if len(out) == 1 and out[0] == int(np.prod(shape)):
            return [] if len(shape) == 1 else [_Spec(Flatten, node)]
        if len(out) > len(shape) and out == shape + (1,) * (len(out) - len(shape)):
            return [_Spec(None, node, op="adding unit axes (allowed only to gate channels in squeeze-excitation)",
                          value=out)]
        raise OnnxImportError(f"{_where(node)}: reshaping (N, {', '.join(map(str, shape))}) to "
                              f"(N, {', '.join(map(str, out))}) cannot be expressed in dl2 (only flattening to "
                              f"(N, features))")

    _op_Reshape = _op_Squeeze = _op_Unsqueeze = _reshape

    def _op_BatchNormalization(self, node, a, shape):
        if a.get("training_mode", 0):
            raise OnnxImportError(f"{_where(node)}: training_mode=1 (batch statistics in the graph) is not "
                                  f"supported; export the model in evaluation mode")
        if len(shape) not in (1, 3):
            raise OnnxImportError(f"{_where(node)}: batch norm of (N, {', '.join(map(str, shape))}); dl2 has "
                                  f"BatchNorm1D (N, F) and BatchNorm2D (N, C, H, W)")
        names = ("gamma", "beta", "running_mean", "running_var")
        weights = {n: self._const(node, i + 1, n.replace("gamma", "scale").replace("beta", "bias"))
                   for i, n in enumerate(names)}
        cls = BatchNorm1D if len(shape) == 1 else BatchNorm2D
        args = {"eps": a.get("epsilon", 1e-5), "momentum": _short(1.0 - a.get("momentum", 0.9))}
        return [_Spec(cls, node, args, weights)]

    def _op_LayerNormalization(self, node, a, shape):
        if a.get("axis", -1) % (len(shape) + 1) != 1:
            raise OnnxImportError(f"{_where(node)}: normalising from axis {a.get('axis', -1)}; dl2's LayerNorm "
                                  f"normalises over every axis but the batch (axis 1)")
        scale, bias = self._const(node, 1, "scale"), self._const(node, 2, "bias")
        weights = {"gamma": np.broadcast_to(scale, shape),
                   "beta": np.zeros(shape) if bias is None else np.broadcast_to(bias, shape)}
        return [_Spec(LayerNorm, node, {"eps": a.get("epsilon", 1e-5)}, weights)]

    def _op_InstanceNormalization(self, node, a, shape):
        if len(shape) != 3:
            raise OnnxImportError(f"{_where(node)}: instance norm of (N, C, H, W) only")
        c = shape[0]
        weights = {"gamma": self._const(node, 1, "scale").reshape(c, 1, 1),
                   "beta": self._const(node, 2, "bias").reshape(c, 1, 1)}
        return [_Spec(InstanceNorm2D, node, {"eps": a.get("epsilon", 1e-5), "affine": True}, weights)]

    def _op_GroupNormalization(self, node, a, shape):
        if self.opset < 21:
            raise OnnxImportError(f"{_where(node)}: opset {self.opset} GroupNormalization has per-group scales "
                                  f"(deprecated); dl2 reads the per-channel form of opset 21")
        unit = (shape[0],) + (1,) * (len(shape) - 1)
        weights = {"gamma": self._const(node, 1, "scale").reshape(unit),
                   "beta": self._const(node, 2, "bias").reshape(unit)}
        return [_Spec(GroupNorm, node, {"num_groups": a["num_groups"], "eps": a.get("epsilon", 1e-5)}, weights)]

    def _op_LRN(self, node, a, shape):
        size = a["size"]
        if size % 2 == 0:
            raise OnnxImportError(f"{_where(node)}: even size {size}: ONNX centres even windows differently from "
                                  f"dl2's LocalResponseNorm (and PyTorch's); only odd sizes are supported")
        return [_Spec(LocalResponseNorm, node, {"size": size, "alpha": a.get("alpha", 1e-4),
                                                "beta": a.get("beta", 0.75), "k": a.get("bias", 1.0)})]

    def _op_Dropout(self, node, a, shape):
        ratio = self._const(node, 1, "ratio")
        ratio = float(a.get("ratio", 0.5) if ratio is None else ratio)
        training = self._const(node, 2, "training_mode")
        if training is not None and bool(training):
            raise OnnxImportError(f"{_where(node)}: training_mode=True (dropout in the graph) is not supported")
        return [_Spec(Dropout, node, {"p": ratio})]


# ===================================================================== helpers
def _attrs(node):
    """The node's attributes as Python values; float attributes (stored as float32) as the shortest decimal that
    rounds to them (``1e-05``, not ``9.999999747378752e-06``)."""
    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        out[a.name] = _short(value) if a.type == onnx.AttributeProto.FLOAT else value
    return out


def _short(value):
    """The shortest decimal that rounds to the same float32 as ``value``."""
    return float(str(np.float32(value)))


def _check_kernel(node, a, kernel):
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != tuple(kernel):
        raise OnnxImportError(f"{_where(node)}: kernel_shape {a['kernel_shape']} differs from the weight's "
                              f"{tuple(kernel)}")
    if any(d != 1 for d in a.get("dilations", [1] * len(kernel))):
        raise OnnxImportError(f"{_where(node)}: dilations {a['dilations']} are not supported (dl2 has no dilation)")


def _window(node, a, shape, kernel):
    """``(stride, padding)`` pairs of a 2-D window op from its ``strides``/``pads``/``auto_pad``/``ceil_mode``."""
    stride = tuple(a.get("strides", [1, 1]))
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "VALID"):
        raise OnnxImportError(f"{_where(node)}: auto_pad={auto_pad} is not supported (use explicit pads)")
    pads = [0, 0, 0, 0] if auto_pad == "VALID" else list(a.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise OnnxImportError(f"{_where(node)}: asymmetric pads {pads} (begin != end) are not supported")
    padding = tuple(pads[:2])
    if a.get("ceil_mode", 0):
        for size, k, s, p in zip(shape[1:], kernel, stride, padding):
            if (size + 2 * p - k) % s:
                raise OnnxImportError(f"{_where(node)}: ceil_mode=1 changes the output size here; dl2 windows "
                                      f"round down (ceil_mode 0)")
    return stride, padding


def _fuse(specs):
    """Merge neighbouring specs that together are one dl2 layer."""
    out = []
    for spec in specs:
        prev = out[-1] if out else None
        if spec.op and spec.op.startswith("Add") and prev is not None and prev.cls in (Linear, Conv2D) \
                and not prev.args["bias"] and _is_channel_vector(spec.value):
            prev.args["bias"] = True
            prev.weights["bias"] = _channel_vector(spec.value)
        elif spec.op and spec.op.startswith("Mul") and prev is not None and prev.cls is Dropout \
                and prev.args.get("mode", "inverted") == "inverted" and np.all(spec.value == spec.value.flat[0]) \
                and np.isclose(spec.value.flat[0], 1 - prev.args["p"], rtol=1e-6, atol=0):
            prev.args["mode"] = "textbook"
        elif spec.cls is Flatten and prev is not None and prev.cls in (GlobalAvgPool2D, GlobalMaxPool2D) \
                and prev.args["keepdims"]:
            prev.args["keepdims"] = False
        else:
            out.append(spec)
    return out


def _is_channel_vector(value):
    """True when ``value`` (broadcast to the per-sample shape) varies along the first axis only."""
    return bool(np.all(value == _channel_vector(value).reshape((-1,) + (1,) * (value.ndim - 1))))


def _channel_vector(value):
    return np.array(value.reshape(value.shape[0], -1)[:, 0])


def _gate(node, gate):
    """The Mul-joined block ``x * gate(x)``: Swish (gate = [scale] Sigmoid) or squeeze-and-excitation."""
    if gate[-1].cls is Sigmoid and len(gate) <= 2:
        if len(gate) == 1:
            return _Spec(Swish, node, {"beta": 1.0})
        scale = gate[0]
        if scale.op and scale.op.startswith("Mul") and np.all(scale.value == scale.value.flat[0]):
            return _Spec(Swish, node, {"beta": float(scale.value.flat[0])})
    kinds = [s.cls for s in gate if not (s.op and "unit axes" in s.op)]
    fc = (Linear, Conv2D)
    if len(kinds) == 5 and kinds[0] is GlobalAvgPool2D and kinds[1] in fc and kinds[2] is ReLU \
            and kinds[3] in fc and kinds[4] is Sigmoid:
        first, second = [s for s in gate if s.cls in fc]
        w1, b1 = _fc_weights(first, node)
        w2, b2 = _fc_weights(second, node)
        c, h = w1.shape[1], w1.shape[0]
        if w2.shape != (c, h):
            raise OnnxImportError(f"{_where(node)}: squeeze-excitation weights {w1.shape} and {w2.shape} do not "
                                  f"chain C -> C/r -> C")
        reduction = next((r for r in [c // h] + list(range(1, c + 1)) if r >= 1 and max(1, c // r) == h), None)
        if reduction is None:
            raise OnnxImportError(f"{_where(node)}: squeeze-excitation with {h} hidden units for {c} channels; "
                                  f"dl2's SqueezeExcite has max(1, C // reduction) hidden units")
        # dl2's SqueezeExcite holds two Linear layers, weights in Linear's (in, out) layout
        return _Spec(SqueezeExcite, node, {"reduction": reduction},
                     {"fc1.weight": w1.T, "fc1.bias": b1, "fc2.weight": w2.T, "fc2.bias": b2})
    raise OnnxImportError(f"{_where(node)}: a product x * f(x) is supported only as Swish (f = sigmoid(beta x)) "
                          f"or squeeze-and-excitation (f = sigmoid(fc(relu(fc(mean_hw(x))))))")


def _fc_weights(spec, node):
    """``(W (out, in), b (out,))`` of a Linear or a 1x1 convolution inside a squeeze-excitation gate."""
    w = spec.weights["weight"]
    if spec.cls is Conv2D:
        if w.shape[2:] != (1, 1) or tuple(spec.args["stride"]) != (1, 1) or any(spec.args["padding"]):
            raise OnnxImportError(f"{_where(spec.node)}: a squeeze-excitation convolution must be 1x1")
        w = w.reshape(w.shape[:2])
    else:
        w = w.T
    b = spec.weights.get("bias")
    return w, np.zeros(w.shape[0], w.dtype) if b is None else b
