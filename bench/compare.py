"""Summarise a pytest-benchmark run of bench/ as one table: fastconv vs the NumPy reference vs PyTorch.

Usage (from the repository root)::

    python bench/compare.py --run                   # run everything, write docs/PERFORMANCE.md (the ONE command)
    python bench/compare.py --run --smoke           # the same pipeline on tiny shapes; prints, writes nothing
    pytest bench/ --benchmark-json=out.json         # or: run the benchmarks yourself ...
    python bench/compare.py out.json [--rss]        # ... and print the table (--rss: also measure memory)
    python bench/compare.py .benchmarks/fastconv-latest.json --output docs/PERFORMANCE.md
                                                    # render the last --run again (it stores RSS and notes)

The table has, per kernel and shape, the median time of each implementation, the ratios fastconv/PyTorch and
fastconv/reference, throughput (GFLOP/s for convolutions, GB/s for pooling and batch norm, both computed from the
same operation / byte count for every implementation: see ``docs/PERFORMANCE.md``), and each target of the
issue with "met" or "MISSED". ``--run`` also measures the peak RSS of a DeepConvNet training run in a fresh
process (``--rss-probe``) and records the machine, the library versions and the BLAS kernels in use.
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
IMPL_TITLES = {"fastconv": "fastconv", "reference": "reference", "torch": "PyTorch"}
#: Environment variables that change which OpenBLAS kernel runs; removed for the benchmark subprocesses.
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
RSS_STEPS = 200
#: Table order (within a family: the run's order).
FAMILY_ORDER = ("conv", "maxpool", "avgpool", "batchnorm", "train")


# ============================================================================================ reading
def load_rows(data):
    """``[(kernel, shape, {impl: bench})]`` in the run's order, plus the SGEMM benchmark (or None)."""
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
    rows.sort(key=lambda row: order.get(next(iter(row[2].values()))["extra_info"].get("family"), len(order)))
    return rows, sgemm


def median(bench):
    return None if bench is None else bench["stats"]["median"]


def rate(bench):
    """``(value, unit)``: GFLOP/s when the case counts flops, GB/s when it counts bytes."""
    if bench is None:
        return None, ""
    info, t = bench["extra_info"], median(bench)
    if info.get("flops"):
        return info["flops"] / t / 1e9, "GFLOP/s"
    if info.get("bytes"):
        return info["bytes"] / t / 1e9, "GB/s"
    return None, ""


def sgemm_gflops(sgemm):
    return None if sgemm is None else rate(sgemm)[0]


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


def check(op, value, target):
    return value <= target if op == "<=" else value >= target


def evaluate_targets(impls, sgemm):
    """``[(text, met or None)]`` for each target of the row (None: could not be evaluated)."""
    fc, ref, pt = (median(impls.get(k)) for k in ("fastconv", "reference", "torch"))
    some = next(iter(impls.values()))
    out = []
    for metric, op, target in some["extra_info"].get("targets", []):
        if metric == "torch_ratio":
            value = fc / pt if fc and pt else None
            name, shown, goal = "fc/PT", (f"{value:.2f}x" if value is not None else "n/a"), f"{target:g}x"
        elif metric == "reference_speedup":
            value = ref / fc if fc and ref else None
            name, shown, goal = "ref/fc", (f"{value:.1f}x" if value is not None else "n/a"), f"{target:g}x"
        elif metric == "sgemm_fraction":
            g, peak = rate(impls.get("fastconv"))[0], sgemm_gflops(sgemm)
            value = g / peak if g and peak else None
            name, shown, goal = "of SGEMM", (f"{value:.0%}" if value is not None else "n/a"), f"{target:.0%}"
        else:
            continue
        met = None if value is None else check(op, value, target)
        verdict = "not measured" if met is None else "met" if met else "MISSED"
        out.append((f"{name} {shown} {op.replace('<=', '≤').replace('>=', '≥')} {goal}: {verdict}", met))
    return out


def table(rows, sgemm):
    head = ["kernel", "shape", "fastconv", "reference", "PyTorch", "fc/PT", "fc/ref", "fastconv rate",
            "PyTorch rate", "targets"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 7 + ["---"]) + "|"]
    verdicts = []
    for kernel, shape, impls in rows:
        fc, ref, pt = (median(impls.get(k)) for k in ("fastconv", "reference", "torch"))
        targets = evaluate_targets(impls, sgemm)
        verdicts += [(kernel, shape, text, met) for text, met in targets]
        cells = [kernel, shape, fmt_time(fc), fmt_time(ref), fmt_time(pt),
                 fmt_ratio(fc / pt if fc and pt else None), fmt_ratio(fc / ref if fc and ref else None),
                 fmt_rate(*rate(impls.get("fastconv"))), fmt_rate(*rate(impls.get("torch"))),
                 "; ".join(text for text, _ in targets) or ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), verdicts


def machine_section(data):
    mi = data.get("machine_info", {})
    fb = mi.get("fastconv_bench", {})
    lines = []
    cpu = fb.get("cpu_model") or (mi.get("cpu") or {}).get("brand_raw") or mi.get("processor")
    lines.append(f"- CPU: {cpu}; {fb.get('logical_cpus')} logical CPUs, {fb.get('usable_cpus')} usable by this "
                 f"process; {mi.get('system', '')} {mi.get('release', '')}")
    lines.append(f"- Python {fb.get('python') or mi.get('python_version')}, numpy {fb.get('numpy')}, "
                 f"PyTorch {fb.get('torch') or 'not installed'}, fastconv {fb.get('fastconv')} "
                 f"(OpenMP {'on' if fb.get('fastconv_openmp') else 'OFF'})")
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
    if fb.get("smoke"):
        lines.append("- **SMOKE RUN (tiny shapes): the timings mean nothing**")
    return "\n".join(lines)


def rss_section(rss):
    if not rss:
        return "Not measured (run `python bench/compare.py --run`, or add `--rss`)."
    mib = 1 / 1024
    growth = rss["rss_last_kib"] - rss["rss_step10_kib"]
    ok = growth <= max(16 * 1024, 0.05 * rss["rss_step10_kib"])
    return "\n".join([
        f"DeepConvNet (dl2, float32, batch {rss['batch']}, SGD) trained for {rss['steps']} steps on random data "
        f"in a fresh process ({rss['data_batches']} distinct random batches, {rss['data_mib']:.1f} MiB, cycled; "
        f"a real MNIST epoch is 600 steps and would add the dataset's 180 MiB). {rss['seconds_per_step'] * 1e3:.0f}"
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


def report(data, rss=None, run_notes=None):
    """The whole Markdown document (``docs/PERFORMANCE.md``).

    ``rss`` and ``run_notes`` default to what ``--run`` stored in the JSON (key ``fastconv_run``), so
    ``python bench/compare.py .benchmarks/fastconv-latest.json`` renders the same document again.
    """
    stored = data.get("fastconv_run") or {}
    rss = rss if rss is not None else stored.get("rss")
    run_notes = run_notes if run_notes is not None else stored.get("notes")
    rows, sgemm = load_rows(data)
    tab, verdicts = table(rows, sgemm)
    g = sgemm_gflops(sgemm)
    met = [v for v in verdicts if v[3]]
    missed = [v for v in verdicts if v[3] is False]
    unknown = [v for v in verdicts if v[3] is None]
    fb = data.get("machine_info", {}).get("fastconv_bench", {})
    date = fb.get("finished") or data.get("datetime", "?")
    out = [
        "# fastconv performance",
        "",
        "<!-- Generated by `python bench/compare.py --run`; do not edit by hand, re-run the command. -->",
        "",
        f"**One run** of the benchmark suite (`bench/`), finished {date}. The machine is shared by several "
        "developers, so timings are noisy: treat differences under ~20 % as noise, and re-run "
        "(`python bench/compare.py --run`) before drawing conclusions.",
        "",
    ]
    if run_notes:
        out += ["Run conditions: " + "; ".join(run_notes) + ".", ""]
    out += [
        "## How it is measured",
        "",
        "- Every kernel and shape is timed for three implementations in the same pytest-benchmark session: "
        "**fastconv** (the compiled kernels; for the training step: dl2 on fastconv), **reference** "
        "(`fastconv.reference`, plain NumPy) and **PyTorch** CPU (skipped when not installed). float32 throughout; "
        "the same random inputs for all three.",
        "- **2 threads for all three**: `fastconv.set_num_threads(2)` (OpenMP loops; the convolutions' inner GEMMs "
        "call SciPy's BLAS single-threaded inside fastconv's own threads), NumPy's BLAS limited to 2 threads with "
        "threadpoolctl (what the reference's matmuls use), `torch.set_num_threads(2)`.",
        "- Times are the **median** over rounds (`benchmark.pedantic`): one untimed warm-up call estimates the "
        "time `t`; calls under 2 ms are repeated within a round; rounds = 1 s / t, clamped to [3, 200]. So the "
        "slow reference calls (up to several seconds) get 3 rounds. No reference is skipped.",
        "- PyTorch forward-only calls run under `torch.no_grad()`; fwd+bwd calls use autograd with "
        "`requires_grad` on every input (conv: x, w, b so dx, dw, db are all computed, like "
        "`fastconv.conv2d_backward`; batch norm: x, gamma, beta), gradients reset to None before each call. "
        "Max pool forward in PyTorch uses `return_indices=True` (fastconv always returns the indices its "
        "backward needs); global average pooling is `adaptive_avg_pool2d(x, 1)` in PyTorch and a 7x7 "
        "`avgpool2d` in fastconv and the reference; batch norm is training mode (batch statistics).",
        "- fwd+bwd rows time the forward *and* the backward call (the backward needs the forward's outputs).",
        "- OpenMP: fastconv sets `OMP_WAIT_POLICY=PASSIVE` when it is imported (unless already set): idle OpenMP "
        "threads sleep instead of spinning. PyTorch uses the same libgomp in this process (fastconv is imported "
        "first), so it runs with the same policy; on a loaded machine that helps both, on an idle one it may cost "
        "PyTorch a little on its smallest calls.",
        "- **GFLOP/s** (convolutions): forward `2·N·K·C·kh·kw·OH·OW`; fwd+bwd 3x that (dx and dw each cost a "
        "forward). **GB/s** (pooling, batch norm): compulsory bytes, each array counted once, float32 = 4 B, "
        "int64 max-pool indices = 8 B: pool forward reads x and writes y (+ indices); pool backward reads dy "
        "(+ indices) and writes dx; batch norm forward reads x and writes y, backward reads dy and x and writes dx "
        "(per-channel vectors neglected). Kernels that make several passes move more than this. The same count is "
        "used for every implementation, so rates compare like times.",
        "- Training steps (batch 100, 1x28x28 random images, SGD lr 0.01, softmax cross-entropy): "
        "**SimpleConvNet** (conv 30@5x5, ReLU, max pool 2, Flatten, Linear 100, ReLU, Linear 10) and "
        "**DeepConvNet** (3x3 pad-1 convs 16, 16, 32, 32, 64, 64 with ReLU, 2x2 max pool after each pair, "
        "Flatten, Linear 50, ReLU, Dropout 0.5, Linear 10). dl2 builds them with `dl2.Sequential` "
        "(He init); PyTorch gets the same initial weights copied in; the reference step is NumPy plus "
        "`fastconv.reference` conv/pool kernels. None of the three computes the gradient of the images.",
        f"- SGEMM: NumPy float32 2048x2048 matmul with 2 threads, in the same session: "
        f"**{g:.1f} GFLOP/s**." if g else "- SGEMM: not measured.",
        "",
        "## Machine",
        "",
        machine_section(data),
        "",
        "## Results",
        "",
        "Median times; ratios below 1 mean fastconv is faster. *fc* = fastconv, *PT* = PyTorch, *ref* = reference.",
        "",
        tab,
        "",
        f"## Targets: {len(met)} met, {len(missed)} missed"
        + (f", {len(unknown)} not measured" if unknown else ""),
        "",
    ]
    if missed:
        out += ["Missed:", ""] + [f"- {k} {s}: {t}" for k, s, t, _ in missed] + [""]
    if unknown:
        out += ["Not measured:", ""] + [f"- {k} {s}: {t}" for k, s, t, _ in unknown] + [""]
    if met:
        out += ["Met:", ""] + [f"- {k} {s}: {t}" for k, s, t, _ in met] + [""]
    out += ["## Memory of a training run", "", rss_section(rss), ""]
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ANALYSIS.md")
    if os.path.exists(analysis):              # the hand-written explanation of the misses
        with open(analysis) as f:
            out += [f.read()]
    return "\n".join(out)


# ============================================================================================ RSS probe
def _current_rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _maxrss_kib():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r      # bytes on macOS, KiB on Linux


def rss_probe(steps):
    """Train DeepConvNet (dl2) for ``steps`` steps in this process; return the RSS measurements (dict)."""
    import numpy as np

    sys.path.insert(0, HERE)
    import fcbench

    fcbench.configure_threads(fcbench.THREADS, torch=False)     # PyTorch not imported: not in the RSS
    batch, n_batches = fcbench.BATCH, 10
    step = fcbench.Dl2Step(fcbench.build_dl2("DeepConvNet"))
    rng = np.random.default_rng(1)
    x = rng.random((n_batches * batch, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, n_batches * batch)
    out = {"steps": steps, "batch": batch, "data_batches": n_batches, "data_mib": (x.nbytes + t.nbytes) / 2**20,
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


def run_rss_probe(steps, env=None):
    """:func:`rss_probe` in a fresh interpreter (so the peak RSS is the training's, not the benchmarks')."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-probe", str(steps)], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
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
    rss = None
    if args.rss_steps > 0:
        print(f"measuring the RSS of {args.rss_steps} DeepConvNet training steps ...", file=sys.stderr, flush=True)
        rss = run_rss_probe(args.rss_steps if not args.smoke else min(args.rss_steps, 12), env)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    notes.append(f"benchmarks took {bench_seconds / 60:.1f} min"
                 + (f"; load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}" if load else ""))
    notes.append(f"raw pytest-benchmark JSON kept in `{os.path.relpath(json_path, ROOT)}`"
                 if not args.smoke else "smoke run")
    data["fastconv_run"] = {"rss": rss, "notes": notes}
    with open(json_path, "w") as f:          # so that `compare.py JSON` renders this same document again
        json.dump(data, f, indent=1)
    doc = report(data)
    print(doc)
    output = args.output or (None if args.smoke else DEFAULT_DOC)
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w") as f:
            f.write(doc)
        print(f"wrote {output}", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", nargs="?", help="pytest-benchmark JSON (--benchmark-json) to summarise")
    parser.add_argument("--run", action="store_true", help="run pytest bench/ and the RSS probe, write the doc")
    parser.add_argument("--smoke", action="store_true", help="with --run: tiny shapes, nothing written by default")
    parser.add_argument("--output", help=f"where to write the Markdown (with --run: default {DEFAULT_DOC})")
    parser.add_argument("--json-out", help=f"with --run: where to keep the benchmark JSON (default {DEFAULT_JSON})")
    parser.add_argument("--rss", action="store_true", help="with a JSON file: also run the RSS probe")
    parser.add_argument("--rss-steps", type=int, default=RSS_STEPS,
                        help=f"DeepConvNet steps of the RSS probe (default {RSS_STEPS}; 0 = skip)")
    parser.add_argument("--rss-probe", type=int, metavar="STEPS", help=argparse.SUPPRESS)
    parser.add_argument("--max-load", type=float, default=0.5, help="with --run: wait for this 1-min load")
    parser.add_argument("--wait", type=float, default=600, help="with --run: wait at most this many seconds")
    parser.add_argument("--pytest-args", nargs=argparse.REMAINDER, default=[],
                        help="with --run: extra arguments for pytest (e.g. -k conv)")
    args = parser.parse_args(argv)
    if args.rss_probe is not None:
        print(json.dumps(rss_probe(args.rss_probe)))
        return
    if args.run:
        run_all(args)
        return
    if not args.json:
        parser.error("give a pytest-benchmark JSON file, or --run")
    with open(args.json) as f:
        data = json.load(f)
    rss = run_rss_probe(args.rss_steps) if args.rss and args.rss_steps > 0 else None
    doc = report(data, rss)
    print(doc)
    if args.output:
        with open(args.output, "w") as f:
            f.write(doc)
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
