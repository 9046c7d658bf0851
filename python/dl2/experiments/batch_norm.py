"""Batch normalisation vs none over a range of initial weight scales: a 5x100 ReLU MLP trained with SGD on 1000
samples ("Deep Learning from Scratch" ch. 6.3; Ioffe & Szegedy 2015)."""
import numpy as np

from ..losses import SoftmaxCrossEntropy
from ..models import MLP
from ..optim import SGD
from ..trainer import Trainer
from ._common import chance, epoch_axis

TITLE = "Batch norm vs none, by initial weight std (5 hidden layers of 100, ReLU, SGD lr 0.01)"
LESSON = ("Without batch norm the net only trains in a narrow band of initial scales: too small and the signal "
          "vanishes through the five layers, too large and it explodes (the loss overflows or the net stalls). With "
          "batch norm every hidden layer's input is re-standardised, so the net trains fast over a wide range of scales, "
          "including small ones where the plain net is stuck at chance (at the very smallest scales the output layer, "
          "which has no batch norm after it, still slows it down).")

SCALES = {"full": 16, "quick": 10, "tiny": 4}
EPOCHS = {"full": 20, "quick": 20, "tiny": 10}


def _train(x, t, xt, tt, scale, batchnorm, epochs, seed):
    model = MLP((x.shape[1],), hidden_sizes=(100,) * 5, weight_init=float(scale), batchnorm=batchnorm, seed=seed)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.01), seed=seed, progress=False)
    try:
        history = trainer.fit(x, t, epochs=epochs, batch_size=100)
    except FloatingPointError as e:     # the loss overflowed: record it as a failed run
        return {"train_accuracy": trainer.history.get("accuracy", []), "diverged": str(e),
                "final_train_accuracy": None, "test_accuracy": None}
    return {"train_accuracy": history["accuracy"], "diverged": None,
            "final_train_accuracy": trainer.evaluate(x, t)["accuracy"],
            "test_accuracy": trainer.evaluate(xt, tt)["accuracy"]}


def run(ctx):
    (x, t), (xt, tt) = ctx.data(flatten=True, n_train=1000)
    epochs = ctx.n_epochs(EPOCHS)
    scales = np.logspace(0, -4, ctx.pick(SCALES))
    runs = []
    for scale in scales:
        runs.append({"scale": float(scale),
                     "batchnorm": _train(x, t, xt, tt, scale, True, epochs, ctx.seed),
                     "plain": _train(x, t, xt, tt, scale, False, epochs, ctx.seed)})
    return {"data": ctx.describe_data((x, t), (xt, tt)), "epochs": epochs, "chance": chance(t), "runs": runs}


def final(r, chance_level):
    """Final training accuracy of one run, counting a diverged run as chance."""
    return chance_level if r["final_train_accuracy"] is None else r["final_train_accuracy"]


def report(result):
    c = result["chance"]
    lines = [f"{'weight std':>12}{'with BN':>10}{'without':>10}"]
    for r in result["runs"]:
        plain = "diverged" if r["plain"]["diverged"] else f"{final(r['plain'], c):.3f}"
        bn = "diverged" if r["batchnorm"]["diverged"] else f"{final(r['batchnorm'], c):.3f}"
        lines.append(f"{r['scale']:>12.2e}{bn:>10}{plain:>10}")
    mean_bn = np.mean([final(r["batchnorm"], c) for r in result["runs"]])
    mean_plain = np.mean([final(r["plain"], c) for r in result["runs"]])
    lines.append(f"mean final training accuracy over scales: with BN {mean_bn:.3f}, without {mean_plain:.3f}")
    return lines


def plot(result, plt):
    runs = result["runs"]
    cols = min(4, len(runs))
    rows = -(-len(runs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, r in zip(axes.flat, runs):
        for key, style, label in (("batchnorm", "-", "with BN"), ("plain", "--", "without")):
            acc = r[key]["train_accuracy"]
            ax.plot(np.arange(1, len(acc) + 1), acc, style, label=label + (" (diverged)" if r[key]["diverged"] else ""))
        ax.set_title(f"w std = {r['scale']:.2g}", fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_ylabel("training accuracy", fontsize=8)
        epoch_axis(ax)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(TITLE + f"\n{result['data']}; training accuracy per epoch", fontsize=10)
    return fig
