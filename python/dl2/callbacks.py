"""Training callbacks for :class:`dl2.Trainer`, and the progress bar.

A callback overrides any of ``on_train_begin(trainer)``, ``on_epoch_begin(trainer, epoch)``,
``on_batch_end(trainer, batch, logs)``, ``on_epoch_end(trainer, epoch, logs)`` and ``on_train_end(trainer)``
(``epoch`` counts from 0; ``logs`` is the dict of this epoch's numbers: ``loss``, ``accuracy``, ``val_loss``...;
numbers a callback adds to it in ``on_epoch_end`` enter the history and are seen by the callbacks after it).
Setting ``trainer.stop_training = True`` ends training after the current epoch. A callback with state that
must survive a resumed run implements ``state_dict()`` / ``load_state_dict(state)`` (values: JSON scalars or
NumPy arrays); the trainer stores it in its checkpoints.
"""
import math
import sys
import time

import numpy as np

from .evaluation import check_batch_size, check_data, check_tta

__all__ = ["Callback", "EarlyStopping", "EvaluateEachEpoch", "LambdaCallback", "ProgressBar"]


class Callback:
    """Base class: every hook does nothing."""

    def on_train_begin(self, trainer):
        pass

    def on_epoch_begin(self, trainer, epoch):
        pass

    def on_batch_end(self, trainer, batch, logs):
        pass

    def on_epoch_end(self, trainer, epoch, logs):
        pass

    def on_train_end(self, trainer):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda tr, e, logs: print(logs))``."""

    def __init__(self, on_train_begin=None, on_epoch_begin=None, on_batch_end=None, on_epoch_end=None,
                 on_train_end=None):
        for name, fn in [("on_train_begin", on_train_begin), ("on_epoch_begin", on_epoch_begin),
                         ("on_batch_end", on_batch_end), ("on_epoch_end", on_epoch_end),
                         ("on_train_end", on_train_end)]:
            if fn is not None:
                setattr(self, name, fn)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode``: ``"min"``, ``"max"`` or ``"auto"`` (max for names containing ``acc``, else min). With
    ``restore_best`` the model gets the weights (and buffers) of its best epoch back when training ends.
    After training: ``best`` (value), ``best_epoch`` (0-based) and ``stopped_epoch`` (None if not stopped).
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, restore_best=True, mode="auto"):
        if int(patience) != patience or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 0, got {patience!r}")
        if not min_delta >= 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.restore_best = bool(restore_best)
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self._reset()

    def _reset(self):
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_epoch = None
        self.stopped_epoch = None
        self.wait = 0
        self.best_state = None

    def on_train_begin(self, trainer):
        self._reset()
        if self.monitor.startswith("val_") and not trainer.has_validation:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r} but fit() got no validation_data")

    def _improved(self, value):
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def on_epoch_end(self, trainer, epoch, logs):
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: no {self.monitor!r} in the epoch logs {sorted(logs)}")
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = trainer.model.state_dict()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                trainer.stop_training = True

    def on_train_end(self, trainer):
        if self.restore_best and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)

    def state_dict(self):
        state = {"best": self.best, "best_epoch": self.best_epoch, "stopped_epoch": self.stopped_epoch,
                 "wait": self.wait}
        for key, array in (self.best_state or {}).items():
            state[f"best_state/{key}"] = array
        return state

    def load_state_dict(self, state):
        self.best = float(state["best"])
        self.best_epoch = state["best_epoch"]
        self.stopped_epoch = state["stopped_epoch"]
        self.wait = int(state["wait"])
        best = {k[len("best_state/"):]: np.asarray(v) for k, v in state.items() if k.startswith("best_state/")}
        self.best_state = best or None

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best={self.restore_best}, mode={self.mode!r})")


class EvaluateEachEpoch(Callback):
    """Evaluate ``(x, t)`` (e.g. the test set) after every epoch, DAWNBench style (accuracy against wall time).

    Adds to the epoch's logs, and so to the history, ``<name>_loss``, ``<name>_<metric>`` (``test_accuracy``...)
    and ``elapsed``: wall seconds from ``start`` (a ``time.perf_counter()`` value, e.g. taken when the program
    started; default: the start of ``fit``, or of the resumed part of a run) to the end of this evaluation.
    The epoch's ``time`` does not include the evaluation. Evaluates with :meth:`dl2.Trainer.evaluate`
    (batches of ``batch_size``, test-time augmentation ``tta``, ``loss``: default the trainer's). Put it before callbacks that use its numbers
    (``EarlyStopping("test_accuracy")``, a printed table). ``last``: ``(epoch, result)`` of the last evaluation
    of the current ``fit`` call, or None.
    """

    def __init__(self, x, t, name="test", batch_size=256, tta=None, loss=None, start=None):
        if not (isinstance(name, str) and name):
            raise ValueError(f"EvaluateEachEpoch: name must be a non-empty string, got {name!r}")
        self.x, self.t, self.name = x, t, name
        self.batch_size = check_batch_size(batch_size, "EvaluateEachEpoch")
        self.tta = check_tta(tta, "EvaluateEachEpoch")
        self.loss, self.start = loss, start
        self.last = None

    def on_train_begin(self, trainer):
        self.x, self.t = check_data(trainer.model, self.x, self.t, f"EvaluateEachEpoch({self.name!r})",
                                    trainer.metrics)
        self._start = time.perf_counter() if self.start is None else self.start
        self.last = None

    def on_epoch_end(self, trainer, epoch, logs):
        result = trainer.evaluate(self.x, self.t, self.batch_size, self.tta, self.loss)
        logs.update({f"{self.name}_{k}": v for k, v in result.items()})
        logs["elapsed"] = time.perf_counter() - self._start
        self.last = (epoch, result)

    def __repr__(self):
        return f"EvaluateEachEpoch({len(self.x)} samples, name={self.name!r}, tta={self.tta!r})"


class ProgressBar:
    """A one-line progress bar for one epoch: tqdm when installed, else a small built-in one on stderr.

    ``update(n, loss, acc)`` after each batch; ``close()`` erases it (the trainer then prints the epoch line).
    The built-in bar redraws at most 10 times a second and draws nothing when stderr is not a terminal.
    """

    def __init__(self, total, desc, stream=None, use_tqdm=True):
        self.total, self.desc = int(total), desc
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.start = self._last = time.perf_counter()
        self._tqdm = None
        if use_tqdm:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._tqdm = tqdm(total=self.total, desc=desc, unit="sample", leave=False, file=self.stream,
                                  dynamic_ncols=True)
        isatty = getattr(self.stream, "isatty", None)
        self._draw = self._tqdm is None and bool(isatty and isatty())
        self._width = 0

    def update(self, n, loss=None, acc=None):
        self.done += n
        stats = {}
        if loss is not None:
            stats["loss"] = f"{loss:.4f}"
        if acc is not None:
            stats["acc"] = f"{acc:.4f}"
        if self._tqdm is not None:
            self._tqdm.set_postfix(stats, refresh=False)
            self._tqdm.update(n)
            return
        now = time.perf_counter()
        if not self._draw or (now - self._last < 0.1 and self.done < self.total):
            return
        self._last = now
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(20 * frac))
        rate = self.done / max(now - self.start, 1e-9)
        text = (f"{self.desc} [{'=' * filled}{'.' * (20 - filled)}] {self.done}/{self.total} "
                + " ".join(f"{k} {v}" for k, v in stats.items()) + f" {rate:,.0f} samples/s")
        self._width = max(self._width, len(text))
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()

    def close(self):
        if self._tqdm is not None:
            self._tqdm.close()
        elif self._draw and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
