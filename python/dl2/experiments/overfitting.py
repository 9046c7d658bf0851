"""Overfitting on 300 training samples with a deep MLP (6 hidden layers of 100, ReLU, He, SGD lr 0.01), and what
regularisation does to it: L2 weight decay, L1, dropout, dropout + L1 ("Deep Learning from Scratch" ch. 6.4;
Srivastava et al. 2014 for dropout)."""
import numpy as np

from ..callbacks import LambdaCallback
from ..losses import SoftmaxCrossEntropy
from ..models import MLP
from ..optim import SGD
from ..trainer import Trainer
from ._common import epoch_axis

TITLE = "Overfitting: 300 training samples, 6x100 ReLU MLP, SGD lr 0.01"
LESSON = ("The baseline learns the 300 training samples perfectly while test accuracy stalls far below: a large "
          "train/test gap. Weight decay (L2) and L1 penalise large weights, dropout trains an ensemble of thinned "
          "networks; each narrows the gap (usually by lowering training accuracy more than test accuracy).")

#: name -> (weight_decay, l1, dropout)
VARIANTS = {"baseline": (0.0, 0.0, 0.0), "L2 (weight decay 0.1)": (0.1, 0.0, 0.0), "L1 (0.005)": (0.0, 0.005, 0.0),
            "dropout 0.2": (0.0, 0.0, 0.2), "dropout 0.2 + L1 0.005": (0.0, 0.005, 0.2)}
EPOCHS = {"full": 200, "quick": 200, "tiny": 100}
TEST = {"full": None, "quick": 1000, "tiny": None}


def run(ctx):
    (x, t), (xt, tt) = ctx.data(flatten=True, n_train=300, n_test=ctx.pick(TEST))
    epochs = ctx.n_epochs(EPOCHS)
    runs = {}
    for name, (wd, l1, p) in VARIANTS.items():
        model = MLP((x.shape[1],), hidden_sizes=(100,) * 6, dropout=p, seed=ctx.seed)
        curves = {"train_accuracy": [], "test_accuracy": []}

        def record(trainer, epoch, logs, curves=curves):
            curves["train_accuracy"].append(trainer.evaluate(x, t)["accuracy"])    # eval mode: no dropout
            curves["test_accuracy"].append(trainer.evaluate(xt, tt)["accuracy"])

        trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.01, weight_decay=wd, l1=l1),
                          seed=ctx.seed, progress=False, callbacks=[LambdaCallback(on_epoch_end=record)])
        trainer.fit(x, t, epochs=epochs, batch_size=100)
        tail = max(1, epochs // 10)       # average the last 10% of epochs: less noisy than the last one
        train = float(np.mean(curves["train_accuracy"][-tail:]))
        test = float(np.mean(curves["test_accuracy"][-tail:]))
        runs[name] = dict(curves, weight_decay=wd, l1=l1, dropout=p, final_train=train, final_test=test,
                          gap=train - test)
    return {"data": ctx.describe_data((x, t), (xt, tt)), "epochs": epochs, "runs": runs}


def report(result):
    lines = [f"{'variant':<24}{'train acc':>10}{'test acc':>10}{'gap':>8}"]
    for name, r in result["runs"].items():
        lines.append(f"{name:<24}{r['final_train']:>10.3f}{r['final_test']:>10.3f}{r['gap']:>8.3f}")
    lines.append("(accuracies averaged over the last 10% of epochs)")
    return lines


def plot(result, plt):
    runs = list(result["runs"].items())
    fig, axes = plt.subplots(1, len(runs), figsize=(3.3 * len(runs), 3.4), sharey=True)
    for ax, (name, r) in zip(axes, runs):
        epochs = np.arange(1, len(r["train_accuracy"]) + 1)
        ax.plot(epochs, r["train_accuracy"], label="train")
        ax.plot(epochs, r["test_accuracy"], label="test")
        ax.set_title(f"{name}\ngap {r['gap']:.3f}", fontsize=9)
        epoch_axis(ax)
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("accuracy")
    axes[0].legend()
    fig.suptitle(TITLE + f" -- {result['data']}", fontsize=10)
    return fig
