"""Clear errors at every public dl2 entry point, as one table: each case is a statement, the exception type it must
raise and a pattern its message must match (naming the layer or function and the problem). Cases that reach the
compiled kernels run in a separate Python process, so a crash there fails the test instead of ending the run."""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import dl2

SETUP = textwrap.dedent("""
    import numpy as np
    import dl2
    x8 = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    net = dl2.Sequential(dl2.Conv2D(2, 3, padding=1), dl2.ReLU(), dl2.Flatten(), dl2.Linear(3),
                         input_shape=(1, 8, 8), seed=0)
    relu = dl2.Sequential(dl2.ReLU(), input_shape=(3,))[0]
    loss = dl2.SoftmaxCrossEntropy()
    adam = dl2.optim.Adam(net.parameters())
    trainer = dl2.Trainer(net, loss, adam, progress=False)
    labels = np.array([0, 1, 2, 1])
""")

# (id, statement, exception, message pattern, in its own process)
CASES = [
    # ---- sizes and hyper-parameters of layers: no silent coercion
    ("conv-float-channels", "dl2.Conv2D(2.7, 3)", TypeError, r"Conv2D: out_channels must be an integer, got 2\.7", 0),
    ("conv-zero-channels", "dl2.Conv2D(0, 3)", ValueError, r"Conv2D: out_channels must be >= 1, got 0", 0),
    ("conv-str-kernel", "dl2.Conv2D(2, '3')", TypeError, r"Conv2D kernel_size must be an int or a pair", 0),
    ("conv-float-stride", "dl2.Conv2D(2, 3, stride=1.5)", TypeError, r"Conv2D stride must be an int", 0),
    ("conv-negative-padding", "dl2.Conv2D(2, 3, padding=-1)", ValueError, r"Conv2D padding must be >= 0", 0),
    ("conv-bool-in-channels", "dl2.Conv2D(2, 3, in_channels=True)", TypeError, r"in_channels must be an integer", 0),
    ("linear-float-features", "dl2.Linear(2.5)", TypeError, r"Linear: out_features must be an integer", 0),
    ("linear-str-features", "dl2.Linear('10')", TypeError, r"Linear: out_features must be an integer", 0),
    ("linear-bad-init", "dl2.Linear(3, weight_init='glorious')", ValueError, r"unknown initialiser 'glorious'", 0),
    ("pool-float-kernel", "dl2.MaxPool2D(2.5)", TypeError, r"MaxPool2D kernel_size must be an int or a pair", 0),
    ("pool-triple-kernel", "dl2.AvgPool2D((2, 2, 2))", ValueError, r"AvgPool2D kernel_size must be an int or a pair",
     0),
    ("pool-too-much-padding", "dl2.MaxPool2D(2, padding=2)", ValueError, r"MaxPool2D: padding .* at most half", 0),
    ("avgpool-count-pad-str", "dl2.AvgPool2D(2, count_include_pad='no')", TypeError, r"count_include_pad must be", 0),
    ("lppool-p", "dl2.LPPool2D(0.5, 2)", ValueError, r"LPPool2D: p must be >= 1", 0),
    ("dropout-p", "dl2.Dropout(1.0)", ValueError, r"Dropout: p must be in \[0, 1\), got 1\.0", 0),
    ("dropout-p-str", "dl2.Dropout('half')", TypeError, r"Dropout: p must be a real number", 0),
    ("dropout-mode", "dl2.Dropout(0.5, mode='sometimes')", ValueError, r"Dropout: mode must be one of", 0),
    ("leaky-slope", "dl2.LeakyReLU('x')", TypeError, r"LeakyReLU: negative_slope must be a real number", 0),
    ("swish-beta-nan", "dl2.Swish(float('nan'))", ValueError, r"Swish: beta must be a finite number", 0),
    ("batchnorm-momentum", "dl2.BatchNorm2D(momentum=2)", ValueError, r"BatchNorm2D: momentum must be in \[0, 1\]",
     0),
    ("batchnorm-eps", "dl2.BatchNorm1D(eps=-1)", ValueError, r"BatchNorm1D: eps must be >= 0", 0),
    ("batchnorm-features", "dl2.BatchNorm1D(num_features=2.5)", TypeError, r"num_features must be an integer", 0),
    ("groupnorm-groups", "dl2.GroupNorm(1.5)", TypeError, r"GroupNorm: num_groups must be an integer", 0),
    ("lrn-size", "dl2.LocalResponseNorm(size=0)", ValueError, r"LocalResponseNorm: size must be >= 1", 0),
    ("squeeze-reduction", "dl2.SqueezeExcite(0.5)", TypeError, r"SqueezeExcite: reduction must be an integer", 0),
    ("auxhead-weight", "dl2.AuxHead([dl2.Linear(2)], weight=-1)", ValueError, r"AuxHead: weight must be >= 0", 0),
    ("sequential-list", "dl2.Sequential([dl2.ReLU()])", TypeError, r"Sequential: pass the layers as separate", 0),
    ("sequential-not-module", "dl2.Sequential(dl2.ReLU(), 'relu')", TypeError, r"argument 1 is a str, not a Module",
     0),
    ("residual-body", "dl2.Residual('conv')", TypeError, r"Residual body: expected a Module", 0),
    ("model-classes", "dl2.models.get('cnn', (1, 8, 8), 2.5)", TypeError, r"num_classes must be an integer", 0),
    ("model-width", "dl2.models.get('cnn', (1, 8, 8), width=0)", ValueError, r"width must be > 0", 0),
    ("model-unknown-arg", "dl2.models.get('vgg', depth=11, dropuot=0.2)", TypeError,
     r"model 'vgg' has no argument 'dropuot'", 0),
    # ---- building: shapes that do not fit
    ("build-conv-too-small", "dl2.Sequential(dl2.Conv2D(2, 5), input_shape=(1, 3, 3))", ValueError,
     r"Conv2D: kernel size \(5, 5\) is larger than the padded input \(3, 3\)", 0),
    ("build-linear-on-images", "dl2.Sequential(dl2.Linear(3), input_shape=(1, 4, 4))", ValueError,
     r"add Flatten\(\) before Linear", 0),
    ("build-dtype", "dl2.Sequential(dl2.ReLU(), input_shape=(3,), dtype=np.int32)", TypeError,
     r"dtype must be float32 or float64", 0),
    # ---- forward inputs: dtype and shape
    ("forward-complex", "net(x8 + 1j)", TypeError, r"Sequential: input must be an array of real numbers.*complex",
     1),
    ("forward-object", "net(x8.astype(object))", TypeError, r"Sequential: input must be an array of real numbers", 1),
    ("forward-strings", "net(np.full((4, 1, 8, 8), 'a'))", TypeError, r"Sequential: input .* real numbers", 1),
    ("forward-ragged", "net([[1.0, 2.0], [3.0]])", ValueError, r"Sequential: input is not a rectangular array", 1),
    ("forward-shape", "net(np.ones((4, 1, 7, 7), np.float32))", ValueError,
     r"Sequential: expected input of shape \(N, 1, 8, 8\)", 1),
    ("layer-forward-complex", "net[0](x8 + 1j)", TypeError, r"Conv2D: input must be an array of real numbers", 1),
    ("layer-forward-shape", "net[0](np.ones((4, 3, 8, 8), np.float32))", ValueError,
     r"Conv2D: input has shape \(4, 3, 8, 8\), expected \(N, 1, \.\.\., \.\.\.\)", 1),
    ("linear-forward-shape", "net[3](np.ones((4, 5), np.float32))", ValueError, r"Linear: input has shape \(4, 5\)",
     1),
    ("unbuilt-forward", "dl2.Linear(3)(np.ones((2, 4)))", RuntimeError, r"Linear is not built", 0),
    # ---- backward: call order and dy
    ("backward-before-forward", "dl2.Sequential(dl2.Linear(2), input_shape=(3,)).backward(np.ones((1, 2)))",
     RuntimeError, r"Sequential.backward called before forward", 0),
    ("layer-backward-before-forward", "relu.backward(np.ones((1, 3)))", RuntimeError,
     r"ReLU.backward called before forward", 0),
    ("backward-dy-shape", "y = net(x8); net.backward(np.ones((1, 3), np.float32))", ValueError,
     r"Sequential.backward: dy has shape \(1, 3\), expected \(4, 3\)", 1),
    ("backward-dy-int", "y = net(x8); net.backward(np.ones((4, 3), int))", TypeError,
     r"Sequential.backward: dy must be a float array", 1),
    ("loss-backward-first", "dl2.SoftmaxCrossEntropy().backward()", RuntimeError, r"called before forward", 0),
    # ---- losses: shapes, labels, dtypes
    ("loss-labels-range", "loss(np.zeros((4, 3)), np.array([0, 1, 2, 3]))", ValueError,
     r"SoftmaxCrossEntropy: labels must be in \[0, 3\); got \[3\]", 0),
    ("loss-labels-float", "loss(np.zeros((4, 3)), np.array([0, 1.5, 2, 1]))", ValueError,
     r"1-D targets must be integer class labels", 0),
    ("loss-labels-count", "loss(np.zeros((4, 3)), np.array([0, 1]))", ValueError, r"4 logits rows but 2 labels", 0),
    ("loss-logits-rank", "loss(np.zeros((4, 3, 1)), labels)", ValueError, r"logits must be 2-D", 0),
    ("loss-complex", "loss(np.zeros((4, 3), complex), labels)", TypeError, r"SoftmaxCrossEntropy: logits must be .*"
     r"real numbers", 0),
    ("loss-probs-shape", "loss(np.zeros((4, 3)), np.ones((4, 2)) / 2)", ValueError,
     r"target probabilities must have the logits' shape", 0),
    ("loss-nan", "loss(np.full((4, 3), np.nan), labels)", ValueError, r"contain NaN or \+inf", 0),
    ("mse-shape", "dl2.MSELoss()(np.zeros((4, 3)), np.zeros((4,)))", ValueError, r"MSELoss: target shape \(4,\)", 0),
    ("mse-object", "dl2.MSELoss()(np.zeros((4, 3)), np.zeros((4, 3), object))", TypeError,
     r"MSELoss: target must be an array of real numbers", 0),
    ("loss-reduction", "dl2.SoftmaxCrossEntropy('mean-ish')", ValueError, r"reduction must be one of", 0),
    # ---- optimizers, schedules, trainer
    ("adam-lr", "dl2.optim.Adam(net.parameters(), lr=-1)", ValueError, r"Adam: lr must be > 0", 0),
    ("adam-lr-str", "dl2.optim.Adam(net.parameters(), lr='fast')", TypeError, r"Adam: lr must be a real number", 0),
    ("adam-betas", "dl2.optim.Adam(net.parameters(), betas=(0.9, 1.0))", ValueError, r"betas\[1\] must be in", 0),
    ("momentum-range", "dl2.optim.Momentum(net.parameters(), momentum=1.5)", ValueError,
     r"Momentum: momentum must be in \[0, 1\)", 0),
    ("optimizer-model", "dl2.optim.SGD(net)", TypeError, r"pass model.parameters\(\), not the model itself", 0),
    ("weight-decay", "dl2.optim.SGD(net.parameters(), weight_decay=-0.1)", ValueError, r"weight_decay must be >= 0",
     0),
    ("cosine-tmax", "dl2.optim.CosineLR(adam, t_max=2.5)", TypeError, r"CosineLR: t_max must be an integer", 0),
    ("steplr-optimizer", "dl2.optim.StepLR('adam', 2)", TypeError, r"StepLR: expected an Optimizer", 0),
    ("trainer-model", "dl2.Trainer('net', loss, adam)", TypeError, r"Trainer: model must be a dl2 Module", 0),
    ("trainer-optimizer", "dl2.Trainer(net, loss, 'adam')", TypeError, r"Trainer: optimizer must be", 0),
    ("trainer-clip", "dl2.Trainer(net, loss, adam, clip_norm=0)", ValueError, r"Trainer: clip_norm must be > 0", 0),
    ("trainer-no-optimizer", "dl2.Trainer(net, loss, None).fit(x8, labels)", RuntimeError, r"has no optimizer", 0),
    ("fit-epochs", "trainer.fit(x8, labels, epochs=2.5)", TypeError, r"fit: epochs must be an integer", 0),
    ("fit-batch-size", "trainer.fit(x8, labels, batch_size=0)", ValueError, r"fit: batch_size must be >= 1", 0),
    ("fit-labels-range", "trainer.fit(x8, np.array([0, 1, 2, 5]))", ValueError,
     r"fit: labels must be in \[0, 3\) for a model with 3 outputs, got labels from 0 to 5", 0),
    ("fit-labels-str", "trainer.fit(x8, np.array(['a', 'b', 'c', 'd']))", TypeError,
     r"fit: t must be an array of real numbers", 0),
    ("fit-x-complex", "trainer.fit(x8 + 0j, labels)", TypeError, r"fit: x must be an array of real numbers", 0),
    ("fit-x-nan", "trainer.fit(np.full_like(x8, np.nan), labels)", ValueError, r"fit: x contains NaN", 0),
    ("fit-count", "trainer.fit(x8, labels[:3])", ValueError, r"fit: x has 4 samples but t has 3", 0),
    ("fit-shape", "trainer.fit(x8[:, :, :4], labels)", ValueError, r"fit: samples of x have shape \(1, 4, 8\)", 0),
    ("fit-validation", "trainer.fit(x8, labels, validation_data=x8)", ValueError, r"validation_data must be a pair", 0),
    ("fit-checkpoint-dir", "trainer.fit(x8, labels, checkpoint='/no/such/dir/ck.npz')", FileNotFoundError,
     r"fit: checkpoint /no/such/dir/ck.npz: directory /no/such/dir does not exist", 0),
    ("predict-batch", "net.predict(x8, batch_size=-1)", ValueError, r"Sequential.predict: batch_size must be >= 1", 0),
    ("evaluate-metric", "dl2.evaluate(net, x8, labels, loss, metrics=['f1'])", ValueError, r"unknown metric 'f1'", 0),
    ("evaluate-loss", "dl2.evaluate(net, x8, labels, 'cross-entropy')", TypeError, r"evaluate: loss must be", 0),
    ("backend-name", "dl2.use_backend('cuda')", ValueError, r"use_backend: backend must be one of", 0),
    # ---- files
    ("load-missing", "dl2.load('/no/such/file.npz')", FileNotFoundError, r"no such file: /no/such/file\.npz", 0),
]


def _run_in_process(statement):
    namespace = {}
    exec(SETUP, namespace)
    exec(statement, namespace)


def _run_in_subprocess(statement, tmp_path):
    script = SETUP + textwrap.dedent(f"""
        try:
            exec({statement!r})
        except Exception as e:
            print(type(e).__name__)
            print(e)
        else:
            print("no exception")
    """)
    path = tmp_path / "case.py"
    path.write_text(script)
    proc = subprocess.run([sys.executable, "-W", "error", str(path)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, f"the process crashed (exit {proc.returncode}): {proc.stderr[-2000:]}"
    name, _, message = proc.stdout.partition("\n")
    return name, message.strip()


@pytest.mark.parametrize("statement, error, pattern, isolate", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_clear_error(statement, error, pattern, isolate, tmp_path):
    if isolate:
        name, message = _run_in_subprocess(statement, tmp_path)
        assert name == error.__name__, f"expected {error.__name__}, got {name}: {message}"
        assert __import__("re").search(pattern, message), message
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")        # a NumPy warning instead of an exception fails too
            with pytest.raises(error, match=pattern):
                _run_in_process(statement)


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


# ---- corrupt, truncated and foreign files, for load, load_checkpoint and the command line's --resume
@pytest.fixture
def files(tmp_path):
    model = dl2.Sequential(dl2.Linear(3), input_shape=(4,), seed=0)
    good = tmp_path / "model.npz"
    dl2.save(model, good)
    ck = tmp_path / "ck.npz"
    dl2.save_checkpoint(ck, model, dl2.optim.SGD(model.parameters()), epoch=1)
    data = good.read_bytes()
    out = {"model": good, "checkpoint": ck}
    for name, content in [("truncated", data[:len(data) // 2]), ("empty", b""), ("text", b"hello, world\n"),
                          ("flipped", data[:-40] + bytes(b ^ 0xFF for b in data[-40:]))]:
        out[name] = tmp_path / f"{name}.npz"
        out[name].write_bytes(content)
    out["foreign"] = tmp_path / "foreign.npz"
    np.savez(out["foreign"], weights=np.ones(3))
    out["npy"] = tmp_path / "array.npy"
    np.save(out["npy"], np.ones(3))
    return out


@pytest.mark.parametrize("kind, pattern", [
    ("truncated", r"corrupt or truncated"), ("empty", r"corrupt or truncated|not a readable"),
    ("text", r"corrupt or truncated|not a readable"), ("flipped", r"corrupt|truncated|not a readable"),
    ("foreign", r"not a dl2 file"), ("npy", r"not a readable dl2 file|not an npz"),
])
@pytest.mark.parametrize("reader", ["load", "load_checkpoint", "resume"])
def test_bad_files_are_clear_errors(files, kind, pattern, reader, capsys):
    path = str(files[kind])
    if reader == "resume":
        from dl2 import cli
        code = cli.main(["train", "--model", "mlp", "--epochs", "1", "--no-progress", "--resume", path])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and err.startswith("dl2: error: ")
        assert __import__("re").search(pattern, err), err
    else:
        with pytest.raises(ValueError, match=pattern):
            getattr(dl2, reader)(path)


def test_a_model_file_is_not_a_checkpoint(files):
    with pytest.raises(ValueError, match="is a dl2-model file, expected a dl2-checkpoint file"):
        dl2.load_checkpoint(files["model"])
    with pytest.raises(ValueError, match=r"saved state does not match the model: .*shape"):
        dl2.load(files["model"], model=dl2.Sequential(dl2.Linear(5), input_shape=(4,)))


# ---- the command line: one line on stderr, exit 1 (bad single values: tests/test_cli.py, exit 2)
@pytest.mark.parametrize("argv, message", [
    (["train", "--warmup", "3", "--epochs", "3"], "--warmup 3 must be smaller than --epochs 3"),
    (["train", "--momentum", "0.5"], "--momentum applies to --optimizer momentum or nesterov, not adam"),
    (["train", "--step-size", "2"], "--step-size applies to --schedule step only"),
    (["train", "--download"], "--download does not apply to the embedded digits dataset"),
    (["train", "--json", "/no/such/dir/run.json"], "--json /no/such/dir/run.json: directory /no/such/dir does not"),
    (["train", "--model", "cnn", "--model-args", '{"depth": 3}'], "--model-args: model 'cnn' has no argument"),
    (["eval", "--model", "/no/such/model.npz"], "--model /no/such/model.npz: no such file"),
])
def test_bad_cli_combinations_exit_1(argv, message, capsys):
    from dl2 import cli
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"dl2: error: {message}") and err.count("\n") == 1
