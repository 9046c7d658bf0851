"""pytest configuration of the benchmark suite (see bench/README.md).

Every benchmark runs with 2 threads: fastconv.set_num_threads(2) (OpenMP loops; the kernels' own BLAS stays
single-threaded), NumPy's BLAS limited with threadpoolctl, torch.set_num_threads(2). The thread counts actually
in effect, the machine's FMA peak (measured before the first benchmark), the CPU and the library versions are
written into the JSON's machine_info (``--benchmark-json``), where ``bench/compare.py`` reads them.
"""
import os
import platform
import sys
import time

import pytest

#: OpenMP / BLAS environment variables recorded in the JSON.
ENV_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "OMP_PROC_BIND", "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: As given to the process, before fastconv is imported (fastconv sets OMP_WAIT_POLICY=PASSIVE unless set).
ENV_AT_START = {k: os.environ.get(k) for k in ENV_KEYS}

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cases_peak  # noqa: E402
import fcbench  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _bench_threads(pytestconfig):
    """Set the thread counts and measure the FMA peak once, when the first benchmark runs (not merely when this
    conftest is loaded)."""
    pytestconfig._fcbench_threads = fcbench.configure_threads(fcbench.THREADS)
    pytestconfig._fcbench_fma_peak = cases_peak.fma_peak(fcbench.THREADS)
    yield


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def session_info(config):
    import numpy as np

    import fastconv

    torch = fcbench.torch_or_none()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    cfg = fastconv.config()
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": cores,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "fastconv": cfg.get("version"),
        "fastconv_openmp": cfg.get("openmp"),
        "fastconv_isa": fastconv.get_isa() if hasattr(fastconv, "get_isa") else "baseline x86-64",
        "threads": fcbench.thread_report(),
        "threads_at_start": getattr(config, "_fcbench_threads", None),
        "fma_peak": getattr(config, "_fcbench_fma_peak", None),
        "smoke": fcbench.smoke(),
        "budget_seconds": fcbench.BUDGET,
        "env_at_start": ENV_AT_START,
        "env": {k: os.environ.get(k) for k in ENV_KEYS},
        "loadavg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["fastconv_bench"] = session_info(config)
