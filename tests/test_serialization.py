"""Tests of dl2.serialization: model files, checkpoints, atomic writes, clear errors."""
import json
import os

import numpy as np
import pytest

import dl2
from dl2 import serialization
from dl2.containers import AuxHead, Concat, Residual, Sequential
from dl2.layers import BatchNorm2D, Conv2D, Dropout, Flatten, GlobalAvgPool2D, Linear, MaxPool2D, ReLU, SqueezeExcite
from dl2.optim import Adam


def small_cnn(seed=0, dtype=np.float32):
    return Sequential(Conv2D(4, 3, padding=1), BatchNorm2D(), ReLU(), MaxPool2D(2),
                      Residual([Conv2D(4, 3, padding=1), ReLU()]), SqueezeExcite(2),
                      Concat(Conv2D(2, 1), Conv2D(2, 3, padding=1)), AuxHead([GlobalAvgPool2D(), Linear(10)]),
                      Dropout(0.3), Flatten(), Linear(10), input_shape=(1, 8, 8), dtype=dtype, seed=seed)


def images(n=6, seed=0):
    return np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32)


def trained_a_little(model):
    """Change parameters and batch-norm statistics so the round trip is not of a fresh model."""
    x = images(16, seed=1)
    for p in model.parameters():
        p.data += 0.01 * np.random.default_rng(2).standard_normal(p.shape).astype(p.dtype)
    model.train()
    model(x)
    model.eval()
    return model


def test_round_trip_bit_identical_predictions(tmp_path):
    model = trained_a_little(small_cnn())
    x = images()
    before = model(x)
    path = tmp_path / "model.npz"
    dl2.save(model, path)
    loaded = dl2.load(path)
    loaded.eval()
    assert isinstance(loaded, Sequential) and loaded.input_shape == (1, 8, 8)
    assert np.array_equal(loaded(x), before)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype and np.array_equal(a, b)


def test_round_trip_keeps_the_normalisation_layers_arguments(tmp_path):
    """The batch norms' ``__init__`` comes from a mixin; their eps, momentum and affine must survive the file (a
    different eps would give other outputs silently)."""
    from dl2.layers import BatchNorm1D, GroupNorm, InstanceNorm2D, LayerNorm
    model = Sequential(Conv2D(4, 3, padding=1), BatchNorm2D(eps=1e-2, momentum=0.3, affine=False),
                       GroupNorm(2, eps=1e-3), InstanceNorm2D(eps=1e-2, affine=True), LayerNorm(eps=1e-2),
                       Flatten(), Linear(5), BatchNorm1D(eps=0.5, momentum=0.7),
                       input_shape=(1, 8, 8), dtype=np.float64, seed=0)
    trained_a_little(model)
    path = tmp_path / "norms.npz"
    dl2.save(model, path)
    loaded = dl2.load(path)
    for a, b in zip(model.layers, loaded.layers):
        for name in ("eps", "momentum", "affine"):
            assert getattr(a, name, None) == getattr(b, name, None), (type(a).__name__, name)
    bn2, bn1 = loaded.layers[1], loaded.layers[7]
    assert (bn2.eps, bn2.momentum, bn2.affine, bn2.gamma) == (1e-2, 0.3, False, None)
    assert (bn1.eps, bn1.momentum) == (0.5, 0.7)
    loaded.eval()
    x = np.random.default_rng(3).random((4, 1, 8, 8))
    assert np.array_equal(loaded(x), model(x))


def test_round_trip_float64_and_deferred_build(tmp_path):
    model = Sequential(Linear(5), ReLU(), Linear(2), dtype=np.float64, seed=0)
    model.build((3,))
    cfg = dl2.to_config(model)
    assert cfg["input_shape"] == [3] and cfg["dtype"] == "float64"
    json.dumps(cfg)
    dl2.save(model, tmp_path / "m")
    assert os.path.exists(tmp_path / "m")   # the path is used as given
    loaded = dl2.load(tmp_path / "m")
    x = np.random.default_rng(0).standard_normal((4, 3))
    assert loaded.dtype == np.float64 and np.array_equal(loaded(x), model(x))


def test_save_unbuilt_model_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unbuilt"):
        dl2.save(Sequential(Linear(3)), tmp_path / "m.npz")


class _Crash(RuntimeError):
    pass


def test_crash_during_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = small_cnn(seed=0)
    dl2.save(old, path)
    old_bytes = path.read_bytes()

    calls = []
    real_write = serialization._write_member

    def crashing_write(zf, name, array):
        calls.append(name)
        if len(calls) == 3:   # half-way through the arrays
            raise _Crash("simulated crash")
        real_write(zf, name, array)

    monkeypatch.setattr(serialization, "_write_member", crashing_write)
    with pytest.raises(_Crash):
        dl2.save(small_cnn(seed=1), path)
    assert len(calls) == 3 < len(small_cnn().state_dict())
    assert path.read_bytes() == old_bytes
    assert os.listdir(tmp_path) == ["model.npz"]
    monkeypatch.undo()
    x = images()
    m = dl2.load(path)
    old.eval(), m.eval()
    assert np.array_equal(m(x), old(x))


def test_crash_before_rename_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    model = small_cnn()
    dl2.save_checkpoint(path, model, epoch=1)
    old_bytes = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(serialization.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        dl2.save_checkpoint(path, model, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes and os.listdir(tmp_path) == ["ckpt.npz"]
    assert dl2.load_checkpoint(path)["epoch"] == 1


def test_mismatched_shapes_raise_clearly(tmp_path):
    path = tmp_path / "m.npz"
    dl2.save(Sequential(Linear(5), ReLU(), Linear(3), input_shape=(4,), seed=0), path)
    other = Sequential(Linear(6), ReLU(), Linear(3), input_shape=(4,), seed=0)
    with pytest.raises(ValueError, match=r"0\.weight: file has shape \(4, 5\), model expects \(4, 6\)"):
        dl2.load(path, model=other)
    fewer = Sequential(Linear(5), input_shape=(4,))
    with pytest.raises(ValueError, match="unexpected arrays"):
        dl2.load(path, model=fewer)


def test_mismatched_dtype_raises_clearly(tmp_path):
    path = tmp_path / "m.npz"
    dl2.save(Sequential(Linear(5), input_shape=(4,), dtype=np.float32), path)
    with pytest.raises(ValueError, match="file has dtype float32, model expects float64"):
        dl2.load(path, model=Sequential(Linear(5), input_shape=(4,), dtype=np.float64))


@pytest.mark.parametrize("cut", [0, 10, 200, -30])
def test_truncated_file_raises_value_error(tmp_path, cut):
    path = tmp_path / "m.npz"
    dl2.save(small_cnn(), path)
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data[:cut] if cut >= 0 else data[:len(data) + cut])
    with pytest.raises(ValueError, match="bad.npz"):
        dl2.load(bad)


def test_corrupted_bytes_raise_value_error(tmp_path):
    path = tmp_path / "m.npz"
    dl2.save(small_cnn(), path)
    data = bytearray(path.read_bytes())
    # flip bytes inside the first stored array's data (after its local header): the zip CRC catches it
    i = data.index(b"model/0.weight.npy") + 200
    data[i:i + 8] = bytes(255 - b for b in data[i:i + 8])
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        dl2.load(path)


def test_non_dl2_files_raise_value_error(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a dl2 file"):
        dl2.load(tmp_path / "plain.npz")
    (tmp_path / "text.npz").write_text("hello, I am not an archive\n")
    with pytest.raises(ValueError, match="text.npz"):
        dl2.load(tmp_path / "text.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single.npy"):
        dl2.load(tmp_path / "single.npy")
    with pytest.raises(FileNotFoundError):
        dl2.load(tmp_path / "missing.npz")


def test_unknown_layer_class_in_config(tmp_path):
    model = Sequential(Linear(3), input_shape=(2,))
    path = tmp_path / "m.npz"
    dl2.save(model, path)
    # rewrite the header with a class name that does not exist
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["__dl2__"]))
    meta["config"]["module"]["args"]["layers"][0]["class"] = "NoSuchLayer"
    arrays["__dl2__"] = np.array(json.dumps(meta))
    serialization.atomic_write(path, arrays)
    with pytest.raises(ValueError, match="NoSuchLayer"):
        dl2.load(path)


def test_checkpoint_round_trip_with_optimizer_and_rng(tmp_path):
    model = small_cnn()
    opt = Adam(model.parameters(), lr=0.01)
    x, t = images(8), np.arange(8) % 10
    loss = dl2.SoftmaxCrossEntropy()
    model.train()
    for _ in range(2):
        opt.zero_grad()
        loss.forward(model(x), t)
        model.backward(loss.backward())
        opt.step()
    rng = np.random.default_rng(7)
    rng.random(3)
    path = tmp_path / "ckpt.npz"
    history = {"loss": [np.float64(1.5), 1.25], "time": [0.1, 0.2]}
    dl2.save_checkpoint(path, model, opt, epoch=2, history=history,
                        rng_states={"loader": rng.bit_generator.state},
                        extra={"sched": {"epoch": 2, "base_lr": 0.01}, "es": {"best": np.zeros(3)}})

    fresh = small_cnn(seed=9)
    opt2 = Adam(fresh.parameters(), lr=0.5)
    ck = dl2.load_checkpoint(path, fresh, opt2)
    assert ck["model"] is fresh and ck["epoch"] == 2 and ck["history"] == {"loss": [1.5, 1.25], "time": [0.1, 0.2]}
    assert opt2.t == 2 and opt2.lr == 0.01
    for s1, s2 in zip(opt.state, opt2.state):
        for k in s1:
            assert np.array_equal(s1[k], s2[k])
    restored = np.random.default_rng()
    restored.bit_generator.state = ck["rng_states"]["loader"]
    assert np.array_equal(restored.random(4), rng.random(4))
    assert ck["extra"]["sched"] == {"epoch": 2, "base_lr": 0.01}
    assert np.array_equal(ck["extra"]["es"]["best"], np.zeros(3))
    # rebuilding from the checkpoint's own config
    again = dl2.load_checkpoint(path)["model"]
    again.eval(), model.eval()
    assert np.array_equal(again(x), model(x))
    # the dropout generator is restored too: the next masks agree
    model.train(), fresh.train()
    assert np.array_equal(model(x), fresh(x))


def test_checkpoint_and_model_files_are_not_interchangeable(tmp_path):
    model = Sequential(Linear(3), input_shape=(2,))
    dl2.save(model, tmp_path / "model.npz")
    with pytest.raises(ValueError, match="expected a dl2-checkpoint"):
        dl2.load_checkpoint(tmp_path / "model.npz")
    dl2.save_checkpoint(tmp_path / "ckpt.npz", model, epoch=3)
    assert isinstance(dl2.load(tmp_path / "ckpt.npz"), Sequential)   # a checkpoint holds a whole model


def test_checkpoint_optimizer_mismatch(tmp_path):
    model = Sequential(Linear(3), input_shape=(2,))
    dl2.save_checkpoint(tmp_path / "c.npz", model, Adam(model.parameters()), epoch=1)
    from dl2.optim import SGD
    with pytest.raises(ValueError, match="optimizer state does not match"):
        dl2.load_checkpoint(tmp_path / "c.npz", model, SGD(model.parameters(), lr=0.1))


def test_a_user_class_with_a_dl2_name_does_not_replace_dl2s(tmp_path):
    class Linear(dl2.Module):   # noqa: F811  (a user's own layer that happens to share a dl2 name)
        pass

    assert dl2.MODULES["Linear"] is dl2.Linear
    assert dl2.MODULES[f"{__name__}.test_a_user_class_with_a_dl2_name_does_not_replace_dl2s.<locals>.Linear"] \
        is Linear
    model = Sequential(dl2.Linear(3), input_shape=(2,), seed=0)
    assert model.get_config()["args"]["layers"][0]["class"] == "Linear"
    dl2.save(model, tmp_path / "m.npz")
    assert type(dl2.load(tmp_path / "m.npz")[0]) is dl2.Linear
    assert Linear().get_config()["class"].endswith(".<locals>.Linear")
