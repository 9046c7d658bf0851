"""Smoke tests of the benchmark suite in bench/ (tiny shapes, nothing timed for real).

* every kernel case gives the same numbers in fastconv, the NumPy reference and PyTorch (when installed);
* ``bench/torch_twin.py`` builds, for every zoo model and every dl2 layer class, a PyTorch network with the same
  outputs and gradients, and the zoo's training steps (dl2, PyTorch, NumPy reference) agree;
* the FMA peak, the accuracy measure and the baseline file work;
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

import numpy as np
import pytest

import dl2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
SMOKE_ENV = "FASTCONV_BENCH_SMOKE"

sys.path.insert(0, BENCH)          # the bench modules import each other by name, as under `pytest bench/`
import cases_peak  # noqa: E402
import cases_train  # noqa: E402
import conv_accuracy  # noqa: E402
import fcbench  # noqa: E402


def _load(name, filename):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCH, filename))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


compare = _load("fastconv_bench_compare", "compare.py")


@pytest.fixture
def smoke_env(monkeypatch):
    monkeypatch.setenv(SMOKE_ENV, "1")


def _smoke_cases():
    saved = os.environ.get(SMOKE_ENV)
    os.environ[SMOKE_ENV] = "1"
    try:
        return fcbench.all_cases()
    finally:
        if saved is None:
            del os.environ[SMOKE_ENV]
        else:
            os.environ[SMOKE_ENV] = saved


ALL_CASES = _smoke_cases()
KERNEL_CASES = [c for c in ALL_CASES if c.family not in ("train", "sgemm")]
ZOO = dl2.models.names()


def _needs_torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed: no PyTorch comparison")


# ============================================================================================ kernels
@pytest.mark.parametrize("case", KERNEL_CASES, ids=[c.group.replace(" ", "_") for c in KERNEL_CASES])
@pytest.mark.parametrize("impl", ["fastconv", "torch"])
def test_kernel_agrees_with_reference(case, impl):
    if impl == "torch":
        _needs_torch()
    errors = fcbench.check_agreement(case, impls=[impl])
    assert impl in errors


def test_every_zoo_model_is_a_training_case():
    cases = [c for c in ALL_CASES if c.family == "train"]
    assert sorted(c.params["model"] for c in cases) == ZOO
    assert all(c.params["batch"] == cases_train.SMOKE_BATCH for c in cases)
    assert all(("torch_ratio", "<=", 0.8) in c.targets for c in cases)


def test_batch_sizes_of_the_zoo(monkeypatch):
    monkeypatch.delenv(SMOKE_ENV, raising=False)
    assert cases_train.batch_size("simple_conv_net") == cases_train.batch_size("lenet5") == 100
    assert cases_train.batch_size("resnet") == cases_train.batch_size("vgg") == 128


# ============================================================================================ PyTorch twin
def _no_dropout(model):
    """Dropout off (its masks cannot match PyTorch's); everything else stays in training mode."""
    for m in model.modules():
        if isinstance(m, dl2.Dropout):
            m.eval()
    return model


def _torch_no_dropout(module):
    """The same for a PyTorch twin."""
    import torch
    import torch_twin

    for m in module.modules():
        if isinstance(m, (torch.nn.Dropout, torch_twin.TextbookDropout)):
            m.eval()
    return module


def _dl2_pass(model, x, t):
    loss = dl2.SoftmaxCrossEntropy()
    model.zero_grad()
    y = model.forward(x)
    value = loss(y, t)
    dy = loss.backward()
    value += dl2.auxiliary_loss(model, loss, t)
    model.backward(dy)
    return y, value, [p.grad.copy() for p in model.parameters()]


def _torch_pass(tw, x, t):
    import torch
    import torch.nn.functional as F

    _torch_no_dropout(tw.module)
    tt = torch.from_numpy(t)
    y = tw.module(torch.from_numpy(x))
    value = F.cross_entropy(y, tt)
    for head in tw.aux_heads:
        if head.aux_output is not None:
            value = value + head.weight * F.cross_entropy(head.aux_output, tt)
    value.backward()
    return y.detach().numpy(), float(value.detach()), tw.gradients()


def _assert_twin_matches(model, x, t, rtol=1e-9):
    torch_twin = pytest.importorskip("torch_twin", reason="PyTorch is not installed: no PyTorch twin")
    _no_dropout(model)
    tw = torch_twin.twin(model)
    assert [p for p, _, _ in tw.pairs] == model.parameters()          # every parameter copied, in dl2's order
    np.testing.assert_allclose(tw.parameters()[0], model.parameters()[0].data, rtol=0, atol=0)
    y, value, grads = _dl2_pass(model, x, t)
    ty, tvalue, tgrads = _torch_pass(tw, x, t)
    scale = np.max(np.abs(y))
    np.testing.assert_allclose(ty, y, rtol=rtol, atol=rtol * scale, err_msg="forward output")
    assert tvalue == pytest.approx(value, rel=rtol)
    largest = max(np.max(np.abs(g)) for g in grads)
    for (name, p), g, tg in zip(model.named_parameters(), grads, tgrads):
        assert np.max(np.abs(g)) > 1e-6 * largest, f"{name}: no gradient in dl2 (the test would compare nothing)"
        np.testing.assert_allclose(tg, g, rtol=rtol, atol=rtol * largest, err_msg=f"gradient of {name}")


@pytest.mark.parametrize("name", ZOO)
def test_twin_of_every_zoo_model(name):
    """float64, so that the comparison can be tight: same forward, loss and parameter gradients."""
    model = cases_train.build_model(name, dtype=np.float64)
    x, t = cases_train.batch(3, dtype=np.float64)
    _assert_twin_matches(model, x, t)


def _every_layer_models():
    """Three small float64 networks that use every dl2 layer and container between them (SyncBatchNorm: in
    one process it is batch norm)."""
    a = dl2.Sequential(
        dl2.Conv2D(4, 3, padding=1, bias=False), dl2.BatchNorm2D(), dl2.LeakyReLU(0.1), dl2.MaxPool2D(2),
        dl2.Conv2D(4, 3, padding=1, bias=False), dl2.InstanceNorm2D(affine=True), dl2.Tanh(),
        dl2.AvgPool2D(3, stride=1, padding=1, count_include_pad=False), dl2.GroupNorm(2), dl2.Sigmoid(),
        dl2.Flatten(), dl2.Linear(12, bias=False), dl2.BatchNorm1D(), dl2.Swish(1.5), dl2.Dropout(0.3, mode="textbook"),
        dl2.Linear(8), dl2.Softmax(), dl2.Linear(6), dl2.LayerNorm(), dl2.Swish(), dl2.Linear(5),
        input_shape=(2, 8, 8), dtype=np.float64, seed=1)
    b = dl2.Sequential(
        dl2.Conv2D(4, 3), dl2.Sigmoid(), dl2.LPPool2D(2, 2), dl2.LocalResponseNorm(3),   # LPPool: x > 0
        dl2.Residual([dl2.Conv2D(4, 3, padding=1), dl2.ReLU(), dl2.Conv2D(4, 1), dl2.SqueezeExcite(2)]),
        dl2.Concat([dl2.Conv2D(2, 1)], [dl2.MaxPool2D(3, stride=1, padding=1), dl2.Conv2D(3, 1)]),
        dl2.AuxHead([dl2.GlobalAvgPool2D(), dl2.Linear(5)], weight=0.5),
        dl2.Residual([dl2.Conv2D(6, 3, stride=2, padding=1)], [dl2.Conv2D(6, 1, stride=2)]),
        dl2.GlobalMaxPool2D(keepdims=True), dl2.Flatten(), dl2.Dropout(0.2), dl2.Linear(5),
        input_shape=(2, 9, 9), dtype=np.float64, seed=2)
    c = dl2.Sequential(dl2.Conv2D(3, 3, bias=False), dl2.SyncBatchNorm(), dl2.ReLU(), dl2.GlobalAvgPool2D(keepdims=True), dl2.Flatten(),
                       dl2.Linear(5), input_shape=(2, 6, 6), dtype=np.float64, seed=3)
    return [a, b, c]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_twin_of_every_layer(index):
    model = _every_layer_models()[index]
    rng = np.random.default_rng(index)
    x = rng.standard_normal((4,) + model.input_shape)
    _assert_twin_matches(model, x, rng.integers(0, 5, 4))


def test_twin_covers_every_layer_class():
    torch_twin = pytest.importorskip("torch_twin", reason="PyTorch is not installed: no PyTorch twin")
    classes = {getattr(dl2, name) for name in dl2.layers.__all__ if isinstance(getattr(dl2, name), type)}
    classes |= {dl2.Sequential, dl2.Residual, dl2.Concat, dl2.AuxHead, dl2.SqueezeExcite}
    assert not classes - set(torch_twin.CONVERTERS), "layers without a PyTorch counterpart"
    used = {type(m) for model in _every_layer_models() for m in model.modules()}
    assert not classes - used, "classes the twin tests do not exercise"


def test_twin_rejects_what_it_cannot_build():
    torch_twin = pytest.importorskip("torch_twin", reason="PyTorch is not installed: no PyTorch twin")

    class Doubler(dl2.Module):
        def forward(self, x):
            return 2 * x

    with pytest.raises(TypeError, match="no PyTorch counterpart for Doubler"):
        torch_twin.twin(dl2.Sequential(dl2.Flatten(), Doubler(), input_shape=(3,)))
    with pytest.raises(ValueError, match="not built"):
        torch_twin.twin(dl2.Sequential(dl2.Linear(3)))


# ============================================================================================ training steps
@pytest.mark.parametrize("name", ["googlenet", "resnet", "deep_conv_net"])
def test_torch_step_matches_dl2_step(name):
    """Two SGD steps (auxiliary heads included) from the same weights, Dropout off: same losses and weights."""
    _needs_torch()
    results = []
    for impl in ("fastconv", "torch"):
        step, x, t = cases_train.make_step(name, impl, n=4)
        (_no_dropout if impl == "fastconv" else _torch_no_dropout)(step.model)
        results.append(([step(x, t) for _ in range(2)], [np.array(p) for p in step.params()]))
    (dl2_losses, dl2_params), (torch_losses, torch_params) = results
    np.testing.assert_allclose(torch_losses, dl2_losses, rtol=1e-4)
    assert len(torch_params) == len(dl2_params)
    for i, (p, q) in enumerate(zip(torch_params, dl2_params)):
        np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-4, err_msg=f"{name}: parameter {i} after 2 steps")


REFERENCE_NETS = list(cases_train.BOOK_NETS)


def test_reference_step_runs_on_the_reference_kernels(monkeypatch):
    import fastconv
    from fastconv import reference

    calls = {"fastconv": 0, "reference": 0}
    for name, module in (("fastconv", fastconv), ("reference", reference)):
        def counting(*args, _f=module.conv2d_forward, _name=name, **kwargs):
            calls[_name] += 1
            return _f(*args, **kwargs)
        monkeypatch.setattr(module, "conv2d_forward", counting)
    step, x, t = cases_train.make_step("simple_conv_net", "reference", n=3)
    step(x, t)
    assert calls == {"fastconv": 0, "reference": 1}
    assert dl2.get_backend() is fastconv          # the backend is restored after the step


@pytest.mark.parametrize("name", REFERENCE_NETS)
def test_reference_step_matches_dl2_step(name):
    """Training mode on both sides, Dropout included (both models are built from the same seed)."""
    results = []
    for impl in ("fastconv", "reference"):
        step, x, t = cases_train.make_step(name, impl, n=4)
        results.append(([step(x, t) for _ in range(2)], [np.array(p) for p in step.params()]))
    (dl2_losses, dl2_params), (ref_losses, ref_params) = results
    np.testing.assert_allclose(ref_losses, dl2_losses, rtol=1e-4, atol=1e-5)
    assert len(ref_params) == len(dl2_params)
    for i, (p, q) in enumerate(zip(ref_params, dl2_params)):
        np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-4, err_msg=f"{name}: parameter {i} after 2 steps")


def test_reference_step_updates_every_parameter():
    step, x, t = cases_train.make_step("simple_conv_net", "reference", n=3)
    before = [p.copy() for p in step.params()]
    step(x, t)
    assert all(not (a == b).all() for a, b in zip(before, step.params()))   # every parameter was updated


# ============================================================================================ peak, accuracy
def test_fma_peak(smoke_env):
    peak = cases_peak.fma_peak(1)
    assert peak["gflops"] > 0 and "measure_fma_peak(1)" in peak["source"]


def test_accuracy_measures(smoke_env):
    import cases_conv

    ref = np.array([0.0, 1.0, -10.0])
    bound = 2e-4 * (np.abs(ref) + 1) + 5e-5 * 10
    assert conv_accuracy.float32_ratio(ref + 2 * bound, ref) == pytest.approx(2.0)
    assert conv_accuracy.float64_ratio(ref + 0.5e-9 * (np.abs(ref) + 1), ref) == pytest.approx(0.5)
    row = conv_accuracy.shape_accuracy(cases_conv.shapes()[0])
    assert set(row["float32"]) == set(row["float64"]) == {"y", "dx", "dw"}
    assert max(row["float32"].values()) <= 1 and max(row["float64"].values()) <= 1
    assert max(row["float32"].values()) > 0          # float32 against float64 is never exact


def test_reference64_chunks_the_batch(smoke_env, monkeypatch):
    import cases_conv

    s = cases_conv.shapes()[0]
    x, w, b, dy = (a.astype(np.float64) for a in cases_conv.conv_inputs(s, np.random.default_rng(0)))
    whole = conv_accuracy.reference64(s, x, w, b, dy)
    monkeypatch.setattr(conv_accuracy, "CHUNK_BYTES", 1)           # one image per chunk
    for a, c in zip(whole, conv_accuracy.reference64(s, x, w, b, dy)):
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12)


# ============================================================================================ the suite
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
    assert info["fma_peak"]["gflops"] > 0 and info["fastconv_isa"] in info["fma_peak"]["source"]
    impls = {b["extra_info"]["impl"] for b in data["benchmarks"]}
    assert {"fastconv", "reference", "numpy"} <= impls
    doc = compare.report(data)
    for kernel in ("conv2d forward", "conv2d fwd+bwd", "maxpool2d forward", "avgpool2d fwd+bwd",
                   "global avgpool forward", "batchnorm fwd+bwd"):
        assert f"| {kernel} |" in doc
    for name in ZOO:
        assert f"| {name} | {cases_train.SMOKE_BATCH} |" in doc
    assert "## Convolutions" in doc and "GFLOP/s" in doc and "GB/s" in doc and "FMA peak" in doc
    assert "Not evaluated: a smoke run" in doc and "missed" not in doc and "MISSED" not in doc
    rows, sgemm = compare.load_rows(data)
    assert sgemm is not None and len(rows) == len(ALL_CASES) - 1          # - the SGEMM


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


# ============================================================================================ compare.py
def _bench(impl, median, family="conv", kernel="conv2d fwd+bwd", shape="s", **info):
    return {"stats": {"median": median}, "extra_info": {
        "family": family, "kernel": kernel, "shape": shape, "impl": impl, "flops": 0, "bytes": 0, "targets": [],
        **info}}


def _minimal_json():
    conv = dict(flops=3e9, targets=[["torch_ratio", "<=", 0.8]])
    zoo = dict(family="train", kernel="training step", shape="resnet batch 128", model="resnet", batch=128,
               parameters=272186, targets=[["torch_ratio", "<=", 0.8], ["baseline_ratio", "<=", 1.0]])
    return {"benchmarks": [
        _bench("fastconv", 0.05, **conv), _bench("reference", 1.0, **conv), _bench("torch", 0.1, **conv),
        _bench("fastconv", 0.3, **zoo), _bench("torch", 0.25, **zoo),
        _bench("numpy", 0.1, family="sgemm", kernel="numpy sgemm", shape="g", flops=1e10)],
        "machine_info": {"fastconv_bench": {"fma_peak": {"gflops": 120.0, "source": "test"}}},
        "datetime": "2026-12-01T10:00:00"}


def test_compare_formats_a_minimal_json():
    """compare.py on a hand-made JSON: ratios, rates, share of the peak, baseline and target verdicts."""
    data = _minimal_json()
    baseline = {"date": "2026-12-01", "load_average": "1.00 / 1.00 / 1.00", "models": {
        "resnet": {"batch": 128, "dl2_seconds": 0.4, "torch_seconds": 0.3, "ratio": 4 / 3}}}
    doc = compare.report(data, baseline=baseline)
    row = next(line for line in doc.splitlines() if line.startswith("| conv2d fwd+bwd"))
    assert "50 ms" in row and "1 s" in row and "100 ms" in row and "0.50x" in row
    assert "60 GFLOP/s (50%)" in row and "30 GFLOP/s (25%)" in row and "≤ 0.8x: met" in row
    zoo = next(line for line in doc.splitlines() if line.startswith("| resnet |"))
    assert "| 128 | 272,186 | 300 ms | 250 ms |" in zoo and "1.20x" in zoo and "400 ms | 1.33x" in zoo
    assert "≤ 0.8x: missed by 50%" in zoo and "not slower than before: met" in zoo
    assert "2 met, 1 missed" in doc and "120.0 GFLOP/s" in doc and "100.0 GFLOP/s" in doc
    baseline["models"]["resnet"]["ratio"] = 1.0
    assert "not slower than before: missed by 20%" in compare.report(data, baseline=baseline)
    baseline["models"]["resnet"]["batch"] = 4                    # measured at another batch: not comparable
    assert "not slower than before: not measured" in compare.report(data, baseline=baseline)
    data["fastconv_run"] = {"notes": ["a quiet machine"], "rss": None}      # stored by --run
    assert "Run conditions: a quiet machine." in compare.report(data, baseline=baseline)
    data["machine_info"]["fastconv_bench"]["smoke"] = True
    smoke = compare.report(data, baseline=baseline)
    assert "missed" not in smoke and "Not evaluated" in smoke


def test_compare_accuracy_table():
    good = {"shape": "a", "algorithm": None, "float32": {"y": 0.01, "dx": 0.02, "dw": 0.03},
            "float64": {"y": 0.0, "dx": 0.0, "dw": 0.0}, "torch_float32": None}
    bad = dict(good, shape="b", algorithm="winograd", float32={"y": 0.01, "dx": 1.5, "dw": 0.03})
    text = compare.accuracy_table([good, bad])
    assert "| algorithm |" in text and "PyTorch" not in text
    assert "| a | - | 0.01 | 0.02 | 0.03 | 0 | 0 | 0 | yes |" in text
    assert "| b | winograd |" in text and "**no** (worst 1.5)" in text
    assert "Not measured" in compare.accuracy_table(None)


def test_write_baseline(tmp_path):
    data = _minimal_json()
    data["machine_info"]["fastconv_bench"].update(finished="2026-12-01 10:00:00 UTC", loadavg_at_end=[1.5, 1, 0.5])
    path = tmp_path / "baseline.json"
    src = tmp_path / "run.json"
    src.write_text(json.dumps(data))
    compare.main([str(src), "--write-baseline", str(path), "--note", "kernels of today"])
    baseline = json.loads(path.read_text())
    assert baseline["models"] == {"resnet": {"batch": 128, "dl2_seconds": 0.3, "torch_seconds": 0.25,
                                             "ratio": pytest.approx(1.2)}}
    assert baseline["date"] == "2026-12-01 10:00:00 UTC" and baseline["load_average"] == "1.50 / 1.00 / 0.50"
    assert baseline["note"] == "kernels of today" and not list(tmp_path.glob(".tmp-*"))
    data["machine_info"]["fastconv_bench"]["smoke"] = True
    with pytest.raises(ValueError, match="smoke"):
        compare.baseline_from(data)
    data["benchmarks"] = data["benchmarks"][:3]
    with pytest.raises(ValueError, match="no training-step rows"):
        compare.baseline_from(data)


def test_stored_baseline_covers_the_zoo():
    baseline = compare.load_baseline()
    assert baseline is not None, "bench/baseline_zoo.json is missing"
    # every zoo model but those added after the baseline was measured (on the kernels of commit 1abc5a3)
    assert sorted(set(ZOO) - set(baseline["models"])) == ["cnn"]
    assert set(baseline["models"]) <= set(ZOO)
    assert baseline["date"] and baseline["load_average"]
    for name, entry in baseline["models"].items():
        assert entry["batch"] == (100 if name in cases_train.BOOK_NETS else 128)
        assert entry["ratio"] == pytest.approx(entry["dl2_seconds"] / entry["torch_seconds"])


def test_rss_section_flags_growth():
    rss = dict(model="resnet", steps=50, batch=128, data_batches=10, data_mib=3.0, seconds_per_step=0.2,
               maxrss_built_kib=100_000, rss_built_kib=100_000, maxrss_step1_kib=150_000, rss_step1_kib=150_000,
               maxrss_step10_kib=160_000, rss_step10_kib=160_000, maxrss_last_kib=161_000, rss_last_kib=161_000)
    assert "no growth: OK" in compare.rss_section(rss) and "`resnet`" in compare.rss_section(rss)
    rss.update(maxrss_last_kib=400_000, rss_last_kib=400_000)
    assert "GROWS" in compare.rss_section(rss)


def test_compare_usage_text():
    assert "python bench/compare.py --run" in textwrap.dedent(compare.__doc__)


# --------------------------------------------------------------------- time to accuracy (docs/RESULTS.md)
def test_time_to_accuracy_plot_and_table_from_the_committed_runs(tmp_path, capsys):
    tta = _load("time_to_accuracy", "time_to_accuracy.py")
    runs = [os.path.join(ROOT, "docs", "runs", f"resnet10w2_seed{s}.json") for s in (0, 1, 2)]
    png = tmp_path / "curve.png"
    assert tta.main(["plot", *runs, "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out.strip().splitlines()
    assert len(table) == 2 + len(runs)
    for line, path in zip(table[2:], runs):
        with open(path) as f:
            run = json.load(f)
        assert f"**{100 * run['test']['accuracy']:.2f} %**" in line
        hit = run["targets"]["0.93"]
        assert (f"{hit['wall_s'] / 60:.1f} min (epoch {hit['epoch']})" if hit else "not reached") in line
    bad = tmp_path / "no_history.json"
    bad.write_text(json.dumps({"args": {"model": "cnn", "seed": 0, "epochs": 1}, "history": {"loss": [1.0]}}))
    with pytest.raises(SystemExit, match="--test-each-epoch"):
        tta.main(["plot", str(bad), "--png", str(png)])


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_profile_step_times_every_layer_pass_of_both_networks(name, capsys, monkeypatch):
    pytest.importorskip("torch", reason="PyTorch is not installed: no PyTorch twin to profile against")
    profile_step = _load("profile_step", "profile_step.py")
    n, rows = profile_step.profile(name, rounds=1, n=4)
    model = cases_train.build_model(name)
    first = next(i for i, layer in enumerate(model.layers) if layer.parameters())
    expected = (["zero_grad"] + [f"{i} {type(layer).__name__} fwd" for i, layer in enumerate(model.layers)]
                + ["loss fwd+bwd"] + [f"{i} {type(model.layers[i]).__name__} bwd"
                                      for i in range(len(model.layers) - 1, first - 1, -1)] + ["update", "step"])
    assert n == 4 and [key for key, _, _ in rows] == expected
    assert all(np.isfinite(a) and a > 0 and np.isfinite(b) and b > 0 for _, a, b in rows)   # PyTorch row found
    monkeypatch.setattr(profile_step.fcbench, "configure_threads", lambda: None)   # leave the suite's threads
    profile_step.main([name, "--rounds", "1", "--batch", "4", "--steps-only"])
    out = capsys.readouterr().out
    assert f"{name} batch 4, medians of 1 rounds" in out and "step" in out
