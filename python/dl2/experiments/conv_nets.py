"""SimpleConvNet, DoubleConvNet and DeepConvNet ("Deep Learning from Scratch" ch. 7-8) trained the same way on the
same data: accuracy per epoch and wall time per epoch."""
import numpy as np

import fastconv

from ..losses import SoftmaxCrossEntropy
from ..models import DeepConvNet, DoubleConvNet, SimpleConvNet
from ..optim import Adam
from ..trainer import Trainer
from ._common import epoch_axis, legend_outside

TITLE = "Textbook conv nets: accuracy and time per epoch (Adam lr 0.001, batch 100)"
LESSON = ("Convolutions share their weights across positions, so parameters and computation part ways: "
          "DeepConvNet (six 3x3 convolutions) has less than a third of SimpleConvNet's parameters -- most of "
          "those sit in SimpleConvNet's first affine layer -- but costs several times more computation per epoch. With dropout "
          "0.5 (even on its logits) it also starts slower and its training accuracy lags its test accuracy; it "
          "needs more epochs to pay off (the book reports 99.4% on MNIST after 20 epochs).")

NETS = {"SimpleConvNet": SimpleConvNet, "DoubleConvNet": DoubleConvNet, "DeepConvNet": DeepConvNet}
EPOCHS = {"full": 10, "quick": 5, "tiny": 6}
SIZES = {"full": (None, None), "quick": (5000, 1000), "tiny": (None, None)}


def run(ctx):
    n_train, n_test = ctx.pick(SIZES)
    (x, t), (xt, tt) = ctx.data(n_train=n_train, n_test=n_test)
    epochs = ctx.n_epochs(EPOCHS)
    runs = {}
    for name, make in NETS.items():
        model = make(x.shape[1:], seed=ctx.seed)
        trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=0.001), seed=ctx.seed,
                          progress=False)
        history = trainer.fit(x, t, epochs=epochs, batch_size=100, validation_data=(xt, tt))
        runs[name] = {"parameters": model.num_parameters(), "train_accuracy": history["accuracy"],
                      "test_accuracy": history["val_accuracy"], "epoch_time_s": history["time"],
                      "mean_epoch_time_s": float(np.mean(history["time"]))}
    return {"data": ctx.describe_data((x, t), (xt, tt)), "epochs": epochs,
            "threads": fastconv.get_num_threads(), "runs": runs}


def report(result):
    lines = [f"{'net':<15}{'parameters':>12}{'test acc':>10}{'s/epoch':>10}"]
    for name, r in result["runs"].items():
        lines.append(f"{name:<15}{r['parameters']:>12,}{r['test_accuracy'][-1]:>10.3f}{r['mean_epoch_time_s']:>10.2f}")
    lines.append(f"(times with {result['threads']} fastconv thread(s); they include the per-epoch test evaluation)")
    return lines


def plot(result, plt):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, r in result["runs"].items():
        epochs = np.arange(1, len(r["test_accuracy"]) + 1)
        ax1.plot(epochs, r["test_accuracy"], "o-", label=f"{name} test")
        ax1.plot(epochs, r["train_accuracy"], ":", color=ax1.lines[-1].get_color(), label=f"{name} train")
    ax1.set(ylabel="accuracy", title="accuracy")
    epoch_axis(ax1)
    legend_outside(ax1)
    names = list(result["runs"])
    ax2.bar(names, [result["runs"][n]["mean_epoch_time_s"] for n in names])
    ax2.set(xlabel="network", ylabel="seconds per epoch", title=f"time per epoch ({result['threads']} thread(s))")
    fig.suptitle(TITLE + f" -- {result['data']}", fontsize=10)
    return fig
