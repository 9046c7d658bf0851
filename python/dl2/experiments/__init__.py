"""Teaching experiments: ``python -m dl2.experiments NAME [--quick] [--out DIR] [--dataset NAME]``.

Each experiment trains small networks (or inspects a kernel), writes ``<out>/<name>.json`` with its numbers and
``<out>/<name>.png`` (with matplotlib, the ``plot`` extra; otherwise only the JSON), and prints a table and the
lesson to draw from it. Data: MNIST when its files are found, else Fashion-MNIST, else the embedded 8x8 digits
(``--dataset`` chooses). ``--quick`` subsamples (each experiment then takes seconds to about a minute on 2 cores),
``--tiny`` runs in seconds (used by the tests). ``python -m dl2.experiments list`` prints the names.

=========================  =====================================================================================
``vanishing_gradient``     sigmoid/ReLU x N(0, 0.01)/Xavier/He: accuracy and per-layer gradient norms
``weight_init_histograms`` activation histograms through 5 layers for std 1 / 0.01 / Xavier / He
``batch_norm``             with vs without batch norm over a range of initial weight scales
``optimizers``             SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adam: loss curves
``overfitting``            300 samples, deep MLP: baseline vs L2 vs L1 vs dropout vs dropout + L1
``conv_nets``              SimpleConvNet, DoubleConvNet, DeepConvNet: accuracy and time per epoch
``im2col``                 im2col / col2im shapes and the window-count map
=========================  =====================================================================================
"""
import importlib
import os

from ._common import MODES, Context, pyplot, save_figure, write_json

__all__ = ["EXPERIMENTS", "run", "descriptions", "Context"]

EXPERIMENTS = ["vanishing_gradient", "weight_init_histograms", "batch_norm", "optimizers", "overfitting",
               "conv_nets", "im2col"]


def descriptions():
    """``[(name, one-line description)]`` of every experiment, in order."""
    return [(name, load(name).TITLE) for name in EXPERIMENTS]


def load(name):
    """The module of experiment ``name``."""
    key = str(name).lower().replace("-", "_")
    if key not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f".{key}", __name__)


def run(name, mode="full", dataset="auto", out=None, seed=0, epochs=None, plot=True, print_fn=print, download=False):
    """Run experiment ``name``; write its JSON (and PNG) into ``out`` (default ``runs/<name>``); return the result
    dict (also holding ``json_path`` and ``png_path``, None when no plot was written)."""
    module = load(name)
    key = module.__name__.rsplit(".", 1)[1]
    ctx = Context(key, mode=mode, dataset=dataset, seed=seed, epochs=epochs, out=out, download=download)
    print_fn(f"== {key} ({mode}) ==")
    result = module.run(ctx)
    result = {"experiment": key, "mode": mode, "seed": seed, "title": module.TITLE, "lesson": module.LESSON,
              **result}
    os.makedirs(ctx.out, exist_ok=True)
    json_path = os.path.join(ctx.out, f"{key}.json")
    write_json(json_path, result)
    png_path = None
    if plot:
        plt = pyplot()
        if plt is None:
            print_fn("note: matplotlib is not installed (pip install 'dl2[plot]'), so no PNG was written")
        else:
            png_path = os.path.join(ctx.out, f"{key}.png")
            save_figure(module.plot(result, plt), png_path)
    print_fn(f"data: {result.get('data', '-')}")
    for line in module.report(result):
        print_fn(line)
    print_fn("")
    print_fn("What to notice: " + module.LESSON)
    print_fn(f"wrote {json_path}" + (f" and {png_path}" if png_path else ""))
    result["json_path"], result["png_path"] = json_path, png_path
    return result
