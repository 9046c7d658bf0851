"""Programs that tests/test_distributed.py starts under ``mpiexec -n N`` (one scenario per sub-command).

Each writes what the test checks to the ``.npz`` / ``.json`` path it is given (rank 0 only), or fails in the
way the fault tests expect. Not a test module itself (no ``test_`` prefix).
"""
import argparse
import json
import os
import signal
import sys

import numpy as np

import dl2
from dl2 import distributed

SAMPLES = 200        # digits used for training: 6 full batches of 32 and a short one of 8


def digits(dtype):
    (x, t), _ = dl2.data.load_dataset("digits")
    return x[:SAMPLES].astype(dtype), t[:SAMPLES]


def model(kind, dtype, seed, hidden=16):
    """``mlp``: no dropout, no batch norm; ``bn``: a convolution, batch norm, a linear layer."""
    if kind == "mlp":
        layers = [dl2.Flatten(), dl2.Linear(hidden), dl2.Tanh(), dl2.Linear(10)]
    else:
        layers = [dl2.Conv2D(4, 3, padding=1), dl2.BatchNorm2D(), dl2.ReLU(), dl2.MaxPool2D(2), dl2.Flatten(),
                  dl2.Linear(hidden), dl2.BatchNorm1D(), dl2.ReLU(), dl2.Linear(10)]
    return dl2.Sequential(*layers, input_shape=(1, 8, 8), dtype=dtype, seed=seed)


def train(args):
    """Train ``args.epochs`` epochs; rank 0 writes the final state, the history and the evaluation."""
    dtype = np.dtype(args.dtype)
    x, t = digits(dtype)
    net = model(args.model, dtype, seed=distributed.world().rank + 1)   # different on every rank at first
    if args.sync_bn:
        dl2.convert_sync_batchnorm(net)
    opt = dl2.optim.Momentum(net.parameters(), lr=0.05)
    parallel = args.parallel
    if args.bucket_bytes or args.no_overlap:
        parallel = distributed.DataParallel(net, bucket_bytes=args.bucket_bytes or distributed.DEFAULT_BUCKET_BYTES,
                                            overlap=not args.no_overlap)
    trainer = dl2.Trainer(net, dl2.SoftmaxCrossEntropy(), opt, seed=distributed.world().rank, progress=False,
                          data_parallel=parallel)
    history = trainer.fit(x, t, epochs=args.epochs, batch_size=args.batch_size, validation_data=(x[:50], t[:50]))
    result = trainer.evaluate(x, t, batch_size=37)
    if distributed.world().is_root:
        np.savez(args.out, **net.state_dict())
        with open(args.out + ".json", "w") as f:
            json.dump({"history": history, "evaluate": result, "threads": __import__("fastconv").get_num_threads(),
                       "stats": getattr(trainer.parallel, "stats", {})}, f)


def sync_bn_layer(args):
    """SyncBatchNorm forward/backward on this rank's slice of one float64 batch, gathered on rank 0."""
    w = distributed.world()
    rng = np.random.default_rng(0)
    shape = (args.batch_size, 3, 4, 5) if args.layout == "2d" else (args.batch_size, 6)
    x = rng.normal(2.0, 3.0, size=shape)
    dy_global = rng.normal(size=shape)       # gradient of the global loss wrt the output
    gamma = rng.normal(size=shape[1])
    lo, hi = distributed.slice_bounds(len(x), w.size, w.rank)
    share = (hi - lo) / len(x)
    layer = dl2.SyncBatchNorm()
    layer.build(shape[1:], np.float64)
    layer.gamma.data[...] = gamma
    y = layer.forward(x[lo:hi])
    dx = layer.backward(dy_global[lo:hi] / share)         # this rank's units: d(its own mean loss)/dy
    grads = w.sum(np.concatenate([layer.gamma.grad, layer.beta.grad]) * share)
    parts = w.gather((y, dx * share))
    if w.is_root:
        np.savez(args.out, x=x, dy=dy_global, gamma=gamma, y=np.concatenate([p[0] for p in parts]),
                 dx=np.concatenate([p[1] for p in parts]), dgamma=grads[:shape[1]], dbeta=grads[shape[1]:],
                 running_mean=layer.running_mean, running_var=layer.running_var)


def randomness(args):
    """Dropout masks after the start-up (same seed everywhere) and the batch sizes the augmentation sees."""
    w = distributed.world()
    net = dl2.Sequential(dl2.Flatten(), dl2.Dropout(0.5), dl2.Linear(10), input_shape=(1, 8, 8), seed=0)
    seen = []

    def transform(xb):
        seen.append(len(xb))
        return xb

    x, t = digits(np.float32)
    trainer = dl2.Trainer(net, dl2.SoftmaxCrossEntropy(), dl2.optim.SGD(net.parameters(), lr=0.1), progress=False)
    trainer.fit(x, t, epochs=1, batch_size=32, transform=transform)
    mask = net.layers[1].train().forward(np.ones((4, 64), np.float32)) == 0
    masks, sizes = w.gather(mask.tolist()), w.gather(seen)
    if w.is_root:
        with open(args.out, "w") as f:
            json.dump({"masks": masks, "sizes": sizes}, f)


class _Fault(dl2.callbacks.Callback):
    def __init__(self, rank, how):
        self.rank, self.how = rank, how

    def on_batch_end(self, trainer, batch, logs):
        if batch == 2 and distributed.world().rank == self.rank:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"injected failure on rank {self.rank}")


def fault(args):
    """Rank ``args.rank`` fails at its third step (an exception, or SIGKILL); the others keep training."""
    x, t = digits(np.float32)
    net = model("mlp", np.float32, seed=0)
    trainer = dl2.Trainer(net, dl2.SoftmaxCrossEntropy(), dl2.optim.SGD(net.parameters(), lr=0.1),
                          progress=False, callbacks=[_Fault(args.rank, args.how)])
    trainer.fit(x, t, epochs=1000, batch_size=8)


def mismatch(args):
    """Rank 1 builds a wider hidden layer (``model``) or has fewer samples (``data``): the Trainer must refuse
    at start-up on every rank."""
    odd = distributed.world().rank == 1
    net = model("mlp", np.float32, seed=0, hidden=16 + 8 * (odd and args.what == "model"))
    trainer = dl2.Trainer(net, dl2.SoftmaxCrossEntropy(), dl2.optim.SGD(net.parameters(), lr=0.1), progress=False)
    x, t = digits(np.float32)
    n = len(x) - 10 * (odd and args.what == "data")
    trainer.fit(x[:n], t[:n], epochs=1, batch_size=32)


def main(argv=None):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("--model", choices=("mlp", "bn"), default="mlp")
    tr.add_argument("--dtype", default="float64")
    tr.add_argument("--epochs", type=int, default=1)
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--sync-bn", action="store_true")
    tr.add_argument("--parallel", default="auto", type=lambda s: {"true": True, "false": False}.get(s, s))
    tr.add_argument("--bucket-bytes", type=int, default=0, help="build the DataParallel with this bucket size")
    tr.add_argument("--no-overlap", action="store_true", help="build the DataParallel with overlap=False")
    tr.add_argument("out")
    bn = sub.add_parser("sync-bn-layer")
    bn.add_argument("--layout", choices=("1d", "2d"), default="2d")
    bn.add_argument("--batch-size", type=int, default=11)
    bn.add_argument("out")
    fa = sub.add_parser("fault")
    fa.add_argument("--rank", type=int, default=1)
    fa.add_argument("--how", choices=("raise", "kill"), default="raise")
    ra = sub.add_parser("randomness")
    ra.add_argument("out")
    mi = sub.add_parser("mismatch")
    mi.add_argument("--what", choices=("model", "data"), default="model")
    args = p.parse_args(argv)
    {"train": train, "sync-bn-layer": sync_bn_layer, "fault": fault, "mismatch": mismatch,
     "randomness": randomness}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
