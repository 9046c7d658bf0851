"""ONNX export and import: dl2 models to onnxruntime and other runtimes, and ONNX models (e.g. from PyTorch)
into dl2.

* :func:`export` -- a built dl2 model to an ``.onnx`` file in evaluation semantics (batch dimension dynamic,
  weights as initializers, node names = dl2 layer paths), checked with ``onnx.checker`` (full check).
* :func:`load` -- an ``.onnx`` file to a dl2 model (a :class:`dl2.Sequential` of layers and the containers
  :class:`dl2.Residual`, :class:`dl2.Concat`, :class:`dl2.SqueezeExcite`, :class:`dl2.AuxHead`) that trains,
  saves with :func:`dl2.save` and passes :func:`dl2.gradcheck`.

Needs the optional ``onnx`` package: ``pip install "dl2[onnx]"``. This package is ``dl2.onnx``; the ``onnx``
imported inside it is always the real ``onnx`` package.
"""
try:
    import onnx as _onnx  # noqa: F401  (the real package: absolute import)
except ImportError as e:
    raise ImportError("dl2.onnx needs the onnx package: pip install \"dl2[onnx]\" (or pip install onnx)") from e

from dl2.onnx._export import DEFAULT_OPSET, export, to_onnx
from dl2.onnx._import import OnnxImportError, SUPPORTED_OPS, from_onnx, load

__all__ = ["export", "load", "to_onnx", "from_onnx", "OnnxImportError", "SUPPORTED_OPS", "DEFAULT_OPSET"]
