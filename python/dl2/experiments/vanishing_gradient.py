"""Vanishing gradients: a 784-40-20-10 MLP (the input size follows the data) with sigmoid or ReLU and a tiny
N(0, 0.01) initialisation or a scaled one (Xavier for sigmoid, He for ReLU), trained with plain SGD.
(Glorot & Bengio 2010; He et al. 2015; "Deep Learning from Scratch" ch. 6.2.)"""
import numpy as np

from ..losses import SoftmaxCrossEntropy
from ..models import MLP
from ..optim import SGD
from ..trainer import Trainer
from ._common import chance, epoch_axis, legend_outside

TITLE = "Vanishing gradients: activation x weight initialisation"
LESSON = ("With sigmoid units and weights drawn from N(0, 0.01) every hidden unit outputs ~0.5 for every input and the "
          "gradient reaching the first layer is orders of magnitude smaller than the output layer's, so the net "
          "stays near chance. ReLU with the same tiny weights also starts with vanishing signals. Scaling the "
          "initialisation to the layer width keeps signals and gradients alive: ReLU + He learns at once; "
          "sigmoid + Xavier learns too, but more slowly (a sigmoid passes back at most 1/4 of the gradient).")

CONFIGS = [("sigmoid", 0.01, "sigmoid + N(0, 0.01)"), ("relu", 0.01, "ReLU + N(0, 0.01)"),
           ("sigmoid", "xavier", "sigmoid + Xavier"), ("relu", "he", "ReLU + He")]
EPOCHS = {"full": 20, "quick": 20, "tiny": 20}
LAYER_NAMES = ["hidden 1 (in x 40)", "hidden 2 (40 x 20)", "output (20 x 10)"]


def run(ctx):
    (x, t), (xt, tt) = ctx.data(flatten=True)
    epochs = ctx.n_epochs(EPOCHS)
    runs = {}
    for act, init, label in CONFIGS:
        model = MLP((x.shape[1],), hidden_sizes=(40, 20), activation=act, weight_init=init, seed=ctx.seed)
        trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), seed=ctx.seed,
                          progress=False)
        history = trainer.fit(x, t, epochs=epochs, batch_size=100, validation_data=(xt, tt), grad_stats=True)
        norms = list(history["grad_norm"].values())
        runs[label] = {
            "activation": act, "weight_init": init,
            "train_accuracy": history["accuracy"], "test_accuracy": history["val_accuracy"],
            "loss": history["loss"],
            "grad_norm": {name: values for name, values in zip(LAYER_NAMES, norms)},
        }
    return {"data": ctx.describe_data((x, t), (xt, tt)), "epochs": epochs, "optimizer": "SGD lr 0.1, batch 100",
            "chance": chance(t), "runs": runs}


def report(result):
    lines = [f"{'configuration':<24}{'test acc':>10}{'grad norm layer 1 / output (epoch 1)':>40}"]
    for label, r in result["runs"].items():
        g = r["grad_norm"]
        ratio = g[LAYER_NAMES[0]][0] / max(g[LAYER_NAMES[2]][0], 1e-300)
        lines.append(f"{label:<24}{r['test_accuracy'][-1]:>10.3f}{ratio:>40.2e}")
    lines.append(f"(chance: {result['chance']:.2f})")
    return lines


def plot(result, plt):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, r in result["runs"].items():
        epochs = np.arange(1, len(r["test_accuracy"]) + 1)
        ax1.plot(epochs, r["test_accuracy"], "o-", label=label)
    ax1.axhline(result["chance"], color="gray", ls=":", label="chance")
    ax1.set(ylabel="test accuracy", title="accuracy", ylim=(0, 1))
    epoch_axis(ax1)
    legend_outside(ax1)
    width = 0.2
    for i, (label, r) in enumerate(result["runs"].items()):
        first = [r["grad_norm"][name][0] for name in LAYER_NAMES]
        ax2.bar(np.arange(3) + (i - 1.5) * width, first, width, label=label)
    ax2.set_yscale("log")
    ax2.set_xticks(range(3), LAYER_NAMES)
    ax2.set(xlabel="layer", ylabel="mean gradient L2 norm, epoch 1", title="per-layer gradient norms")
    legend_outside(ax2)
    fig.suptitle(TITLE + f" -- {result['data']}", fontsize=10)
    return fig
