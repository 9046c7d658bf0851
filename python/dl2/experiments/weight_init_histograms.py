"""Activation histograms through 5 layers of 100 units for weight standard deviations 1, 0.01, Xavier (1/sqrt(n))
and He (sqrt(2/n)) with sigmoid, tanh and ReLU ("Deep Learning from Scratch" ch. 6.2; Glorot & Bengio 2010;
He et al. 2015). The input is 1000 samples of 100 standard-normal features, as in the book (no data set). ReLU histograms
show the positive activations; the fraction of zeros is reported separately."""
import numpy as np

from .. import init as initializers
from ..models._common import make_activation

TITLE = "Activation distributions after each of 5 layers (100 units, no bias)"
LESSON = ("sigmoid with std 1 pushes activations to 0 and 1 (saturation: gradients vanish); std 0.01 collapses every "
          "unit to the same value (0.5 for sigmoid, 0 for tanh/ReLU: the layers all compute the same thing); "
          "Xavier keeps sigmoid and tanh activations spread out; for ReLU, Xavier halves the second moment at every "
          "layer and the activations shrink towards 0, while He's sqrt(2/n) keeps their scale steady through depth.")

ACTIVATIONS = ["sigmoid", "tanh", "relu"]
INITS = [("std 1", 1.0), ("std 0.01", 0.01), ("Xavier", "xavier"), ("He", "he")]
RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, 2.0)}
SAMPLES = {"full": 1000, "quick": 1000, "tiny": 500}
LAYERS, UNITS, BINS = 5, 100, 30


def run(ctx):
    rng = np.random.default_rng(ctx.seed)
    n = ctx.pick(SAMPLES)
    x0 = rng.standard_normal((n, UNITS))
    runs = {}
    for act in ACTIVATIONS:
        for label, spec in INITS:
            weights = [initializers.get(spec)((UNITS, UNITS), rng=rng, dtype=np.float64) for _ in range(LAYERS)]
            layer = make_activation(act)
            layer.build((UNITS,), np.float64)
            a, stats = x0, []
            lo, hi = RANGES[act]
            for w in weights:
                a = layer.forward(a @ w)
                shown = a[a > 0] if act == "relu" else a      # ReLU: the zeros are reported, not drawn
                counts, edges = np.histogram(shown, bins=BINS, range=(lo, hi))
                stats.append({
                    "mean": float(a.mean()), "std": float(a.std()),
                    "saturated": float(np.mean((a < 0.01) | (a > 0.99))) if act == "sigmoid" else
                    float(np.mean(np.abs(a) > 0.99)) if act == "tanh" else None,
                    "zero": float(np.mean(a == 0)) if act == "relu" else None,
                    "outside_range": float(np.mean((a < lo) | (a > hi))),
                    "hist": counts.tolist(), "edges": edges.tolist(),
                })
            runs[f"{act} / {label}"] = {"activation": act, "init": label, "layers": stats}
    return {"samples": n, "units": UNITS, "layers": LAYERS, "data": f"{n} x {UNITS} standard-normal inputs",
            "runs": runs}


def report(result):
    lines = [f"{'activation / init':<22}" + "".join(f"{f'std L{i + 1}':>9}" for i in range(LAYERS))
             + f"{'note':>28}"]
    for label, r in result["runs"].items():
        stds = [s["std"] for s in r["layers"]]
        last = r["layers"][-1]
        note = (f"saturated {last['saturated']:.0%}" if r["activation"] == "sigmoid" else
                f"|a|>0.99: {last['saturated']:.0%}" if r["activation"] == "tanh" else f"zeros {last['zero']:.0%}")
        lines.append(f"{label:<22}" + "".join(f"{s:>9.3g}" for s in stds) + f"{note:>28}")
    return lines


def plot(result, plt):
    runs = list(result["runs"].items())
    fig, axes = plt.subplots(len(runs), LAYERS, figsize=(2.3 * LAYERS, 1.35 * len(runs)), sharey="row")
    for row, (label, r) in enumerate(runs):
        for col, s in enumerate(r["layers"]):
            ax = axes[row, col]
            edges = np.asarray(s["edges"])
            ax.bar(edges[:-1], s["hist"], width=np.diff(edges), align="edge")
            ax.tick_params(labelsize=6)
            if row == 0:
                ax.set_title(f"layer {col + 1}", fontsize=8)
            if col == 0:
                ax.set_ylabel(label, fontsize=7)
            note = f"std {s['std']:.2g}"
            if r["activation"] == "relu":
                note += f"\nzeros {s['zero']:.0%}"
            if s["outside_range"] > 0.05:
                note += f"\n{s['outside_range']:.0%} off scale"
            ax.text(0.97, 0.9, note, transform=ax.transAxes, ha="right", va="top", fontsize=6)
    fig.suptitle(TITLE, fontsize=10)
    return fig
