"""Build script: the Cython kernels of fastconv, with OpenMP where the compiler supports it.

Packages and metadata live in pyproject.toml; this file only adds what must be computed at build time:
the extension modules and whether ``-fopenmp`` works.
"""
import os
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

KERNELS = ["_threads", "_conv", "_linear", "_pool", "_batchnorm", "_activation"]

OPENMP_PROBE = textwrap.dedent("""
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
""")


def compiler_has_openmp(compiler):
    """True when ``compiler`` can compile and link a program using ``-fopenmp``."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=["-fopenmp"])
        except Exception:  # any compile or link error means: no OpenMP
            return False
    return True


class BuildExtWithOpenMP(build_ext):
    """build_ext that adds ``-fopenmp`` when it works and warns loudly when it does not."""

    def build_extensions(self):
        use_openmp = os.environ.get("FASTCONV_NO_OPENMP") != "1" and compiler_has_openmp(self.compiler)
        if not use_openmp:
            sys.stderr.write(
                "\n*** WARNING: fastconv is being built WITHOUT OpenMP: kernels will run on one core. ***\n"
                "*** Install a compiler with OpenMP support (gcc, or clang + libomp) and rebuild.      ***\n\n"
            )
        for ext in self.extensions:
            ext.extra_compile_args = ["-O3", "-ffp-contract=fast"] + (["-fopenmp"] if use_openmp else [])
            ext.extra_link_args = ["-fopenmp"] if use_openmp else []
        super().build_extensions()


#: C sources compiled into a kernel module beside its .pyx (the float32 convolution engine, with run-time
#: dispatch between its generic, AVX2 and AVX-512 code: no -march flag is ever needed).
C_SOURCES = {"_conv": ["src/fastconv/csrc/fc_conv.c"]}

extensions = [
    Extension(
        f"fastconv.{name}",
        [f"src/fastconv/{name}.pyx"] + C_SOURCES.get(name, []),
        include_dirs=[np.get_include(), "src/fastconv/csrc"],
        depends=["src/fastconv/csrc/fc_conv.h", "src/fastconv/csrc/fc_conv_impl.h"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for name in KERNELS
]

setup(
    package_dir={"": "python", "fastconv": "src/fastconv"},
    packages=find_packages("python") + ["fastconv"],
    ext_modules=cythonize(
        extensions,
        include_path=["src"],
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
        },
    ),
    cmdclass={"build_ext": BuildExtWithOpenMP},
)
