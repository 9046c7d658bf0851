"""fastconv: the compiled CPU kernels under dl2 (convolution, fully connected, pooling, batch norm, ReLU, the
tanh and sigmoid gradients, im2col).

Every function takes NCHW float32 or float64 arrays, validates its arguments (raising ``TypeError`` /
``ValueError`` naming the bad one), releases the GIL and runs its loops in parallel with OpenMP.
:mod:`fastconv.reference` holds the same functions in plain NumPy: the specification the tests check against.
"""
import os

# Idle OpenMP threads sleep instead of spinning (unless the user chose otherwise). Kernels are called one after
# another with NumPy work in between; spinning threads would steal a core from that work, and from any other
# process, which on a loaded 2-core machine stalls every parallel region for a scheduler time slice.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from ._checks import output_hw, pair  # noqa: E402
from . import reference  # noqa: E402  (the environment must be set before the kernels load the OpenMP runtime)
from .activation import relu_backward, relu_forward, sigmoid_backward, tanh_backward
from .batchnorm import batchnorm_backward, batchnorm_forward, batchnorm_inference
from .conv import col2im, conv2d_backward, conv2d_forward, conv_algorithm, im2col
from .isa import available_isas, get_isa, measure_fma_peak, set_isa
from .linear import linear_backward, linear_forward
from .pooling import avgpool2d_backward, avgpool2d_forward, maxpool2d_backward, maxpool2d_forward
from .threads import config, get_num_threads, openmp_enabled, set_num_threads, show_config

__all__ = [
    "conv2d_forward", "conv2d_backward", "im2col", "col2im", "linear_forward", "linear_backward",
    "maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_inference", "relu_forward", "relu_backward",
    "tanh_backward", "sigmoid_backward",
    "conv_algorithm", "get_isa", "set_isa", "available_isas", "measure_fma_peak",
    "set_num_threads", "get_num_threads", "openmp_enabled", "show_config", "config", "reference",
    "pair", "output_hw",
]
