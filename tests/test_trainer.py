"""Tests of dl2.trainer and dl2.callbacks."""
import io
import os
import types

import numpy as np
import pytest

import dl2
from dl2.callbacks import EarlyStopping, EvaluateEachEpoch, LambdaCallback, ProgressBar
from dl2.containers import AuxHead, Sequential
from dl2.layers import (BatchNorm2D, Conv2D, Dropout, Flatten, GlobalAvgPool2D, Linear, MaxPool2D, ReLU,
                        Sigmoid)
from dl2.losses import MSELoss, SoftmaxCrossEntropy
from dl2.optim import SGD, Adam, Momentum, StepLR
from dl2 import predict
from dl2.trainer import Trainer


pytestmark = pytest.mark.usefixtures("one_fastconv_thread")


@pytest.fixture(scope="module")
def digits():
    (x, t), (xt, tt) = dl2.data.load_digits()
    return x[:600], t[:600], xt[:200], tt[:200]


def cnn(seed=0, dropout=0.0):
    layers = [Conv2D(8, 3, padding=1), BatchNorm2D(), ReLU(), MaxPool2D(2)]
    if dropout:
        layers.append(Dropout(dropout))
    layers += [Flatten(), Linear(10)]
    return Sequential(*layers, input_shape=(1, 8, 8), seed=seed)


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def without_time(history):
    return {k: v for k, v in history.items() if k != "time"}


# --------------------------------------------------------------------- basic training
def test_fit_learns_digits(digits):
    x, t, xt, tt = digits
    model = cnn()
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=0.01), seed=0, progress=False)
    history = trainer.fit(x, t, epochs=4, batch_size=32, validation_data=(xt, tt))
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
    assert all(len(v) == 4 for v in history.values())
    assert history["loss"][-1] < history["loss"][0] < np.log(10) * 1.5
    assert history["accuracy"][-1] > 0.8 and history["val_accuracy"][-1] > 0.8
    result = trainer.evaluate(xt, tt)
    assert result["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    assert model.training    # fit leaves the model in training mode; evaluate restored it
    assert model.needs_input_grad is True   # switched off during fit only


def test_history_loss_includes_penalty():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((40, 5)).astype(np.float32), rng.integers(0, 3, 40)
    model = Sequential(Linear(8), ReLU(), Linear(3), input_shape=(5,), seed=0)
    opt = SGD(model.parameters(), lr=1e-12, weight_decay=0.5)   # the parameters (almost) do not move
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, seed=0, progress=False)
    history = trainer.fit(x, t, epochs=1, batch_size=16, validation_data=(x, t))
    data_loss = trainer.evaluate(x, t)["loss"]
    assert opt.penalty() > 0.1
    assert history["loss"][0] == pytest.approx(data_loss + opt.penalty(), rel=1e-5)
    assert history["val_loss"][0] == pytest.approx(data_loss + opt.penalty(), rel=1e-5)


def test_seeded_runs_are_identical_and_seed_matters(digits):
    x, t, xt, tt = digits

    def run(seed):
        model = cnn(seed=0, dropout=0.2)
        trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=0.01), seed=seed,
                          progress=False)
        history = trainer.fit(x[:300], t[:300], epochs=2, batch_size=32, validation_data=(xt, tt))
        return without_time(history), weights(model)

    h1, w1 = run(1)
    h2, w2 = run(1)
    h3, w3 = run(2)
    assert h1 == h2 and same_weights(w1, w2)
    assert h1 != h3 and not same_weights(w1, w3)


# --------------------------------------------------------------------- checkpoints and resume
def _resume_setup(seed_model):
    model = cnn(seed=seed_model, dropout=0.25)
    opt = Momentum(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, seed=3, progress=False, scheduler=StepLR(opt, 2, 0.5),
                      callbacks=[EarlyStopping("val_loss", patience=10)])
    return model, trainer


def test_resume_continues_identically(digits, tmp_path):
    x, t, xt, tt = digits
    model_a, trainer_a = _resume_setup(seed_model=0)
    history_a = trainer_a.fit(x, t, epochs=4, batch_size=32, validation_data=(xt, tt))

    ckpt = tmp_path / "ckpt.npz"
    model_b, trainer_b = _resume_setup(seed_model=0)
    trainer_b.fit(x, t, epochs=2, batch_size=32, validation_data=(xt, tt), checkpoint=ckpt)
    assert dl2.load_checkpoint(ckpt)["epoch"] == 2
    # a new process: fresh objects, even a differently initialised model
    model_c, trainer_c = _resume_setup(seed_model=99)
    history_c = trainer_c.fit(x, t, epochs=4, batch_size=32, validation_data=(xt, tt), checkpoint=ckpt,
                              resume=ckpt)
    assert same_weights(weights(model_a), weights(model_c))
    assert without_time(history_a) == without_time(history_c)
    assert history_c["lr"] == [0.05, 0.05, 0.025, 0.025]
    assert dl2.load_checkpoint(ckpt)["epoch"] == 4
    assert [f for f in os.listdir(tmp_path)] == ["ckpt.npz"]


def test_prefetch_changes_nothing_and_resume_is_exact_with_it(digits, tmp_path):
    """Prefetching (default 1) trains bitwise as without it, and a run resumed with prefetching equals an
    uninterrupted run without it: the checkpoint holds the shuffling state of the epoch boundary."""
    import threading
    from dl2.data.augment import RandomHorizontalFlip
    x, t, xt, tt = digits
    model_a, trainer_a = _resume_setup(seed_model=0)
    history_a = trainer_a.fit(x, t, epochs=4, batch_size=32, validation_data=(xt, tt), prefetch=0,
                              transform=RandomHorizontalFlip(seed=1))
    model_b, trainer_b = _resume_setup(seed_model=0)
    history_b = trainer_b.fit(x, t, epochs=4, batch_size=32, validation_data=(xt, tt), prefetch=2,
                              transform=RandomHorizontalFlip(seed=1))
    assert same_weights(weights(model_a), weights(model_b))
    assert without_time(history_a) == without_time(history_b)

    ckpt = tmp_path / "ckpt.npz"
    model_c, trainer_c = _resume_setup(seed_model=0)
    trainer_c.fit(x, t, epochs=2, batch_size=32, validation_data=(xt, tt), checkpoint=ckpt, prefetch=2)
    model_d, trainer_d = _resume_setup(seed_model=0)
    history_d = trainer_d.fit(x, t, epochs=4, batch_size=32, validation_data=(xt, tt), resume=ckpt, prefetch=2)
    model_e, trainer_e = _resume_setup(seed_model=0)
    history_e = trainer_e.fit(x, t, epochs=4, batch_size=32, validation_data=(xt, tt), prefetch=0)
    assert same_weights(weights(model_d), weights(model_e))
    assert without_time(history_d) == without_time(history_e)
    assert not [th for th in threading.enumerate() if th.name == "dl2-prefetch"]


def test_resume_with_augmentation_continues_identically(digits, tmp_path):
    """The checkpoint holds the augmentation's generators (flip, crop and a plain function composed): a resumed
    run with augmentation equals the uninterrupted one, bit for bit; without them the augmentation differs."""
    from dl2.data.augment import Compose, RandomCrop, RandomHorizontalFlip

    def augmentation():
        return Compose([RandomHorizontalFlip(seed=1), lambda xb: xb * 1.0, RandomCrop(padding=1, seed=2)])

    x, t, xt, tt = digits
    model_a, trainer_a = _resume_setup(seed_model=0)
    history_a = trainer_a.fit(x, t, epochs=3, batch_size=32, validation_data=(xt, tt), transform=augmentation())
    ckpt = tmp_path / "ckpt.npz"
    model_b, trainer_b = _resume_setup(seed_model=0)
    trainer_b.fit(x, t, epochs=1, batch_size=32, validation_data=(xt, tt), checkpoint=ckpt, transform=augmentation())
    assert sorted(n for n in dl2.load_checkpoint(ckpt)["rng_states"] if n.startswith("augment/")) == \
        ["augment/0", "augment/1"]
    model_c, trainer_c = _resume_setup(seed_model=99)
    history_c = trainer_c.fit(x, t, epochs=3, batch_size=32, validation_data=(xt, tt), resume=ckpt,
                              transform=augmentation())
    assert same_weights(weights(model_a), weights(model_c))
    assert without_time(history_a) == without_time(history_c)
    # the same resume with the augmentation's generators started afresh (what it did before) trains differently
    model_d, trainer_d = _resume_setup(seed_model=0)
    with pytest.warns(UserWarning, match="2 augmentation generator"):
        trainer_d.fit(x, t, epochs=3, batch_size=32, validation_data=(xt, tt), resume=ckpt,
                      transform=RandomHorizontalFlip(seed=1))
    assert not same_weights(weights(model_a), weights(model_d))


def test_an_error_in_training_stops_the_prefetching_thread(digits):
    import threading
    x, t, _, _ = digits
    model = cnn()
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), progress=False,
                      callbacks=[LambdaCallback(on_batch_end=lambda tr, b, logs: 1 / (b - 3))])
    with pytest.raises(ZeroDivisionError):
        trainer.fit(x, t, epochs=1, batch_size=8, prefetch=2)
    assert not [th for th in threading.enumerate() if th.name == "dl2-prefetch"]


def test_resume_of_a_finished_run_does_nothing(digits, tmp_path):
    x, t, _, _ = digits
    model, trainer = _resume_setup(0)
    trainer.callbacks = []
    trainer.fit(x[:64], t[:64], epochs=1, batch_size=32, checkpoint=tmp_path / "c.npz")
    before = weights(model)
    history = trainer.fit(x[:64], t[:64], epochs=1, batch_size=32, resume=tmp_path / "c.npz")
    assert len(history["loss"]) == 1 and same_weights(before, weights(model))
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        trainer.fit(x[:64], t[:64], epochs=2, resume=tmp_path / "nope.npz")


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(digits, tmp_path):
    x, t, _, _ = digits
    model = cnn()
    ckpt = tmp_path / "ckpt.npz"

    def poison(trainer, batch, logs):
        if trainer.epoch == 2 and batch == 3:
            trainer.model.layers[-1].weight.data[...] = np.nan

    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=0.01), seed=0, progress=False,
                      callbacks=[LambdaCallback(on_batch_end=poison)])
    with pytest.raises(FloatingPointError, match=r"epoch 3, batch 5/19.*after epoch 2.*ckpt\.npz"):
        trainer.fit(x, t, epochs=5, batch_size=32, checkpoint=ckpt)
    ck = dl2.load_checkpoint(ckpt)
    assert ck["epoch"] == 2 and len(ck["history"]["loss"]) == 2
    assert all(np.all(np.isfinite(v)) for v in ck["model"].state_dict().values())


def test_divergence_with_a_huge_learning_rate():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32) * 100
    y = rng.standard_normal((64, 1)).astype(np.float32)
    model = Sequential(Linear(16), Linear(1), input_shape=(4,), seed=0)
    trainer = Trainer(model, MSELoss(), SGD(model.parameters(), lr=10.0), metrics=(), seed=0, progress=False)
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(FloatingPointError, match=r"diverged at epoch \d+, batch \d+/4.*lower learning rate"):
            trainer.fit(x, y, epochs=50, batch_size=16)


@pytest.mark.parametrize("x_shape, t, message", [
    ((10, 1, 8, 8), np.full(10, 10), r"labels must be in \[0, 10\).*10"),
    ((10, 1, 8, 8), np.full(10, -1), r"labels must be in \[0, 10\)"),
    ((0, 1, 8, 8), np.zeros(0, int), "empty dataset"),
    ((10, 1, 8, 8), np.zeros(9, int), "x has 10 samples but t has 9"),
    ((10, 1, 28, 28), np.zeros(10, int), r"\(1, 28, 28\).*\(1, 8, 8\)"),
    ((10, 1, 8, 8), np.zeros((10, 5)), r"per-sample shape \(5,\).*\(10,\)"),
    ((10, 1, 8, 8), np.full(10, 0.5), "integer class labels"),
])
def test_bad_data_is_rejected_before_training(x_shape, t, message):
    model = cnn()
    before = weights(model)
    opt = SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, progress=False)
    with pytest.raises(ValueError, match=message):
        trainer.fit(np.zeros(x_shape, np.float32), t, epochs=1)
    assert opt.t == 0 and same_weights(before, weights(model))


def test_bad_arguments():
    model = cnn()
    x, t = np.zeros((4, 1, 8, 8), np.float32), np.zeros(4, int)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), progress=False)
    with pytest.raises(ValueError, match="epochs"):
        trainer.fit(x, t, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        trainer.fit(x, t, epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="NaN"):
        trainer.fit(np.full((4, 1, 8, 8), np.nan, np.float32), t)
    with pytest.raises(ValueError, match="unknown metric"):
        Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), metrics=("f1",))
    with pytest.raises(ValueError, match="build the model first"):
        Trainer(Sequential(Linear(3)), SoftmaxCrossEntropy(), None)


# --------------------------------------------------------------------- evaluate / predict
def test_predict_and_evaluate_use_every_sample_in_eval_mode(digits):
    x, t, _, _ = digits
    x, t = x[:23], t[:23]
    model = cnn(dropout=0.5)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), progress=False)
    model.eval()
    full = model(x)
    model.train()
    out = trainer.predict(x, batch_size=5)       # 5 + 5 + 5 + 5 + 3
    assert out.shape == (23, 10)
    np.testing.assert_allclose(out, full, rtol=1e-5, atol=1e-6)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    result = trainer.evaluate(x, t, batch_size=5)
    assert not model.training                    # previous mode restored, whatever it was
    loss = SoftmaxCrossEntropy().forward(full, t)
    assert result["loss"] == pytest.approx(loss, rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(full.argmax(1) == t))
    np.testing.assert_allclose(model.predict(x, batch_size=7), full, rtol=1e-5, atol=1e-6)
    assert predict(model, x[:0]).shape == (0, 10)


def test_evaluate_and_predict_without_a_trainer(digits, tmp_path):
    x, t, xt, tt = digits
    model = cnn()
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=0.01), seed=0, progress=False)
    trainer.fit(x, t, epochs=2)
    dl2.save(model, tmp_path / "m.npz")
    loaded = dl2.load(tmp_path / "m.npz")           # no optimizer anywhere from here on
    result = dl2.evaluate(loaded, xt, tt, SoftmaxCrossEntropy())
    assert result == pytest.approx(trainer.evaluate(xt, tt))
    assert set(result) == {"loss", "accuracy"} and result["accuracy"] > 0.5
    loaded.eval()
    np.testing.assert_array_equal(loaded(xt).argmax(axis=1), dl2.predict(loaded, xt).argmax(axis=1))
    with model.eval_mode():
        assert not any(m.training for m in model.modules())
    assert all(m.training for m in model.modules())
    with pytest.raises(TypeError, match="evaluate: expected a dl2 Module"):
        dl2.evaluate("model", xt, tt, SoftmaxCrossEntropy())
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        dl2.evaluate(loaded, xt, tt, SoftmaxCrossEntropy(), metrics=["f1"])


def test_every_callback_hook_is_called_in_order(digits):
    x, t, _, _ = digits
    model = cnn()
    calls = []
    hooks = LambdaCallback(on_train_begin=lambda tr: calls.append("train_begin"),
                           on_epoch_begin=lambda tr, e: calls.append(f"epoch_begin {e}"),
                           on_batch_end=lambda tr, b, logs: calls.append("batch") if b == 0 else None,
                           on_epoch_end=lambda tr, e, logs: calls.append(f"epoch_end {e}"),
                           on_train_end=lambda tr: calls.append("train_end"))
    Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), callbacks=[hooks],
            progress=False).fit(x[:64], t[:64], epochs=2)
    assert calls == ["train_begin", "epoch_begin 0", "batch", "epoch_end 0", "epoch_begin 1", "batch",
                     "epoch_end 1", "train_end"]


def test_checkpoint_path_is_checked_before_training(digits, tmp_path):
    x, t, _, _ = digits
    model = cnn()
    before = weights(model)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), progress=False)
    with pytest.raises(FileNotFoundError, match="checkpoint .*missing.*does not exist"):
        trainer.fit(x, t, epochs=1, checkpoint=str(tmp_path / "missing" / "ck.npz"))
    assert same_weights(weights(model), before)     # nothing was trained
    with pytest.raises(IsADirectoryError, match="is a directory"):
        trainer.fit(x, t, epochs=1, checkpoint=str(tmp_path))


def test_resume_with_no_epochs_left_trains_nothing(digits, tmp_path):
    x, t, _, _ = digits
    ck = str(tmp_path / "ck.npz")
    model = cnn()
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), progress=False)
    trainer.fit(x, t, epochs=2, checkpoint=ck)
    assert trainer.epochs_trained == 2
    before = weights(model)
    history = trainer.fit(x, t, epochs=2, resume=ck)
    assert trainer.epochs_trained == 0 and len(history["loss"]) == 2
    assert same_weights(weights(model), before)


def test_penalty_enters_the_reported_loss_once_per_epoch(digits):
    x, t, _, _ = digits
    model = cnn()
    opt = SGD(model.parameters(), lr=0.05, weight_decay=0.5)
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, seed=0, progress=False)
    history = trainer.fit(x, t, epochs=1, validation_data=(x, t))
    data_loss = dl2.evaluate(model, x, t, SoftmaxCrossEntropy())["loss"]
    assert history["val_loss"][0] == pytest.approx(data_loss + opt.penalty(), rel=1e-6)
    w = [p.data.astype(np.float64) for p in opt.params if p.regularize]
    assert opt.penalty() == pytest.approx(0.25 * sum(float(np.sum(a * a)) for a in w), rel=1e-5)


# --------------------------------------------------------------------- early stopping
def test_early_stopping_logic_on_a_fake_trainer():
    model = Sequential(Linear(2), input_shape=(3,), seed=0)
    trainer = types.SimpleNamespace(model=model, stop_training=False, has_validation=True)
    es = EarlyStopping("val_loss", patience=2, min_delta=0.1)
    es.on_train_begin(trainer)
    values = [1.0, 0.8, 0.75, 0.85, 0.6]   # 0.75 is not better than 0.8 by more than min_delta
    for epoch, v in enumerate(values):
        model.layers[0].weight.data[...] = epoch
        es.on_epoch_end(trainer, epoch, {"val_loss": v})
        if trainer.stop_training:
            break
    assert trainer.stop_training and es.stopped_epoch == 3 and es.best_epoch == 1 and es.best == 0.8
    es.on_train_end(trainer)
    assert np.all(model.layers[0].weight.data == 1)   # weights of the best epoch

    es = EarlyStopping("val_accuracy", patience=1)
    assert es.mode == "max"
    with pytest.raises(ValueError, match="no validation_data"):
        es.on_train_begin(types.SimpleNamespace(has_validation=False))


def test_early_stopping_in_training_restores_best(digits):
    x, t, _, _ = digits
    rng = np.random.default_rng(0)
    x_val, t_val = x[:100], rng.integers(0, 10, 100)    # random labels: validation loss soon gets worse
    model = cnn()
    snapshots = []
    es = EarlyStopping("val_loss", patience=2)
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=0.02), seed=0, progress=False,
                      callbacks=[LambdaCallback(on_epoch_end=lambda tr, e, logs: snapshots.append(weights(model))),
                                 es])
    history = trainer.fit(x, t, epochs=30, batch_size=32, validation_data=(x_val, t_val))
    n = len(history["val_loss"])
    assert n < 30 and es.stopped_epoch == n - 1
    best = int(np.argmin(history["val_loss"]))
    assert es.best_epoch == best and n - 1 - best == 2
    assert same_weights(weights(model), snapshots[best])


# --------------------------------------------------------------------- statistics, aux heads, progress
def test_grad_stats_show_vanishing_gradients_in_a_deep_sigmoid_net():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((128, 16)).astype(np.float32), rng.integers(0, 4, 128)
    layers = []
    for _ in range(6):
        layers += [Linear(32, weight_init="xavier"), Sigmoid()]
    model = Sequential(*layers, Linear(4), input_shape=(16,), seed=0)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), seed=0, progress=False)
    history = trainer.fit(x, t, epochs=2, batch_size=32, grad_stats=True)
    norms = history["grad_norm"]
    assert list(norms) == [f"{2 * i} (Linear)" for i in range(7)]
    assert all(len(v) == 2 and all(np.isfinite(v)) for v in norms.values())
    first, last_hidden = norms["0 (Linear)"][0], norms["10 (Linear)"][0]
    assert first < 0.1 * last_hidden
    assert len(history["act_mean"]) == 13 and len(history["act_std"]["1 (Sigmoid)"]) == 2
    assert 0 < history["act_mean"]["1 (Sigmoid)"][0] < 1
    assert model._activation_hook is None


def test_aux_head_is_trained_through_the_trainer(digits):
    x, t, _, _ = digits
    model = Sequential(Conv2D(8, 3, padding=1), ReLU(), AuxHead([GlobalAvgPool2D(), Linear(10)], weight=0.5),
                       MaxPool2D(2), Flatten(), Linear(10), input_shape=(1, 8, 8), seed=0)
    head_before = weights(model.layers[2].head)
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=0.01), seed=0, progress=False)
    history = trainer.fit(x, t, epochs=2, batch_size=32)
    assert not same_weights(head_before, weights(model.layers[2].head))
    # the reported training loss includes 0.5 * the head's loss: above the eval-mode main loss alone
    main = trainer.evaluate(x, t)["loss"]
    model.train()
    model(x)
    aux = model.auxiliary_loss(SoftmaxCrossEntropy(), t)
    assert aux > 0.1 * main and history["loss"][-1] > main


class _FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_builtin_progress_bar():
    stream = _FakeTTY()
    bar = ProgressBar(100, "epoch 1/3", stream=stream, use_tqdm=False)
    for _ in range(10):
        bar.update(10, loss=0.5, acc=0.75)
    text = stream.getvalue()
    assert "epoch 1/3" in text and "100/100" in text and "loss 0.5000" in text and "acc 0.7500" in text
    assert "samples/s" in text
    bar.close()
    assert stream.getvalue().endswith("\r")
    quiet = io.StringIO()        # not a terminal: nothing drawn
    bar = ProgressBar(10, "x", stream=quiet, use_tqdm=False)
    bar.update(10, 1.0)
    bar.close()
    assert quiet.getvalue() == ""


def test_progress_prints_epoch_lines(digits, capsys):
    x, t, _, _ = digits
    model = cnn()
    Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters()), seed=0).fit(x[:64], t[:64], epochs=2)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "loss" in err
    Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters()), progress=False).fit(x[:64], t[:64])
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------- per-epoch evaluation, test-time augmentation
def test_evaluate_each_epoch_records_test_numbers_and_elapsed_time(digits):
    import time
    x, t, xt, tt = digits
    model = cnn()
    each = EvaluateEachEpoch(xt, tt, start=time.perf_counter() - 100.0)
    seen = []
    trainer = Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-2), progress=False, seed=0,
                      callbacks=[each, LambdaCallback(on_epoch_end=lambda tr, e, logs: seen.append(
                          logs["test_accuracy"])), EarlyStopping("test_accuracy", patience=5)])
    history = trainer.fit(x, t, epochs=3, batch_size=32)
    assert history["test_accuracy"] == seen and len(seen) == 3
    assert each.last[0] == 2 and each.last[1] == trainer.evaluate(xt, tt)     # the trained model's numbers
    assert history["test_loss"][-1] == each.last[1]["loss"] and history["test_accuracy"][-1] > 0.5
    elapsed = history["elapsed"]
    assert elapsed[0] > 100 and elapsed[0] < elapsed[1] < elapsed[2]
    assert elapsed[2] - 100 >= sum(history["time"])            # wall clock: training plus evaluations
    with pytest.raises(ValueError, match="EvaluateEachEpoch\\('test'\\): samples of x have shape"):
        Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters()), progress=False,
                callbacks=[EvaluateEachEpoch(xt.reshape(len(xt), -1), tt)]).fit(x, t)
    with pytest.raises(ValueError, match="tta"):
        EvaluateEachEpoch(xt, tt, tta="rotate")


def test_flip_tta_averages_the_outputs_of_the_image_and_its_mirror():
    model = Sequential(Flatten(), Linear(2), input_shape=(1, 1, 3), seed=0)
    w = np.array([[1.0, 2.0, 4.0], [0.5, 0.0, -1.0]], model.dtype)
    state = model.state_dict()
    weight_key = next(k for k, v in state.items() if v.shape in (w.shape, w.T.shape))
    bias_key = next(k for k, v in state.items() if v.shape == (2,))
    state[weight_key] = w if state[weight_key].shape == w.shape else w.T.copy()
    state[bias_key] = np.array([0.0, 1.0], model.dtype)
    model.load_state_dict(state)
    x = np.array([[[[1.0, 0.0, 0.0]]], [[[0.0, 0.0, 3.0]]]], model.dtype)
    t = np.array([0, 1])
    # by hand: flip-averaged inputs (x + mirror) / 2 are [.5, 0, .5] and [1.5, 0, 1.5]
    y = np.array([[2.5, 0.75], [7.5, 0.25]])
    logp = y - np.log(np.exp(y).sum(1, keepdims=True))
    expected_loss = -(logp[0, 0] + logp[1, 1]) / 2
    got = dl2.evaluate(model, x, t, SoftmaxCrossEntropy(), tta="flip")
    assert got["loss"] == pytest.approx(expected_loss, rel=1e-5) and got["accuracy"] == 0.5
    plain = dl2.evaluate(model, x, t, SoftmaxCrossEntropy())
    assert plain["loss"] != pytest.approx(got["loss"], rel=1e-3)
    trainer = Trainer(model, SoftmaxCrossEntropy(), None, progress=False)
    assert trainer.evaluate(x, t, tta="flip") == pytest.approx(got)
    with pytest.raises(ValueError, match="tta must be None or 'flip'"):
        dl2.evaluate(model, x, t, SoftmaxCrossEntropy(), tta="flop")
    flat = Sequential(Linear(2), input_shape=(3,), seed=0)
    with pytest.raises(ValueError, match="needs images"):
        dl2.evaluate(flat, x.reshape(2, 3), t, SoftmaxCrossEntropy(), tta="flip")


def test_flip_tta_of_mirror_symmetric_images_equals_plain_evaluation(digits):
    x, t, xt, tt = digits
    model = cnn()
    Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-2), progress=False).fit(x, t, epochs=1)
    symmetric = (xt + xt[..., ::-1]) / 2
    trainer = Trainer(model, SoftmaxCrossEntropy(), None, progress=False)
    assert trainer.evaluate(symmetric, tt, tta="flip") == trainer.evaluate(symmetric, tt)
    assert trainer.evaluate(xt, tt, tta="flip") != trainer.evaluate(xt, tt)
