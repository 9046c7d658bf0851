"""Tests of dl2.onnx with dl2's own models: every zoo model exported and run by onnxruntime, dl2 -> ONNX -> dl2
bit for bit, the layers outside the zoo, the ``dl2 export`` command, and clear errors for bad files and graphs.

Tolerance: float32 outputs agree when ``max |a - b| <= 1e-5 * max |b|`` (relative to the output's scale: single
elements near zero carry the absolute rounding error of the sums that produced them).
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import dl2
import dl2.onnx as dl2_onnx
from dl2 import cli, models
from dl2.containers import AuxHead
from dl2.onnx import OnnxImportError

pytestmark = pytest.mark.usefixtures("one_fastconv_thread")


def randomize(model, seed=0):
    """Random biases, batch-norm statistics and affine parameters (fresh models have zeros and ones there, which
    would hide a mix-up of running mean and bias, or of gamma and running variance)."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if p.data.ndim == 1 or name.endswith(("gamma", "beta")):
            base = 1.0 if name.endswith("gamma") else 0.0
            p.data[...] = base + 0.2 * rng.standard_normal(p.shape)
    for module in model.modules():
        if "running_mean" in module._buffers:
            module.running_mean[...] = 0.1 * rng.standard_normal(module.running_mean.shape)
            module.running_var[...] = rng.uniform(0.5, 1.5, module.running_var.shape)
    return model


def session(proto):
    data = proto if isinstance(proto, bytes) else proto.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def batch(model, n, seed=1):
    return np.random.default_rng(seed).standard_normal((n,) + tuple(model.input_shape)).astype(model.dtype)


def assert_close(actual, expected, rtol=1e-5):
    scale = np.abs(expected).max()
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= rtol * scale, (np.abs(actual - expected).max(), scale)


# --------------------------------------------------------------------- every zoo model against onnxruntime
SINGLE_SIZE = ["cnn", "mlp", "simple_conv_net", "double_conv_net", "deep_conv_net", "bn_cnn", "lenet5"]
TWO_SIZES = ["alexnet", "vgg", "googlenet", "resnet", "se_resnet"]
ZOO = ([(name, {}, (1, 3)) for name in SINGLE_SIZE]
       + [(name, {"small": True}, (1, 3)) for name in TWO_SIZES]
       + [("vgg", {"small": True, "batchnorm": True, "width": 0.25}, (1, 3))]
       + [(name, {"small": False}, (1,)) for name in TWO_SIZES])


def test_zoo_list_is_the_registry():
    assert sorted(SINGLE_SIZE + TWO_SIZES) == models.names()


@pytest.mark.parametrize("name,kwargs,sizes", ZOO, ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}"
                                                        for n, kw, _ in ZOO])
def test_zoo_model_matches_onnxruntime(name, kwargs, sizes):
    model = randomize(models.get(name, seed=0, **kwargs)).eval()
    run = session(dl2_onnx.to_onnx(model).SerializeToString())   # the ModelProto is freed at once (VGG: 0.5 GB)
    for n in sizes:                      # one session: the batch dimension is dynamic
        x = batch(model, n)
        (y,) = run.run(None, {"input": x})
        assert_close(y, model.forward(x))


def test_export_records_input_shape_dtype_names_and_weights(tmp_path):
    model = randomize(models.ResNet((1, 12, 12), num_classes=4, depth=8, width=0.25, seed=0))
    path = tmp_path / "resnet.onnx"
    returned = dl2_onnx.export(model, path)
    proto = onnx.load(path)
    assert proto == returned
    onnx.checker.check_model(proto, full_check=True)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.type.tensor_type.elem_type == TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [1, 12, 12]
    assert [d.dim_value for d in out.type.tensor_type.shape.dim[1:]] == [4]
    names = [node.name for node in proto.graph.node]
    assert names[:3] == ["0", "1", "2"]                           # Conv2D, BatchNorm2D, ReLU of the stem
    assert "3.body.0" in names and "3/add" in names and "5.shortcut.0" in names
    weights = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for key, value in model.state_dict().items():
        assert np.array_equal(weights[key], value), key
    assert not list(tmp_path.glob(".*.tmp"))                      # the temporary file was renamed


def test_float64_model_exports_as_double():
    # onnxruntime's CPU Conv is float32 only: ONNX's reference evaluator runs the float64 graph
    from onnx.reference import ReferenceEvaluator
    model = randomize(models.LeNet5(dtype=np.float64, seed=0))
    proto = dl2_onnx.to_onnx(model)
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.DOUBLE
    x = batch(model, 2)
    (y,) = ReferenceEvaluator(proto).run(None, {"input": x})
    np.testing.assert_allclose(y, model.eval().forward(x), rtol=1e-10, atol=1e-12)


def aux_outputs_in_eval(model, x):
    """Each AuxHead's output for ``x`` with the rest of the network in evaluation mode."""
    model.eval()
    heads = [m for m in model.modules() if isinstance(m, AuxHead)]
    for head in heads:
        head.training = True
    y = model.forward(x)
    outs = [head.aux_output for head in heads]
    model.eval()
    return y, outs


def test_auxiliary_heads_dropped_by_default_and_kept_on_request():
    model = randomize(models.GoogLeNet((1, 28, 28), width=0.125, seed=0))
    x = batch(model, 2)
    y, aux = aux_outputs_in_eval(model, x)
    dropped = dl2_onnx.to_onnx(model)
    assert [o.name for o in dropped.graph.output] == ["output"]
    kept = dl2_onnx.to_onnx(model, keep_aux=True)
    assert len(kept.graph.output) == 3
    results = session(kept).run(None, {"input": x})
    assert_close(results[0], y)
    for got, want in zip(results[1:], aux):
        assert_close(got, want)


# --------------------------------------------------------------------- dl2 -> ONNX -> dl2
ROUND_TRIP = {
    "mlp": lambda: models.MLP((1, 6, 6), hidden_sizes=(8, 7), batchnorm=True, dropout=0.2, seed=0),
    "mlp_textbook": lambda: models.MLP((5,), hidden_sizes=(4,), dropout=0.3, dropout_mode="textbook",
                                       activation="tanh", seed=0),
    "simple_conv_net": lambda: models.SimpleConvNet(width=0.2, seed=0),
    "double_conv_net": lambda: models.DoubleConvNet(width=0.2, seed=0),
    "deep_conv_net": lambda: models.DeepConvNet(width=0.25, seed=0),
    "bn_cnn": lambda: models.BNConvNet(width=0.25, seed=0),
    "lenet5": lambda: models.LeNet5(seed=0),
    "alexnet": lambda: models.AlexNet((1, 28, 28), width=0.125, seed=0),
    "vgg": lambda: models.VGG((1, 28, 28), depth=11, batchnorm=True, width=0.125, seed=0),
    "googlenet": lambda: models.GoogLeNet((1, 28, 28), width=0.125, seed=0),
    "resnet": lambda: models.ResNet((1, 28, 28), depth=8, width=0.5, seed=0),
    "se_resnet": lambda: models.SEResNet((3, 16, 16), depth=8, width=0.5, reduction=4, seed=0),
    "swish_mlp": lambda: models.MLP((7,), hidden_sizes=(6,), activation="swish", dtype=np.float64, seed=0),
}


def structure(model):
    return [(name, type(m).__name__) for name, m in model.named_modules()]


@pytest.mark.parametrize("name", sorted(ROUND_TRIP))
def test_round_trip_is_bit_for_bit(name, tmp_path):
    model = randomize(ROUND_TRIP[name]())
    path = tmp_path / "m.onnx"
    dl2_onnx.export(model, path, keep_aux=True)
    back = dl2_onnx.load(path)
    assert structure(back) == structure(model)
    assert back.input_shape == model.input_shape and back.dtype == model.dtype
    original, loaded = model.state_dict(), back.state_dict()
    assert list(loaded) == list(original)
    for key in original:
        assert loaded[key].dtype == original[key].dtype
        assert loaded[key].tobytes() == original[key].tobytes(), key
    x = batch(model, 3)
    assert np.array_equal(back.forward(x), model.eval().forward(x))
    assert not back.training                    # loaded in evaluation mode, like the graph


def test_round_trip_keeps_layer_arguments():
    model = dl2.Sequential(dl2.Conv2D(3, (3, 2), stride=(2, 1), padding=(1, 0)), dl2.LeakyReLU(0.25),
                           dl2.AvgPool2D(3, stride=1, padding=1, count_include_pad=False),
                           dl2.LocalResponseNorm(3, alpha=2e-4, beta=0.5, k=1.5),
                           dl2.BatchNorm2D(eps=1e-3, momentum=0.2),
                           dl2.Flatten(), dl2.Dropout(0.25), dl2.Linear(4, bias=False), dl2.Softmax(),
                           input_shape=(2, 7, 6), seed=0)
    back = dl2_onnx.from_onnx(dl2_onnx.to_onnx(model))
    conv, act, pool, lrn, bn, _, drop, fc, _ = back.layers
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 2), (2, 1), (1, 0))
    assert act.negative_slope == 0.25
    assert (pool.kernel_size, pool.stride, pool.padding, pool.count_include_pad) == ((3, 3), (1, 1), (1, 1), False)
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (3, 2e-4, 0.5, 1.5)
    assert (bn.eps, bn.momentum) == (1e-3, 0.2)
    assert drop.p == 0.25 and fc.bias is None


# --------------------------------------------------------------------- layers outside the zoo
EXTRA_LAYERS = {
    "layernorm": lambda: [dl2.Conv2D(3, 3), dl2.LayerNorm()],
    "groupnorm": lambda: [dl2.Conv2D(4, 3), dl2.GroupNorm(2), dl2.Flatten(), dl2.Linear(6), dl2.GroupNorm(3)],
    "instancenorm": lambda: [dl2.Conv2D(3, 3), dl2.InstanceNorm2D(affine=True)],
    "swish_beta": lambda: [dl2.Conv2D(3, 3), dl2.Swish(beta=1.7)],
    "lppool_even": lambda: [dl2.Conv2D(3, 3), dl2.LPPool2D(2, 2)],
    "lppool_odd": lambda: [dl2.Conv2D(3, 3), dl2.ReLU(), dl2.LPPool2D(3, 2)],
    "avgpool_padded": lambda: [dl2.Conv2D(3, 2), dl2.AvgPool2D(3, stride=2, padding=1, count_include_pad=False),
                               dl2.AvgPool2D(2, stride=1, padding=1), dl2.MaxPool2D(2, stride=1, padding=1)],
    "concat_height": lambda: [dl2.Concat([dl2.Conv2D(2, 1)], [dl2.Conv2D(2, (2, 1)), dl2.ReLU()], axis=1)],
    "global_max": lambda: [dl2.Conv2D(3, 3), dl2.Tanh(), dl2.GlobalMaxPool2D(), dl2.Sigmoid()],
    "global_keepdims": lambda: [dl2.Conv2D(3, 3), dl2.GlobalAvgPool2D(keepdims=True), dl2.Conv2D(2, 1)],
    "concat_residual": lambda: [dl2.Concat([dl2.Conv2D(2, 1)], [dl2.MaxPool2D(3, stride=1, padding=1)]),
                                dl2.Residual([dl2.Conv2D(3, 3, padding=1), dl2.ReLU()])],
}


@pytest.mark.parametrize("name", sorted(EXTRA_LAYERS))
def test_layers_outside_the_zoo_match_onnxruntime(name):
    model = randomize(dl2.Sequential(*EXTRA_LAYERS[name](), input_shape=(1, 7, 7), seed=0)).eval()
    proto = dl2_onnx.to_onnx(model, opset=21 if name == "groupnorm" else dl2_onnx.DEFAULT_OPSET)
    x = batch(model, 2)
    (y,) = session(proto).run(None, {"input": x})
    assert_close(y, model.forward(x))
    if name != "lppool_odd":                    # written as Pow/AveragePool nodes, which dl2 does not read
        back = dl2_onnx.from_onnx(proto)
        assert structure(back) == structure(model)
        assert np.array_equal(back.forward(x), model.forward(x))


@pytest.mark.parametrize("opset", [13, 15, 17, onnx.defs.onnx_opset_version()])
def test_every_opset_from_13(opset):
    model = randomize(models.SEResNet((1, 12, 12), depth=8, width=0.25, reduction=2, seed=0)).eval()
    proto = dl2_onnx.to_onnx(model, opset=opset)
    assert proto.opset_import[0].version == opset
    x = batch(model, 2)
    (y,) = session(proto).run(None, {"input": x})
    assert_close(y, model.forward(x))
    assert np.array_equal(dl2_onnx.from_onnx(proto).forward(x), model.forward(x))


# --------------------------------------------------------------------- the loaded model is a dl2 model
def test_loaded_model_gradchecks_trains_and_saves(tmp_path):
    model = randomize(models.ResNet((1, 6, 6), depth=8, width=0.125, dtype=np.float64, seed=0))
    back = dl2_onnx.from_onnx(dl2_onnx.to_onnx(model))
    x = np.random.default_rng(2).standard_normal((2, 1, 6, 6))
    dl2.gradcheck(back, x, train=False)
    dl2.gradcheck(back, x, train=True)
    saved = tmp_path / "back.npz"
    dl2.save(back, saved)
    again = dl2.load(saved)
    assert np.array_equal(again.eval().forward(x), back.eval().forward(x))
    xs, ts = np.random.default_rng(3).standard_normal((16, 1, 6, 6)), np.arange(16) % 10
    trainer = dl2.Trainer(back, dl2.SoftmaxCrossEntropy(), dl2.optim.Adam(back.parameters(), lr=0.01), seed=0,
                          progress=False)
    history = trainer.fit(xs, ts, epochs=3, batch_size=8)
    assert history["loss"][-1] < history["loss"][0]


# --------------------------------------------------------------------- the command
def test_cli_export(tmp_path, capsys):
    model = randomize(models.LeNet5(seed=0))
    saved, out = tmp_path / "lenet.npz", tmp_path / "lenet.onnx"
    dl2.save(model, saved)
    assert cli.main(["export", "--model", str(saved), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    x = batch(model, 2)
    (y,) = session(onnx.load(out)).run(None, {"input": x})
    assert_close(y, model.eval().forward(x))
    assert cli.main(["export", "--model", str(tmp_path / "missing.npz"), "--out", str(out)]) == 1
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["export", "--model", str(saved), "--out", str(out), "--opset", "7"]) == 1
    assert "opset must be an integer from 13" in capsys.readouterr().err


# --------------------------------------------------------------------- export errors
def test_export_errors():
    with pytest.raises(ValueError, match="not built"):
        dl2_onnx.to_onnx(dl2.Sequential(dl2.ReLU()))
    class Square(dl2.Module):
        def forward(self, x):
            return x * x

    with pytest.raises(TypeError, match=r"layer 1 \(Square\) has no ONNX form"):
        dl2_onnx.to_onnx(dl2.Sequential(dl2.Conv2D(4, 3), Square(), input_shape=(1, 5, 5)))
    with pytest.raises(ValueError, match=r"layer 1 \(GroupNorm\) needs opset >= 21"):
        dl2_onnx.to_onnx(dl2.Sequential(dl2.Conv2D(4, 3), dl2.GroupNorm(2), input_shape=(1, 5, 5)))
    with pytest.raises(ValueError, match="even size 4"):
        dl2_onnx.to_onnx(dl2.Sequential(dl2.LocalResponseNorm(4), input_shape=(3, 2, 2)))
    with pytest.raises(ValueError, match="opset must be an integer"):
        dl2_onnx.to_onnx(models.LeNet5(), opset=12)
    with pytest.raises(ValueError, match="needs opset >= 17"):
        dl2_onnx.to_onnx(dl2.Sequential(dl2.LayerNorm(), input_shape=(3,)), opset=16)
    with pytest.raises(TypeError, match="expected a dl2 Module"):
        dl2_onnx.to_onnx("model")


# --------------------------------------------------------------------- bad files and graphs
def test_truncated_and_non_onnx_files(tmp_path):
    good = tmp_path / "good.onnx"
    dl2_onnx.export(models.LeNet5(seed=0), good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxImportError, match="truncated"):
        dl2_onnx.load(truncated)
    text = tmp_path / "text.onnx"
    text.write_text("this is not an ONNX model\n")
    with pytest.raises(OnnxImportError, match="text.onnx: not"):
        dl2_onnx.load(text)
    npz = tmp_path / "model.npz"
    dl2.save(models.LeNet5(seed=0), npz)
    with pytest.raises(OnnxImportError, match="model.npz: not"):
        dl2_onnx.load(npz)
    with pytest.raises(FileNotFoundError):
        dl2_onnx.load(tmp_path / "missing.onnx")


def graph_model(nodes, inits, in_shape=(1, 1, 6, 6), out_rank=4, opset=17):
    """A float32 model ``x -> nodes -> y`` (of rank ``out_rank``, dimensions left to inference) with named
    initializers."""
    out_shape = ["N"] + [None] * (out_rank - 1)
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + list(in_shape[1:]))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


W = np.ones((2, 1, 3, 3), np.float32)

BAD_GRAPHS = {
    "unsupported operator": (
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("Erf", ["c"], ["y"], name="erf")],
        {"w": W}, r"node 'erf' \(Erf\): operator Erf is not supported"),
    "grouped convolution": (
        [helper.make_node("Conv", ["x", "w"], ["y"], name="c1", group=2)],
        {"w": np.ones((2, 1, 3, 3))}, r"node 'c1' \(Conv\)"),
    "dilation": (
        [helper.make_node("Conv", ["x", "w"], ["y"], name="c1", dilations=[2, 2])],
        {"w": W}, r"node 'c1' \(Conv\): dilations \[2, 2\] are not supported"),
    "asymmetric pads": (
        [helper.make_node("Conv", ["x", "w"], ["y"], name="c1", pads=[1, 1, 0, 0])],
        {"w": W}, r"node 'c1' \(Conv\): asymmetric pads"),
    "auto_pad SAME": (
        [helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], auto_pad="SAME_UPPER")],
        {}, r"node 'p' \(MaxPool\): auto_pad=SAME_UPPER"),
    "ceil_mode": (
        [helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
        {}, r"node 'p' \(MaxPool\): ceil_mode=1 changes the output size"),
    "pool padding above half the window": (
        [helper.make_node("AveragePool", ["x"], ["y"], name="p", kernel_shape=[2, 2], pads=[2, 2, 2, 2])],
        {}, r"node 'p' \(AveragePool\): .*padding"),
    "even LRN": (
        [helper.make_node("LRN", ["x"], ["y"], name="n", size=4)], {}, r"node 'n' \(LRN\): even size 4"),
    "softmax over channels": (
        [helper.make_node("Softmax", ["x"], ["y"], name="s", axis=1)], {},
        r"node 's' \(Softmax\): softmax over axis 1"),
    "not a dl2 join": (
        [helper.make_node("Relu", ["x"], ["r"], name="r"), helper.make_node("Sub", ["x", "r"], ["y"], name="sub")],
        {}, r"node 'sub' \(Sub\): operator Sub is not supported"),
    "product of two branches": (
        [helper.make_node("Relu", ["x"], ["r"], name="r"), helper.make_node("Tanh", ["x"], ["t"], name="t"),
         helper.make_node("Mul", ["r", "t"], ["y"], name="mul")],
        {}, r"node 'mul' \(Mul\): joins 2 branches"),
    "random constant": (
        [helper.make_node("RandomNormal", [], ["noise"], name="rand", shape=[1, 1, 6, 6]),
         helper.make_node("Add", ["x", "noise"], ["y"], name="add")],
        {}, r"node 'rand' \(RandomNormal\): a random operator"),
    "shared node": (    # a = conv(x); y = (a + sigmoid(x)) + a: the convolution would be needed twice
        [helper.make_node("Conv", ["x", "w"], ["a"], name="conv", pads=[1, 1, 1, 1]),
         helper.make_node("Sigmoid", ["x"], ["b"], name="sig"), helper.make_node("Add", ["a", "b"], ["c"], name="add1"),
         helper.make_node("Add", ["c", "a"], ["y"], name="add2")],
        {"w": np.ones((1, 1, 3, 3))}, r"node 'conv' \(Conv\): its output feeds branches"),
    "batch-norm training mode": (
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "m2", "v2"], name="bn",
                          training_mode=1)],
        {"s": [1], "b": [0], "m": [0], "v": [1]}, r"node 'bn' \(BatchNormalization\): training_mode=1"),
}


@pytest.mark.parametrize("name", sorted(BAD_GRAPHS))
def test_unsupported_graphs_give_one_clear_error(name):
    nodes, inits, message = BAD_GRAPHS[name]
    with pytest.raises(OnnxImportError, match=message):
        dl2_onnx.from_onnx(graph_model(nodes, inits))


def test_graph_whose_shapes_do_not_line_up():
    # a convolution whose weight expects 3 input channels on a 1-channel input
    proto = graph_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], {"w": np.ones((2, 3, 3, 3))})
    with pytest.raises(OnnxImportError, match="do not line up"):
        dl2_onnx.from_onnx(proto)
    # a Gemm whose weight has 5 rows after a flatten of 36 features (ONNX shape inference catches this one)
    proto = graph_model([helper.make_node("Flatten", ["x"], ["f"], name="flat"),
                         helper.make_node("Gemm", ["f", "w"], ["y"], name="fc")], {"w": np.ones((5, 3))},
                        out_rank=2)
    with pytest.raises(OnnxImportError, match="do not line up"):
        dl2_onnx.from_onnx(proto)


def test_input_must_be_float_with_static_per_sample_shape():
    proto = graph_model([helper.make_node("Relu", ["x"], ["y"])], {})
    proto.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(OnnxImportError, match="static per-sample shape"):
        dl2_onnx.from_onnx(proto)
    proto = graph_model([helper.make_node("Relu", ["x"], ["y"])], {})
    proto.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    proto.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    with pytest.raises(OnnxImportError, match="element type INT64"):
        dl2_onnx.from_onnx(proto)


def test_without_the_onnx_package_the_error_says_what_to_install(tmp_path):
    import subprocess
    import sys
    saved = tmp_path / "m.npz"
    dl2.save(models.LeNet5(seed=0), saved)
    code = ("import sys; sys.modules['onnx'] = None\n"      # as if onnx were not installed
            "from dl2 import cli\n"
            f"sys.exit(cli.main(['export', '--model', {str(saved)!r}, '--out', {str(tmp_path / 'm.onnx')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert 'dl2.onnx needs the onnx package: pip install "dl2[onnx]"' in result.stderr
    assert not (tmp_path / "m.onnx").exists()
