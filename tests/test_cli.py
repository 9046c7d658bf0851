"""Tests of the dl2 command (dl2.cli, python -m dl2)."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dl2 import cli

LAST_LINE = re.compile(r"^test accuracy: (0\.\d{4}|1\.0000)$")


pytestmark = pytest.mark.usefixtures("one_fastconv_thread")


@pytest.fixture
def no_datasets(tmp_path, monkeypatch):
    """No MNIST anywhere: an empty home, no DL2_DATA."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DL2_DATA", raising=False)
    return tmp_path


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def accuracy_of(out):
    last = out.strip().splitlines()[-1]
    m = LAST_LINE.match(last)
    assert m, f"last line is {last!r}"
    return float(m.group(1))


# --------------------------------------------------------------------- train / eval / info
def test_train_few_epochs_table_and_last_line(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--epochs", "2", "--no-progress", "--threads", "1")
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["epoch"])
    assert lines[header].split() == ["epoch", "loss", "acc", "val_loss", "val_acc", "lr", "sec"]
    rows = [line.split() for line in lines[header + 1:header + 3]]
    assert [r[0] for r in rows] == ["1", "2"] and all(len(r) == 7 for r in rows)
    assert all(float(r[5]) == 0.001 for r in rows)    # Adam's own default learning rate
    assert float(rows[1][1]) < float(rows[0][1])     # the loss went down
    assert accuracy_of(out) > 0.5                    # chance is 0.1


def test_default_train_reaches_98_percent(capsys):
    code, out, _ = run(capsys, "train", "--no-progress", "--threads", "1")
    assert code == 0
    assert "model cnn (6,138 parameters)" in out and "dataset digits" in out and "optimizer adam lr 0.001" in out
    assert accuracy_of(out) >= 0.98


def test_save_then_eval_round_trip(capsys, tmp_path):
    path = str(tmp_path / "mlp.npz")
    code, out, _ = run(capsys, "train", "--model", "mlp", "--epochs", "3", "--optimizer", "momentum",
                       "--weight-decay", "1e-4", "--seed", "3", "--save", path, "--no-progress")
    assert code == 0 and os.path.exists(path)
    trained = accuracy_of(out)
    code, out, _ = run(capsys, "eval", "--model", path)
    assert code == 0
    assert accuracy_of(out) == trained


def test_checkpoint_and_resume_from_the_command_line(capsys, tmp_path):
    ckpt = str(tmp_path / "ckpt.npz")
    code, out_full, _ = run(capsys, "train", "--model", "mlp", "--epochs", "3", "--no-progress")
    code, _, _ = run(capsys, "train", "--model", "mlp", "--epochs", "2", "--no-progress", "--checkpoint", ckpt)
    assert code == 0 and os.path.exists(ckpt)
    code, out_resumed, _ = run(capsys, "train", "--model", "mlp", "--epochs", "3", "--no-progress",
                               "--resume", ckpt)
    assert code == 0 and out_resumed.strip().splitlines()[-1] == out_full.strip().splitlines()[-1]

    def epoch3(out):   # the table row of epoch 3 without its time
        return next(line.split()[:-1] for line in out.splitlines() if line.split()[:1] == ["3"])

    assert epoch3(out_resumed) == epoch3(out_full)


def test_info_prints_fastconv_config(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0
    assert "fastconv" in out and "OpenMP" in out and "threads" in out
    from dl2 import models
    assert f"models: {', '.join(models.names())}" in out and "cnn" in models.names()


def test_python_dash_m_end_to_end(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dl2", "train", "--epochs", "1", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert LAST_LINE.match(proc.stdout.strip().splitlines()[-1])
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(shutil.which("dl2") is None, reason="the dl2 console script is not on PATH")
def test_console_script_errors_are_one_line(tmp_path):
    proc = subprocess.run(["dl2", "train", "--model", "no-such-model"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("dl2: error: unknown model 'no-such-model'")


# --------------------------------------------------------------------- errors
def test_missing_dataset_is_a_one_line_error(capsys, no_datasets):
    empty = no_datasets / "empty"
    empty.mkdir()
    code, out, err = run(capsys, "train", "--dataset", "mnist", "--data-dir", str(empty))
    assert code == 1
    assert err.startswith("dl2: error: mnist IDX files not found") and err.count("\n") == 1
    code, _, err = run(capsys, "train", "--dataset", "mnist", "--data-dir", str(no_datasets / "nope"))
    assert code == 1 and "no such directory" in err


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "--epochs: expected a positive integer"),
    (["train", "--batch-size", "x"], "--batch-size: expected a positive integer"),
    (["train", "--optimizer", "adamw"], "--optimizer: invalid choice"),
    (["train", "--dataset", "cifar"], "--dataset: invalid choice"),
    (["train", "--lr", "-1"], "--lr: expected a number"),
    (["train", "--val-split", "1"], "--val-split: expected a number in [0, 1)"),
    (["train", "--frobnicate"], "unrecognized arguments"),
    (["train", "--model-args", "{depth: 3}"], "--model-args: not valid JSON"),
    (["train", "--model-args", "[1, 2]"], "--model-args: expected a JSON object"),
    (["train", "--augment", "rotate"], "--augment: expected a comma-separated list of flip, crop, erase"),
    (["train", "--erase-prob", "1.5"], "--erase-prob: expected a number in [0, 1]"),
    (["train", "--targets", "0.9,95"], "--targets: expected accuracies in (0, 1]"),
    (["train", "--tta", "rotate"], "--tta: invalid choice"),
    (["train", "--input-shape", "1,x,8"], "--input-shape: expected positive integers"),
    (["train", "--schedule", "linear"], "--schedule: invalid choice"),
    (["train", "--warmup", "-1"], "--warmup: expected a number in [0, inf)"),
    (["train", "--lr-step", "step"], "--lr-step: invalid choice"),
    (["train", "--label-smoothing", "1"], "--label-smoothing: expected a number in [0, 1)"),
    (["train", "--momentum", "1.5"], "--momentum: expected a number in [0, 1)"),
    (["train", "--gamma", "0"], "--gamma: expected a number in (0, 1)"),
    (["train", "--threads", "0"], "--threads: expected a positive integer"),
    (["eval"], "required: --model"),
    ([], "required"),
])
def test_bad_options_exit_2_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_runtime_errors_exit_1(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--model", "nope")
    assert code == 1 and "unknown model 'nope'" in err and "bn_cnn, cnn" in err
    code, _, err = run(capsys, "eval", "--model", str(tmp_path / "missing.npz"))
    assert code == 1 and "no such file" in err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    code, _, err = run(capsys, "eval", "--model", str(bad))
    assert code == 1 and "corrupt" in err and err.count("\n") == 1
    code, _, err = run(capsys, "train", "--save", str(tmp_path / "no" / "dir" / "m.npz"))
    assert code == 1 and "does not exist" in err
    code, _, err = run(capsys, "train", "--data-dir", str(tmp_path))
    assert code == 1 and "does not apply" in err


def test_plot_without_matplotlib_is_a_clear_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # makes "import matplotlib" fail
    code, out, err = run(capsys, "train", "--epochs", "1", "--plot", str(tmp_path / "c.png"))
    assert code == 1 and "needs matplotlib" in err
    assert out == ""   # checked before training


def test_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    code, out, _ = run(capsys, "train", "--model", "mlp", "--epochs", "2", "--no-progress", "--plot", str(path))
    assert code == 0 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert LAST_LINE.match(out.strip().splitlines()[-1])


# --------------------------------------------------------------------- model registry
def test_cnn_and_mlp_are_zoo_models_for_both_image_sizes():
    from dl2 import models
    for name, cls in (("cnn", models.SmallCNN), ("mlp", models.MLP)):
        assert models.REGISTRY[name] is cls
        for shape in ((1, 8, 8), (1, 28, 28)):
            model = cli.get_model(name, shape, 10, seed=0)
            assert model.input_shape == shape and model.output_shape == (10,)
            assert model(np.zeros((2,) + shape, np.float32)).shape == (2, 10)


def test_a_model_added_to_the_zoo_registry_is_usable_from_the_command_line(capsys, monkeypatch):
    from dl2 import models
    from dl2.containers import Sequential
    from dl2.layers import Flatten, Linear

    def tiny(input_shape, num_classes=10, seed=None):
        return Sequential(Flatten(), Linear(num_classes), input_shape=input_shape, seed=seed)

    monkeypatch.setitem(models.REGISTRY, "tiny", tiny)
    code, out, _ = run(capsys, "train", "--model", "tiny", "--epochs", "2", "--no-progress")
    assert code == 0 and "model tiny (650 parameters)" in out


def test_model_args_reach_the_constructor(capsys):
    code, out, _ = run(capsys, "train", "--model", "mlp", "--model-args", '{"hidden_sizes": [20]}', "--epochs", "1",
                       "--no-progress")
    assert code == 0 and f"({64 * 20 + 20 + 20 * 10 + 10:,} parameters)" in out
    code, _, err = run(capsys, "train", "--model", "mlp", "--model-args", '{"depth": 3}', "--epochs", "1")
    assert code == 1 and err.startswith("dl2: error: --model-args: model 'mlp' has no argument 'depth'; it takes")


# --------------------------------------------------------------------- the options of docs/RESULTS.md
def test_schedule_warmup_augment_smoothing_and_json(capsys, tmp_path):
    path = tmp_path / "run.json"
    code, out, _ = run(capsys, "train", "--model", "cnn", "--epochs", "4", "--lr", "0.004", "--schedule", "cosine",
                       "--warmup", "1", "--augment", "flip,crop", "--label-smoothing", "0.1", "--val-split", "0",
                       "--batch-size", "64", "--no-progress", "--json", str(path))
    assert code == 0
    assert "schedule cosine after 1 warm-up epochs, augment flip+crop, label smoothing 0.1" in out
    import json
    run_json = json.loads(path.read_text())
    # warm-up 0.004 / 2, then cosine over the 3 remaining epochs
    np.testing.assert_allclose(run_json["history"]["lr"], [0.002, 0.004, 0.003, 0.001], rtol=1e-12)
    assert run_json["args"]["augment"] == ["flip", "crop"]
    assert run_json["test"]["accuracy"] == pytest.approx(accuracy_of(out), abs=5e-5)
    assert run_json["parameters"] == 6_138 and len(run_json["history"]["loss"]) == 4


def test_augment_erase_and_its_probability(capsys):
    from dl2.data.augment import RandomErasing
    tf = cli.make_augmentation(["flip", "erase"], erase_prob=0.3, seed=4)
    erase = tf.transforms[-1]
    assert isinstance(erase, RandomErasing) and erase.p == 0.3 and len(tf.transforms) == 2
    x = np.ones((8, 1, 8, 8))
    np.testing.assert_array_equal(erase(x), RandomErasing(p=0.3, seed=6)(x))     # seeded seed + 2
    code, out, _ = run(capsys, "train", "--model", "mlp", "--epochs", "1", "--augment", "crop,erase",
                       "--erase-prob", "0.25", "--no-progress")
    assert code == 0 and "augment crop+erase" in out
    code, _, err = run(capsys, "train", "--erase-prob", "0.25", "--epochs", "1")
    assert code == 1 and "--erase-prob applies to --augment erase only" in err


def test_test_each_epoch_targets_times_and_json(capsys, tmp_path, monkeypatch):
    import json
    from dl2.trainer import Trainer
    path = tmp_path / "run.json"
    calls = []
    evaluate = Trainer.evaluate
    monkeypatch.setattr(Trainer, "evaluate", lambda self, *a, **k: calls.append(1) or evaluate(self, *a, **k))
    code, out, _ = run(capsys, "train", "--model", "mlp", "--epochs", "3", "--test-each-epoch", "--no-progress",
                       "--targets", "0.999,0.5", "--label-smoothing", "0.1", "--json", str(path))
    assert code == 0
    lines = out.strip().splitlines()
    header = next(line.split() for line in lines if line.split()[:1] == ["epoch"])
    assert header == ["epoch", "loss", "acc", "val_loss", "val_acc", "test_acc", "lr", "sec", "wall"]
    run_json = json.loads(path.read_text())
    history = run_json["history"]
    rows = [line.split() for line in lines if line.split()[:1] in (["1"], ["2"], ["3"])]
    assert [float(r[5]) for r in rows] == [round(a, 4) for a in history["test_accuracy"]]
    assert len(calls) == 3 + 3              # the validation passes and the test passes; the final one reused
    assert run_json["test"]["accuracy"] == history["test_accuracy"][-1]
    assert run_json["test"]["loss"] == history["test_loss"][-1]   # plain cross-entropy, not the smoothed loss
    hit = next(i for i, a in enumerate(history["test_accuracy"]) if a >= 0.5)
    assert run_json["targets"] == {"0.5": {"epoch": hit + 1, "wall_s": history["elapsed"][hit]}, "0.999": None}
    assert f"time to 0.5 test accuracy: {history['elapsed'][hit]:.1f} s (epoch {hit + 1})" in out
    assert "time to 0.999 test accuracy: not reached" in out
    assert run_json["wall_s"] >= history["elapsed"][-1] and run_json["cpu_s"] > 0
    assert re.search(r"^wall time: \d+\.\d s, CPU time: \d+\.\d s$", out, re.M)
    assert accuracy_of(out) == round(history["test_accuracy"][-1], 4)
    code, out, _ = run(capsys, "train", "--model", "mlp", "--epochs", "1", "--test-each-epoch", "--no-progress")
    assert "time to 0.93 test accuracy" in out and "time to 0.94 test accuracy" in out
    code, _, err = run(capsys, "train", "--targets", "0.9", "--epochs", "1")
    assert code == 1 and "--targets needs --test-each-epoch" in err


def test_tta_in_train_and_eval(capsys, tmp_path):
    import dl2
    path = str(tmp_path / "m.npz")
    code, out, _ = run(capsys, "train", "--model", "mlp", "--epochs", "1", "--tta", "flip", "--no-progress",
                       "--save", path)
    assert code == 0
    model = dl2.load(path)
    _, (xt, tt) = dl2.data.load_digits()
    flip = dl2.evaluate(model, xt, tt, dl2.SoftmaxCrossEntropy(), tta="flip")
    assert accuracy_of(out) == round(flip["accuracy"], 4)
    code, out, _ = run(capsys, "eval", "--model", path, "--tta", "flip")
    assert code == 0 and accuracy_of(out) == round(flip["accuracy"], 4)
    code, out, _ = run(capsys, "eval", "--model", path)
    plain = dl2.evaluate(model, xt, tt, dl2.SoftmaxCrossEntropy())
    assert accuracy_of(out) == round(plain["accuracy"], 4) and plain != flip


def test_step_schedule_momentum_and_input_shape(capsys):
    code, out, _ = run(capsys, "train", "--model", "lenet5", "--input-shape", "1,16,16", "--optimizer", "nesterov",
                       "--momentum", "0.5", "--schedule", "step", "--step-size", "1", "--gamma", "0.5",
                       "--epochs", "2", "--no-progress")
    assert code == 0 and "lr 0.01" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [float(r[5]) for r in rows] == [0.01, 0.005]
    code, _, err = run(capsys, "train", "--model", "mlp", "--input-shape", "64", "--epochs", "1", "--no-progress")
    assert code == 0
    code, _, err = run(capsys, "train", "--input-shape", "1,4,4", "--epochs", "1")
    assert code == 1 and "cannot reshape or pad training samples of shape (1, 8, 8)" in err


def test_onecycle_per_batch_and_decoupled_weight_decay(capsys, tmp_path):
    path = tmp_path / "run.json"
    code, out, _ = run(capsys, "train", "--model", "mlp", "--epochs", "2", "--lr", "0.01", "--schedule", "onecycle",
                       "--optimizer", "adam", "--weight-decay", "0.05", "--decoupled-weight-decay", "--val-split", "0",
                       "--batch-size", "500", "--no-progress", "--json", str(path))
    assert code == 0, out
    assert "schedule onecycle per batch, decoupled weight decay 0.05" in out and "lr 0.01," in out
    import json
    from dl2.data import load_digits
    from dl2.module import Parameter
    from dl2.optim import SGD, OneCycleLR
    lrs = json.loads(path.read_text())["history"]["lr"]
    steps = -(-len(load_digits()[0][0]) // 500)                 # ceil: the steps of one epoch
    sched = OneCycleLR(SGD([Parameter(np.zeros(1))], lr=0.01), total_steps=2 * steps)
    expected = [sched.optimizer.lr] + [sched.step() for _ in range(2 * steps - 1)]
    np.testing.assert_allclose(lrs, [expected[steps - 1], expected[-1]], rtol=1e-12)
    assert accuracy_of(out) > 0.1


def test_cosine_per_batch_with_fractional_warmup(capsys, tmp_path):
    path = tmp_path / "run.json"
    code, out, _ = run(capsys, "train", "--model", "mlp", "--epochs", "2", "--lr", "0.01", "--schedule", "cosine",
                       "--lr-step", "batch", "--warmup", "0.5", "--val-split", "0", "--batch-size", "500",
                       "--no-progress", "--json", str(path))
    assert code == 0 and "schedule cosine per batch after 0.5 warm-up epochs" in out
    import json
    from dl2.cli import steps_per_epoch
    from dl2.data import load_digits
    steps = steps_per_epoch(len(load_digits()[0][0]), 500)
    warm = round(0.5 * steps)
    lrs = json.loads(path.read_text())["history"]["lr"]
    t = steps - 1 - warm                                        # epoch 1's last step, in the cosine
    np.testing.assert_allclose(lrs[0], 0.01 * 0.5 * (1 + np.cos(np.pi * t / (2 * steps - warm))), rtol=1e-12)


def test_steps_per_epoch_counts_like_the_loaders():
    from dl2.cli import steps_per_epoch
    from dl2.data import DataLoader
    for n, b in ((100, 32), (96, 32), (5, 8)):
        assert steps_per_epoch(n, b) == len(DataLoader(np.zeros((n, 1)), np.zeros(n), b))
    assert steps_per_epoch(97, 32, ranks=2) == 3 and steps_per_epoch(98, 32, ranks=2) == 4


@pytest.mark.parametrize("argv, message", [
    (["--schedule", "onecycle", "--lr-step", "epoch"], "--schedule onecycle is stepped per batch"),
    (["--schedule", "onecycle", "--warmup", "1"], "--warmup does not apply to --schedule onecycle"),
    (["--schedule", "cosine", "--warmup", "0.5"], "--warmup 0.5: a fractional number of warm-up epochs needs"),
    (["--schedule", "cosine", "--warmup", "2", "--epochs", "2"], "--warmup 2 must be smaller than --epochs 2"),
    (["--decoupled-weight-decay"], "--decoupled-weight-decay needs a --weight-decay above 0"),
])
def test_schedule_option_errors(capsys, argv, message):
    code, _, err = run(capsys, "train", "--model", "mlp", "--epochs", "1", "--no-progress", *argv)
    assert code == 1 and message in err, err


def test_resume_with_no_epochs_left_says_so(capsys, tmp_path):
    ckpt = str(tmp_path / "ckpt.npz")
    code, _, _ = run(capsys, "train", "--model", "mlp", "--epochs", "2", "--no-progress", "--checkpoint", ckpt)
    code, out, _ = run(capsys, "train", "--model", "mlp", "--epochs", "2", "--no-progress", "--resume", ckpt)
    assert code == 0 and "nothing to train: the checkpoint" in out and "already holds 2 epochs" in out
    assert "training time" not in out


def test_version(capsys):
    import dl2
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"dl2 {dl2.__version__}"


def test_the_api_example_runs():
    example = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "train_with_the_api.py")
    proc = subprocess.run([sys.executable, example], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    assert accuracy_of(proc.stdout) > 0.8
