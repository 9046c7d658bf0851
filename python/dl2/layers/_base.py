"""Helpers shared by the layers: input checking, per-sample shape checks at build time, window geometry."""

import fastconv

from ..checks import real_array


class LayerMixin:
    """Behaviour common to every dl2 layer (mixed in before :class:`dl2.Module`).

    ``needs_input_grad``: containers set it to False on a network's first layer; ``backward`` then only
    accumulates parameter gradients and returns ``None``.
    """

    needs_input_grad = True

    def _input(self, x, check="exact"):
        """``x`` as an array of the layer's dtype (no copy when it already is), its shape checked.

        ``check``: ``"exact"`` (``x.shape[1:] == input_shape``), ``"channels"`` (same rank and same axis 1,
        any spatial size) or ``"any"``.
        """
        name = type(self).__name__
        if not self.built:
            raise RuntimeError(f"{name} is not built: call build(input_shape, dtype) first (Sequential does this)")
        x = real_array(x, name)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        want = self.input_shape
        if check == "exact":
            ok, expected = x.shape[1:] == want, f"(N, {', '.join(map(str, want))})"
        elif check == "channels":
            ok = x.ndim == len(want) + 1 and x.shape[1] == want[0]
            expected = f"(N, {want[0]}{', ...' * (len(want) - 1)})"
        else:
            ok, expected = x.ndim >= 1, "(N, ...)"
        if not ok:
            raise ValueError(f"{name}: input has shape {x.shape}, expected {expected} "
                             f"(built for per-sample shape {want})")
        return x


def expect_rank(layer, input_shape, rank, layout):
    """Raise ``ValueError`` at build time unless the per-sample ``input_shape`` has ``rank`` axes."""
    if len(input_shape) != rank:
        raise ValueError(f"{type(layer).__name__} expects a per-sample input of shape {layout}, "
                         f"got {tuple(input_shape)}")


def expect_size(layer, given, actual, what, input_shape):
    """Raise ``ValueError`` when a constructor size (``in_features=`` etc.) disagrees with the built input."""
    if given is not None and int(given) != actual:
        raise ValueError(f"{type(layer).__name__}: {what}={given} was given but the input has {actual} "
                         f"(per-sample input shape {tuple(input_shape)})")


def window_output_hw(layer, hw, kernel, stride, padding):
    """``(OH, OW)`` of a windowed layer (:func:`fastconv.output_hw`); the error names the layer."""
    return fastconv.output_hw(hw, kernel, stride, padding, what=f"{type(layer).__name__}: kernel")
