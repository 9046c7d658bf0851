"""Summarise a pytest-benchmark run of bench/ as one page: fastconv vs the NumPy reference vs PyTorch.

Usage (from the repository root)::

    python bench/compare.py --run                   # run everything, write docs/PERFORMANCE.md (the ONE command)
    python bench/compare.py --run --smoke           # the same pipeline on tiny shapes; prints, writes nothing
    pytest bench/ --benchmark-json=out.json         # or: run the benchmarks yourself ...
    python bench/compare.py out.json [--rss]        # ... and print the page (--rss: also measure memory)
    python bench/compare.py .benchmarks/fastconv-latest.json --output docs/PERFORMANCE.md
                                                    # render the last --run again (it stores RSS, accuracy, notes)
    python bench/compare.py out.json --write-baseline   # store its zoo table as bench/baseline_zoo.json

The page has a convolution table (times, ratio to PyTorch, effective GFLOP/s and their share of the machine's
FMA peak), a table of the pooling and batch-norm kernels, the zoo's training steps (dl2 vs the same network in
PyTorch, and the ratio stored in ``bench/baseline_zoo.json``), the error of every convolution against a float64
reference, each target with "met" or "missed by X %", and the peak RSS of a training run (``--rss-probe``, in a
fresh process). ``--run`` also records the machine, the library versions and the BLAS kernels in use.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_DOC = os.path.join(ROOT, "docs", "PERFORMANCE.md")
DEFAULT_JSON = os.path.join(ROOT, ".benchmarks", "fastconv-latest.json")
BASELINE = os.path.join(HERE, "baseline_zoo.json")
#: Environment variables that change which OpenBLAS kernel runs; removed for the benchmark subprocesses.
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
RSS_MODEL, RSS_STEPS = "resnet", 60
#: Table order of the kernel families (within a family: the run's order).
FAMILY_ORDER = ("conv", "maxpool", "avgpool", "batchnorm", "train")


# ============================================================================================ reading
def load_rows(data):
    """``[(kernel, shape, {impl: bench})]`` in family order, plus the SGEMM benchmark (or None)."""
    rows, index, sgemm = [], {}, None
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        if "kernel" not in info:
            continue
        if info.get("family") == "sgemm":
            sgemm = bench
            continue
        key = (info["kernel"], info["shape"])
        if key not in index:
            index[key] = len(rows)
            rows.append((info["kernel"], info["shape"], {}))
        rows[index[key]][2][info["impl"]] = bench
    order = {family: i for i, family in enumerate(FAMILY_ORDER)}
    rows.sort(key=lambda row: order.get(family(row), len(order)))
    return rows, sgemm


def extra(impls):
    """The case's ``extra_info`` (the same for every implementation of a row)."""
    return next(iter(impls.values()))["extra_info"]


def family(row):
    return extra(row[2]).get("family")


def median(bench):
    return None if bench is None else bench["stats"]["median"]


def medians(impls):
    """``(fastconv, reference, PyTorch)`` medians of a row (None where not measured)."""
    return tuple(median(impls.get(k)) for k in ("fastconv", "reference", "torch"))


def ratio(a, b):
    return a / b if a and b else None


def rate(bench):
    """``(value, unit)``: GFLOP/s when the case counts flops, GB/s when it counts bytes."""
    if bench is None:
        return None, ""
    extra, t = bench["extra_info"], median(bench)
    if extra.get("flops"):
        return extra["flops"] / t / 1e9, "GFLOP/s"
    if extra.get("bytes"):
        return extra["bytes"] / t / 1e9, "GB/s"
    return None, ""


def fma_peak(data):
    """The ``fma_peak`` dict the benchmark session measured (``cases_peak.fma_peak``), or None."""
    return (data.get("machine_info", {}).get("fastconv_bench") or {}).get("fma_peak")


def is_smoke(data):
    return bool((data.get("machine_info", {}).get("fastconv_bench") or {}).get("smoke"))


def load_baseline(path=BASELINE):
    """The stored zoo table (``--write-baseline``), or None when there is none."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


# ============================================================================================ formatting
def fmt_time(seconds):
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_ratio(value):
    return "-" if value is None else f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def fmt_rate(value, unit):
    return "-" if value is None else f"{value:.3g} {unit}"


# ============================================================================================ targets
def metric_value(metric, impls, baseline):
    """The measured value of a target metric for one row, or None when it cannot be computed."""
    fc, _, pt = medians(impls)
    if metric == "torch_ratio":
        return ratio(fc, pt)
    if metric == "baseline_ratio":
        before = baseline_entry(impls, baseline)
        now = ratio(fc, pt)
        return now / before["ratio"] if now and before else None
    raise ValueError(f"unknown target metric {metric!r}")


def baseline_entry(impls, baseline):
    """The baseline's entry for a zoo row, when it was measured at the same batch size."""
    case = extra(impls)
    entry = ((baseline or {}).get("models") or {}).get(case.get("model"))
    return entry if entry and entry.get("batch") == case.get("batch") and entry.get("ratio") else None


def verdict(value, target):
    """``"met"`` or ``"missed by X %"`` (how far the value is above the target, relative to it)."""
    return "met" if value <= target else f"missed by {value / target - 1:.0%}"


def evaluate_targets(impls, baseline, smoke):
    """``[(text, met)]`` for each target ``(metric, "<=", value)`` of the row; ``met`` is None when not evaluated
    (not measured, or a smoke run, whose timings mean nothing)."""
    out = []
    for metric, _, target in extra(impls).get("targets", []):
        goal = "not slower than before" if metric == "baseline_ratio" else f"≤ {target:g}x"
        value = metric_value(metric, impls, baseline)
        if smoke:
            out.append((goal, None))
        elif value is None:
            out.append((f"{goal}: not measured", None))
        else:
            out.append((f"{goal}: {verdict(value, target)}", value <= target))
    return out


# ============================================================================================ tables
def _table(head, aligns, rows):
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "|".join(aligns) + "|"]
                     + ["| " + " | ".join(cells) + " |" for cells in rows])


def conv_table(rows, peak, baseline, smoke):
    """Convolutions: times, ratio to PyTorch, target, GFLOP/s and the share of the FMA peak."""
    gflops = (peak or {}).get("gflops")
    show_algorithm = any(extra(impls).get("algorithm") for _, _, impls in rows)

    def with_peak(bench):
        value, unit = rate(bench)
        share = f" ({value / gflops:.0%})" if value and gflops else ""
        return fmt_rate(value, unit) + share

    head = (["kernel", "shape"] + (["algorithm"] if show_algorithm else [])
            + ["fastconv", "PyTorch", "reference", "fc/PT", "target", "fastconv GFLOP/s (of peak)",
               "PyTorch GFLOP/s (of peak)"])
    aligns = ["---"] * (3 if show_algorithm else 2) + ["---:"] * 4 + ["---"] + ["---:"] * 2
    cells, verdicts = [], []
    for kernel, shape, impls in rows:
        fc, ref, pt = medians(impls)
        targets = evaluate_targets(impls, baseline, smoke)
        verdicts += [(kernel, shape, text, met) for text, met in targets]
        cells.append([kernel, shape] + ([extra(impls).get("algorithm") or "-"] if show_algorithm else [])
                     + [fmt_time(fc), fmt_time(pt), fmt_time(ref), fmt_ratio(ratio(fc, pt)),
                        "; ".join(t for t, _ in targets), with_peak(impls.get("fastconv")),
                        with_peak(impls.get("torch"))])
    return _table(head, aligns, cells), verdicts


def kernel_table(rows, baseline, smoke):
    """Pooling and batch norm: times, ratios, GB/s, targets."""
    head = ["kernel", "shape", "fastconv", "reference", "PyTorch", "fc/PT", "fc/ref", "fastconv rate",
            "PyTorch rate", "target"]
    cells, verdicts = [], []
    for kernel, shape, impls in rows:
        fc, ref, pt = medians(impls)
        targets = evaluate_targets(impls, baseline, smoke)
        verdicts += [(kernel, shape, text, met) for text, met in targets]
        cells.append([kernel, shape, fmt_time(fc), fmt_time(ref), fmt_time(pt), fmt_ratio(ratio(fc, pt)),
                      fmt_ratio(ratio(fc, ref)), fmt_rate(*rate(impls.get("fastconv"))),
                      fmt_rate(*rate(impls.get("torch"))), "; ".join(t for t, _ in targets)])
    return _table(head, ["---"] * 2 + ["---:"] * 7 + ["---"], cells), verdicts


def zoo_table(rows, baseline, smoke):
    """Training steps: dl2, PyTorch, reference; dl2/PyTorch now and before (``bench/baseline_zoo.json``)."""
    head = ["model", "batch", "parameters", "dl2", "PyTorch", "reference", "dl2/PT", "before: dl2", "before: dl2/PT",
            "targets"]
    cells, verdicts = [], []
    for kernel, shape, impls in rows:
        case = extra(impls)
        fc, ref, pt = medians(impls)
        before = baseline_entry(impls, baseline) or {}
        targets = evaluate_targets(impls, baseline, smoke)
        verdicts += [(kernel, shape, text, met) for text, met in targets]
        cells.append([str(case.get("model")), str(case.get("batch")), f"{case.get('parameters', 0):,}",
                      fmt_time(fc), fmt_time(pt), fmt_time(ref), fmt_ratio(ratio(fc, pt)),
                      fmt_time(before.get("dl2_seconds")), fmt_ratio(before.get("ratio")),
                      "; ".join(t for t, _ in targets)])
    return _table(head, ["---"] + ["---:"] * 8 + ["---"], cells), verdicts


def accuracy_table(accuracy):
    """Error ratios of every convolution (``conv_accuracy.py``); every value must be <= 1."""
    if not accuracy:
        return "Not measured (run `python bench/compare.py --run`)."
    show_algorithm = any(row.get("algorithm") for row in accuracy)
    has_torch = any(row.get("torch_float32") for row in accuracy)
    outputs = ("y", "dx", "dw")
    head = (["shape"] + (["algorithm"] if show_algorithm else []) + [f"float32 {o}" for o in outputs]
            + [f"float64 {o}" for o in outputs] + ([f"PyTorch float32 {o}" for o in outputs] if has_torch else [])
            + ["fastconv within bounds"])
    cells = []
    for row in accuracy:
        ours = [row["float32"][o] for o in outputs] + [row["float64"][o] for o in outputs]
        theirs = [(row.get("torch_float32") or {}).get(o) for o in outputs] if has_torch else []
        cells.append([row["shape"]] + ([row.get("algorithm") or "-"] if show_algorithm else [])
                     + [f"{v:.3g}" if v is not None else "-" for v in ours + theirs]
                     + ["yes" if max(ours) <= 1 else f"**no** (worst {max(ours):.3g})"])
    return _table(head, ["---"] * (2 if show_algorithm else 1) + ["---:"] * (len(head) - 2 - show_algorithm)
                  + ["---"], cells)


def machine_section(data):
    mi = data.get("machine_info", {})
    fb = mi.get("fastconv_bench", {})
    lines = []
    cpu = fb.get("cpu_model") or (mi.get("cpu") or {}).get("brand_raw") or mi.get("processor")
    lines.append(f"- CPU: {cpu}; {fb.get('logical_cpus')} logical CPUs, {fb.get('usable_cpus')} usable by this "
                 f"process; {mi.get('system', '')} {mi.get('release', '')}")
    lines.append(f"- Python {fb.get('python') or mi.get('python_version')}, numpy {fb.get('numpy')}, "
                 f"PyTorch {fb.get('torch') or 'not installed'}, fastconv {fb.get('fastconv')} "
                 f"(OpenMP {'on' if fb.get('fastconv_openmp') else 'OFF'}, convolutions on the "
                 f"{fb.get('fastconv_isa')} instruction set)")
    commit = data.get("commit_info") or {}
    if commit.get("id"):
        lines.append(f"- git commit {commit['id'][:12]}{' (with uncommitted changes)' if commit.get('dirty') else ''}"
                     f" on branch {commit.get('branch')}")
    threads = fb.get("threads") or {}
    lines.append(f"- threads: fastconv {threads.get('fastconv_threads')}, PyTorch {threads.get('torch_threads')}")
    for lib in threads.get("libraries", []):
        arch = f", {lib['architecture']} kernel" if lib.get("architecture") else ""
        version = f" {lib['version']}" if lib.get("version") else ""
        lines.append(f"  - {lib.get('role')}: {lib.get('internal_api')}{version}{arch}, "
                     f"{lib.get('num_threads')} thread(s) (`{os.path.basename(lib.get('filepath') or '')}`)")
    env = {k: v for k, v in (fb.get("env") or {}).items() if v is not None}
    before = fb.get("env_at_start")
    if before is not None:
        given = {k: v for k, v in before.items() if v is not None}
        added = {k: v for k, v in env.items() if k not in given}
        lines.append(f"- environment given to the benchmark process: {given or 'none of the OpenMP/BLAS variables'}"
                     + (f"; set by fastconv at import: {added}" if added else ""))
    else:
        lines.append(f"- environment of the benchmark process: {env or 'none of the OpenMP/BLAS variables set'}")
    kernel_blas = [lib for lib in threads.get("libraries", []) if lib.get("role") == "fastconv kernels' BLAS"]
    if any((lib.get("num_threads") or 1) > 1 for lib in kernel_blas):
        lines.append("- **WARNING: the fastconv kernels' BLAS ran with more than 1 thread (oversubscription: "
                     "convolution timings are not representative)**")
    peak = fb.get("fma_peak") or {}
    lines.append(f"- FMA peak: **{peak['gflops']:.1f} GFLOP/s** float32 ({peak.get('source')})" if peak.get("gflops")
                 else f"- FMA peak: not measured ({peak.get('source', 'no record')})")
    if fb.get("smoke"):
        lines.append("- **Smoke run (tiny shapes): the timings mean nothing and no target is evaluated**")
    return "\n".join(lines)


def rss_section(rss):
    if not rss:
        return "Not measured (run `python bench/compare.py --run`, or add `--rss`)."
    mib = 1 / 1024
    growth = rss["rss_last_kib"] - rss["rss_step10_kib"]
    ok = growth <= max(16 * 1024, 0.05 * rss["rss_step10_kib"])
    return "\n".join([
        f"`{rss['model']}` (dl2, float32, batch {rss['batch']}, SGD) trained for {rss['steps']} steps on random data "
        f"in a fresh process ({rss['data_batches']} distinct random batches, {rss['data_mib']:.1f} MiB, cycled; "
        f"a real MNIST epoch would add the dataset's 180 MiB). {rss['seconds_per_step'] * 1e3:.0f}"
        f" ms per step on average.",
        "",
        "| point | peak RSS (`ru_maxrss`) | current RSS (`/proc/self/statm`) |",
        "|---|---:|---:|",
        f"| after imports and building the model | {rss['maxrss_built_kib'] * mib:.1f} MiB | "
        f"{rss['rss_built_kib'] * mib:.1f} MiB |",
        f"| after step 1 | {rss['maxrss_step1_kib'] * mib:.1f} MiB | {rss['rss_step1_kib'] * mib:.1f} MiB |",
        f"| after step 10 | {rss['maxrss_step10_kib'] * mib:.1f} MiB | {rss['rss_step10_kib'] * mib:.1f} MiB |",
        f"| after step {rss['steps']} | {rss['maxrss_last_kib'] * mib:.1f} MiB | {rss['rss_last_kib'] * mib:.1f} MiB |",
        "",
        f"Growth of the current RSS from step 10 to step {rss['steps']}: {growth * mib:+.1f} MiB "
        f"({'no growth: OK' if ok else 'GROWS: possible leak'}; tolerance max(16 MiB, 5 %)). "
        f"Peak RSS of the run: **{rss['maxrss_last_kib'] * mib:.1f} MiB**.",
    ])


def _how_it_is_measured(data, sgemm, baseline):
    g = rate(sgemm)[0]
    budget = (data.get("machine_info", {}).get("fastconv_bench") or {}).get("budget_seconds")
    peak = (fma_peak(data) or {}).get("gflops")
    when = "not stored"
    if baseline:
        when = f"measured on {baseline.get('date')} at load average {baseline.get('load_average')}"
        when += f" ({baseline['note']})" if baseline.get("note") else ""
    return [
        "## How it is measured",
        "",
        "- Every kernel and shape is timed for up to three implementations in the same pytest-benchmark session: "
        "**fastconv** (the compiled kernels; for the training steps: dl2 on fastconv), **reference** "
        "(`fastconv.reference`, plain NumPy) and **PyTorch** CPU (skipped when not installed). float32 throughout; "
        "the same random inputs for all three.",
        "- **2 threads for all three**: `fastconv.set_num_threads(2)` (OpenMP loops), NumPy's BLAS limited to 2 "
        "threads with threadpoolctl (what the reference's matmuls use), `torch.set_num_threads(2)`.",
        "- Times are the **median** over rounds (`benchmark.pedantic`): one untimed warm-up call estimates the "
        "time `t`; calls under 2 ms are repeated within a round; rounds = budget / t (`FASTCONV_BENCH_BUDGET`"
        + (f", {budget:g} s in this run" if budget else "") + "), clamped to [3, 200]. Ratios are ratios of "
        "medians of the same run.",
        "- PyTorch forward-only calls run under `torch.no_grad()`; fwd+bwd calls use autograd with "
        "`requires_grad` on every input (conv: x, w, b so dx, dw, db are all computed, like "
        "`fastconv.conv2d_backward`; batch norm: x, gamma, beta), gradients reset to None before each call. "
        "Max pool forward in PyTorch uses `return_indices=True` (fastconv always returns the indices its "
        "backward needs); global average pooling is `adaptive_avg_pool2d(x, 1)` in PyTorch and a whole-plane "
        "`avgpool2d` in fastconv and the reference; batch norm is training mode (batch statistics). fwd+bwd rows "
        "time the forward *and* the backward call.",
        "- OpenMP: fastconv sets `OMP_WAIT_POLICY=PASSIVE` when it is imported (unless already set): idle OpenMP "
        "threads sleep instead of spinning. PyTorch uses the same libgomp in this process, so it runs with the "
        "same policy.",
        "- **GFLOP/s** (convolutions): the direct-convolution count, forward `2·N·K·C·kh·kw·OH·OW`, fwd+bwd 3x "
        "that, divided by the time; an algorithm that does fewer multiplications (Winograd, FFT) can exceed the "
        "FMA peak by this count. **FMA peak**: "
        + (f"**{peak:.1f} GFLOP/s**, " if peak else "") + "measured before the first benchmark by "
        "`fastconv.measure_fma_peak` (see Machine). **GB/s** (pooling, batch norm): compulsory bytes, "
        "each array counted once (float32 4 B, int64 max-pool indices 8 B).",
        "- **Training steps**: every model of `dl2.models.REGISTRY`, built by `dl2.models.get(name, (1, 28, 28), "
        "10, seed=0)` (the small variants of the classic architectures), float32, batch 100 for the book's "
        "networks (mlp, simple_conv_net, double_conv_net, deep_conv_net, lenet5) and 128 for the others, random "
        "images and labels, softmax cross-entropy (plus the weighted auxiliary losses of GoogLeNet), SGD lr 0.01. "
        "PyTorch runs the same network built by `bench/torch_twin.py` with the same initial weights; the "
        "reference is the same dl2 step with every kernel from `fastconv.reference` (`dl2.use_backend(\"reference\")`), for the book's networks. None of them computes "
        "the gradient of the images. *Before* is `bench/baseline_zoo.json`, " + when + "; \"not slower than "
        "before\" compares the same-run ratio dl2/PyTorch, which cancels most of a machine's load.",
        f"- SGEMM: NumPy float32 2048x2048 matmul with 2 threads, in the same session: **{g:.1f} GFLOP/s**."
        if g else "- SGEMM: not measured.",
        "- **Accuracy**: for every convolution shape, fastconv's `y`, `dx` and `dw` in float32 and in float64 "
        "against a float64 `fastconv.reference` computation on the same float32-rounded inputs. Each value is "
        "the largest elementwise ratio of the error to its bound, `2e-4·(|ref| + 1) + 5e-5·max|ref|` for float32 "
        "and `1e-9·(|ref| + 1)` for float64: at most 1 passes. PyTorch's float32 errors by the same measure are "
        "shown beside them.",
        "",
    ]


def _targets_section(verdicts, smoke):
    met = [v for v in verdicts if v[3]]
    missed = [v for v in verdicts if v[3] is False]
    if smoke:
        return ["## Targets", "", "Not evaluated: a smoke run's timings mean nothing.", ""]
    unknown = [v for v in verdicts if v[3] is None]
    out = [f"## Targets: {len(met)} met, {len(missed)} missed" + (f", {len(unknown)} not measured" if unknown
                                                                   else ""), ""]
    for title, group in (("Missed", missed), ("Not measured", unknown), ("Met", met)):
        if group:
            out += [f"{title}:", ""] + [f"- {k} {s}: {t}" for k, s, t, _ in group] + [""]
    return out


def report(data, rss=None, run_notes=None, accuracy=None, baseline=None):
    """The whole Markdown document (``docs/PERFORMANCE.md``).

    ``rss``, ``run_notes`` and ``accuracy`` default to what ``--run`` stored in the JSON (key ``fastconv_run``),
    so ``python bench/compare.py .benchmarks/fastconv-latest.json`` renders the same document again;
    ``baseline`` defaults to ``bench/baseline_zoo.json``.
    """
    stored = data.get("fastconv_run") or {}
    rss = rss if rss is not None else stored.get("rss")
    run_notes = run_notes if run_notes is not None else stored.get("notes")
    accuracy = accuracy if accuracy is not None else stored.get("accuracy")
    baseline = baseline if baseline is not None else load_baseline()
    smoke = is_smoke(data)
    rows, sgemm = load_rows(data)
    conv = [r for r in rows if family(r) == "conv"]
    zoo = [r for r in rows if family(r) == "train"]
    kernels = [r for r in rows if family(r) not in ("conv", "train")]
    conv_tab, conv_verdicts = conv_table(conv, fma_peak(data), baseline, smoke)
    kernel_tab, kernel_verdicts = kernel_table(kernels, baseline, smoke)
    zoo_tab, zoo_verdicts = zoo_table(zoo, baseline, smoke)
    fb = data.get("machine_info", {}).get("fastconv_bench", {})
    date = fb.get("finished") or data.get("datetime", "?")
    out = [
        "# fastconv performance",
        "",
        "<!-- Generated by `python bench/compare.py --run`; do not edit by hand, re-run the command. -->",
        "",
        f"**One run** of the benchmark suite (`bench/`), finished {date}. Timings on a shared machine are noisy: "
        "treat differences under ~20 % as noise, and re-run (`python bench/compare.py --run`) before drawing "
        "conclusions.",
        "",
    ]
    if run_notes:
        out += ["Run conditions: " + "; ".join(run_notes) + ".", ""]
    out += _how_it_is_measured(data, sgemm, baseline)
    out += ["## Machine", "", machine_section(data), ""]
    out += ["## Convolutions", "",
            "Median times; ratios below 1 mean fastconv is faster. *fc* = fastconv, *PT* = PyTorch. The share of "
            "the FMA peak is in parentheses.", "", conv_tab, ""]
    out += ["## Pooling and batch norm", "", kernel_tab, ""]
    out += ["## Training steps of the model zoo", "",
            "One SGD step (forward, loss, backward, update); *dl2/PT* below 1 means dl2 is faster.", "", zoo_tab, ""]
    out += ["## Accuracy of the convolutions", "", accuracy_table(accuracy), ""]
    out += _targets_section(conv_verdicts + kernel_verdicts + zoo_verdicts, smoke)
    out += ["## Memory of a training run", "", rss_section(rss), ""]
    analysis = os.path.join(HERE, "ANALYSIS.md")
    if os.path.exists(analysis):              # the hand-written explanation of the misses
        with open(analysis) as f:
            out += [f.read()]
    return "\n".join(out)


# ============================================================================================ probes
def _current_rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _maxrss_kib():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r      # bytes on macOS, KiB on Linux


def rss_probe(steps, model=RSS_MODEL):
    """Train zoo ``model`` (dl2, its benchmark batch) for ``steps`` steps in this process; return the RSS
    measurements (dict)."""
    sys.path.insert(0, HERE)
    import cases_train
    import fcbench

    fcbench.configure_threads(fcbench.THREADS, torch=False)     # PyTorch not imported: not in the RSS
    batch, n_batches = cases_train.batch_size(model), 10
    step = cases_train.Dl2Step(cases_train.build_model(model))
    x, t = cases_train.batch(n_batches * batch, seed=1)
    out = {"model": model, "steps": steps, "batch": batch, "data_batches": n_batches,
           "data_mib": (x.nbytes + t.nbytes) / 2**20,
           "maxrss_built_kib": _maxrss_kib(), "rss_built_kib": _current_rss_kib()}
    start = time.perf_counter()
    for i in range(steps):
        j = (i % n_batches) * batch
        step(x[j:j + batch], t[j:j + batch])
        if i + 1 in (1, 10):
            out[f"maxrss_step{i + 1}_kib"] = _maxrss_kib()
            out[f"rss_step{i + 1}_kib"] = _current_rss_kib()
    out["seconds_per_step"] = (time.perf_counter() - start) / steps
    out["maxrss_last_kib"] = _maxrss_kib()
    out["rss_last_kib"] = _current_rss_kib()
    return out


def accuracy_probe():
    """``conv_accuracy.accuracy_table()`` with the benchmark's thread setup (list of dicts)."""
    sys.path.insert(0, HERE)
    import conv_accuracy
    import fcbench

    fcbench.configure_threads(fcbench.THREADS)
    return conv_accuracy.accuracy_table()


def run_probe(args, env=None):
    """``compare.py ARGS`` (a probe) in a fresh interpreter; returns its JSON answer (the last line printed)."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_rss_probe(steps, model=RSS_MODEL, env=None):
    """:func:`rss_probe` in a fresh interpreter (so the peak RSS is the training's, not the benchmarks')."""
    return run_probe(["--rss-probe", str(steps), "--rss-model", model], env)


# ============================================================================================ writing
def write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same directory, then rename it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def baseline_from(data, note=""):
    """The zoo table of a benchmark JSON as a baseline (``bench/baseline_zoo.json``): per model the batch, the
    dl2 and PyTorch medians and their ratio, with the date, the load average and the commit."""
    rows, _ = load_rows(data)
    models = {}
    for row in rows:
        if family(row) != "train":
            continue
        case = extra(row[2])
        fc, _, pt = medians(row[2])
        models[case["model"]] = {"batch": case["batch"], "dl2_seconds": fc, "torch_seconds": pt,
                                 "ratio": ratio(fc, pt)}
    if not models:
        raise ValueError("the benchmark JSON has no training-step rows (run `pytest bench/ -k training_step`)")
    fb = data.get("machine_info", {}).get("fastconv_bench", {})
    if fb.get("smoke"):
        raise ValueError("a smoke run's timings mean nothing: not a baseline")
    load = fb.get("loadavg_at_end")
    commit = data.get("commit_info") or {}
    return {"date": fb.get("finished") or data.get("datetime"),
            "load_average": " / ".join(f"{v:.2f}" for v in load) if load else None,
            "commit": (commit.get("id") or "")[:12] or None, "note": note, "models": models}


# ============================================================================================ --run
def wait_for_quiet(max_load, wait):
    """Wait (up to ``wait`` s) until the 1-minute load average is at most ``max_load``; return the notes."""
    if not hasattr(os, "getloadavg"):
        return []
    start = time.time()
    load = os.getloadavg()
    while load[0] > max_load and time.time() - start < wait:
        print(f"load average {load[0]:.2f} > {max_load}: waiting ({time.time() - start:.0f}/{wait:.0f} s)",
              file=sys.stderr, flush=True)
        time.sleep(min(30, max(1, wait - (time.time() - start))))
        load = os.getloadavg()
    note = f"load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)"
    if load[0] > max_load:
        note += f", above the {max_load} aimed at (waited {time.time() - start:.0f} s)"
    notes = [note]
    if load[0] >= 1:
        notes.append(f"**other processes kept the machine busy** (load {load[0]:.1f} on {os.cpu_count()} cores "
                     f"before the run), so the 2-thread timings of all three implementations are closer to 1-core "
                     f"timings than they would be on an idle machine, and small calls suffer most")
    return notes


def run_all(args):
    notes = wait_for_quiet(args.max_load, args.wait)
    env = dict(os.environ)
    removed = [k for k in BLAS_ENV if env.pop(k, None) is not None]
    notes.append(f"unset for the benchmark processes: {', '.join(removed)}" if removed
                 else f"{' and '.join(BLAS_ENV)} were not set")
    if args.smoke:
        env["FASTCONV_BENCH_SMOKE"] = "1"
    else:
        env.pop("FASTCONV_BENCH_SMOKE", None)
    json_path = args.json_out or (os.path.join(tempfile.mkdtemp(prefix="fcbench-"), "out.json") if args.smoke
                                  else DEFAULT_JSON)
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", os.path.join(ROOT, "bench"), f"--benchmark-json={json_path}",
           "--benchmark-columns=min,median,max,rounds,iterations", "-q", "-p", "no:randomly"] + args.pytest_args
    print("running:", " ".join(cmd), file=sys.stderr, flush=True)
    start = time.time()
    code = subprocess.call(cmd, cwd=ROOT, env=env)
    bench_seconds = time.time() - start
    if code != 0:
        sys.exit(f"the benchmark run failed (pytest exit status {code})")
    with open(json_path) as f:
        data = json.load(f)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    notes.append(f"benchmarks took {bench_seconds / 60:.1f} min"
                 + (f"; load average at their end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}" if load else ""))
    print("measuring the accuracy of the convolutions ...", file=sys.stderr, flush=True)
    accuracy = run_probe(["--accuracy-probe"], env)
    rss = None
    if args.rss_steps > 0:
        steps = args.rss_steps if not args.smoke else min(args.rss_steps, 12)
        print(f"measuring the RSS of {steps} {args.rss_model} training steps ...", file=sys.stderr, flush=True)
        rss = run_rss_probe(steps, args.rss_model, env)
    notes.append(f"whole run {(time.time() - start) / 60:.1f} min")
    notes.append(f"raw pytest-benchmark JSON kept in `{os.path.relpath(json_path, ROOT)}`"
                 if not args.smoke else "smoke run")
    data["fastconv_run"] = {"rss": rss, "notes": notes, "accuracy": accuracy}
    write_text(json_path, json.dumps(data, indent=1))    # so that `compare.py JSON` renders this page again
    doc = report(data)
    print(doc)
    output = args.output or (None if args.smoke else DEFAULT_DOC)
    if output:
        write_text(output, doc)
        print(f"wrote {output}", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", nargs="?", help="pytest-benchmark JSON (--benchmark-json) to summarise")
    parser.add_argument("--run", action="store_true",
                        help="run pytest bench/, the accuracy and RSS probes, write the doc")
    parser.add_argument("--smoke", action="store_true", help="with --run: tiny shapes, nothing written by default")
    parser.add_argument("--output", help=f"where to write the Markdown (with --run: default {DEFAULT_DOC})")
    parser.add_argument("--json-out", help=f"with --run: where to keep the benchmark JSON (default {DEFAULT_JSON})")
    parser.add_argument("--rss", action="store_true", help="with a JSON file: also run the RSS probe")
    parser.add_argument("--rss-steps", type=int, default=RSS_STEPS,
                        help=f"training steps of the RSS probe (default {RSS_STEPS}; 0 = skip)")
    parser.add_argument("--rss-model", default=RSS_MODEL,
                        help=f"zoo model of the RSS probe, at its benchmark batch (default {RSS_MODEL})")
    parser.add_argument("--write-baseline", nargs="?", const=BASELINE, metavar="PATH",
                        help="with a JSON file: store its zoo table as the baseline (default "
                             f"{os.path.relpath(BASELINE, ROOT)})")
    parser.add_argument("--note", default="", help="with --write-baseline: a note stored with it")
    parser.add_argument("--rss-probe", type=int, metavar="STEPS", help=argparse.SUPPRESS)
    parser.add_argument("--accuracy-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--max-load", type=float, default=0.5, help="with --run: wait for this 1-min load")
    parser.add_argument("--wait", type=float, default=600, help="with --run: wait at most this many seconds")
    parser.add_argument("--pytest-args", nargs=argparse.REMAINDER, default=[],
                        help="with --run: extra arguments for pytest (e.g. -k conv)")
    args = parser.parse_args(argv)
    if args.rss_probe is not None:
        print(json.dumps(rss_probe(args.rss_probe, args.rss_model)))
        return
    if args.accuracy_probe:
        print(json.dumps(accuracy_probe()))
        return
    if args.run:
        run_all(args)
        return
    if not args.json:
        parser.error("give a pytest-benchmark JSON file, or --run")
    with open(args.json) as f:
        data = json.load(f)
    if args.write_baseline:
        try:
            baseline = baseline_from(data, args.note)
        except ValueError as e:
            parser.error(str(e))
        write_text(args.write_baseline, json.dumps(baseline, indent=1) + "\n")
        print(f"wrote {args.write_baseline} ({len(baseline['models'])} models)", file=sys.stderr)
        return
    rss = run_rss_probe(args.rss_steps, args.rss_model) if args.rss and args.rss_steps > 0 else None
    doc = report(data, rss)
    print(doc)
    if args.output:
        write_text(args.output, doc)
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
