"""SGD, Momentum, Nesterov, AdaGrad, RMSProp and Adam on the same MLP (4 hidden layers of 100, ReLU, He) and the
same mini-batches ("Deep Learning from Scratch" ch. 6.1; Kingma & Ba 2015 for Adam)."""
import numpy as np

from .. import optim
from ..callbacks import LambdaCallback
from ..losses import SoftmaxCrossEntropy
from ..models import MLP
from ..trainer import Trainer
from ._common import smooth

TITLE = "Optimizers on the same network and mini-batches"
LESSON = ("Plain SGD with a fixed step is the slowest; momentum (and Nesterov's look-ahead) accumulates a velocity "
          "along consistent directions; AdaGrad, RMSProp and Adam scale each parameter's step by its gradient "
          "history, so they make fast progress from the very first iterations with little tuning.")

#: name -> (class name, learning rate): the book's choices (Adam/RMSProp 0.001, the others 0.01).
OPTIMIZERS = {"SGD": ("SGD", 0.01), "Momentum": ("Momentum", 0.01), "Nesterov": ("Nesterov", 0.01),
              "AdaGrad": ("AdaGrad", 0.01), "RMSProp": ("RMSProp", 0.001), "Adam": ("Adam", 0.001)}
ITERATIONS = {"full": 2000, "quick": 1000, "tiny": 150}
BATCH = 128


def run(ctx):
    (x, t), (xt, tt) = ctx.data(flatten=True)
    iterations = ctx.pick(ITERATIONS) if ctx.epochs is None else None
    batches_per_epoch = -(-len(x) // BATCH)
    epochs = ctx.epochs if ctx.epochs is not None else -(-iterations // batches_per_epoch)
    runs = {}
    for name, (cls, lr) in OPTIMIZERS.items():
        model = MLP((x.shape[1],), hidden_sizes=(100,) * 4, seed=ctx.seed)       # same initial weights for all
        losses = []
        trainer = Trainer(model, SoftmaxCrossEntropy(), getattr(optim, cls)(model.parameters(), lr=lr),
                          seed=ctx.seed, progress=False,                         # same batch order for all
                          callbacks=[LambdaCallback(on_batch_end=lambda tr, b, logs: losses.append(logs["loss"]))])
        trainer.fit(x, t, epochs=epochs, batch_size=BATCH)
        if iterations is not None:
            losses = losses[:iterations]
        runs[name] = {"lr": lr, "loss": losses, "test_accuracy": trainer.evaluate(xt, tt)["accuracy"],
                      "final_loss": float(np.mean(losses[-max(1, len(losses) // 10):]))}
    return {"data": ctx.describe_data((x, t), (xt, tt)), "iterations": len(losses), "batch_size": BATCH,
            "runs": runs}


def report(result):
    lines = [f"{'optimizer':<10}{'lr':>8}{'loss (last 10%)':>18}{'test acc':>10}"]
    for name, r in sorted(result["runs"].items(), key=lambda kv: kv[1]["final_loss"]):
        lines.append(f"{name:<10}{r['lr']:>8g}{r['final_loss']:>18.4f}{r['test_accuracy']:>10.3f}")
    return lines


def plot(result, plt):
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, r in result["runs"].items():
        ax.plot(np.arange(1, len(r["loss"]) + 1), smooth(r["loss"], 20), label=f"{name} (lr {r['lr']:g})")
    ax.set(xlabel="iteration", ylabel="training loss (moving average of 20)", yscale="log",
           title=TITLE + f"\n{result['data']}")
    ax.legend()
    return fig
