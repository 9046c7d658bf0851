"""The two base classes of dl2: :class:`Parameter` (an array and its gradient) and :class:`Module`.

A module is a stateful layer with an explicit ``forward`` and ``backward``:

* ``build(input_shape, dtype, rng)`` is called once with the per-sample input shape (no batch axis). It creates
  the parameters and returns the per-sample output shape, so networks infer every size from their input.
* ``forward(x)`` computes the output of a batch and keeps what ``backward`` needs.
* ``backward(dy)`` returns ``dx`` for the last ``forward`` and **adds** the parameter gradients into
  ``param.grad`` (call ``zero_grad()`` between steps). It never modifies ``dy``. Every subclass's ``backward`` is
  checked before it runs: a call before any ``forward`` is a ``RuntimeError``, a ``dy`` of another shape than the
  last output a ``ValueError``.

Attributes that are :class:`Parameter` or :class:`Module` instances are registered automatically, in order,
as in ``torch.nn.Module``; arrays that are state but not trained (running statistics) are registered with
:meth:`Module.register_buffer`. Constructor arguments are recorded automatically so every module can be
rebuilt from :meth:`Module.get_config` (see ``dl2.serialization``).

Inference needs no trainer: ``model.predict(x)`` (evaluation mode, in batches), or ``with model.eval_mode(): ...``.
"""
import contextlib
import functools
import inspect
from collections import OrderedDict

import numpy as np

from .checks import integer, real_array

#: Every Module subclass by its config name (see :func:`class_key`), for rebuilding models from a config.
MODULES = {}


def class_key(cls):
    """The name a module class is stored under in configs and :data:`MODULES`: the bare class name for dl2's own
    classes (``"Linear"``), the qualified name for every other (``"mypackage.layers.Linear"``), so a user's class
    never replaces a dl2 class of the same name when a model is loaded."""
    if cls.__module__ == "dl2" or cls.__module__.startswith("dl2."):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class Parameter:
    """A trainable array ``data`` with its gradient ``grad`` (same shape and dtype).

    ``regularize`` tells optimizers whether weight decay / L1 applies (False for biases and
    normalisation scales and shifts by default).
    """

    def __init__(self, data, regularize=True):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros(self.data.shape, self.data.dtype)   # zero pages: memory is touched on first use
        self.regularize = regularize

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def zero_grad(self):
        self.grad[...] = 0

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}, regularize={self.regularize})"


def _record_init_args(init):
    """Wrap ``__init__`` so the outermost call stores its bound arguments in ``self._init_args``."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        outermost = "_init_args" not in self.__dict__
        if outermost:
            bound = signature.bind(self, *args, **kwargs)
            arguments = dict(bound.arguments)
            arguments.pop("self")
            object.__setattr__(self, "_init_args", arguments)
        init(self, *args, **kwargs)

    wrapper.__signature__ = signature
    wrapper._dl2_wrapped = True
    return wrapper


def _record_forward(forward):
    """Wrap ``forward`` so the module remembers the shape of its last output (for the checks of ``backward``)."""

    @functools.wraps(forward)
    def wrapper(self, x):
        y = forward(self, x)
        object.__setattr__(self, "_last_output_shape", np.shape(y))
        return y

    wrapper._dl2_wrapped = True
    return wrapper


def _check_backward(backward):
    """Wrap ``backward``: ``RuntimeError`` before any ``forward``; ``TypeError`` / ``ValueError`` for a ``dy``
    that is not a real array of the last output's shape (NumPy would otherwise broadcast it silently)."""

    @functools.wraps(backward)
    def wrapper(self, dy):
        name = type(self).__name__
        expected = self.__dict__.get("_last_output_shape")
        if expected is None:
            raise RuntimeError(f"{name}.backward called before forward")
        dy = np.asarray(dy)
        if dy.dtype.kind != "f":
            raise TypeError(f"{name}.backward: dy must be a float array, got dtype {dy.dtype}")
        if dy.shape != expected:
            raise ValueError(f"{name}.backward: dy has shape {dy.shape}, expected {expected} (the shape of the last "
                             f"forward's output)")
        return backward(self, dy)

    wrapper._dl2_wrapped = True
    return wrapper


class Module:
    """Base class of every layer and container. See the module docstring for the contract."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        MODULES[class_key(cls)] = cls
        for name, wrap in (("__init__", _record_init_args), ("forward", _record_forward),
                           ("backward", _check_backward)):
            method = getattr(cls, name)       # also a method inherited from a mixin such as LayerMixin
            if not getattr(method, "_dl2_wrapped", False):
                setattr(cls, name, wrap(method))

    def __init__(self):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        self.training = True
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self.dtype = None

    # ----------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if "_params" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        if name in self._buffers and not isinstance(value, (Parameter, Module)):
            self._buffers[name] = value
            object.__setattr__(self, name, value)
            return
        for registry in (self._params, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """Keep ``array`` as saved, non-trained state (e.g. running mean)."""
        setattr(self, name, array)
        self._buffers[name] = array

    # ----------------------------------------------------------------- building
    def build(self, input_shape, dtype=np.float32, rng=None):
        """Create parameters for per-sample ``input_shape``; return the per-sample output shape."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{type(self).__name__}: dtype must be float32 or float64, got {dtype}")
        rng = rng if rng is not None else np.random.default_rng()
        input_shape = tuple(int(s) for s in input_shape)
        self.dtype = dtype
        self.input_shape = input_shape
        self.output_shape = tuple(self._build(input_shape, dtype, rng))
        self.built = True
        return self.output_shape

    def _build(self, input_shape, dtype, rng):
        """Override: create parameters, return the output shape. Default: shape-preserving, no parameters."""
        return input_shape

    # ----------------------------------------------------------------- computation
    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    # ----------------------------------------------------------------- traversal
    def children(self):
        return list(self._modules.values())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def named_parameters(self, prefix=""):
        for module_name, module in self.named_modules(prefix):
            for name, p in module._params.items():
                yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def num_parameters(self):
        return int(sum(p.size for p in self.parameters()))

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode=True):
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    @contextlib.contextmanager
    def eval_mode(self):
        """Context manager: every submodule in evaluation mode inside the block, previous modes restored after."""
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            yield self
        finally:
            for m, mode in modes:
                m.training = mode

    def predict(self, x, batch_size=256):
        """Outputs ``(N, *output_shape)`` for ``x (N, *input_shape)`` in evaluation mode (no dropout, batch norm on
        its running statistics), ``batch_size`` samples at a time; the previous modes are restored."""
        who = f"{type(self).__name__}.predict"
        batch_size = integer(batch_size, who, "batch_size", 1)
        if not self.built:
            raise RuntimeError(f"{who}: the model is not built")
        x = real_array(x, who, "x")
        if x.ndim == 0 or len(x) == 0:
            if x.ndim == 0:
                raise ValueError(f"{who}: x must be a batch (N, ...), got a scalar")
            return np.zeros((0,) + tuple(self.output_shape), dtype=self.dtype)
        with self.eval_mode():
            return np.concatenate([self.forward(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    # ----------------------------------------------------------------- state
    def state_dict(self):
        """Ordered mapping ``name -> array`` of every parameter and buffer (copies)."""
        state = OrderedDict()
        for module_name, module in self.named_modules():
            for name, value in list(module._params.items()) + list(module._buffers.items()):
                array = value.data if isinstance(value, Parameter) else value
                state[f"{module_name}.{name}" if module_name else name] = np.array(array, copy=True)
        return state

    def load_state_dict(self, state):
        """Copy arrays from ``state`` into this module; shapes, dtypes and names must match exactly."""
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            raise KeyError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
        for key, target in own.items():
            value = np.asarray(state[key])
            if value.shape != target.shape:
                raise ValueError(f"state_dict[{key!r}]: expected shape {target.shape}, got {value.shape}")
            if value.dtype != target.dtype:
                raise ValueError(f"state_dict[{key!r}]: expected dtype {target.dtype}, got {value.dtype}")
        for module_name, module in self.named_modules():
            for name in list(module._params) + list(module._buffers):
                key = f"{module_name}.{name}" if module_name else name
                if name in module._params:
                    module._params[name].data[...] = state[key]
                else:
                    module._buffers[name][...] = state[key]

    def get_config(self):
        """``{"class": name, "args": constructor arguments}``; nested modules become nested configs."""
        return {"class": class_key(type(self)), "args": _to_config(getattr(self, "_init_args", {}))}

    # ----------------------------------------------------------------- display
    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in getattr(self, "_init_args", {}).items()
                         if not isinstance(v, (Module, list, tuple)) or not _contains_module(v))

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


def _contains_module(value):
    if isinstance(value, Module):
        return True
    if isinstance(value, (list, tuple)):
        return any(_contains_module(v) for v in value)
    return False


def _to_config(value):
    if isinstance(value, Module):
        return value.get_config()
    if isinstance(value, dict):
        return {k: _to_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_config(v) for v in value]
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if callable(value):
        raise TypeError(
            f"cannot serialise callable {value!r} in a module config; pass initialisers and activations by name"
        )
    if isinstance(value, np.generic):
        return value.item()
    return value


def module_from_config(config):
    """Rebuild an (unbuilt) module from :meth:`Module.get_config` output."""
    return _from_config(config)


def predict(model, x, batch_size=256):
    """``model.predict(x, batch_size)``: evaluation-mode outputs in batches; see :meth:`Module.predict`."""
    if not isinstance(model, Module):
        raise TypeError(f"predict: expected a dl2 Module, got {type(model).__name__}")
    return model.predict(x, batch_size)


def _is_module_config(value):
    return isinstance(value, dict) and set(value) == {"class", "args"} and isinstance(value["class"], str)


def _from_config(value):
    if _is_module_config(value):
        name = value["class"]
        if name not in MODULES:
            hint = " (import the module that defines it before loading)" if "." in name else ""
            raise ValueError(f"unknown module class {name!r} in config{hint}")
        args = {k: _from_config(v) for k, v in value["args"].items()}
        cls = MODULES[name]
        params = inspect.signature(cls.__init__).parameters
        positional = [args.pop(k) for k, p in params.items()
                      if p.kind == inspect.Parameter.VAR_POSITIONAL and k in args]
        return cls(*(positional[0] if positional else ()), **args)
    if isinstance(value, dict):
        return {k: _from_config(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_config(v) for v in value]
    return value
