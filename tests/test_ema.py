"""Tests of dl2.ema (EMA of the weights) and its use by dl2.Trainer and dl2 train --ema."""
import numpy as np
import pytest

import dl2
from dl2 import EMA
from dl2.layers import BatchNorm2D, Conv2D, Flatten, Linear, ReLU
from dl2.losses import SoftmaxCrossEntropy
from dl2.optim import SGD, Momentum

pytestmark = pytest.mark.usefixtures("one_fastconv_thread")


@pytest.fixture(scope="module")
def digits():
    (x, t), (xt, tt) = dl2.data.load_digits()
    return x[:200], t[:200], xt[:100], tt[:100]


def small_cnn(seed=0):
    return dl2.Sequential(Conv2D(4, 3, padding=1), BatchNorm2D(), ReLU(), Flatten(), Linear(10),
                          input_shape=(1, 8, 8), seed=seed, dtype=np.float64)


def params(model):
    return {name: p.data.copy() for name, p in model.named_parameters()}


def set_params(model, value):
    for _, p in model.named_parameters():
        p.data[...] = value


# --------------------------------------------------------------------- the average
@pytest.mark.parametrize("warmup", [True, False])
def test_values_after_k_updates_by_hand(warmup):
    model = dl2.Sequential(Linear(2), input_shape=(3,), seed=0, dtype=np.float64)
    start = params(model)
    ema = EMA(model, decay=0.9, warmup=warmup)
    expected = dict(start)
    for n, value in enumerate([1.0, -2.0, 3.0, 0.5]):
        set_params(model, value)
        d = min(0.9, (1 + n) / (10 + n)) if warmup else 0.9
        assert ema.current_decay == pytest.approx(d)
        ema.update()
        expected = {k: d * v + (1 - d) * value for k, v in expected.items()}
    assert ema.updates == 4
    for name, value in expected.items():
        np.testing.assert_allclose(ema.shadow[name], value, rtol=1e-14)
    # warm-up decays 0.1, 2/11, 0.25, 4/13: all below 0.9, so the average follows the recent weights more
    assert (ema.current_decay < 0.9) == warmup


def test_apply_swaps_in_the_average_and_restores_exactly_even_on_error():
    model = small_cnn()
    ema = EMA(model, decay=0.5, warmup=False)
    set_params(model, 3.0)
    ema.update()
    live = params(model)
    with ema.apply() as m:
        assert m is model
        for name, value in params(model).items():
            np.testing.assert_array_equal(value, ema.shadow[name])
            assert not np.array_equal(value, live[name])
    for name, value in params(model).items():
        np.testing.assert_array_equal(value, live[name])
    with pytest.raises(RuntimeError, match="inside"):
        with ema.apply():
            raise RuntimeError("inside")
    for name, value in params(model).items():
        np.testing.assert_array_equal(value, live[name])


def test_buffers_are_the_live_models_not_averaged():
    model = small_cnn()
    bn = model.layers[1]
    ema = EMA(model, decay=0.99)
    model.train()
    model.forward(np.random.default_rng(0).normal(3.0, 2.0, (16, 1, 8, 8)))   # moves the running statistics
    ema.update()
    stats = bn.running_mean.copy(), bn.running_var.copy()
    assert not np.allclose(stats[0], 0.0)
    assert not any(name.endswith(("running_mean", "running_var")) for name in ema.shadow)
    with ema.apply():
        np.testing.assert_array_equal(bn.running_mean, stats[0])
        np.testing.assert_array_equal(bn.running_var, stats[1])


def test_copy_to_state_dict_and_errors():
    model = small_cnn()
    ema = EMA(model, decay=0.8)
    set_params(model, 2.0)
    ema.update()
    ema.update()
    other = small_cnn(seed=7)
    ema.copy_to(other)
    for name, value in params(other).items():
        np.testing.assert_array_equal(value, ema.shadow[name])
    restored = EMA(other, decay=0.8)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 2 and restored.current_decay == ema.current_decay
    for name in ema.shadow:
        np.testing.assert_array_equal(restored.shadow[name], ema.shadow[name])
    state = ema.state_dict()
    state["shadow.0.weight"][...] = 0          # a copy
    assert not np.all(ema.shadow["0.weight"] == 0)
    with pytest.raises(KeyError, match="missing keys"):
        restored.load_state_dict({"updates": 1})
    with pytest.raises(ValueError, match="differ"):
        ema.copy_to(dl2.Sequential(Flatten(), Linear(10), input_shape=(1, 8, 8), seed=0))
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\)"):
        EMA(model, decay=1.0)
    with pytest.raises(TypeError, match="warmup must be True or False"):
        EMA(model, warmup=1)
    with pytest.raises(TypeError, match="expected a dl2 Module"):
        EMA([p for p in model.parameters()])
    with pytest.raises(ValueError, match="build the model first"):
        EMA(dl2.Sequential(Linear(3)))


# --------------------------------------------------------------------- in the Trainer
def make_trainer(ema, seed=0):
    model = small_cnn(seed)
    opt = Momentum(model.parameters(), lr=0.05)
    return model, dl2.Trainer(model, SoftmaxCrossEntropy(), opt, seed=1, progress=False, ema=ema)


def test_trainer_validates_on_the_ema_weights(digits):
    x, t, xv, tv = digits
    model, trainer = make_trainer(0.9)
    assert isinstance(trainer.ema, EMA) and trainer.ema.decay == 0.9
    history = trainer.fit(x, t, epochs=2, batch_size=32, validation_data=(xv, tv))
    assert trainer.ema.updates == 2 * 7                     # 200 samples, batch 32: 7 steps per epoch
    loss = SoftmaxCrossEntropy()
    live = dl2.evaluate(model, xv, tv, loss)["loss"]        # fit leaves the live weights in the model
    with trainer.ema.apply():
        averaged = dl2.evaluate(model, xv, tv, loss)["loss"]
    assert history["val_loss"][-1] == pytest.approx(averaged, rel=1e-12)
    assert abs(averaged - live) > 1e-6
    assert trainer.evaluate(xv, tv)["loss"] == pytest.approx(averaged, rel=1e-12)
    with trainer.eval_weights():
        predicted = model.predict(xv)
    np.testing.assert_array_equal(trainer.predict(xv), predicted)
    assert dl2.evaluate(model, xv, tv, loss)["loss"] == live  # and the live weights are back


def test_trainer_val_loss_with_ema_has_the_penalty_of_the_averaged_weights(digits):
    """val_loss = data loss + weight-decay penalty, both of the weights evaluated (the EMA's)."""
    x, t, xv, tv = digits
    model = small_cnn(0)
    opt = Momentum(model.parameters(), lr=0.05, weight_decay=0.05)
    trainer = dl2.Trainer(model, SoftmaxCrossEntropy(), opt, seed=1, progress=False, ema=0.9)
    history = trainer.fit(x, t, epochs=2, batch_size=32, validation_data=(xv, tv))
    live_penalty = opt.penalty()
    with trainer.ema.apply():
        averaged_penalty = opt.penalty()
        data_loss = dl2.evaluate(model, xv, tv, SoftmaxCrossEntropy())["loss"]
    assert abs(averaged_penalty - live_penalty) > 1e-6
    assert history["val_loss"][-1] == pytest.approx(data_loss + averaged_penalty, rel=1e-12)
    assert history["loss"][-1] > live_penalty                   # the training loss keeps the live weights' penalty


def test_trainer_without_ema_evaluates_the_live_weights(digits):
    x, t, xv, tv = digits
    model, trainer = make_trainer(None)
    with trainer.eval_weights() as m:
        assert m is model
    before = params(model)
    trainer.evaluate(xv, tv)
    for name, value in params(model).items():
        np.testing.assert_array_equal(value, before[name])


def test_trainer_ema_errors():
    model, _ = make_trainer(None)
    opt = SGD(model.parameters())
    with pytest.raises(ValueError, match="another model"):
        dl2.Trainer(model, SoftmaxCrossEntropy(), opt, ema=EMA(small_cnn()))
    with pytest.raises(ValueError, match="ema"):
        dl2.Trainer(model, SoftmaxCrossEntropy(), opt, ema=1.5)
    with pytest.raises(TypeError, match="ema"):
        dl2.Trainer(model, SoftmaxCrossEntropy(), opt, ema="0.9")


def test_trainer_checkpoint_resumes_the_ema(digits, tmp_path):
    x, t, xv, tv = digits
    model_a, trainer_a = make_trainer(0.9)
    history_a = trainer_a.fit(x, t, epochs=4, batch_size=32, validation_data=(xv, tv))
    ckpt = tmp_path / "c.npz"
    _, trainer_b = make_trainer(0.9)
    trainer_b.fit(x, t, epochs=2, batch_size=32, validation_data=(xv, tv), checkpoint=ckpt)
    model_c, trainer_c = make_trainer(0.9, seed=5)
    history_c = trainer_c.fit(x, t, epochs=4, batch_size=32, validation_data=(xv, tv), resume=ckpt)
    assert history_c["val_loss"] == history_a["val_loss"]
    assert trainer_c.ema.updates == trainer_a.ema.updates == 28
    for name in trainer_a.ema.shadow:
        np.testing.assert_array_equal(trainer_c.ema.shadow[name], trainer_a.ema.shadow[name])
    for name, value in params(model_a).items():
        np.testing.assert_array_equal(params(model_c)[name], value)


# --------------------------------------------------------------------- dl2 train --ema
def test_cli_ema_saves_and_tests_the_average(capsys, tmp_path):
    from dl2 import cli
    path, ckpt = tmp_path / "m.npz", tmp_path / "c.npz"
    code = cli.main(["train", "--model", "mlp", "--epochs", "2", "--ema", "0.99", "--no-progress", "--val-split",
                     "0", "--save", str(path), "--checkpoint", str(ckpt)])
    out = capsys.readouterr().out
    assert code == 0 and "EMA of the weights (decay 0.99)" in out
    saved = dl2.load(path)
    state = dl2.load_checkpoint(ckpt)
    (_, _), (xt, tt) = dl2.data.load_digits()
    averaged = dl2.evaluate(saved, xt, tt, SoftmaxCrossEntropy())
    assert f"test accuracy: {averaged['accuracy']:.4f}" in out
    ema = EMA(state["model"])
    ema.load_state_dict(state["extra"]["ema"])
    for name, p in saved.named_parameters():
        np.testing.assert_array_equal(p.data, ema.shadow[name])          # saved: the average
    live = dict(state["model"].named_parameters())                       # checkpoint: the live weights
    assert any(not np.array_equal(live[name].data, ema.shadow[name]) for name in ema.shadow)
    with pytest.raises(SystemExit):
        cli.main(["train", "--ema", "1"])
    assert "--ema: expected a number in (0, 1)" in capsys.readouterr().err
