"""Time to accuracy on Fashion-MNIST, for ``docs/RESULTS.md``: the curves and the table of ``dl2 train`` runs, and
the epoch time of the same network in PyTorch.

Usage (from the repository root)::

    python bench/time_to_accuracy.py plot docs/runs/*.json --png docs/time_to_accuracy.png
        # test accuracy against wall time (one curve per run) and a markdown table of the runs on stdout
    python bench/time_to_accuracy.py epoch --model resnet --model-args '{"blocks": [0, 2, 2], "width": 2}'
        # the training steps of one epoch (60,000 images) in dl2 and in PyTorch 2.13, same network and weights

The runs are the ``--json`` files of ``dl2 train --test-each-epoch``: their history holds the test accuracy and
the wall time (from the start of the command) after every epoch. ``epoch`` times blocks of training steps on the
real images, dl2 and PyTorch interleaved in one process (both with 2 threads, SGD with Nesterov momentum, weight
decay and label smoothing as in the recipe, no augmentation in either), and reports the medians scaled to an
epoch; it needs ``torch==2.13.0`` (the CPU build) and the Fashion-MNIST files.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


# ============================================================================================ plot and table
def load_run(path):
    """``(label, run)``: a ``dl2 train --json`` file with per-epoch test accuracy and elapsed time."""
    with open(path) as f:
        run = json.load(f)
    history = run.get("history", {})
    for key in ("test_accuracy", "elapsed"):
        if key not in history:
            raise SystemExit(f"{path}: no per-epoch {key!r} in the history (run dl2 train with --test-each-epoch)")
    args = run["args"]
    extra = " " + json.dumps(args["model_args"], separators=(",", ":")) if args.get("model_args") else ""
    label = f"{args['model']}{extra}, {args['epochs']} epochs, seed {args['seed']}"
    return label, run


def plot(paths, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [load_run(p) for p in paths]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for label, run in runs:
        h = run["history"]
        minutes = np.asarray(h["elapsed"]) / 60
        ax.plot(minutes, 100 * np.asarray(h["test_accuracy"]), marker="o", markersize=3, label=label)
    for target in (93, 94, 95):
        ax.axhline(target, color="grey", linewidth=0.6, linestyle=":")
    for budget in (5, 20):                      # the time budgets (minutes)
        ax.axvline(budget, color="grey", linewidth=0.6, linestyle="--")
    ax.set_xlabel("wall time of the dl2 train command (minutes)")
    ax.set_ylabel("test accuracy after each epoch (%)")
    ax.set_ylim(75, 96)
    ax.set_xlim(0, 21)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Fashion-MNIST: time to accuracy on 2 CPU cores")
    fig.tight_layout()
    fig.savefig(png)
    print(f"wrote {png}", file=sys.stderr)
    print(table(runs))


def _reached(run, target):
    hit = run.get("targets", {}).get(f"{target:g}")
    return "not reached" if hit is None else f"{hit['wall_s'] / 60:.1f} min (epoch {hit['epoch']})"


def table(runs):
    """The markdown table of the runs: accuracy, time to 93 % and 94 %, whole-command wall and CPU time."""
    lines = ["| run | parameters | epochs | test accuracy | time to 93 % | time to 94 % | wall time | CPU time |",
             "|---|---:|---:|---:|---|---|---:|---:|"]
    for label, run in runs:
        lines.append(f"| {label} | {run['parameters']:,} | {run['args']['epochs']} | "
                     f"**{100 * run['test']['accuracy']:.2f} %** | {_reached(run, 0.93)} | {_reached(run, 0.94)} | "
                     f"{run['wall_s'] / 60:.1f} min | {run['cpu_s'] / 60:.1f} min |")
    return "\n".join(lines)


# ============================================================================================ epoch time
def epoch_time(model_name, model_args, batch_size, lr, weight_decay, label_smoothing, blocks, steps, threads):
    import torch

    import dl2
    import fastconv

    sys.path.insert(0, HERE)
    import torch_twin

    torch.set_num_threads(threads)
    fastconv.set_num_threads(threads)
    (x, t), _ = dl2.data.load_fashion_mnist()
    model = dl2.models.get(model_name, x.shape[1:], 10, seed=0, **model_args)
    model.needs_input_grad = False
    twin = torch_twin.twin(model)
    opt = dl2.optim.Nesterov(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    loss = dl2.SoftmaxCrossEntropy(label_smoothing=label_smoothing)
    # PyTorch's weight decay is coupled L2 too; dl2 exempts biases and norm parameters, so the same groups here
    decay = [tp for p, tp, _ in twin.pairs if p.regularize]
    rest = [tp for p, tp, _ in twin.pairs if not p.regularize]
    topt = torch.optim.SGD([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0}],
                           lr=lr, momentum=0.9, nesterov=True)
    tloss = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    twin.module.train()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    batches = [order[i:i + batch_size] for i in range(0, len(x) - batch_size + 1, batch_size)]

    def dl2_steps(idx):
        for b in idx:
            xb, tb = x[b], t[b]
            model.zero_grad()
            loss.forward(model.forward(xb), tb)
            model.backward(loss.backward())
            opt.step()

    def torch_steps(idx):
        for b in idx:
            xb, tb = torch.from_numpy(x[b]), torch.from_numpy(t[b].astype(np.int64))
            topt.zero_grad(set_to_none=True)
            tloss(twin.module(xb), tb).backward()
            topt.step()

    times = {"dl2": [], "torch": []}
    dl2_steps(batches[:3])                  # warm-up: workspaces, thread pools
    torch_steps(batches[:3])
    for r in range(blocks):
        idx = batches[(r * steps) % len(batches):][:steps]
        for name, fn in (("dl2", dl2_steps), ("torch", torch_steps)) if r % 2 == 0 else \
                (("torch", torch_steps), ("dl2", dl2_steps)):
            start = time.perf_counter()
            fn(idx)
            times[name].append((time.perf_counter() - start) / len(idx))
    per_epoch = math.ceil(len(x) / batch_size)
    out = {"model": model_name, "model_args": model_args, "parameters": model.num_parameters(),
           "batch_size": batch_size, "threads": threads, "steps_timed": blocks * steps,
           "load_average": os.getloadavg(), "torch": torch.__version__}
    for name, values in times.items():
        out[f"{name}_step_ms"] = [round(1e3 * v, 2) for v in values]
        out[f"{name}_epoch_s"] = round(per_epoch * float(np.median(values)), 1)
    out["torch_over_dl2"] = round(out["torch_epoch_s"] / out["dl2_epoch_s"], 3)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plot", help="the time-to-accuracy curve (PNG) and the table of runs")
    p.add_argument("runs", nargs="+", help="dl2 train --json files")
    p.add_argument("--png", required=True)
    e = sub.add_parser("epoch", help="epoch time of a model in dl2 and in PyTorch")
    e.add_argument("--model", default="resnet")
    e.add_argument("--model-args", type=json.loads, default={})
    e.add_argument("--batch-size", type=int, default=128)
    e.add_argument("--lr", type=float, default=0.1)
    e.add_argument("--weight-decay", type=float, default=5e-4)
    e.add_argument("--label-smoothing", type=float, default=0.1)
    e.add_argument("--blocks", type=int, default=6, help="timed blocks per library (default: 6)")
    e.add_argument("--steps", type=int, default=40, help="training steps per block (default: 40)")
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    if args.command == "plot":
        plot(args.runs, args.png)
        return 0
    out = epoch_time(args.model, args.model_args, args.batch_size, args.lr, args.weight_decay,
                     args.label_smoothing, args.blocks, args.steps, args.threads)
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
