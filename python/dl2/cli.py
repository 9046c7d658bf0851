"""The ``dl2`` command (also ``python -m dl2``).

::

    dl2 train [--model cnn] [--dataset digits] [--epochs 15] [--batch-size 32] [--optimizer adam] [--lr 0.01]
              [--weight-decay 0] [--seed 0] [--save PATH] [--plot PATH] [--data-dir DIR] ...
    dl2 eval --model PATH [--dataset digits] [--data-dir DIR]
    dl2 info
    dl2 export --model PATH --out model.onnx [--opset 17] [--keep-aux]

``train`` holds out ``--val-split`` of the training set for validation, prints a per-epoch table and ends with
the line ``test accuracy: 0.XXXX``. Models are looked up in :data:`MODELS` (``cnn``, ``mlp``), then in the model
zoo ``dl2.models`` when it exists (e.g. ``lenet5`` for ``LeNet5``). Errors print one line and exit non-zero
(set ``DL2_DEBUG=1`` for the traceback).
"""
import argparse
import importlib
import inspect
import os
import sys

import numpy as np

__all__ = ["main", "MODELS", "register_model", "get_model", "OPTIMIZERS", "DEFAULT_LR"]


# --------------------------------------------------------------------- models
def cnn(input_shape, num_classes=10, seed=None):
    """Conv(16, 3x3, pad 1) -> BN -> ReLU -> MaxPool 2 -> Conv(32, 3x3, pad 1) -> BN -> ReLU -> MaxPool 2
    -> Flatten -> Linear(num_classes). For ``(C, H, W)`` images with ``H, W >= 4`` (8x8 digits, 28x28 MNIST)."""
    from .containers import Sequential
    from .layers import BatchNorm2D, Conv2D, Flatten, Linear, MaxPool2D, ReLU
    return Sequential(Conv2D(16, 3, padding=1), BatchNorm2D(), ReLU(), MaxPool2D(2),
                      Conv2D(32, 3, padding=1), BatchNorm2D(), ReLU(), MaxPool2D(2),
                      Flatten(), Linear(num_classes), input_shape=input_shape, seed=seed)


def mlp(input_shape, num_classes=10, seed=None):
    """Flatten -> Linear(128) -> ReLU -> Linear(64) -> ReLU -> Linear(num_classes)."""
    from .containers import Sequential
    from .layers import Flatten, Linear, ReLU
    return Sequential(Flatten(), Linear(128), ReLU(), Linear(64), ReLU(), Linear(num_classes),
                      input_shape=input_shape, seed=seed)


#: Built-in models by name: ``factory(input_shape, num_classes, seed) -> built model``.
MODELS = {"cnn": cnn, "mlp": mlp}


def register_model(name, factory):
    """Make ``factory(input_shape, num_classes, seed)`` available as ``dl2 train --model name``."""
    MODELS[name.lower()] = factory
    return factory


def _normal(name):
    return name.lower().replace("_", "").replace("-", "")


def _zoo():
    try:
        return importlib.import_module("dl2.models")
    except ModuleNotFoundError as e:
        if e.name in ("dl2.models",):
            return None
        raise


def _zoo_factories(zoo):
    """``{normalised name: (name, constructor)}`` of the model zoo: its registry dict (``REGISTRY`` or
    ``MODELS``) when it has one, else its public functions and classes."""
    out = {}
    for attr in ("REGISTRY", "MODELS"):
        table = getattr(zoo, attr, None)
        if isinstance(table, dict):
            for k, v in table.items():
                if callable(v):
                    out[_normal(k)] = (k, v)
                    out.setdefault(_normal(getattr(v, "__name__", k)), (k, v))
            return out
    for n in getattr(zoo, "__all__", None) or dir(zoo):
        v = getattr(zoo, n, None)
        if not n.startswith("_") and n not in ("get", "names") and callable(v) and not inspect.ismodule(v):
            out[_normal(n)] = (n, v)
    return out


def model_names():
    names = list(MODELS)
    zoo = _zoo()
    if zoo is not None:
        names += sorted({n for n, _ in _zoo_factories(zoo).values() if _normal(n) not in MODELS})
    return names


def get_model(name, input_shape, num_classes=10, seed=None):
    """A built model by name (built-in :data:`MODELS` first, then ``dl2.models``)."""
    key = _normal(name)
    builtin = {_normal(k): v for k, v in MODELS.items()}
    if key in builtin:
        factory = builtin[key]
    else:
        zoo = _zoo()
        found = _zoo_factories(zoo).get(key) if zoo is not None else None
        if found is None:
            raise ValueError(f"unknown model {name!r}; choose one of {', '.join(model_names())}")
        factory = found[1]
    params = inspect.signature(factory).parameters
    kwargs = {"input_shape": tuple(input_shape), "num_classes": num_classes, "seed": seed}
    if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    model = factory(**kwargs)
    if not model.built:
        model.build(tuple(input_shape), rng=np.random.default_rng(seed))
    if tuple(model.input_shape) != tuple(input_shape):
        raise ValueError(f"model {name!r} was built for inputs {tuple(model.input_shape)}, the data has "
                         f"{tuple(input_shape)}")
    return model


# --------------------------------------------------------------------- optimizers
OPTIMIZERS = {"sgd": "SGD", "momentum": "Momentum", "nesterov": "Nesterov", "adagrad": "AdaGrad",
              "rmsprop": "RMSProp", "adam": "Adam"}
#: Learning rate used when ``--lr`` is not given.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.02, "nesterov": 0.02, "adagrad": 0.05, "rmsprop": 0.001, "adam": 0.01}


def make_optimizer(name, params, lr=None, weight_decay=0.0):
    from . import optim
    cls = getattr(optim, OPTIMIZERS[name])
    return cls(params, lr=DEFAULT_LR[name] if lr is None else lr, weight_decay=weight_decay)


# --------------------------------------------------------------------- argument parsing
class CLIError(Exception):
    """An error reported as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _float_in(lo, hi, lo_open=False, hi_open=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        bad = (value <= lo if lo_open else value < lo) or (value >= hi if hi_open else value > hi)
        if bad or value != value:
            raise argparse.ArgumentTypeError(
                f"expected a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}, got {text!r}")
        return value
    return parse


DATASETS = ("digits", "mnist", "fashion-mnist")


def _parser():
    parser = _Parser(prog="dl2", description="Train and evaluate dl2 models.")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,info,export}")
    sub.required = True

    tr = sub.add_parser("train", help="train a model and report its test accuracy")
    tr.add_argument("--model", default="cnn", help="model name (default: cnn; also: mlp and the dl2.models zoo)")
    tr.add_argument("--dataset", default="digits", choices=DATASETS, help="default: digits (embedded, 8x8)")
    tr.add_argument("--epochs", type=_positive_int, default=15, help="default: 15")
    tr.add_argument("--batch-size", type=_positive_int, default=32, help="default: 32")
    tr.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS), help="default: adam")
    tr.add_argument("--lr", type=_float_in(0, float("inf"), lo_open=True, hi_open=True), default=None,
                    help="learning rate (default per optimizer: "
                         + ", ".join(f"{k} {v}" for k, v in DEFAULT_LR.items()) + ")")
    tr.add_argument("--weight-decay", type=_float_in(0, float("inf"), hi_open=True), default=0.0,
                    help="L2 coefficient (default: 0)")
    tr.add_argument("--seed", type=int, default=0, help="seeds initialisation, shuffling and the split (default: 0)")
    tr.add_argument("--val-split", type=_float_in(0, 1, hi_open=True), default=0.1,
                    help="fraction of the training set held out for validation (default: 0.1)")
    tr.add_argument("--save", metavar="PATH", help="save the trained model (.npz)")
    tr.add_argument("--plot", metavar="PATH", help="write loss/accuracy curves as a PNG (needs matplotlib)")
    tr.add_argument("--data-dir", metavar="DIR", help="directory of the MNIST / Fashion-MNIST IDX files")
    tr.add_argument("--checkpoint", metavar="PATH", help="write a checkpoint after every epoch")
    tr.add_argument("--resume", metavar="PATH", help="continue from a checkpoint")
    tr.add_argument("--threads", type=_positive_int, default=None, help="fastconv threads (default: all cores)")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")

    ev = sub.add_parser("eval", help="print the test accuracy of a saved model")
    ev.add_argument("--model", required=True, metavar="PATH", help="a model saved by 'dl2 train --save'")
    ev.add_argument("--dataset", default="digits", choices=DATASETS, help="default: digits")
    ev.add_argument("--data-dir", metavar="DIR", help="directory of the MNIST / Fashion-MNIST IDX files")
    ev.add_argument("--batch-size", type=_positive_int, default=256, help="default: 256")
    ev.add_argument("--threads", type=_positive_int, default=None, help="fastconv threads")

    sub.add_parser("info", help="print the fastconv build configuration")

    ex = sub.add_parser("export", help="write a saved model as an ONNX file (needs the onnx package)")
    ex.add_argument("--model", required=True, metavar="PATH", help="a model saved by 'dl2 train --save'")
    ex.add_argument("--out", required=True, metavar="PATH", help="the .onnx file to write")
    ex.add_argument("--opset", type=_positive_int, default=None, help="ONNX opset (default: dl2.onnx.DEFAULT_OPSET)")
    ex.add_argument("--keep-aux", action="store_true", help="keep auxiliary heads as further graph outputs")
    return parser


# --------------------------------------------------------------------- commands
def _load_data(name, data_dir):
    """``(x, t), (x_test, t_test)``; the digits' train/test split is always the same (its seed 0)."""
    from .data import load_dataset
    if name == "digits":
        if data_dir is not None:
            raise CLIError("--data-dir does not apply to the embedded digits dataset")
        return load_dataset("digits")
    if data_dir is not None and not os.path.isdir(data_dir):
        raise CLIError(f"--data-dir {data_dir}: no such directory")
    return load_dataset(name, path=data_dir)


def _set_threads(n):
    if n is not None:
        import fastconv
        fastconv.set_num_threads(n)


def _epoch_table(out):
    from .callbacks import Callback

    class EpochTable(Callback):
        def on_train_begin(self, trainer):
            val = trainer.has_validation
            cols = ["epoch", "loss", "acc"] + (["val_loss", "val_acc"] if val else []) + ["sec"]
            print("  ".join(f"{c:>8}" for c in cols), file=out, flush=True)

        def on_epoch_end(self, trainer, epoch, logs):
            cells = [f"{epoch + 1:>8d}", f"{logs['loss']:>8.4f}", f"{logs['accuracy']:>8.4f}"]
            if "val_loss" in logs:
                cells += [f"{logs['val_loss']:>8.4f}", f"{logs['val_accuracy']:>8.4f}"]
            cells.append(f"{logs['time']:>8.1f}")
            print("  ".join(cells), file=out, flush=True)

    return EpochTable()


def _check_matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise CLIError("--plot needs matplotlib, which is not installed (pip install matplotlib)") from None
    matplotlib.use("Agg")


def _plot(history, path, title):
    import matplotlib.pyplot as plt
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax1, "loss", "loss"), (ax2, "accuracy", "accuracy")):
        ax.plot(epochs, history[key], "o-", label=f"train {label}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "s-", label=f"validation {label}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def cmd_train(args, out):
    from .losses import SoftmaxCrossEntropy
    from .serialization import save
    from .trainer import Trainer

    if args.plot:
        _check_matplotlib()
    for opt in ("save", "plot", "checkpoint"):
        path = getattr(args, opt)
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise CLIError(f"--{opt} {path}: directory {os.path.dirname(os.path.abspath(path))} does not exist")
    if args.resume and not os.path.exists(args.resume):
        raise CLIError(f"--resume {args.resume}: no such file")
    _set_threads(args.threads)
    (x, t), (xt, tt) = _load_data(args.dataset, args.data_dir)
    num_classes = int(max(t.max(), tt.max())) + 1
    order = np.random.default_rng(args.seed).permutation(len(x))
    n_val = int(round(args.val_split * len(x)))
    if len(x) - n_val < 1:
        raise CLIError(f"--val-split {args.val_split} leaves no training samples")
    train_idx, val_idx = order[n_val:], order[:n_val]
    validation = (x[val_idx], t[val_idx]) if n_val else None

    model = get_model(args.model, x.shape[1:], num_classes, args.seed)
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr, args.weight_decay)
    print(f"model {args.model} ({model.num_parameters():,} parameters), dataset {args.dataset} "
          f"({len(train_idx)} train, {n_val} validation, {len(xt)} test), optimizer {args.optimizer} "
          f"lr {optimizer.lr:g}", file=out, flush=True)
    trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer, seed=args.seed,
                      progress=False if args.no_progress else "bar", callbacks=[_epoch_table(out)])
    history = trainer.fit(x[train_idx], t[train_idx], epochs=args.epochs, batch_size=args.batch_size,
                          validation_data=validation, checkpoint=args.checkpoint, resume=args.resume)
    print(f"training time: {sum(history['time']):.1f} s", file=out)
    if args.save:
        save(model, args.save)
        print(f"saved model to {args.save}", file=out)
    if args.plot:
        _plot(history, args.plot, f"{args.model} on {args.dataset}")
        print(f"wrote plot to {args.plot}", file=out)
    result = trainer.evaluate(xt, tt, batch_size=256)
    print(f"test loss: {result['loss']:.4f}", file=out)
    print(f"test accuracy: {result['accuracy']:.4f}", file=out, flush=True)
    return 0


def cmd_eval(args, out):
    from .losses import SoftmaxCrossEntropy
    from .serialization import load
    from .trainer import Trainer

    if not os.path.exists(args.model):
        raise CLIError(f"--model {args.model}: no such file")
    _set_threads(args.threads)
    model = load(args.model)
    _, (xt, tt) = _load_data(args.dataset, args.data_dir)
    if tuple(xt.shape[1:]) != tuple(model.input_shape):
        raise CLIError(f"the model expects inputs of shape {tuple(model.input_shape)} but {args.dataset} images "
                       f"are {tuple(xt.shape[1:])}")
    trainer = Trainer(model, SoftmaxCrossEntropy(), optimizer=None, progress=False)
    result = trainer.evaluate(xt, tt, batch_size=args.batch_size)
    print(f"model {args.model}: {model.num_parameters():,} parameters, {len(xt)} {args.dataset} test images",
          file=out)
    print(f"test loss: {result['loss']:.4f}", file=out)
    print(f"test accuracy: {result['accuracy']:.4f}", file=out, flush=True)
    return 0


def cmd_info(args, out):
    import contextlib

    import fastconv
    from . import __version__
    print(f"dl2 {__version__}", file=out)
    with contextlib.redirect_stdout(out):
        fastconv.show_config()
    print(f"models: {', '.join(model_names())}", file=out)
    return 0


def cmd_export(args, out):
    from .serialization import load
    if not os.path.exists(args.model):
        raise CLIError(f"--model {args.model}: no such file")
    try:
        from . import onnx as dl2_onnx
    except ImportError as e:
        raise CLIError(str(e)) from None
    model = load(args.model)
    opset = dl2_onnx.DEFAULT_OPSET if args.opset is None else args.opset
    dl2_onnx.export(model, args.out, opset=opset, keep_aux=args.keep_aux)
    print(f"wrote {args.out}: ONNX opset {opset}, input (N, {', '.join(map(str, model.input_shape))}) "
          f"{model.dtype}, {model.num_parameters():,} parameters", file=out)
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "info": cmd_info, "export": cmd_export}


def main(argv=None):
    """Run the ``dl2`` command; returns the exit status (0 on success)."""
    args = _parser().parse_args(argv)
    out = sys.stdout
    try:
        return COMMANDS[args.command](args, out)
    except KeyboardInterrupt:
        print("dl2: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, KeyError, OSError, RuntimeError, FloatingPointError) as e:
        if os.environ.get("DL2_DEBUG"):
            raise
        message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        message = " ".join(message.split()) or type(e).__name__
        print(f"dl2: error: {message}", file=sys.stderr)
        return 1
