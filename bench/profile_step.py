"""Per-layer, per-pass profile of a zoo model's training step in dl2 and in PyTorch, interleaved in one process.

    python bench/profile_step.py simple_conv_net double_conv_net    # medians of 30 rounds, 2 threads
    python bench/profile_step.py cnn --rounds 50 --batch 128

For a Sequential model (the book's networks, cnn, bn_cnn, lenet5...) every round times, in dl2 and then in
PyTorch (``torch_twin.twin``: same layers and weights), each layer's forward and backward on its own, the loss
(forward and backward), the SGD update, and the whole step as ``cases_train`` times it. Medians per row; the
ratio column is dl2 / PyTorch. PyTorch's per-layer backward is ``y.backward(dy)`` on that layer alone (each
call pays autograd's entry cost, some microseconds, which the whole step pays once). The per-layer sum of dl2
misses the container's own overhead; the step rows include everything.
Run it under the shared lock: ``flock /work/bench.lock python bench/profile_step.py ...``.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fcbench  # noqa: E402
from cases_train import LR, Dl2Step, TorchStep, batch, batch_size, build_model  # noqa: E402


def _clock(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def dl2_round(model, loss, opt, x, t, times):
    """One step of ``model`` layer by layer, each pass timed into ``times[row]`` (lists of seconds)."""
    dt, _ = _clock(opt.zero_grad)
    times.setdefault("zero_grad", []).append(dt)
    h = model._check_input(x)
    for i, layer in enumerate(model.layers):
        dt, h = _clock(lambda: layer.forward(h))
        times.setdefault(f"{i} {type(layer).__name__} fwd", []).append(dt)
    dt, _ = _clock(lambda: loss.forward(h, t))
    dt2, dy = _clock(loss.backward)
    times.setdefault("loss fwd+bwd", []).append(dt + dt2)
    for i in range(len(model.layers) - 1, -1, -1):
        layer = model.layers[i]
        dt, dy = _clock(lambda: layer.backward(dy))
        times.setdefault(f"{i} {type(layer).__name__} bwd", []).append(dt)
        if dy is None:
            break
    dt, _ = _clock(opt.step)
    times.setdefault("update", []).append(dt)


def torch_round(torch, twin, opt, x, t, times):
    """The same rows for the PyTorch twin: each child module run on a detached leaf of the previous output."""
    layers = list(twin.module.children())
    dt, _ = _clock(lambda: opt.zero_grad(set_to_none=True))
    times.setdefault("zero_grad", []).append(dt)
    inputs, outputs = [], []
    h = x
    for i, m in enumerate(layers):
        xi = h.detach().requires_grad_(i > 0)
        dt, h = _clock(lambda: m(xi))
        inputs.append(xi)
        outputs.append(h)
        times.setdefault(f"{i} fwd", []).append(dt)
    logits = h.detach().requires_grad_(True)
    dt, value = _clock(lambda: torch.nn.functional.cross_entropy(logits, t))
    dt2, _ = _clock(value.backward)
    times.setdefault("loss fwd+bwd", []).append(dt + dt2)
    dy = logits.grad
    for i in range(len(layers) - 1, -1, -1):
        if not outputs[i].requires_grad:
            break
        dt, _ = _clock(lambda: outputs[i].backward(dy))
        times.setdefault(f"{i} bwd", []).append(dt)
        dy = inputs[i].grad
        if dy is None:
            break
    dt, _ = _clock(opt.step)
    times.setdefault("update", []).append(dt)


def profile(name, rounds, n=None, layers=True):
    import torch

    import dl2

    n = batch_size(name) if n is None else n
    model = build_model(name)
    if not isinstance(model, dl2.Sequential):
        raise SystemExit(f"profile_step: {name} is not a Sequential model")
    x, t = batch(n)
    dl2_step, torch_step = Dl2Step(build_model(name)), TorchStep(build_model(name))
    twin = TorchStep(model)      # its own twin, for the per-layer rows
    xt, tt = torch.from_numpy(x), torch.from_numpy(np.asarray(t, dtype=np.int64))
    loss, opt = dl2.SoftmaxCrossEntropy(), dl2.optim.SGD(model.parameters(), lr=LR)
    a, b = {}, {}
    for r in range(rounds + 2):       # two warm-up rounds, not kept
        ta, tb = ({}, {}) if r < 2 else (a, b)
        if layers:
            dl2_round(model, loss, opt, x, t, ta)
            torch_round(torch, twin.twin, twin.opt, xt, tt, tb)
        ta.setdefault("step", []).append(_clock(lambda: dl2_step(x, t))[0])
        tb.setdefault("step", []).append(_clock(lambda: torch_step(x, t))[0])
    med = lambda v: float(np.median(v))   # noqa: E731
    rows = []
    for key in a:
        parts = key.split(" ")
        tkey = f"{parts[0]} {parts[-1]}" if parts[0].isdigit() else key
        rows.append((key, med(a[key]), med(b[tkey]) if tkey in b else float("nan")))
    return n, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps-only", action="store_true", help="only the whole steps, alternating")
    args = parser.parse_args(argv)
    fcbench.configure_threads()
    print(f"load average {open('/proc/loadavg').read().split()[:3]}")
    for name in args.models:
        n, rows = profile(name, args.rounds, args.batch, not args.steps_only)
        print(f"\n{name} batch {n}, medians of {args.rounds} rounds (us)")
        print(f"{'row':28s} {'dl2':>9s} {'torch':>9s} {'ratio':>6s}")
        for key, da, db in rows:
            print(f"{key:28s} {da * 1e6:9.1f} {db * 1e6:9.1f} {da / db:6.2f}")
    print(f"load average {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
