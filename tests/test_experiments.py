"""Tests of dl2.experiments: every experiment in --tiny mode on the embedded digits, its JSON, and a property of its
lesson that a broken implementation would fail."""
import importlib.util
import json
import os

import numpy as np
import pytest


import dl2.experiments as experiments
from dl2.experiments.__main__ import main

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


pytestmark = pytest.mark.usefixtures("one_fastconv_thread")


def run_tiny(name, tmp_path):
    out = tmp_path / name
    lines = []
    result = experiments.run(name, mode="tiny", dataset="digits", out=str(out), plot=HAVE_MPL, print_fn=lines.append)
    with open(out / f"{name}.json") as f:
        saved = json.load(f)
    assert saved["experiment"] == name and saved["mode"] == "tiny" and saved["lesson"] == result["lesson"]
    assert any(line.startswith("What to notice:") for line in lines)
    if HAVE_MPL:
        assert os.path.getsize(out / f"{name}.png") > 1000
    return saved, lines


def test_vanishing_gradient(tmp_path):
    r, _ = run_tiny("vanishing_gradient", tmp_path)
    runs = r["runs"]
    assert list(runs) == ["sigmoid + N(0, 0.01)", "ReLU + N(0, 0.01)", "sigmoid + Xavier", "ReLU + He"]
    for run in runs.values():
        assert len(run["test_accuracy"]) == r["epochs"] and len(run["grad_norm"]) == 3
    tiny_sigmoid, he = runs["sigmoid + N(0, 0.01)"], runs["ReLU + He"]
    assert tiny_sigmoid["test_accuracy"][-1] < r["chance"] + 0.1          # stays near chance
    assert he["test_accuracy"][-1] > tiny_sigmoid["test_accuracy"][-1] + 0.5
    first = lambda run: list(run["grad_norm"].values())[0][0]             # noqa: E731  layer 1, epoch 1
    out = lambda run: list(run["grad_norm"].values())[-1][0]              # noqa: E731  output layer, epoch 1
    assert first(tiny_sigmoid) / out(tiny_sigmoid) < 0.01                 # the gradient vanishes towards the input
    assert first(he) / out(he) > 0.1


def test_weight_init_histograms(tmp_path):
    r, _ = run_tiny("weight_init_histograms", tmp_path)
    runs = r["runs"]
    assert len(runs) == 12 and all(len(run["layers"]) == 5 for run in runs.values())
    std = lambda key, layer: runs[key]["layers"][layer]["std"]            # noqa: E731
    assert runs["sigmoid / std 1"]["layers"][-1]["saturated"] > 0.4       # piled up at 0 and 1
    assert std("sigmoid / std 0.01", 4) < 0.02                            # collapsed onto 0.5
    assert abs(runs["sigmoid / std 0.01"]["layers"][4]["mean"] - 0.5) < 0.01
    assert std("tanh / std 0.01", 4) < 1e-3 * std("tanh / std 0.01", 0)   # shrinks ~10x per layer
    assert 0.5 < std("relu / He", 4) / std("relu / He", 0) < 2             # He keeps the scale
    assert std("relu / Xavier", 4) / std("relu / Xavier", 0) < 0.5        # Xavier halves the 2nd moment per layer
    layer = runs["tanh / Xavier"]["layers"][0]
    assert sum(layer["hist"]) == r["samples"] * r["units"] and len(layer["edges"]) == len(layer["hist"]) + 1


def test_batch_norm(tmp_path):
    r, _ = run_tiny("batch_norm", tmp_path)
    from dl2.experiments.batch_norm import final
    c = r["chance"]
    bn = [final(run["batchnorm"], c) for run in r["runs"]]
    plain = [final(run["plain"], c) for run in r["runs"]]
    assert len(bn) == 4 and r["runs"][0]["scale"] == 1.0
    assert np.mean(bn) > np.mean(plain) + 0.2
    assert max(bn) > 0.9 and max(plain) < 0.5          # at these scales the plain 5-layer net never gets going


def test_optimizers(tmp_path):
    r, _ = run_tiny("optimizers", tmp_path)
    runs = r["runs"]
    assert set(runs) == {"SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "Adam"}
    assert all(len(run["loss"]) == r["iterations"] == 150 for run in runs.values())
    final = {name: run["final_loss"] for name, run in runs.items()}
    assert max(final, key=final.get) == "SGD"
    assert final["Adam"] < final["SGD"] / 5 and final["Momentum"] < final["SGD"] / 2


def test_overfitting(tmp_path):
    r, _ = run_tiny("overfitting", tmp_path)
    runs = r["runs"]
    assert len(runs) == 5 and r["data"].startswith("digits: 300 training")
    base = runs["baseline"]
    assert len(base["train_accuracy"]) == len(base["test_accuracy"]) == r["epochs"]
    assert base["final_train"] > 0.9 and base["gap"] > 0.04
    assert runs["L2 (weight decay 0.1)"]["gap"] < base["gap"] - 0.02
    assert min(run["gap"] for name, run in runs.items() if name != "baseline") < base["gap"]


def test_conv_nets(tmp_path):
    r, _ = run_tiny("conv_nets", tmp_path)
    runs = r["runs"]
    assert list(runs) == ["SimpleConvNet", "DoubleConvNet", "DeepConvNet"]
    for run in runs.values():
        assert len(run["test_accuracy"]) == len(run["epoch_time_s"]) == r["epochs"]
        assert run["test_accuracy"][-1] > 0.5              # chance is 0.1
    assert runs["DeepConvNet"]["parameters"] > runs["DoubleConvNet"]["parameters"]


def window_counts(size, k, s, p):
    """How many windows cover each position along one axis, by enumerating the windows."""
    out = (size + 2 * p - k) // s + 1
    counts = np.zeros(size, int)
    for o in range(out):
        for i in range(o * s - p, o * s - p + k):
            if 0 <= i < size:
                counts[i] += 1
    return counts


def test_im2col(tmp_path):
    r, lines = run_tiny("im2col", tmp_path)
    for case in r["cases"]:
        k, s, p = case["kernel"], case["stride"], case["padding"]
        n, c, h, w = case["input_shape"]
        expected = np.outer(window_counts(h, k, s, p), window_counts(w, k, s, p))
        assert np.array_equal(case["count_map"], expected), (k, s, p)
        assert case["count_same_for_all_channels"]
        oh, ow = case["output_hw"]
        assert case["cols_shape"] == [n * oh * ow, c * k * k]
        assert case["conv_via_im2col_max_error"] < 1e-10
    tiling = next(cs for cs in r["cases"] if cs["kernel"] == cs["stride"] == 2 and cs["padding"] == 0)
    assert set(np.ravel(tiling["count_map"])) == {0, 1}   # 7 is odd: the last row/column is not covered
    demo = r["demo"]
    assert np.array_equal(np.asarray(demo["cols"])[0], [1, 2, 3, 5, 6, 7, 9, 10, 11])
    assert np.array_equal(demo["col2im_of_im2col"],
                          np.asarray(demo["input"]) * np.outer(window_counts(4, 3, 1, 0), window_counts(4, 3, 1, 0)))


# --------------------------------------------------------------------- command line
def test_command_line_writes_json(tmp_path, capsys):
    assert main(["im2col", "--tiny", "--out", str(tmp_path), "--no-plot"]) == 0
    assert os.path.exists(tmp_path / "im2col.json") and not os.path.exists(tmp_path / "im2col.png")
    assert "What to notice" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["no_such_experiment"])


def test_without_matplotlib_only_json_and_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "pyplot", lambda: None)
    lines = []
    result = experiments.run("im2col", mode="tiny", out=str(tmp_path), print_fn=lines.append)
    assert result["png_path"] is None and os.path.exists(result["json_path"])
    assert any("matplotlib is not installed" in line for line in lines)


def test_missing_dataset_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DL2_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))                # no ~/.cache/dl2/mnist either
    assert main(["vanishing_gradient", "--tiny", "--dataset", "mnist", "--out", str(tmp_path)]) == 1
    assert "mnist IDX files not found" in capsys.readouterr().err


def test_list_prints_every_experiment_with_a_description(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == experiments.EXPERIMENTS
    assert all(len(line.split(None, 1)[1]) > 20 for line in lines)


# --------------------------------------------------------------------- plots
@pytest.mark.parametrize("name, ylabel_everywhere, legend_outside", [
    ("vanishing_gradient", True, True), ("batch_norm", True, False), ("overfitting", False, False),
    ("conv_nets", True, True)])
def test_plots_label_every_panel_tick_whole_epochs_and_keep_legends_off_the_data(tmp_path, name,
                                                                               ylabel_everywhere, legend_outside):
    plt = experiments.pyplot()
    result = experiments.run(name, mode="tiny", dataset="digits", out=str(tmp_path), plot=False,
                             print_fn=lambda line: None)
    fig = experiments.load(name).plot(result, plt)
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if ax.axison]
    for ax in panels:
        assert ax.get_xlabel(), f"{name}: a panel without an x label"
        if ylabel_everywhere:
            assert ax.get_ylabel(), f"{name}: a panel without a y label"
        if ax.get_xlabel() == "epoch":
            lo, hi = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
        legend = ax.get_legend()
        if legend is not None and legend_outside:
            renderer = fig.canvas.get_renderer()
            assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    plt.close(fig)
