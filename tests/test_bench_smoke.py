"""Smoke tests of the benchmark suite in bench/ (tiny shapes, nothing timed for real).

* every benchmark case gives the same numbers in fastconv, the NumPy reference and PyTorch (when installed);
* the three training steps (dl2, NumPy reference step, PyTorch) agree on losses and updated weights;
* ``pytest bench/`` runs end to end on tiny shapes (needs pytest-benchmark), with and without PyTorch, and
  ``bench/compare.py`` turns its JSON into the report;
* the benchmarks stay out of the normal test run.

PyTorch and pytest-benchmark are optional: the tests that need them skip, saying why.
"""
import configparser
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
SMOKE_ENV = "FASTCONV_BENCH_SMOKE"


def _load(name, filename):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, filename))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


fcbench = _load("fcbench", "fcbench.py")
compare = _load("fastconv_bench_compare", "compare.py")


def _smoke_cases():
    saved = os.environ.get(SMOKE_ENV)
    os.environ[SMOKE_ENV] = "1"
    try:
        return [c for c in fcbench.all_cases() if c.family not in ("train", "sgemm")]
    finally:
        if saved is None:
            del os.environ[SMOKE_ENV]
        else:
            os.environ[SMOKE_ENV] = saved


CASES = _smoke_cases()


def _needs_torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed: no PyTorch comparison")


@pytest.mark.parametrize("case", CASES, ids=[c.group.replace(" ", "_") for c in CASES])
@pytest.mark.parametrize("impl", ["fastconv", "torch"])
def test_kernel_agrees_with_reference(case, impl):
    if impl == "torch":
        _needs_torch()
    errors = fcbench.check_agreement(case, impls=[impl])
    assert impl in errors


@pytest.mark.parametrize("net", ["SimpleConvNet", "DeepConvNet"])
def test_training_steps_agree(net):
    impls = ("fastconv", "reference") + (("torch",) if fcbench.torch_or_none() is not None else ())
    losses = fcbench.check_training_agreement(net, impls=impls)
    first = losses[("fastconv", "train")]
    assert first.shape == (2,) and abs(first[0] - 2.3) < 1.5     # about log(10) from a random start
    if "torch" not in impls:
        pytest.skip("PyTorch is not installed: dl2 was compared with the reference step only")


def test_reference_step_updates_every_parameter():
    step, x, t = fcbench.make_step("SimpleConvNet", "reference", batch=3)
    before = [p.copy() for p in step.params()]
    step(x, t)
    assert all(not (a == b).all() for a, b in zip(before, step.params()))   # every parameter was updated


def _pyproject_testpaths():
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    for line in text.splitlines():
        if line.strip().startswith("testpaths"):
            return line
    return ""


def _run_suite(tmp_path, extra_args, env_updates, hide_torch=False):
    env = dict(os.environ)
    env[SMOKE_ENV] = "1"
    env.update(env_updates)
    if hide_torch:
        blocker = tmp_path / "no_torch" / "torch"
        blocker.mkdir(parents=True)
        (blocker / "__init__.py").write_text(
            'raise ModuleNotFoundError("No module named \'torch\' (hidden by test_bench_smoke)", name="torch")\n')
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "no_torch")] + [p for p in [env.get("PYTHONPATH")] if p])
    cmd = [sys.executable, "-m", "pytest", BENCH, "-q", "-p", "no:cacheprovider", "-rs"] + extra_args
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_suite_runs_and_compare_reports(tmp_path):
    pytest.importorskip("pytest_benchmark", reason="pytest-benchmark is not installed (pip install -e '.[bench]')")
    out = tmp_path / "out.json"
    proc = _run_suite(tmp_path, [f"--benchmark-json={out}"], {"FASTCONV_BENCH_BUDGET": "0.001"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    info = data["machine_info"]["fastconv_bench"]
    assert info["smoke"] and info["threads"]["fastconv_threads"] == fcbench.THREADS
    impls = {b["extra_info"]["impl"] for b in data["benchmarks"]}
    assert {"fastconv", "reference", "numpy"} <= impls
    doc = compare.report(data)
    for kernel in ("conv2d forward", "conv2d fwd+bwd", "maxpool2d forward", "avgpool2d fwd+bwd",
                   "global avgpool forward", "batchnorm fwd+bwd", "training step"):
        assert f"| {kernel} |" in doc
    assert "## Targets:" in doc and "GFLOP/s" in doc and "GB/s" in doc and "SMOKE RUN" in doc
    rows, sgemm = compare.load_rows(data)
    assert sgemm is not None and len(rows) == len(CASES) + 2          # + the two training steps


def test_suite_runs_without_torch(tmp_path):
    pytest.importorskip("pytest_benchmark", reason="pytest-benchmark is not installed (pip install -e '.[bench]')")
    proc = _run_suite(tmp_path, ["--benchmark-disable"], {}, hide_torch=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "PyTorch is not installed" in proc.stdout
    assert " skipped" in proc.stdout and " passed" in proc.stdout


def test_collection_config():
    """``python -m pytest`` (testpaths = tests) never collects bench/; ``pytest bench/`` collects bench_*.py."""
    assert 'testpaths = ["tests"]' in _pyproject_testpaths()
    ini = configparser.ConfigParser()
    ini.read(os.path.join(BENCH, "pytest.ini"))
    assert ini["pytest"]["python_files"].split() == ["bench_*.py"]
    files = os.listdir(BENCH)
    assert not [f for f in files if f.startswith("test_") or f.endswith("_test.py")]
    assert {"bench_conv.py", "bench_pool.py", "bench_batchnorm.py", "bench_train.py"} <= set(files)


def test_compare_formats_a_minimal_json():
    """compare.py on a hand-made JSON: ratios, rates and target verdicts."""
    def bench(impl, median, **info):
        return {"stats": {"median": median}, "extra_info": {
            "family": "conv", "kernel": "conv2d fwd+bwd", "shape": "s", "impl": impl, "flops": 3e9, "bytes": 0,
            "targets": [["torch_ratio", "<=", 0.7], ["sgemm_fraction", ">=", 0.6]], **info}}
    sgemm = {"stats": {"median": 0.1}, "extra_info": {"family": "sgemm", "kernel": "numpy sgemm", "shape": "g",
                                                       "impl": "numpy", "flops": 1e10, "bytes": 0, "targets": []}}
    data = {"benchmarks": [bench("fastconv", 0.05), bench("reference", 1.0), bench("torch", 0.1), sgemm],
            "machine_info": {}}
    doc = compare.report(data)
    row = next(line for line in doc.splitlines() if line.startswith("| conv2d fwd+bwd"))
    assert "50 ms" in row and "1 s" in row and "100 ms" in row
    assert "0.50x" in row and "0.050x" in row and "60 GFLOP/s" in row and "30 GFLOP/s" in row
    assert "fc/PT 0.50x ≤ 0.7x: met" in row and "of SGEMM 60% ≥ 60%: met" in row
    assert "2 met, 0 missed" in doc
    data["benchmarks"][2]["stats"]["median"] = 0.06
    assert "fc/PT 0.83x ≤ 0.7x: MISSED" in compare.report(data)
    data["fastconv_run"] = {"notes": ["a quiet machine"], "rss": None}      # stored by --run
    assert "Run conditions: a quiet machine." in compare.report(data)


def test_rss_section_flags_growth():
    rss = dict(steps=50, batch=100, data_batches=10, data_mib=3.0, seconds_per_step=0.2,
               maxrss_built_kib=100_000, rss_built_kib=100_000, maxrss_step1_kib=150_000, rss_step1_kib=150_000,
               maxrss_step10_kib=160_000, rss_step10_kib=160_000, maxrss_last_kib=161_000, rss_last_kib=161_000)
    assert "no growth: OK" in compare.rss_section(rss)
    rss.update(maxrss_last_kib=400_000, rss_last_kib=400_000)
    assert "GROWS" in compare.rss_section(rss)


def test_compare_usage_text():
    assert "python bench/compare.py --run" in textwrap.dedent(compare.__doc__)
