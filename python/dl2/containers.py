"""Containers: :class:`Sequential` chains, and the non-sequential blocks of classic architectures.

* :class:`Sequential` -- layers applied in order; builds from a per-sample ``input_shape``.
* :class:`Residual` -- ``y = body(x) + shortcut(x)`` (ResNet); identity shortcut by default.
* :class:`Concat` -- parallel branches on the same input, concatenated on the channel axis (Inception).
* :class:`AuxHead` -- an auxiliary classifier (GoogLeNet): identity on the trunk, plus ``head(x)`` in training.

Shapes are per sample in ``build`` and batched (``N`` first) in ``forward``/``backward``; images are
``(N, C, H, W)``.

Input gradients: every container has ``needs_input_grad`` (default True). When it is False (the
:class:`dl2.Trainer` sets it on the model it trains: nobody needs the gradient of the data), the container
passes that on to the first layer that has parameters, provided only parameter-free layers come before it,
and its ``backward`` returns None. That layer (e.g. a Conv2D) may then skip computing its ``dx``.
"""
import numpy as np

from .checks import integer, number, real_array
from .module import Module

__all__ = ["Sequential", "Residual", "Concat", "AuxHead", "aux_heads", "auxiliary_loss"]


def _as_module(value, who):
    """A Module from a Module or a list/tuple of Modules (wrapped in a :class:`Sequential`)."""
    if isinstance(value, Module):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, Module) for v in value):
        return Sequential(*value)
    raise TypeError(f"{who}: expected a Module (or a list of Modules), got {type(value).__name__}")


def _has_params(module):
    return any(True for _ in module.named_parameters())


def _set_input_grad(module, flag):
    """Tell ``module`` whether its caller needs the gradient wrt its input."""
    module.needs_input_grad = bool(flag)


def _prefix_error(exc, where):
    """Re-raise ``exc`` (ValueError/TypeError/...) with ``where`` prepended, keeping the type and the cause."""
    message = str(exc.args[0]) if len(exc.args) == 1 else str(exc)
    try:
        new = type(exc)(f"{where}: {message}")
    except Exception:  # exotic exception signature: keep the original
        raise exc
    raise new from exc


_WRAPPED = (ValueError, TypeError, IndexError, KeyError)


class _Container(Module):
    """Common input-gradient plumbing of the containers."""

    def __init__(self):
        super().__init__()
        object.__setattr__(self, "_needs_input_grad", True)

    @property
    def needs_input_grad(self):
        return self._needs_input_grad

    @needs_input_grad.setter
    def needs_input_grad(self, flag):
        object.__setattr__(self, "_needs_input_grad", bool(flag))
        if self.built:
            self._propagate_input_grad()

    def _propagate_input_grad(self):
        """Override: set ``needs_input_grad`` on the children from ``self.needs_input_grad``."""
        for child in self.children():
            _set_input_grad(child, self.needs_input_grad)


# ===================================================================== Sequential
class Sequential(_Container):
    """Layers applied in order: ``Sequential(Conv2D(16, 3, padding=1), ReLU(), Flatten(), Linear(10))``.

    With ``input_shape`` (per sample, e.g. ``(1, 28, 28)``) the network is built at once, each layer getting
    the previous one's output shape; otherwise call ``build(input_shape)`` later. ``seed`` seeds the
    initialisation. ``forward(x)`` takes ``(N, *input_shape)`` and casts ``x`` to the model's dtype.
    Layers are registered as attributes ``"0"``, ``"1"``, ... (parameter names ``"0.weight"``...).
    """

    def __init__(self, *layers, input_shape=None, dtype=np.float32, seed=None):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            raise TypeError("Sequential: pass the layers as separate arguments: Sequential(*layers)")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(layer).__name__}, not a Module")
            setattr(self, str(i), layer)
        object.__setattr__(self, "layers", list(layers))
        self.seed = seed
        self._dtype_arg = np.dtype(dtype)
        self._activation_hook = None
        if input_shape is not None:
            self.build(input_shape, dtype)

    # ----------------------------------------------------------------- list-like access
    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        """A layer, or for a slice a new Sequential sharing those layers (their weights are not re-initialised:
        ``model[:3]`` of a trained model is the trained feature extractor, already built)."""
        if not isinstance(index, slice):
            return self.layers[index]
        layers = self.layers[index]
        part = Sequential(*layers, dtype=self._dtype_arg, seed=self.seed)
        if self.built and layers:
            part.dtype, part.input_shape = self.dtype, tuple(layers[0].input_shape)
            part.output_shape, part.built = tuple(layers[-1].output_shape), True
        return part

    def __iter__(self):
        return iter(self.layers)

    def _layer_name(self, i):
        return f"layer {i} ({type(self.layers[i]).__name__})"

    # ----------------------------------------------------------------- building
    def build(self, input_shape=None, dtype=None, rng=None):
        """Build every layer for per-sample ``input_shape``; returns the per-sample output shape.

        ``dtype`` defaults to the constructor's, ``rng`` to ``np.random.default_rng(seed)``.
        """
        if input_shape is None:
            if self.input_shape is None:
                raise ValueError("Sequential.build: no input_shape given (pass it here or to the constructor)")
            input_shape = self.input_shape
        if np.ndim(input_shape) == 0:
            input_shape = (input_shape,)
        dtype = self._dtype_arg if dtype is None else np.dtype(dtype)
        if rng is None:
            rng = np.random.default_rng(self.seed)
        return super().build(input_shape, dtype, rng)

    def _build(self, input_shape, dtype, rng):
        if not self.layers:
            raise ValueError("Sequential: no layers")
        shape = input_shape
        for i, layer in enumerate(self.layers):
            try:
                shape = tuple(layer.build(shape, dtype, rng))
            except _WRAPPED as e:
                _prefix_error(e, f"Sequential {self._layer_name(i)} with input shape {shape}")
        self.built = True
        self._propagate_input_grad()
        return shape

    def _propagate_input_grad(self):
        first = self._first_param_index()
        for i, layer in enumerate(self.layers):
            _set_input_grad(layer, self.needs_input_grad or i != first)

    def _first_param_index(self):
        """Index of the first layer with parameters (``len`` if none)."""
        for i, layer in enumerate(self.layers):
            if _has_params(layer):
                return i
        return len(self.layers)

    # ----------------------------------------------------------------- computation
    def _check_input(self, x):
        x = real_array(x, "Sequential")
        if not self.built:
            raise RuntimeError("Sequential: call build(input_shape) (or pass input_shape=...) before forward")
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"Sequential: expected input of shape (N, {', '.join(map(str, self.input_shape))}) "
                             f"i.e. per-sample {self.input_shape}, got {x.shape} i.e. per-sample {x.shape[1:]}")
        return x.astype(self.dtype, copy=False)

    def forward(self, x):
        """``(N, *input_shape) -> (N, *output_shape)``."""
        x = self._check_input(x)
        hook = self._activation_hook
        for i, layer in enumerate(self.layers):
            try:
                x = layer.forward(x)
            except _WRAPPED as e:
                _prefix_error(e, f"Sequential {self._layer_name(i)} forward")
            if hook is not None:
                hook(i, layer, x)
        return x

    def backward(self, dy):
        """``(N, *output_shape) -> (N, *input_shape)``, or None when ``needs_input_grad`` is False."""
        stop = 0 if self.needs_input_grad else self._first_param_index()
        for i in range(len(self.layers) - 1, stop - 1, -1):
            try:
                dy = self.layers[i].backward(dy)
            except _WRAPPED as e:
                _prefix_error(e, f"Sequential {self._layer_name(i)} backward")
            if dy is None:
                if i != stop or self.needs_input_grad:
                    raise RuntimeError(f"Sequential: {self._layer_name(i)} returned no input gradient")
                break
        return dy if self.needs_input_grad else None

    def auxiliary_loss(self, loss_fn, t):
        """Sum of the weighted auxiliary-head losses of the last forward; see :func:`auxiliary_loss`."""
        return auxiliary_loss(self, loss_fn, t)

    # ----------------------------------------------------------------- display
    def summary(self, print_fn=print):
        """A table of layers, output shapes and parameter counts (printed with ``print_fn``; returned)."""
        rows = []

        def walk(seq, indent):
            for i, layer in enumerate(seq.layers):
                name = "  " * indent + f"{i}: {type(layer).__name__}"
                shape = "(N, " + ", ".join(map(str, layer.output_shape)) + ")" if layer.built else "?"
                rows.append((name, shape, f"{layer.num_parameters():,}"))
                if isinstance(layer, Sequential):
                    walk(layer, indent + 1)
                else:
                    for cname, child in layer._modules.items():
                        if isinstance(child, Sequential):
                            rows.append(("  " * (indent + 1) + f"{cname}:", "", ""))
                            walk(child, indent + 2)

        walk(self, 0)
        header = ("Layer", "Output shape", "Params")
        widths = [max(len(r[k]) for r in rows + [header]) for k in range(3)]
        line = "-" * (sum(widths) + 6)
        fmt = "{:<%d}   {:<%d}   {:>%d}" % tuple(widths)
        shape_in = "(N, " + ", ".join(map(str, self.input_shape)) + ")" if self.built else "not built"
        total = self.num_parameters()
        buffers = sum(np.size(b) for m in self.modules() for b in m._buffers.values())
        lines = [f"Sequential: input {shape_in}, dtype {self.dtype}", line, fmt.format(*header), line]
        lines += [fmt.format(*r) for r in rows]
        lines += [line, f"Total parameters: {total:,}", f"Non-trained state (buffers): {buffers:,}"]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text


# ===================================================================== Residual
class Residual(_Container):
    """``y = body(x) + shortcut(x)``; ``shortcut=None`` is the identity.

    ``body`` and ``shortcut`` are Modules (a list of layers becomes a :class:`Sequential`). Their output
    shapes must agree: a body that changes the shape (stride 2, more channels) needs a projection shortcut
    such as ``Conv2D(C_out, 1, stride=2)``. Add the final ReLU after the block.
    """

    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = _as_module(body, "Residual body")
        self.shortcut = None if shortcut is None else _as_module(shortcut, "Residual shortcut")

    def _build(self, input_shape, dtype, rng):
        body_shape = tuple(self.body.build(input_shape, dtype, rng))
        short_shape = input_shape if self.shortcut is None else tuple(self.shortcut.build(input_shape, dtype, rng))
        if body_shape != short_shape:
            what = "the identity shortcut" if self.shortcut is None else "the shortcut"
            hint = (" (a body that changes the shape needs a projection shortcut, e.g. "
                    f"Residual(body, shortcut=Conv2D({body_shape[0]}, 1, stride=...)))") if self.shortcut is None else ""
            raise ValueError(f"Residual: body output shape {body_shape} does not match {what} output shape "
                             f"{short_shape} for input shape {input_shape}{hint}")
        self.built = True
        self._propagate_input_grad()
        return body_shape

    def forward(self, x):
        """``(N, *in) -> (N, *out)``."""
        y = self.body.forward(x)
        return y + (x if self.shortcut is None else self.shortcut.forward(x))

    def backward(self, dy):
        dx = self.body.backward(dy)
        ds = dy if self.shortcut is None else self.shortcut.backward(dy)
        if not self.needs_input_grad:
            return None
        return dx + ds


# ===================================================================== Concat
class Concat(_Container):
    """Parallel ``branches`` on the same input, concatenated on the channel axis (``axis=0`` per sample).

    Per-sample output ``(sum C_i, H, W)``; the other dimensions of the branch outputs must agree.
    """

    def __init__(self, *branches, axis=0):
        super().__init__()
        if not branches:
            raise ValueError("Concat: needs at least one branch")
        for i, branch in enumerate(branches):
            setattr(self, f"branch{i}", _as_module(branch, f"Concat branch {i}"))
        object.__setattr__(self, "branches", [getattr(self, f"branch{i}") for i in range(len(branches))])
        self.axis = integer(axis, "Concat", "axis")

    def _build(self, input_shape, dtype, rng):
        shapes = []
        for i, branch in enumerate(self.branches):
            try:
                shapes.append(tuple(branch.build(input_shape, dtype, rng)))
            except _WRAPPED as e:
                _prefix_error(e, f"Concat branch {i} ({type(branch).__name__})")
        ndim = len(shapes[0])
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"Concat: axis {self.axis} out of range for per-sample shape {shapes[0]}")
        ax = self.axis % ndim
        rest = [s[:ax] + s[ax + 1:] for s in shapes]
        if any(len(s) != ndim for s in shapes) or any(r != rest[0] for r in rest):
            raise ValueError(f"Concat: branch output shapes {shapes} differ outside the concatenation axis "
                             f"{ax} (input shape {input_shape})")
        self._sizes = [s[ax] for s in shapes]
        self._axis = ax + 1  # batched axis
        self.built = True
        self._propagate_input_grad()
        return shapes[0][:ax] + (sum(self._sizes),) + shapes[0][ax + 1:]

    def forward(self, x):
        """``(N, *in) -> (N, sum C_i, ...)``."""
        return np.concatenate([b.forward(x) for b in self.branches], axis=self._axis)

    def backward(self, dy):
        bounds = np.cumsum(self._sizes)[:-1]
        dx = None
        for branch, part in zip(self.branches, np.split(dy, bounds, axis=self._axis)):
            d = branch.backward(np.ascontiguousarray(part))
            if self.needs_input_grad:
                dx = d if dx is None else dx + d
        return dx


# ===================================================================== auxiliary classifier
class AuxHead(_Container):
    """An auxiliary classifier (GoogLeNet) attached to the trunk: identity on ``x``.

    In training mode ``forward(x)`` also computes ``aux_output = head(x)``; :func:`auxiliary_loss` (called by
    the trainer after the main loss) evaluates ``weight * loss(aux_output, t)`` and stores the head's output
    gradient; the trunk's ``backward(dy)`` then back-propagates it through ``head`` and returns
    ``dy + head.backward(weight * dloss)``. In eval mode the head is skipped (``aux_output`` is None).
    Without a call to :func:`auxiliary_loss` the block is a plain identity in backward too.
    """

    def __init__(self, head, weight=0.3):
        super().__init__()
        self.head = _as_module(head, "AuxHead head")
        self.weight = number(weight, "AuxHead", "weight", lo=0)
        self.aux_output = None
        self._aux_grad = None

    def _build(self, input_shape, dtype, rng):
        self.head_shape = tuple(self.head.build(input_shape, dtype, rng))
        self.built = True
        self._propagate_input_grad()
        return input_shape

    def _propagate_input_grad(self):
        _set_input_grad(self.head, self.needs_input_grad)

    def forward(self, x):
        """Identity ``(N, *in) -> (N, *in)``; sets ``aux_output`` ``(N, *head_out)`` in training mode."""
        self._aux_grad = None
        self.aux_output = self.head.forward(x) if self.training else None
        return x

    def set_aux_grad(self, d_aux):
        """Gradient of the total loss wrt ``aux_output`` (already multiplied by ``weight``)."""
        if self.aux_output is None:
            raise RuntimeError("AuxHead: no auxiliary output to differentiate (eval mode, or no forward)")
        self._aux_grad = d_aux

    def backward(self, dy):
        if self._aux_grad is None:
            return dy if self.needs_input_grad else None
        dh = self.head.backward(self._aux_grad)
        self._aux_grad = None
        if not self.needs_input_grad:
            return None
        return dy + dh


def aux_heads(model):
    """Every :class:`AuxHead` inside ``model`` (including ``model`` itself), in registration order."""
    return [m for m in model.modules() if isinstance(m, AuxHead)]


def auxiliary_loss(model, loss_fn, t):
    """``sum_k weight_k * loss_fn(aux_output_k, t)`` over the aux heads active in the last forward (a float).

    For each head it runs ``loss_fn.forward`` then ``loss_fn.backward`` at once and stores
    ``weight_k * dloss`` in the head, so a following ``model.backward(dy_main)`` includes the auxiliary
    gradients. ``loss_fn`` is a dl2 loss (``forward(y, t) -> float``, ``backward() -> dy``); as it keeps
    state, finish the main loss's forward/backward before or after this call, not around it.
    Returns 0.0 when there is no active head (eval mode, or no AuxHead).
    """
    total = 0.0
    for head in aux_heads(model):
        if head.aux_output is None or head.weight == 0:
            continue
        value = float(loss_fn.forward(head.aux_output, t))
        grad = np.asarray(loss_fn.backward())
        head.set_aux_grad((grad * head.weight).astype(head.aux_output.dtype, copy=False))
        total += head.weight * value
    return total
