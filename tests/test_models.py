"""Tests of the model zoo dl2.models: gradients of every architecture, training on real digits, parameter counts
against the literature, the registry used by ``dl2 train --model``."""
import numpy as np
import pytest


import dl2
from dl2 import models
from dl2.containers import Concat, Residual, aux_heads, auxiliary_loss
from dl2.layers import SqueezeExcite
from dl2.layers import BatchNorm1D, BatchNorm2D, Dropout, LocalResponseNorm

F64 = np.float64


pytestmark = pytest.mark.usefixtures("one_fastconv_thread")


def generic_point(model, seed=0):
    """Give every 1-D parameter (biases, batch-norm and SE shifts and scales) a random value, so no ReLU input sits
    exactly on its kink at 0 (zero biases on a dead branch would give such exact zeros)."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if p.data.ndim == 1:
            base = 1.0 if name.endswith("gamma") else 0.0
            p.data[...] = base + 0.1 * rng.standard_normal(p.shape)
    return model


def tiny_batch(model, n=2, seed=1):
    return np.random.default_rng(seed).standard_normal((n,) + tuple(model.input_shape))


# --------------------------------------------------------------------- gradient checks
# Tiny float64 versions of every architecture: the same layer sequence, a handful of channels.
TINY = {
    "mlp": lambda: models.MLP((1, 4, 4), hidden_sizes=(6, 5), batchnorm=True, dropout=0.2, dtype=F64, seed=0),
    "mlp_sigmoid": lambda: models.MLP((9,), hidden_sizes=(5, 4, 3), activation="sigmoid", weight_init="xavier",
                                      dtype=F64, seed=0),
    "simple_conv_net": lambda: models.SimpleConvNet((1, 8, 8), width=0.1, dtype=F64, seed=0),
    "double_conv_net": lambda: models.DoubleConvNet((1, 8, 8), width=0.2, dtype=F64, seed=0),
    "deep_conv_net": lambda: models.DeepConvNet((1, 8, 8), channels=(3, 3, 4, 4, 5, 5), hidden=6, dtype=F64,
                                                seed=0),
    "bn_cnn": lambda: models.BNConvNet((1, 8, 8), width=0.125, dtype=F64, seed=0),
    "cnn": lambda: models.SmallCNN((1, 8, 8), width=0.125, dtype=F64, seed=0),
    "lenet5": lambda: models.LeNet5((1, 16, 16), width=0.25, dtype=F64, seed=0),
    "alexnet": lambda: models.AlexNet((1, 16, 16), width=0.03, dtype=F64, seed=0),
    "vgg_bn": lambda: models.VGG((1, 16, 16), depth=11, width=1 / 64, batchnorm=True, dtype=F64, seed=0),
    "resnet": lambda: models.ResNet((1, 8, 8), depth=8, width=0.125, dtype=F64, seed=0),
    "se_resnet": lambda: models.SEResNet((1, 8, 8), depth=8, width=0.125, reduction=1, dtype=F64, seed=0),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_gradcheck_every_parameter(name):
    model = generic_point(TINY[name]())
    errors = dl2.gradcheck(model, tiny_batch(model))
    assert "input" not in errors or errors["input"] < 1e-4
    # not a vacuous check: every parameter tensor receives some gradient (no dead network)
    dead = [n for n, p in model.named_parameters() if not np.any(p.grad)]
    assert not dead, f"parameters without gradient: {dead}"


def test_gradcheck_googlenet_inception_path():
    # Without aux heads an 8x8 input fits (8 -> 4 -> 2 -> 1). Checked: the input, the stem convolution, the first
    # Inception module (all four branches) and the classifier; the full parameter set would take minutes.
    model = generic_point(models.GoogLeNet((1, 8, 8), width=1 / 32, aux_weight=0, dtype=F64, seed=0))
    first = next(i for i, layer in enumerate(model.layers) if isinstance(layer, Concat))
    chosen = {0, first, len(model.layers) - 1}
    names = [n for n, _ in model.named_parameters() if int(n.split(".")[0]) in chosen]
    assert any(".branch3." in n for n in names) and any(".branch2." in n for n in names)
    errors = dl2.gradcheck(model, tiny_batch(model), params=names)
    assert set(errors) == {"input"} | set(names)
    grads = dict(model.named_parameters())
    assert all(np.any(grads[n].grad) for n in names)


def test_googlenet_aux_heads_gradient_of_total_loss():
    """In training the loss is main + 0.3 * each aux head's loss: check its gradient numerically on sampled
    parameter elements of an aux head, the trunk before it and the classifier."""
    model = generic_point(models.GoogLeNet((1, 16, 16), width=1 / 32, dtype=F64, seed=0))
    heads = aux_heads(model)
    assert len(heads) == 2 and all(h.weight == 0.3 for h in heads)
    x = tiny_batch(model, n=3)
    t = np.array([0, 3, 7])
    loss = dl2.SoftmaxCrossEntropy()
    for m in model.modules():  # deterministic: no dropout masks to replay
        if isinstance(m, Dropout):
            m.p = 0.0

    def total():
        value = loss.forward(model.forward(x), t)
        dy = loss.backward()
        value += auxiliary_loss(model, loss, t)
        return value, dy

    model.train()
    model.zero_grad()
    value, dy = total()
    assert value > loss.forward(model.forward(x), t)  # the aux losses are added (and positive)
    total()
    model.backward(dy)
    params = dict(model.named_parameters())
    first_aux = [n for n in params if n.startswith(f"{model.layers.index(heads[0])}.head.")]
    picks = [first_aux[0], first_aux[-2], "0.weight", f"{len(model.layers) - 1}.weight"]
    rng = np.random.default_rng(0)
    for name in picks:
        p = params[name]
        assert np.any(p.grad), name
        for idx in [tuple(rng.integers(0, s) for s in p.shape) for _ in range(3)]:
            orig = p.data[idx]
            p.data[idx] = orig + 1e-6
            fp = total()[0]
            p.data[idx] = orig - 1e-6
            fm = total()[0]
            p.data[idx] = orig
            numeric = (fp - fm) / 2e-6
            assert abs(numeric - p.grad[idx]) <= 1e-5 + 1e-4 * abs(numeric), (name, idx, numeric, p.grad[idx])


def test_googlenet_aux_heads_only_in_training():
    model = models.GoogLeNet((1, 16, 16), width=1 / 16, seed=0)
    x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
    model.train()
    model.forward(x)
    assert all(h.aux_output is not None and h.aux_output.shape == (2, 10) for h in aux_heads(model))
    model.eval()
    y = model.forward(x)
    assert y.shape == (2, 10)
    assert all(h.aux_output is None for h in aux_heads(model))
    assert auxiliary_loss(model, dl2.SoftmaxCrossEntropy(), np.array([1, 2])) == 0.0


# --------------------------------------------------------------------- training on real data
def digits(n=256, size=8):
    (x, t), _ = dl2.data.load_digits(seed=0)
    x, t = x[:n], t[:n]
    if size != 8:
        x = np.kron(x, np.ones((1, 1, size // 8, size // 8), np.float32))
    return x, t


# name: (image size, epochs, constructor): float32 models of the real layouts (default depth), narrower where the
# default is slow. AlexNet (no batch norm, two LRNs, dropout 0.5 twice) and DeepConvNet (dropout 0.5 on the logits)
# start slowly and get more epochs.
TRAIN = {
    "mlp": (8, 3, lambda s: models.MLP(s, batchnorm=True, dropout=0.1, seed=0)),
    "simple_conv_net": (8, 3, lambda s: models.SimpleConvNet(s, seed=0)),
    "double_conv_net": (8, 3, lambda s: models.DoubleConvNet(s, seed=0)),
    "deep_conv_net": (8, 6, lambda s: models.DeepConvNet(s, seed=0)),
    "bn_cnn": (8, 3, lambda s: models.BNConvNet(s, seed=0)),
    "cnn": (8, 3, lambda s: models.SmallCNN(s, seed=0)),
    "lenet5": (16, 3, lambda s: models.LeNet5(s, seed=0)),
    "alexnet": (16, 8, lambda s: models.AlexNet(s, width=0.25, seed=0)),
    "vgg": (16, 3, lambda s: models.VGG(s, depth=11, width=0.125, batchnorm=True, seed=0)),
    "googlenet": (16, 5, lambda s: models.GoogLeNet(s, width=0.125, seed=0)),
    "resnet": (8, 3, lambda s: models.ResNet(s, depth=8, width=0.5, seed=0)),
    "se_resnet": (8, 3, lambda s: models.SEResNet(s, depth=8, width=0.5, seed=0)),
}


@pytest.mark.parametrize("name", sorted(TRAIN))
def test_training_steps_reduce_the_loss_on_digits(name):
    size, epochs, make = TRAIN[name]
    x, t = digits(256, size)
    model = make(x.shape[1:])
    trainer = dl2.Trainer(model, dl2.SoftmaxCrossEntropy(), dl2.optim.Adam(model.parameters(), lr=2e-3), seed=0,
                          progress=False)
    # Without batch norm, compare the evaluation-mode loss (no dropout noise) before and after; with batch norm the
    # evaluation before training uses unset running statistics, so compare the first and last epochs' mean
    # training losses instead.
    batchnorm = _has_batchnorm(model)
    before = None if batchnorm else trainer.evaluate(x, t)["loss"]
    history = trainer.fit(x, t, epochs=epochs, batch_size=32)
    after = trainer.evaluate(x, t)
    if batchnorm:
        assert history["loss"][-1] < 0.8 * history["loss"][0], history["loss"]
    else:
        assert after["loss"] < 0.8 * before, (before, after["loss"])
    assert after["accuracy"] > 0.3   # chance is 0.1


def _has_batchnorm(model):
    return any(isinstance(m, (BatchNorm1D, BatchNorm2D)) for m in model.modules())


# --------------------------------------------------------------------- parameter counts (literature)
def test_lenet5_parameter_count():
    # C1 6*(25+1) = 156, C3 16*(6*25+1) = 2,416, C5 120*(400+1) = 48,120, F6 84*(120+1) = 10,164, output 850
    for shape in [(1, 28, 28), (1, 32, 32)]:
        model = models.LeNet5(shape)
        assert model.num_parameters() == 61_706
        assert model.layers[6].output_shape == (16 * 5 * 5,)   # C5 sees 16 maps of 5x5 in both cases


def test_resnet18_parameter_count_full_size():
    model = models.ResNet((3, 224, 224), num_classes=1000, depth=18)
    assert model.num_parameters() == 11_689_512          # the published ResNet-18 figure
    convs = [m for m in model.modules() if type(m).__name__ == "Conv2D"]
    assert len(convs) == 17 + 3                          # 17 weighted 3x3/7x7 convolutions + 3 projections
    assert model.layers[-2].input_shape == (512, 7, 7)   # 224 / 32


def test_textbook_parameter_counts():
    assert models.MLP((784,)).num_parameters() == 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10
    assert models.SimpleConvNet().num_parameters() == (30 * 25 + 30) + (30 * 12 * 12 * 100 + 100) + (100 * 10 + 10)
    assert models.DoubleConvNet().num_parameters() == (10 * 49 + 10) + (20 * 10 * 9 + 20) + (720 * 100 + 100) + 1010
    deep = models.DeepConvNet()
    convs = [(16, 1), (16, 16), (32, 16), (32, 32), (64, 32), (64, 64)]
    assert deep.num_parameters() == sum(k * c * 9 + k for k, c in convs) + (64 * 4 * 4 * 50 + 50) + (50 * 10 + 10)
    assert deep.num_parameters() == 123_552      # the book's DeepConvNet (its fourth convolution is padded by 2)
    paddings = [l.padding for l in deep.layers if type(l).__name__ == "Conv2D"]
    assert paddings == [(1, 1), (1, 1), (1, 1), (2, 2), (1, 1), (1, 1)]
    assert [l for l in deep.layers if type(l).__name__ == "Linear"][0].input_shape == (64 * 4 * 4,)


FULL_SIZE_COUNTS = [   # the published parameter counts, 1000 classes, (3, 224, 224) inputs
    ("alexnet", {}, 62_378_344),                 # single-tower AlexNet (Krizhevsky et al. without the GPU split)
    ("vgg", {"depth": 11}, 132_863_336),          # Simonyan & Zisserman, Table 2: 133 M
    ("vgg", {"depth": 16}, 138_357_544),          # Table 2: 138 M
    ("resnet", {"depth": 34}, 21_797_672),        # He et al., ResNet-34
    ("se_resnet", {"depth": 18}, 11_778_592),     # ResNet-18 plus 16 SE units of reduction 16
    ("googlenet", {"aux_weight": 0}, 6_998_552),  # Szegedy et al., Table 1 sums to about 6.8 M
]


@pytest.mark.parametrize("name, kwargs, count", FULL_SIZE_COUNTS)
def test_full_size_parameter_counts(monkeypatch, name, kwargs, count):
    # All-zero weights: np.zeros pages are only reserved, so even VGG-16 builds without touching 1 GB of memory.
    monkeypatch.setattr(dl2.init, "get", lambda spec: dl2.init.zeros)
    model = models.get(name, (3, 224, 224), 1000, small=False, **kwargs)
    assert model.num_parameters() == count


def test_googlenet_full_size_follows_table_1():
    model = models.GoogLeNet((3, 224, 224), num_classes=1000)
    modules = [layer for layer in model.layers if isinstance(layer, Concat)]
    # output sizes of 3a, 3b, 4a..4e, 5a, 5b in Table 1 of Szegedy et al.
    assert [m.output_shape for m in modules] == [
        (256, 28, 28), (480, 28, 28), (512, 14, 14), (512, 14, 14), (512, 14, 14), (528, 14, 14),
        (832, 14, 14), (832, 7, 7), (1024, 7, 7)]
    heads = aux_heads(model)
    assert [h.input_shape for h in heads] == [(512, 14, 14), (528, 14, 14)]       # after 4a and 4d
    assert all(h.head_shape == (1000,) for h in heads)
    assert sum(isinstance(m, LocalResponseNorm) for m in model.modules()) == 2


# --------------------------------------------------------------------- structure
def test_resnet_blocks_and_projections():
    model = models.ResNet((1, 28, 28), depth=20)
    blocks = [m for m in model.layers if isinstance(m, Residual)]
    assert len(blocks) == 9                                   # 3 stages x n=3, depth 6*3 + 2
    projected = [b for b in blocks if b.shortcut is not None]
    assert [b.output_shape for b in projected] == [(32, 14, 14), (64, 7, 7)]
    assert all(b.shortcut.layers[0].stride == (2, 2) for b in projected)
    assert all(not c.use_bias for c in model.modules() if type(c).__name__ == "Conv2D")
    se = models.SEResNet((1, 28, 28), depth=8)
    assert sum(isinstance(m, SqueezeExcite) for m in se.modules()) == 3
    with pytest.raises(ValueError, match="6n\\+2"):
        models.ResNet((1, 28, 28), depth=18)
    with pytest.raises(ValueError, match="18 or 34"):
        models.ResNet((3, 224, 224), depth=50)


def test_resnet_stage_blocks():
    model = models.ResNet((1, 28, 28), blocks=(0, 2, 2), width=2)
    blocks = [m for m in model.layers if isinstance(m, Residual)]
    assert [b.output_shape for b in blocks] == [(64, 14, 14)] * 2 + [(128, 7, 7)] * 2
    assert [b.shortcut is not None for b in blocks] == [True, False, True, False]
    assert model.layers[0].output_shape == (32, 28, 28)      # the stem keeps 16 * width channels
    stem, (p1, p2), (p3, p4) = 32 * 9 + 64, (64 * 32 * 9 + 64 * 64 * 9 + 64 * 32 + 3 * 128, 2 * (64 * 64 * 9 + 128)), \
        (128 * 64 * 9 + 128 * 128 * 9 + 128 * 64 + 3 * 256, 2 * (128 * 128 * 9 + 256))
    assert model.num_parameters() == stem + p1 + p2 + p3 + p4 + 128 * 10 + 10 == 658_922
    same = models.ResNet((1, 28, 28), blocks=[3, 3, 3], seed=0)
    assert same.num_parameters() == models.ResNet((1, 28, 28), depth=20).num_parameters()
    for bad, match in [((1, 2), "three block counts"), ((0, 0, 0), "not all 0"), ((1, -1, 1), "block counts"),
                       ((1.5, 1, 1), "block counts")]:
        with pytest.raises(ValueError, match=match):
            models.ResNet((1, 28, 28), blocks=bad)
    with pytest.raises(ValueError, match="does not match"):
        models.ResNet((1, 28, 28), depth=20, blocks=(1, 1, 1))
    with pytest.raises(ValueError, match="small network only"):
        models.ResNet((3, 224, 224), blocks=(2, 2, 2))


def test_mlp_switches():
    model = models.MLP((64,), hidden_sizes=(50, 40, 30), activation="tanh", weight_init=0.01, batchnorm=True,
                       dropout=0.25, seed=0)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Linear", "BatchNorm1D", "Tanh", "Dropout"] * 3 + ["Linear"]
    assert abs(model.layers[0].weight.data.std() - 0.01) < 0.002
    he = models.MLP((400,), hidden_sizes=(300,), weight_init="relu", seed=0)          # textbook alias of He
    assert abs(he.layers[0].weight.data.std() - np.sqrt(2 / 400)) < 0.005
    assert models.MLP((400,), hidden_sizes=(), seed=0).num_parameters() == 4010        # softmax regression
    with pytest.raises(ValueError, match="activation"):
        models.MLP(activation="relu6")
    with pytest.raises(ValueError, match="dropout"):
        models.MLP(dropout=1.0)


def _relu_before_pool(model):
    """The same Sequential with every ``MaxPool2D -> ReLU`` pair in the usual order ``ReLU -> MaxPool2D``, and the
    same weights (the parameter layers keep their positions)."""
    from dl2.serialization import from_config, to_config

    config = to_config(model)
    layers = config["module"]["args"]["layers"]
    for i in range(len(layers) - 1):
        if (layers[i]["class"], layers[i + 1]["class"]) == ("MaxPool2D", "ReLU"):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    usual = from_config(config)
    usual.load_state_dict(model.state_dict())
    return usual


@pytest.mark.parametrize("name, build_model, pools", [
    ("bn_cnn", lambda: models.BNConvNet((1, 12, 12), channels=(4, 6), hidden=5, dropout=0, dtype=F64, seed=0), 2),
    ("bn_cnn, 2 convs per stage", lambda: models.BNConvNet((1, 12, 12), channels=(4, 6), convs_per_stage=2,
                                                           hidden=5, dropout=0, dtype=F64, seed=0), 2),
    ("vgg-bn", lambda: models.VGG((1, 16, 16), depth=11, batchnorm=True, dropout=0, width=0.0625, dtype=F64,
                                  seed=0), 3),
    ("vgg", lambda: models.VGG((1, 16, 16), depth=13, dropout=0, width=0.0625, dtype=F64, seed=0), 3),
])
def test_relu_after_the_pool_is_the_usual_network(name, build_model, pools):
    """BNConvNet and VGG run each stage's last ReLU after its max pool; outputs and all gradients equal, bit for
    bit, those of the usual order ``... -> ReLU -> MaxPool`` with the same weights (no dropout: the property is
    the pools')."""
    model = generic_point(build_model())
    kinds = [type(layer).__name__ for layer in model.layers]
    assert sum(a == "MaxPool2D" and b == "ReLU" for a, b in zip(kinds, kinds[1:])) == pools
    usual = _relu_before_pool(model)
    usual_kinds = [type(layer).__name__ for layer in usual.layers]
    assert sum(a == "ReLU" and b == "MaxPool2D" for a, b in zip(usual_kinds, usual_kinds[1:])) == pools
    x, t = tiny_batch(model, n=6), np.arange(6) % 10
    results = []
    for net in (model, usual):
        loss = dl2.SoftmaxCrossEntropy()
        net.zero_grad()
        value = loss.forward(net.forward(x), t)
        net.backward(loss.backward())
        results.append((value, [p.grad.copy() for p in net.parameters()]))
    assert results[0][0] == results[1][0]
    assert all(np.array_equal(g, h) for g, h in zip(results[0][1], results[1][1]))
    assert any(np.abs(g).max() > 0 for g in results[0][1])


def test_small_variants_chosen_from_the_input_size():
    assert models.VGG((1, 28, 28), depth=11).output_shape == (10,)
    assert models.AlexNet((1, 32, 32)).layers[0].kernel_size == (5, 5)
    assert models.AlexNet((3, 224, 224), num_classes=1000, width=1 / 16).layers[0].kernel_size == (11, 11)
    with pytest.raises(ValueError, match="VGG cannot be built"):
        models.VGG((1, 16, 16), depth=11, small=False)
    with pytest.raises(ValueError, match="input_shape"):
        models.ResNet((28, 28))


# --------------------------------------------------------------------- registry and serialization
REQUIRED = {"mlp", "simple_conv_net", "double_conv_net", "deep_conv_net", "lenet5", "alexnet", "vgg", "googlenet",
            "resnet", "se_resnet", "bn_cnn", "cnn"}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_registry_builds_for_28x28(name):
    model = models.get(name, (1, 28, 28), 10, seed=0)
    assert model.built and model.input_shape == (1, 28, 28) and model.output_shape == (10,)
    y = model.predict(np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32))
    assert y.shape == (2, 10) and np.all(np.isfinite(y))


def test_registry_lookup():
    assert set(models.REGISTRY) == REQUIRED
    assert models.get("SE-ResNet", (1, 8, 8), 3, depth=8, width=0.25).output_shape == (3,)
    assert models.get("vgg", (3, 32, 32), depth=13, batchnorm=True).layers[1].__class__ is BatchNorm2D
    with pytest.raises(ValueError, match="unknown model 'resnet9000'.*bn_cnn"):
        models.get("resnet9000", (1, 28, 28))
    from dl2 import cli
    assert cli.get_model("lenet5", (1, 28, 28), 10, seed=0).num_parameters() == 61_706


@pytest.mark.parametrize("name", ["resnet", "googlenet", "bn_cnn"])
def test_save_and_load_round_trip(tmp_path, name):
    model = models.get(name, (1, 16, 16), 10, width=0.25, seed=0)
    path = tmp_path / f"{name}.npz"
    dl2.save(model, path)
    again = dl2.load(path)
    x = np.random.default_rng(0).random((3, 1, 16, 16), dtype=np.float32)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
