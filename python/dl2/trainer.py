"""Mini-batch training loop: :class:`Trainer` (``fit`` / ``evaluate`` / ``predict``).

::

    model = Sequential(Conv2D(16, 3, padding=1), ReLU(), Flatten(), Linear(10), input_shape=(1, 8, 8), seed=0)
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-3), seed=0)
    history = trainer.fit(x, t, epochs=10, batch_size=32, validation_data=(xv, tv), checkpoint="ckpt.npz")
    trainer.evaluate(x_test, t_test)   # {"loss": ..., "accuracy": ...}

``x`` is ``(N, *model.input_shape)``; ``t`` integer labels ``(N,)`` or targets ``(N, *model.output_shape)``.
"""
import contextlib
import math
import os
import sys
import time
import warnings

import numpy as np

from . import distributed
from .callbacks import Callback, EarlyStopping, EvaluateEachEpoch, ProgressBar
from .containers import aux_heads, auxiliary_loss
from .checks import integer, number
from .data import DataLoader
from .ema import EMA
from .evaluation import METRICS, check_batch_size, check_data, evaluate, resolve_metrics
from .module import Module
from .optim import clip_grad_norm
from .serialization import check_writable, load_checkpoint, save_checkpoint

__all__ = ["Trainer", "EarlyStopping", "EvaluateEachEpoch", "Callback", "METRICS"]


# --------------------------------------------------------------------- the trainer
class Trainer:
    """Train ``model`` with ``loss`` (a dl2 loss) and ``optimizer`` (a :mod:`dl2.optim` optimizer).

    ``metrics``: names from :data:`METRICS` or functions ``fn(y, t) -> float``. ``callbacks``: e.g.
    ``[EarlyStopping(patience=3)]``. ``seed`` seeds the shuffling (the model's initialisation and dropout
    masks come from the model's own seed). ``progress``: True (a per-batch bar and one line per epoch on
    stderr), ``"bar"`` (the bar only) or False. ``scheduler``: a :mod:`dl2.optim` schedule, stepped after each
    epoch, or after every optimizer step when its ``interval`` is ``"batch"``. ``clip_norm``: clip the global
    gradient norm before each step.
    ``data_parallel``: ``"auto"`` trains data-parallel over the MPI ranks when the process runs under
    ``mpiexec`` with more than one rank (see :mod:`dl2.distributed`; ``batch_size`` is then the global batch),
    True requires it, False never does it.
    ``ema``: an :class:`dl2.EMA` of ``model`` or a decay (e.g. 0.999, for ``EMA(model, decay)``): updated after
    every optimizer step; validation, :meth:`evaluate` and :meth:`predict` then use the averaged weights
    (:meth:`eval_weights`), checkpoints hold it, and the model itself keeps the live (trained) weights, also
    after :meth:`fit` (``trainer.ema.copy_to(model)`` keeps the average instead).
    The model must be built before the optimizer is created (so that it has parameters).
    """

    def __init__(self, model, loss, optimizer, metrics=("accuracy",), callbacks=(), seed=None, progress=True,
                 scheduler=None, clip_norm=None, data_parallel="auto", ema=None):
        if not isinstance(model, Module):
            raise TypeError(f"Trainer: model must be a dl2 Module, got {type(model).__name__}")
        if not model.built:
            raise ValueError("Trainer: build the model first (Sequential(..., input_shape=...) or "
                             "model.build(shape)), then create the optimizer from model.parameters()")
        if not (hasattr(loss, "forward") and hasattr(loss, "backward")):
            raise TypeError(f"Trainer: loss must have forward(y, t) and backward(), got {loss!r}")
        if optimizer is not None and not (hasattr(optimizer, "step") and hasattr(optimizer, "params")):
            raise TypeError(f"Trainer: optimizer must be a dl2.optim optimizer (or None to only evaluate), "
                            f"got {optimizer!r}")
        if scheduler is not None and not hasattr(scheduler, "step"):
            raise TypeError(f"Trainer: scheduler must be a dl2.optim schedule, got {scheduler!r}")
        if clip_norm is not None:
            clip_norm = number(clip_norm, "Trainer", "clip_norm", lo=0, lo_open=True)
        if ema is not None and not isinstance(ema, EMA):
            ema = EMA(model, number(ema, "Trainer", "ema (a decay or a dl2.EMA)", lo=0, hi=1, hi_open=True))
        if ema is not None and ema.model is not model:
            raise ValueError("Trainer: ema averages another model than the trainer's")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.metrics = resolve_metrics(metrics)
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer: callbacks must be dl2.callbacks.Callback instances, got {cb!r}")
        self.rng = np.random.default_rng(seed)
        if progress not in (True, False, "bar"):
            raise ValueError(f"Trainer: progress must be True, False or 'bar', got {progress!r}")
        self.progress = progress
        self.scheduler = scheduler
        self.clip_norm = clip_norm
        self.ema = ema
        self.parallel = distributed.data_parallel(model, data_parallel)
        self.stop_training = False
        self.has_validation = False
        self.history = {}
        self.epoch = 0
        self.epochs_trained = 0

    # ----------------------------------------------------------------- evaluation
    def eval_weights(self):
        """Context manager: the weights to evaluate with in the model, the EMA's when the trainer has one (the
        live ones come back after the block); nothing changes without an EMA."""
        return self.ema.apply() if self.ema is not None else contextlib.nullcontext(self.model)

    def evaluate(self, x, t, batch_size=256, tta=None, loss=None):
        """``{"loss": mean loss, <metric>: value}`` on ``(x, t)`` in eval mode (batched, none dropped), with the
        :meth:`eval_weights`.

        The loss is the data loss only (no weight-decay penalty) of ``loss`` (default: the trainer's);
        ``tta="flip"`` averages the outputs for each image and its mirror; see :func:`dl2.evaluate`.
        """
        x, t = check_data(self.model, x, t, "evaluate", self.metrics)
        batch_size = check_batch_size(batch_size, "evaluate")
        n = len(x)
        xs, ts = self.parallel.shard(x, t)          # under MPI: this rank's shard; the sums are added up
        sums = {"loss": 0.0, **{name: 0.0 for name, _ in self.metrics}}
        if len(xs):
            with self.eval_weights():
                means = evaluate(self.model, xs, ts, self.loss if loss is None else loss, self.metrics, batch_size,
                                 tta)
            sums = {k: v * len(xs) for k, v in means.items()}
        sums, _ = self.parallel.reduce_sums(sums, len(xs))
        return {k: v / n for k, v in sums.items()}

    def predict(self, x, batch_size=256):
        """Eval-mode outputs ``(N, *output_shape)`` in batches, with the :meth:`eval_weights`; see
        :meth:`dl2.Module.predict`."""
        with self.eval_weights():
            return self.model.predict(x, batch_size)

    # ----------------------------------------------------------------- training
    def _state(self):
        extra = {"trainer": {"stop_training": self.stop_training}}
        if self.scheduler is not None:
            extra["scheduler"] = self.scheduler.state_dict()
        if self.ema is not None:
            extra["ema"] = self.ema.state_dict()
        for i, cb in enumerate(self.callbacks):
            extra[f"callback{i}"] = cb.state_dict()
        return extra

    def _augmentation_generators(self):
        """``{"augment/i": generator}`` of the fit's ``transform`` (see :meth:`dl2.data.augment.Transform.generators`)
        in one process; under several ranks each rank has its own, and the checkpoint (rank 0's) holds none."""
        if self.parallel.size > 1 or not hasattr(self._transform, "generators"):
            return {}
        return {f"augment/{i}": g for i, g in enumerate(self._transform.generators())}

    def _save(self, path, epoch):
        if not self.parallel.is_root:
            return
        rng_states = {"shuffle": self.rng.bit_generator.state}
        rng_states.update({name: g.bit_generator.state for name, g in self._augmentation_generators().items()})
        save_checkpoint(path, self.model, self.optimizer, epoch=epoch, history=self.history,
                        rng_states=rng_states, extra=self._state())

    def _resume(self, path):
        ck = load_checkpoint(path, self.model, self.optimizer)
        extra = ck["extra"]
        if "shuffle" in ck["rng_states"]:
            self.rng.bit_generator.state = ck["rng_states"]["shuffle"]
        saved = {name for name in ck["rng_states"] if name.startswith("augment/")}
        generators = self._augmentation_generators()
        if saved and saved == set(generators):
            for name, g in generators.items():
                g.bit_generator.state = ck["rng_states"][name]
        elif saved and self.parallel.size == 1:
            warnings.warn(f"fit: the checkpoint {os.fspath(path)} holds the state of {len(saved)} augmentation "
                          f"generator(s) but this transform has {len(generators)}; the augmentation goes on from "
                          f"the transform's own generators", stacklevel=3)
        if self.scheduler is not None and "scheduler" in extra:
            self.scheduler.load_state_dict(extra["scheduler"])
        if self.ema is not None and "ema" in extra:
            self.ema.load_state_dict(extra["ema"])
        for i, cb in enumerate(self.callbacks):
            if f"callback{i}" in extra:
                cb.load_state_dict(extra[f"callback{i}"])
        self.stop_training = bool(extra.get("trainer", {}).get("stop_training", False))
        return ck["epoch"], ck["history"]

    def fit(self, x, t, epochs=1, batch_size=32, validation_data=None, shuffle=True, checkpoint=None, resume=None,
            grad_stats=False, transform=None, prefetch=1):
        """Train for ``epochs`` epochs (in total: a resumed run continues up to ``epochs``); return the history.

        History: per-epoch lists ``loss`` (mean training loss incl. auxiliary heads, plus ``optimizer.penalty()``
        at the end of the epoch),
        one list per metric, ``val_loss`` (data loss + penalty, comparable with ``loss``; with an EMA both are
        those of the averaged weights, which are the ones evaluated) and ``val_<metric>``
        with ``validation_data=(x_val, t_val)``, ``lr`` (the learning rate of the epoch's last step), ``time``
        (seconds of training and validation), and what callbacks add to the epoch's logs (e.g.
        :class:`~dl2.callbacks.EvaluateEachEpoch`). With ``grad_stats``:
        ``grad_norm`` ``{layer: [per epoch]}`` (mean over batches of the L2 norm of the layer's parameter
        gradients) and, for a Sequential, ``act_mean`` / ``act_std`` of each layer's output.

        ``checkpoint``: a path written (atomically) after every epoch; ``resume``: a checkpoint path to continue
        from (weights, optimizer, shuffling and dropout generators, the generators of ``transform`` in one
        process, schedule, EMA, callbacks, history).
        ``transform``: a batch augmentation ``fn(xb) -> xb``. ``prefetch``: batches gathered and augmented ahead
        in a background thread while the model trains (see :class:`dl2.data.DataLoader`; 0 = none). The batches
        and the checkpoints are the same either way, so it is on by default. Under MPI the thread gathers each
        global batch and the augmentation runs on each rank's slice in the training thread.
        A non-finite loss raises FloatingPointError.
        After the call ``epochs_trained`` is the number of epochs this call trained (0 when a resumed checkpoint
        already had ``epochs`` epochs, or when a callback stopped training before the first).
        """
        if self.optimizer is None:
            raise RuntimeError("Trainer.fit: this trainer has no optimizer (it was created with optimizer=None)")
        epochs = integer(epochs, "fit", "epochs", 1)
        batch_size = check_batch_size(batch_size, "fit")
        x, t = check_data(self.model, x, t, "fit", self.metrics)
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise ValueError("fit: validation_data must be a pair (x_val, t_val)")
            xv, tv = check_data(self.model, *validation_data, "fit validation_data", self.metrics)
        self.has_validation = validation_data is not None
        if resume is not None and not os.path.exists(os.fspath(resume)):
            raise FileNotFoundError(f"fit: no checkpoint to resume from at {os.fspath(resume)}")
        if checkpoint is not None:
            check_writable(checkpoint, "fit: checkpoint")

        loader = DataLoader(x, t, batch_size, shuffle=shuffle, transform=transform, prefetch=prefetch)
        self._transform = transform
        loader.rng = self.rng            # one shuffling stream per trainer, saved in checkpoints
        model = self.model
        self.stop_training = False
        self.history = {}
        self.epochs_trained = 0
        for cb in self.callbacks:
            cb.on_train_begin(self)
        start = 0
        if resume is not None:
            start, self.history = self._resume(resume)
        last_good = (os.fspath(resume), start) if resume is not None else None
        self.parallel.start(self.optimizer, self.rng,
                            (len(x), batch_size, epochs, len(xv) if validation_data is not None else 0))
        loader = self.parallel.loader(loader)
        if self.ema is not None and self.ema.updates == 0:
            self.ema.reset()             # from the weights training starts with (rank 0's under MPI)

        stats = _GradStats(model) if grad_stats else None
        previous_flag = getattr(model, "needs_input_grad", None)
        if previous_flag is not None:
            model.needs_input_grad = False   # nobody needs the gradient wrt the data
        has_aux = bool(aux_heads(model))
        try:
            for epoch in range(start, epochs):
                if self.stop_training:
                    break
                self.epoch = epoch
                for cb in self.callbacks:
                    cb.on_epoch_begin(self, epoch)
                logs = self._train_epoch(loader, epoch, epochs, has_aux, stats, checkpoint, last_good)
                self.epochs_trained += 1
                penalty = self._penalty()    # once per epoch: it only enters the reported losses
                logs["loss"] += penalty
                if validation_data is not None:
                    val = self.evaluate(xv, tv, batch_size=max(batch_size, 256))
                    val_penalty = penalty
                    if self.ema is not None:            # the penalty of the weights evaluated, the averaged ones
                        with self.eval_weights():
                            val_penalty = self._penalty()
                    logs["val_loss"] = val.pop("loss") + val_penalty
                    logs.update({f"val_{k}": v for k, v in val.items()})
                logs["lr"] = logs.pop("_lr")     # the lr of the epoch's last step
                if self.scheduler is not None and not self._per_batch_schedule:
                    self.scheduler.step()
                logs["time"] = time.perf_counter() - logs.pop("_start")
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, logs)     # may add numbers (EvaluateEachEpoch)
                for key, value in logs.items():
                    self.history.setdefault(key, []).append(float(value))
                if stats is not None:
                    stats.end_epoch(self.history)
                if self.progress is True:
                    self._print_epoch(epoch, epochs, logs)
                if checkpoint is not None:
                    self._save(checkpoint, epoch + 1)
                    last_good = (os.fspath(checkpoint), epoch + 1)
        finally:
            self.parallel.stop()
            if stats is not None:
                stats.detach()
            if previous_flag is not None:
                model.needs_input_grad = previous_flag
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    @property
    def _per_batch_schedule(self):
        return getattr(self.scheduler, "interval", "epoch") == "batch"

    def _penalty(self):
        opt = self.optimizer
        if getattr(opt, "weight_decay", 0) or getattr(opt, "l1", 0):
            return float(opt.penalty())
        return 0.0

    def _train_epoch(self, loader, epoch, epochs, has_aux, stats, checkpoint, last_good):
        model, loss_fn = self.model, self.loss
        model.train()
        start = time.perf_counter()
        bar = (ProgressBar(loader.num_samples, f"epoch {epoch + 1}/{epochs}") if self.progress else None)
        sums = {"loss": 0.0}
        sums.update({name: 0.0 for name, _ in self.metrics})
        seen = 0
        n_batches = len(loader)
        lr = float("nan")
        batch_schedule = self._per_batch_schedule
        batches = iter(loader)
        try:
            for b, (xb, tb) in enumerate(batches):
                model.zero_grad()
                y = model.forward(xb)
                if not np.all(np.isfinite(y)):
                    self._diverged("the network output contains NaN or inf", epoch, b, n_batches, checkpoint,
                                   last_good)
                value = float(loss_fn.forward(y, tb))
                dy = loss_fn.backward()
                if has_aux:
                    value += auxiliary_loss(model, loss_fn, tb)
                if not math.isfinite(value):
                    self._diverged(f"the loss is {value}", epoch, b, n_batches, checkpoint, last_good)
                model.backward(dy)
                self.parallel.sync_gradients()
                if self.clip_norm is not None:
                    clip_grad_norm(self.optimizer.params, self.clip_norm)
                if stats is not None:
                    stats.batch()
                lr = float(getattr(self.optimizer, "lr", float("nan")))
                self.optimizer.step()
                if batch_schedule:
                    self.scheduler.step()
                if self.ema is not None:
                    self.ema.update()
                n = len(xb)
                seen += n
                sums["loss"] += value * n
                for name, fn in self.metrics:
                    sums[name] += float(fn(y, tb)) * n
                if bar is not None:
                    bar.update(n, sums["loss"] / seen, sums["accuracy"] / seen if "accuracy" in sums else None)
                if self.callbacks:
                    batch_logs = {"loss": value, "size": n}
                    for cb in self.callbacks:
                        cb.on_batch_end(self, b, batch_logs)
        finally:
            if hasattr(batches, "close"):
                batches.close()      # an early exit (error, interrupt) also stops a prefetching thread now
            if bar is not None:
                bar.close()
        sums, seen = self.parallel.reduce_sums(sums, seen)
        logs = {k: v / seen for k, v in sums.items()}
        logs["_start"], logs["_lr"] = start, lr
        return logs

    def _diverged(self, what, epoch, b, n_batches, checkpoint, last_good):
        where = f"epoch {epoch + 1}, batch {b + 1}/{n_batches}"
        if last_good is not None and last_good[1] > 0:
            keep = f"; the last good checkpoint (after epoch {last_good[1]}) is kept at {last_good[0]}"
        elif checkpoint is not None:
            keep = "; no checkpoint had been written yet"
        else:
            keep = ""
        raise FloatingPointError(f"training diverged at {where}: {what} (try a lower learning rate){keep}")

    @staticmethod
    def _print_epoch(epoch, epochs, logs):
        parts = [f"epoch {epoch + 1}/{epochs}"]
        parts += [f"{k} {v:.4f}" for k, v in logs.items() if k not in ("time", "lr")]
        parts.append(f"{logs['time']:.1f}s")
        print("  ".join(parts), file=sys.stderr, flush=True)


# --------------------------------------------------------------------- gradient / activation statistics
class _GradStats:
    """Per-layer gradient norms and (for a Sequential) activation mean/std, averaged over an epoch's batches."""

    def __init__(self, model):
        self.model = model
        self.owners = [(f"{name or 'model'} ({type(m).__name__})", list(m._params.values()))
                       for name, m in model.named_modules() if m._params]
        self.grad = {key: [] for key, _ in self.owners}
        self.act_mean, self.act_std = {}, {}
        self.hooked = hasattr(model, "_activation_hook") and hasattr(model, "layers")
        if self.hooked:
            model._activation_hook = self._record

    def _record(self, i, layer, out):
        if not self.model.training:   # validation / predict passes are not part of the statistics
            return
        key = f"{i} ({type(layer).__name__})"
        out = np.asarray(out, dtype=np.float64)
        self.act_mean.setdefault(key, []).append(float(out.mean()))
        self.act_std.setdefault(key, []).append(float(out.std()))

    def batch(self):
        for key, params in self.owners:
            self.grad[key].append(math.sqrt(sum(float(np.sum(np.square(p.grad, dtype=np.float64)))
                                                for p in params)))

    def end_epoch(self, history):
        for name, table in (("grad_norm", self.grad), ("act_mean", self.act_mean), ("act_std", self.act_std)):
            if not table:
                continue
            out = history.setdefault(name, {})
            for key, values in table.items():
                out.setdefault(key, []).append(float(np.mean(values)) if values else float("nan"))
                values.clear()

    def detach(self):
        if self.hooked:
            self.model._activation_hook = None
