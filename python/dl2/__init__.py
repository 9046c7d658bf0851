"""dl2: a small deep-learning layer library for the CPU, on the fastconv kernels.

Layers have an explicit ``forward`` and ``backward`` (see :mod:`dl2.module`); networks are built with
:class:`dl2.Sequential` and trained with :class:`dl2.Trainer`.
"""
from .module import MODULES, Module, Parameter, predict
from .backend import get_backend, use_backend

# --- layers, activations, losses, init, gradcheck (dl2.layers, dl2.losses, dl2.init, dl2.gradcheck) ---
from . import init
from .gradcheck import GradcheckError, gradcheck
from .layers import *  # noqa: F401,F403
from .losses import MSELoss, SoftmaxCrossEntropy

# --- optimizers and data (dl2.optim, dl2.data) ---
from . import data, optim

# --- containers, serialization, trainer (dl2.containers, dl2.serialization, dl2.trainer) ---
from .containers import AuxHead, Concat, Residual, Sequential, auxiliary_loss
from .ema import EMA
from .evaluation import evaluate
from .serialization import from_config, load, load_checkpoint, save, save_checkpoint, to_config
from .trainer import EarlyStopping, Trainer
from . import distributed, models

__version__ = "0.1.0"


def __getattr__(name):
    """``dl2.onnx`` is imported on first use: it needs the optional onnx package."""
    if name == "onnx":
        import importlib
        return importlib.import_module("dl2.onnx")
    raise AttributeError(f"module 'dl2' has no attribute {name!r}")
