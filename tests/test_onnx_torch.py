"""Networks written in PyTorch, exported with ``torch.onnx.export`` (the TorchScript exporter, ``dynamo=False``)
and loaded by ``dl2.onnx.load``: the same outputs as PyTorch, then a training step in dl2.

Each network is exported twice: with constant folding (PyTorch folds every BatchNorm that follows a convolution
into the convolution's weights) and without (BatchNormalization nodes stay in the graph).
"""
import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import dl2
import dl2.onnx as dl2_onnx

pytestmark = pytest.mark.usefixtures("one_fastconv_thread")


class Block(nn.Module):
    """A ResNet basic block; a 1x1 projection shortcut (with batch norm) when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class LinearSqueezeExcite(nn.Module):
    """Squeeze-and-excitation with Linear layers; the gate gets its unit axes by indexing (two Unsqueeze nodes)."""

    def __init__(self, c, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c, hidden), nn.Linear(hidden, c)

    def forward(self, x):
        g = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3))))))
        return x * g[:, :, None, None]


class SmallResNet(nn.Module):
    input_shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(Block(8, 8, 1), Block(8, 16, 2), Block(16, 16, 1), Block(16, 24, 2))
        self.se = LinearSqueezeExcite(24, 6)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        return self.fc(self.se(self.blocks(self.stem(x))).mean((2, 3)))    # ReduceMean over H and W


class LeNet(nn.Module):
    input_shape = (1, 28, 28)

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
                                      nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2, stride=2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                                        nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class SqueezeExcite(nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, hidden, 1), nn.Conv2d(hidden, c, 1)

    def forward(self, x):
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


class InceptionNet(nn.Module):
    """Concat of four branches (Inception), squeeze-excitation, SiLU, a hand-written ``x @ W + b`` (MatMul + Add),
    batch norm on features, LeakyReLU, max pooling with padding and a softmax (the dropout is not in the
    graph: PyTorch exports evaluation mode)."""
    input_shape = (2, 12, 12)

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.LeakyReLU(0.1))
        self.b1 = nn.Conv2d(8, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(8, 2, 1), nn.ReLU(), nn.Conv2d(2, 3, 5, padding=2))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(8, 3, 1))
        self.se = SqueezeExcite(16, 4)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.w = nn.Parameter(torch.randn(16 * 6 * 6, 20) * 0.05)
        self.b = nn.Parameter(torch.randn(20) * 0.1)
        self.head = nn.Sequential(nn.BatchNorm1d(20), nn.SiLU(), nn.Dropout(0.3), nn.Linear(20, 7), nn.Softmax(dim=1))

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1))
        x = self.pool(self.se(x))
        return self.head(torch.flatten(x, 1) @ self.w + self.b)


NETS = {"resnet": SmallResNet, "lenet": LeNet, "inception": InceptionNet}


def trained_statistics(net, seed=0):
    """``net`` in eval mode after a few training-mode batches (non-trivial batch-norm running statistics)."""
    torch.manual_seed(seed)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn((16,) + net.input_shape))
    return net.eval()


def export(net, fold, dtype=torch.float32, opset=17):
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter is deprecated in favour of dynamo
        torch.onnx.export(net, torch.zeros((1,) + net.input_shape, dtype=dtype), f, dynamo=False, opset_version=opset,
                          do_constant_folding=fold, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return onnx.load_from_string(f.getvalue())


@pytest.mark.parametrize("fold", [True, False], ids=["bn-folded", "bn-kept"])
@pytest.mark.parametrize("name", sorted(NETS))
def test_pytorch_network_loads_and_matches(name, fold, tmp_path):
    torch.manual_seed(0)
    net = trained_statistics(NETS[name]())
    proto = export(net, fold)
    # the two export paths really differ: folding removes every BatchNorm2d (each follows a convolution)
    bn_nodes = sum(node.op_type == "BatchNormalization" for node in proto.graph.node)
    bn2d, bn1d = (sum(isinstance(m, cls) for m in net.modules()) for cls in (nn.BatchNorm2d, nn.BatchNorm1d))
    assert bn_nodes == (bn1d if fold else bn1d + bn2d)
    path = tmp_path / f"{name}.onnx"
    onnx.save(proto, path)
    model = dl2_onnx.load(path)
    x = np.random.default_rng(1).standard_normal((5,) + net.input_shape).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    got = model.forward(x)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()

    # one training step in dl2: every parameter gets a finite, non-zero gradient, and the loss changes
    loss = dl2.SoftmaxCrossEntropy()
    t = np.arange(5) % expected.shape[1]
    model.train()
    model.zero_grad()
    before = loss.forward(model.forward(x), t)
    model.backward(loss.backward())
    for pname, p in model.named_parameters():
        assert np.all(np.isfinite(p.grad)), pname
        assert np.any(p.grad != 0), pname
    dl2.optim.SGD(model.parameters(), lr=0.1).step()
    assert loss.forward(model.forward(x), t) != before


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("name", ["resnet", "inception"])
def test_other_opsets(name, opset):
    # opset 13: Unsqueeze/Squeeze axes as inputs, Dropout ratio as an input; 18: ReduceMean axes as an input
    net = trained_statistics(NETS[name]())
    proto = export(net, fold=False, opset=opset)
    if name == "resnet":
        reduce = [node for node in proto.graph.node if node.op_type == "ReduceMean"]
        assert len(reduce) == 2 and all(len(node.input) == (2 if opset >= 18 else 1) for node in reduce)
    model = dl2_onnx.from_onnx(proto)
    x = np.random.default_rng(2).standard_normal((3,) + net.input_shape).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert np.abs(model.forward(x) - expected).max() <= 1e-5 * np.abs(expected).max()


def test_structure_of_the_loaded_networks():
    resnet = dl2_onnx.from_onnx(export(trained_statistics(SmallResNet()), fold=False))
    residuals = [m for m in resnet.modules() if isinstance(m, dl2.Residual)]
    assert len(residuals) == 4
    assert [r.shortcut is None for r in residuals] == [True, False, True, False]
    assert sum(isinstance(m, dl2.SqueezeExcite) for m in resnet.modules()) == 1
    inception = dl2_onnx.from_onnx(export(trained_statistics(InceptionNet()), fold=True))
    kinds = {type(m).__name__ for m in inception.modules()}
    assert {"Concat", "SqueezeExcite", "Swish", "BatchNorm1D", "LeakyReLU", "Softmax"} <= kinds
    concat = next(m for m in inception.modules() if isinstance(m, dl2.Concat))
    assert len(concat.branches) == 4


def test_float64_pytorch_network_passes_gradcheck():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(12, 4)).double()
    net.input_shape = (1, 6, 6)
    with torch.no_grad():
        net.train()(torch.randn(8, 1, 6, 6, dtype=torch.float64))
    net.eval()
    model = dl2_onnx.from_onnx(export(net, fold=False, dtype=torch.float64))
    assert model.dtype == np.float64
    x = np.random.default_rng(0).standard_normal((3, 1, 6, 6))
    with torch.no_grad():
        np.testing.assert_allclose(model.forward(x), net(torch.from_numpy(x)).numpy(), rtol=1e-10, atol=1e-12)
    dl2.gradcheck(model, x, train=False)
