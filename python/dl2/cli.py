"""The ``dl2`` command (also ``python -m dl2``).

::

    dl2 train [--model cnn] [--model-args JSON] [--dataset digits] [--epochs 30] [--batch-size 32]
              [--optimizer adam] [--lr LR] [--momentum M] [--weight-decay L2] [--decoupled-weight-decay]
              [--schedule constant|step|cosine|onecycle] [--lr-step epoch|batch] [--warmup EPOCHS] [--ema DECAY]
              [--augment flip,crop,erase] [--label-smoothing E] [--input-shape C,H,W]
              [--test-each-epoch] [--targets 0.93,0.94] [--tta flip] ...
    dl2 eval --model PATH [--dataset digits] [--data-dir DIR] [--tta flip]
    dl2 info
    dl2 --version
    dl2 export --model PATH --out model.onnx [--opset 17] [--keep-aux]

``train`` holds out ``--val-split`` of the training set for validation, prints a per-epoch table and ends with
the line ``test accuracy: 0.XXXX``; with ``--test-each-epoch`` it also evaluates the test set after every epoch
and reports the wall time (from the start of the command, data loading included) at which each ``--targets``
accuracy was first reached, DAWNBench style. Models are looked up in the model zoo's registry, ``dl2.models.REGISTRY``
(``cnn``, ``mlp``, ``lenet5``, ``resnet``...); ``--model-args`` passes constructor arguments. Errors print one line
and exit non-zero (set ``DL2_DEBUG=1`` for the traceback).
"""
import argparse
import inspect
import json
import os
import sys
import time

import numpy as np

__all__ = ["main", "get_model", "make_optimizer", "make_schedule", "make_augmentation", "OPTIMIZERS"]


class CLIError(Exception):
    """An error reported as one line, exit status 1."""


_started = None     # time.perf_counter() when main() began: a command's wall time counts from there


# --------------------------------------------------------------------- models
def model_names():
    from . import models
    return models.names()


def get_model(name, input_shape, num_classes=10, seed=None, model_args=None):
    """A built model of the zoo (``dl2.models.get``) for ``input_shape``; ``model_args``: constructor arguments."""
    from . import models
    model = models.get(name, tuple(input_shape), num_classes, seed=seed, **(model_args or {}))
    if tuple(model.input_shape) != tuple(input_shape):
        raise CLIError(f"model {name!r} was built for inputs {tuple(model.input_shape)}, the data has "
                       f"{tuple(input_shape)}")
    return model


# --------------------------------------------------------------------- optimizers, schedules, augmentation
OPTIMIZERS = {"sgd": "SGD", "momentum": "Momentum", "nesterov": "Nesterov", "adagrad": "AdaGrad",
              "rmsprop": "RMSProp", "adam": "Adam"}


def _optimizer_class(name):
    from . import optim
    return getattr(optim, OPTIMIZERS[name])


def _default_lr(name):
    return inspect.signature(_optimizer_class(name).__init__).parameters["lr"].default


def make_optimizer(name, params, lr=None, weight_decay=0.0, momentum=None, decoupled_weight_decay=False):
    """The optimizer ``name`` (a key of :data:`OPTIMIZERS`); ``lr=None`` is the optimizer's own default."""
    if decoupled_weight_decay and not weight_decay:
        raise CLIError("--decoupled-weight-decay needs a --weight-decay above 0")
    kwargs = {"weight_decay": weight_decay, "decoupled_weight_decay": decoupled_weight_decay}
    if lr is not None:
        kwargs["lr"] = lr
    if momentum is not None:
        if name not in ("momentum", "nesterov"):
            raise CLIError(f"--momentum applies to --optimizer momentum or nesterov, not {name}")
        kwargs["momentum"] = momentum
    return _optimizer_class(name)(params, **kwargs)


SCHEDULES = ("constant", "step", "cosine", "onecycle")


def steps_per_epoch(n_train, batch_size, ranks=1):
    """Optimizer steps in an epoch of ``n_train`` samples: ``ceil(n_train / batch_size)``; with several MPI ranks
    (``batch_size`` the global batch) a last batch smaller than ``ranks`` is skipped, as dl2.distributed does."""
    return n_train // batch_size + (1 if n_train % batch_size >= ranks else 0)


def make_schedule(name, optimizer, epochs, warmup=0, step_size=None, gamma=0.1, interval=None, batches=1):
    """A learning-rate schedule over ``epochs`` epochs, after ``warmup`` epochs of linear warm-up (None for a
    constant rate without warm-up). ``step``: times ``gamma`` every ``step_size`` epochs (default a third of the
    epochs after warm-up); ``cosine``: from the lr down to 0 at the last epoch; ``onecycle``: :class:`OneCycleLR`
    over all the steps (always per batch, its own warm-up). ``interval``: ``"epoch"`` or ``"batch"`` (default:
    batch for onecycle, else epoch); per batch, with ``batches`` steps per epoch, ``warmup`` may be fractional and
    every length is converted to steps."""
    from . import optim
    if interval is None:
        interval = "batch" if name == "onecycle" else "epoch"
    if name == "onecycle":
        if interval != "batch":
            raise CLIError("--schedule onecycle is stepped per batch: --lr-step epoch does not apply to it")
        if warmup:
            raise CLIError("--warmup does not apply to --schedule onecycle (its lr rises over its first quarter)")
        return optim.OneCycleLR(optimizer, total_steps=epochs * batches)
    if warmup >= epochs:
        raise CLIError(f"--warmup {warmup:g} must be smaller than --epochs {epochs}")
    if interval == "epoch" and warmup != int(warmup):
        raise CLIError(f"--warmup {warmup:g}: a fractional number of warm-up epochs needs --lr-step batch")
    unit = batches if interval == "batch" else 1
    warmup = max(1, round(warmup * unit)) if warmup else 0
    rest = epochs * unit - warmup
    if name == "constant":
        return optim.ConstantLR(optimizer, warmup=warmup, interval=interval) if warmup else None
    if name == "step":
        return optim.StepLR(optimizer, step_size * unit if step_size else max(1, rest // 3), gamma, warmup=warmup,
                            interval=interval)
    return optim.CosineLR(optimizer, t_max=rest, warmup=warmup, interval=interval)


AUGMENTATIONS = ("flip", "crop", "erase")


def make_augmentation(names, crop_padding=2, seed=0, erase_prob=0.5):
    """A batch transform from ``names`` (``flip``: random horizontal flips; ``crop``: zero-pad by ``crop_padding``
    and crop back at a random offset; ``erase``: random erasing with probability ``erase_prob``, last), or None.
    Their generators are seeded ``seed``, ``seed + 1`` and ``seed + 2``."""
    from .data import augment
    steps = []
    if "flip" in names:
        steps.append(augment.RandomHorizontalFlip(seed=seed))
    if "crop" in names:
        steps.append(augment.RandomCrop(padding=crop_padding, seed=seed + 1))
    if "erase" in names:
        steps.append(augment.RandomErasing(p=erase_prob, seed=seed + 2))
    return augment.Compose(steps) if steps else None


def fit_input_shape(x, shape, what):
    """``x (N, ...)`` with per-sample ``shape``: reshaped when the sizes agree, else images zero-padded (centred) to
    a larger height and width."""
    if int(np.prod(shape)) == int(np.prod(x.shape[1:])):
        return x.reshape((len(x),) + tuple(shape))
    if len(shape) == 3 and x.ndim == 4 and shape[0] == x.shape[1] and shape[1] >= x.shape[2] and \
            shape[2] >= x.shape[3]:
        dh, dw = shape[1] - x.shape[2], shape[2] - x.shape[3]
        return np.pad(x, ((0, 0), (0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)))
    raise CLIError(f"--input-shape {','.join(map(str, shape))}: cannot reshape or pad {what} samples of shape "
                   f"{tuple(x.shape[1:])} to it")


# --------------------------------------------------------------------- argument parsing
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


def _json_object(text):
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"depth\": 20}}', got {text!r}")
    return value


def _augment_list(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return []
    bad = [n for n in names if n not in AUGMENTATIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(AUGMENTATIONS)} "
                                         f"(or none), got {text!r}")
    return names


def _targets(text):
    try:
        values = [float(s) for s in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected accuracies in (0, 1] separated by commas, got {text!r}")
    return sorted(values)


def _shape(text):
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas (C,H,W), got {text!r}")
    return shape


DATASETS = ("digits", "mnist", "fashion-mnist")


def _data_arguments(parser):
    parser.add_argument("--dataset", default="digits", choices=DATASETS, help="default: digits (embedded, 8x8)")
    parser.add_argument("--data-dir", metavar="DIR", help="directory of the MNIST / Fashion-MNIST IDX files")
    parser.add_argument("--download", action="store_true",
                        help="download missing MNIST / Fashion-MNIST files (needs a network connection)")
    parser.add_argument("--threads", type=_positive_int, default=None, help="fastconv threads (default: all cores)")


def _parser():
    from . import __version__
    parser = _Parser(prog="dl2", description="Train and evaluate dl2 models.")
    parser.add_argument("--version", action="version", version=f"dl2 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,info,export}")
    sub.required = True

    tr = sub.add_parser("train", help="train a model and report its test accuracy")
    tr.add_argument("--model", default="cnn", help="a name of dl2.models.REGISTRY (default: cnn; see dl2 info)")
    tr.add_argument("--model-args", type=_json_object, default={}, metavar="JSON",
                    help="constructor arguments as a JSON object, e.g. '{\"depth\": 11, \"batchnorm\": true}'")
    tr.add_argument("--input-shape", type=_shape, metavar="C,H,W",
                    help="reshape (same size) or zero-pad (larger images) the samples to this shape")
    _data_arguments(tr)
    tr.add_argument("--epochs", type=_positive_int, default=30, help="default: 30")
    tr.add_argument("--batch-size", type=_positive_int, default=32, help="default: 32")
    tr.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS), help="default: adam")
    tr.add_argument("--lr", type=_float_in(0, float("inf"), lo_open=True, hi_open=True), default=None,
                    help="learning rate (default: the optimizer's own, "
                         + ", ".join(f"{k} {_default_lr(k):g}" for k in OPTIMIZERS) + ")")
    tr.add_argument("--momentum", type=_float_in(0, 1, hi_open=True), default=None,
                    help="momentum coefficient of --optimizer momentum / nesterov (default: 0.9)")
    tr.add_argument("--weight-decay", type=_float_in(0, float("inf"), hi_open=True), default=0.0,
                    help="L2 coefficient (default: 0)")
    tr.add_argument("--decoupled-weight-decay", action="store_true",
                    help="apply --weight-decay as decoupled decay, w *= 1 - lr * weight_decay before each step, "
                         "instead of adding it to the gradient (with adam: AdamW)")
    tr.add_argument("--ema", type=_float_in(0, 1, lo_open=True, hi_open=True), default=None, metavar="DECAY",
                    help="keep an exponential moving average of the weights (e.g. 0.999): validation, the test "
                         "accuracy and --save use it (default: off)")
    tr.add_argument("--schedule", default="constant", choices=SCHEDULES,
                    help="learning-rate schedule: constant (default), step (x gamma every --step-size epochs), "
                         "cosine (down to 0 at the last epoch) or onecycle (up from lr/25 to lr over the first "
                         "quarter of the steps, then down to lr/250000; per batch)")
    tr.add_argument("--lr-step", choices=("epoch", "batch"), default=None,
                    help="update the schedule's lr after every epoch or every batch (default: epoch; onecycle "
                         "always per batch)")
    tr.add_argument("--step-size", type=_positive_int, default=None,
                    help="epochs between steps of --schedule step (default: a third of the epochs)")
    tr.add_argument("--gamma", type=_float_in(0, 1, lo_open=True, hi_open=True), default=0.1,
                    help="factor of each step of --schedule step (default: 0.1)")
    tr.add_argument("--warmup", type=_float_in(0, float("inf"), hi_open=True), default=0, metavar="EPOCHS",
                    help="epochs of linear learning-rate warm-up before the schedule, fractional with --lr-step "
                         "batch (default: 0)")
    tr.add_argument("--augment", type=_augment_list, default=[], metavar="LIST",
                    help="training-batch augmentation, comma-separated: flip (random horizontal flips), crop "
                         "(random crops after zero padding by --crop-padding), erase (random erasing of a "
                         "rectangle with probability --erase-prob) (default: none)")
    tr.add_argument("--crop-padding", type=_positive_int, default=2, help="pixels of padding for crop (default: 2)")
    tr.add_argument("--erase-prob", type=_float_in(0, 1), default=None,
                    help="probability that erase erases a rectangle of an image (default: 0.5)")
    tr.add_argument("--label-smoothing", type=_float_in(0, 1, hi_open=True), default=0.0,
                    help="label smoothing of the cross-entropy loss (default: 0)")
    tr.add_argument("--seed", type=int, default=0, help="seeds initialisation, shuffling, augmentation and the "
                                                        "validation split (default: 0)")
    tr.add_argument("--val-split", type=_float_in(0, 1, hi_open=True), default=0.1,
                    help="fraction of the training set held out for validation (default: 0.1)")
    tr.add_argument("--test-each-epoch", action="store_true",
                    help="evaluate the test set after every epoch (a test_acc column; test_loss, test_accuracy "
                         "and elapsed in the --json history) and report the time to each of --targets")
    tr.add_argument("--targets", type=_targets, default=None, metavar="ACC,ACC",
                    help="test accuracies whose time to reach is reported, with --test-each-epoch "
                         "(default: 0.93,0.94)")
    tr.add_argument("--tta", choices=("flip",), default=None,
                    help="test-time augmentation of the test evaluations: flip (average the outputs for each "
                         "image and its mirror)")
    tr.add_argument("--save", metavar="PATH", help="save the trained model (.npz)")
    tr.add_argument("--plot", metavar="PATH", help="write loss/accuracy curves as a PNG (needs matplotlib)")
    tr.add_argument("--json", metavar="PATH", help="write the run (arguments, history, test result) as JSON")
    tr.add_argument("--checkpoint", metavar="PATH", help="write a checkpoint after every epoch")
    tr.add_argument("--resume", metavar="PATH", help="continue from a checkpoint up to --epochs epochs in total")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.add_argument("--sync-bn", action="store_true",
                    help="under mpiexec: batch norm with the statistics of the global batch (SyncBatchNorm)")

    ev = sub.add_parser("eval", help="print the test accuracy of a saved model")
    ev.add_argument("--model", required=True, metavar="PATH", help="a model saved by 'dl2 train --save'")
    _data_arguments(ev)
    ev.add_argument("--batch-size", type=_positive_int, default=256, help="default: 256")
    ev.add_argument("--tta", choices=("flip",), default=None,
                    help="test-time augmentation: flip (average the outputs for each image and its mirror)")

    sub.add_parser("info", help="print the version, the fastconv build configuration and the model names")

    ex = sub.add_parser("export", help="write a saved model as an ONNX file (needs the onnx package)")
    ex.add_argument("--model", required=True, metavar="PATH", help="a model saved by 'dl2 train --save'")
    ex.add_argument("--out", required=True, metavar="PATH", help="the .onnx file to write")
    ex.add_argument("--opset", type=_positive_int, default=None, help="ONNX opset (default: dl2.onnx.DEFAULT_OPSET)")
    ex.add_argument("--keep-aux", action="store_true", help="keep auxiliary heads as further graph outputs")
    return parser


# --------------------------------------------------------------------- commands
def _load_data(args):
    """``(x, t), (x_test, t_test)``; the digits' train/test split is always the same (its seed 0)."""
    from .data import load_dataset
    if args.dataset == "digits":
        for option in ("data_dir", "download"):
            if getattr(args, option):
                raise CLIError(f"--{option.replace('_', '-')} does not apply to the embedded digits dataset")
        return load_dataset("digits")
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        raise CLIError(f"--data-dir {args.data_dir}: no such directory")
    return load_dataset(args.dataset, path=args.data_dir, download=args.download)


def _set_threads(n):
    if n is not None:
        import fastconv
        fastconv.set_num_threads(n)


def _epoch_table(out, test=False):
    """The per-epoch table; with ``test`` (per-epoch test evaluation) also ``test_acc`` and ``wall`` (seconds
    since the command started)."""
    from .callbacks import Callback

    class EpochTable(Callback):
        def on_train_begin(self, trainer):
            val = trainer.has_validation
            cols = (["epoch", "loss", "acc"] + (["val_loss", "val_acc"] if val else []) + (["test_acc"] if test else [])
                    + ["lr", "sec"] + (["wall"] if test else []))
            print("  ".join(f"{c:>8}" for c in cols), file=out, flush=True)

        def on_epoch_end(self, trainer, epoch, logs):
            cells = [f"{epoch + 1:>8d}", f"{logs['loss']:>8.4f}", f"{logs['accuracy']:>8.4f}"]
            if "val_loss" in logs:
                cells += [f"{logs['val_loss']:>8.4f}", f"{logs['val_accuracy']:>8.4f}"]
            if test:
                cells.append(f"{logs['test_accuracy']:>8.4f}")
            cells += [f"{logs['lr']:>8.2g}", f"{logs['time']:>8.1f}"]
            if test:
                cells.append(f"{logs['elapsed']:>8.1f}")
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

    from .experiments._common import epoch_axis, save_figure
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((ax1, "loss", "loss"), (ax2, "accuracy", "accuracy")):
        ax.plot(epochs, history[key], "o-", label=f"train {label}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "s-", label=f"validation {label}")
        epoch_axis(ax)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
    fig.suptitle(title)
    save_figure(fig, path)


def _check_paths(args):
    """Every output path's directory exists and every input file exists, before any training."""
    from .serialization import check_writable
    for option in ("save", "plot", "checkpoint", "json"):
        path = getattr(args, option)
        if path:
            try:
                check_writable(path, f"--{option}")
            except OSError as e:
                raise CLIError(str(e)) from None
    if args.resume and not os.path.isfile(args.resume):
        raise CLIError(f"--resume {args.resume}: no such file")


def cmd_train(args, out):
    from .callbacks import EvaluateEachEpoch
    from .distributed import world
    from .layers import convert_sync_batchnorm
    from .losses import SoftmaxCrossEntropy
    from .serialization import save
    from .trainer import Trainer

    ranks = world()
    if args.plot:
        _check_matplotlib()
    _check_paths(args)
    if args.step_size is not None and args.schedule != "step":
        raise CLIError("--step-size applies to --schedule step only")
    if args.erase_prob is not None and "erase" not in args.augment:
        raise CLIError("--erase-prob applies to --augment erase only")
    if args.targets is not None and not args.test_each_epoch:
        raise CLIError("--targets needs --test-each-epoch")
    _set_threads(args.threads)
    (x, t), (xt, tt) = _load_data(args)
    if args.input_shape:
        x, xt = fit_input_shape(x, args.input_shape, "training"), fit_input_shape(xt, args.input_shape, "test")
    num_classes = int(max(t.max(), tt.max())) + 1
    order = np.random.default_rng(args.seed).permutation(len(x))
    n_val = int(round(args.val_split * len(x)))
    if len(x) - n_val < 1:
        raise CLIError(f"--val-split {args.val_split} leaves no training samples")
    train_idx, val_idx = order[n_val:], order[:n_val]
    validation = (x[val_idx], t[val_idx]) if n_val else None

    try:
        model = get_model(args.model, x.shape[1:], num_classes, args.seed, args.model_args)
    except TypeError as e:
        raise CLIError(f"--model-args: {e}") from None
    if args.sync_bn:
        convert_sync_batchnorm(model)
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr, args.weight_decay, args.momentum,
                               args.decoupled_weight_decay)
    schedule = make_schedule(args.schedule, optimizer, args.epochs, args.warmup, args.step_size, args.gamma,
                             args.lr_step, steps_per_epoch(len(train_idx), args.batch_size, ranks.size))
    transform = make_augmentation(args.augment, args.crop_padding, args.seed,
                                  0.5 if args.erase_prob is None else args.erase_prob)
    loss = SoftmaxCrossEntropy(label_smoothing=args.label_smoothing)
    extras = [f"schedule {args.schedule}" + (" per batch" if getattr(schedule, "interval", "") == "batch" else "")
              + (f" after {args.warmup:g} warm-up epochs" if args.warmup else "")]
    if args.decoupled_weight_decay:
        extras.append(f"decoupled weight decay {args.weight_decay:g}")
    if args.augment:
        extras.append("augment " + "+".join(args.augment))
    if args.label_smoothing:
        extras.append(f"label smoothing {args.label_smoothing:g}")
    if args.ema:
        extras.append(f"EMA of the weights (decay {args.ema:g})")
    print(f"model {args.model} ({model.num_parameters():,} parameters), dataset {args.dataset} "
          f"({len(train_idx)} train, {n_val} validation, {len(xt)} test), optimizer {args.optimizer} "
          f"lr {schedule.base_lr if schedule else optimizer.lr:g}, " + ", ".join(extras), file=out, flush=True)
    if ranks.size > 1:
        import fastconv
        print(f"data-parallel: {ranks.size} ranks x {fastconv.get_num_threads()} threads, global batch "
              f"{args.batch_size}{', synchronised batch norm' if args.sync_bn else ''}", file=out, flush=True)
    test_loss = SoftmaxCrossEntropy()           # the test loss is the plain cross-entropy (no smoothing)
    each = (EvaluateEachEpoch(xt, tt, tta=args.tta, loss=test_loss, start=_started or time.perf_counter())
            if args.test_each_epoch else None)
    trainer = Trainer(model, loss, optimizer, seed=args.seed, scheduler=schedule, ema=args.ema,
                      progress=False if args.no_progress or not ranks.is_root else "bar",
                      callbacks=([each] if each else []) + [_epoch_table(out, test=each is not None)])
    start = time.perf_counter()
    history = trainer.fit(x[train_idx], t[train_idx], epochs=args.epochs, batch_size=args.batch_size,
                          validation_data=validation, checkpoint=args.checkpoint, resume=args.resume,
                          transform=transform)
    wall = time.perf_counter() - start
    if args.resume and trainer.epochs_trained == 0:
        done = len(history.get("loss", []))
        print(f"nothing to train: the checkpoint {args.resume} already holds {done} epochs and --epochs is "
              f"{args.epochs}; evaluating it as it is", file=out)
    else:
        print(f"training time: {wall:.1f} s for {trainer.epochs_trained} epochs", file=out)
    if trainer.ema is not None:
        trainer.ema.copy_to(model)        # the model to save and test is the average (the checkpoint: the live one)
    if args.save and ranks.is_root:
        save(model, args.save)
        print(f"saved model to {args.save}", file=out)
    if args.plot and ranks.is_root:
        _plot(history, args.plot, f"{args.model} on {args.dataset}")
        print(f"wrote plot to {args.plot}", file=out)
    if each is not None and each.last is not None:
        result = each.last[1]                  # the last epoch's evaluation is that of the final model
    else:
        result = trainer.evaluate(xt, tt, tta=args.tta, loss=test_loss)
    targets = _time_to_targets(history, args.targets or [0.93, 0.94]) if each is not None else None
    total_wall = time.perf_counter() - (_started or start)
    cpu = time.process_time()
    if args.json:
        from .experiments._common import write_json
        write_json(args.json, {"args": vars(args), "parameters": model.num_parameters(), "history": history,
                               "train_wall_s": wall, "wall_s": total_wall, "cpu_s": cpu, "test": result,
                               **({"targets": targets} if targets is not None else {})})
        print(f"wrote {args.json}", file=out)
    for target, reached in (targets or {}).items():
        print(f"time to {target} test accuracy: " + (f"{reached['wall_s']:.1f} s (epoch {reached['epoch']})"
                                                     if reached else "not reached"), file=out)
    print(f"wall time: {total_wall:.1f} s, CPU time: {cpu:.1f} s", file=out)
    print(f"test loss: {result['loss']:.4f}", file=out)
    print(f"test accuracy: {result['accuracy']:.4f}", file=out, flush=True)
    return 0


def _time_to_targets(history, targets):
    """``{"0.93": {"epoch": e, "wall_s": s} or None}``: the first epoch (from 1) whose test accuracy reached each
    target, and the ``elapsed`` wall time then (from the start of the command that trained that epoch)."""
    acc, elapsed = history.get("test_accuracy", []), history.get("elapsed", [])
    first = len(history.get("loss", [])) - len(acc)    # a resumed run's earlier epochs may have no test numbers
    out = {}
    for target in targets:
        hit = next((i for i, a in enumerate(acc) if a >= target), None)
        out[f"{target:g}"] = None if hit is None else {"epoch": first + hit + 1, "wall_s": elapsed[hit]}
    return out


def cmd_eval(args, out):
    from .evaluation import evaluate
    from .losses import SoftmaxCrossEntropy
    from .serialization import load

    if not os.path.isfile(args.model):
        raise CLIError(f"--model {args.model}: no such file")
    _set_threads(args.threads)
    model = load(args.model)
    _, (xt, tt) = _load_data(args)
    if tuple(xt.shape[1:]) != tuple(model.input_shape):
        raise CLIError(f"the model expects inputs of shape {tuple(model.input_shape)} but {args.dataset} images "
                       f"are {tuple(xt.shape[1:])}")
    result = evaluate(model, xt, tt, SoftmaxCrossEntropy(), batch_size=args.batch_size, tta=args.tta)
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
    from .distributed import world
    print(f"world: {world().describe()}", file=out)
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
    global _started
    _started = time.perf_counter()
    from .distributed import abort, where, world
    args = _parser().parse_args(argv)
    try:
        out = sys.stdout if world().is_root else open(os.devnull, "w")   # under mpiexec only rank 0 prints
        return COMMANDS[args.command](args, out)
    except KeyboardInterrupt:
        print("dl2: interrupted", file=sys.stderr)
        abort(130)
        return 130
    except (CLIError, ValueError, TypeError, KeyError, OSError, RuntimeError, FloatingPointError) as e:
        if os.environ.get("DL2_DEBUG"):
            raise
        message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        message = " ".join(message.split()) or type(e).__name__
        print(f"dl2: error{where()}: {message}", file=sys.stderr)
        abort(1)        # several ranks: end them all (the others may be waiting for this one)
        return 1
