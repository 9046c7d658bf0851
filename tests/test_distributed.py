"""Tests of dl2.distributed and SyncBatchNorm: in this process (a world of one) and under ``mpiexec -n 2/3``.

The MPI scenarios live in tests/mpi_worker.py; every launch is bounded by a timeout and its whole process
group is killed if it runs over. ``mpiexec`` is the one next to the Python running the tests (the mpich wheel
installs it in the environment's bin/), else the first on PATH.
"""
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import dl2
from dl2 import cli, distributed
from dl2.distributed import runtime
from fastconv import reference

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi_worker.py")
sys.path.insert(0, HERE)
import mpi_worker  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_fastconv_thread")


def _mpiexec():
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return local if os.access(local, os.X_OK) else shutil.which("mpiexec")


def launch(n, *args, timeout=60, env=None):
    """Run ``mpiexec -n n <args>``; ``(returncode, stdout, stderr)``. Kills the process group on timeout."""
    mpiexec = _mpiexec()
    if mpiexec is None:
        pytest.fail("no mpiexec next to sys.executable or on PATH: pip install '.[test]' installs mpich")
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("OMP_NUM_THREADS", None)
    proc = subprocess.Popen([mpiexec, "-n", str(n), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=full_env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"mpiexec -n {n} {' '.join(args)} did not end within {timeout} s")
    return proc.returncode, out, err


def run_worker(n, *args, **kwargs):
    code, out, err = launch(n, sys.executable, WORKER, *args, **kwargs)
    assert code == 0, f"worker failed ({code}):\n{out}\n{err}"
    return out, err


def assert_states_close(got, ref, rtol, atol):
    assert sorted(got) == sorted(ref)
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], rtol=rtol, atol=atol, err_msg=key)


# --------------------------------------------------------------------- a world of one
def test_world_of_one_without_a_launcher():
    w = distributed.world()
    assert (w.rank, w.size, w.local_rank, w.local_size, w.comm, w.is_root) == (0, 1, 0, 1, None, True)
    assert w.where() == "" and "1 process" in w.describe()
    np.testing.assert_array_equal(w.sum([1.0, 2.0]), [1.0, 2.0])
    assert w.gather("a") == ["a"] and w.broadcast({"k": 1}) == {"k": 1}
    distributed.abort(3)       # a no-op in a world of one


def test_world_of_one_trainer_is_unchanged():
    net = mpi_worker.model("mlp", np.float64, seed=0)
    trainer = dl2.Trainer(net, dl2.SoftmaxCrossEntropy(), dl2.optim.SGD(net.parameters(), lr=0.1))
    assert isinstance(trainer.parallel, distributed.SingleProcess)
    with pytest.raises(RuntimeError, match="MPI world"):
        dl2.Trainer(net, dl2.SoftmaxCrossEntropy(), dl2.optim.SGD(net.parameters(), lr=0.1), data_parallel=True)
    with pytest.raises(ValueError, match="data_parallel must be"):
        dl2.Trainer(net, dl2.SoftmaxCrossEntropy(), dl2.optim.SGD(net.parameters(), lr=0.1), data_parallel="yes")


def test_dl2_mpi_setting_is_checked(monkeypatch):
    monkeypatch.setenv("DL2_MPI", "maybe")
    with pytest.raises(ValueError, match="DL2_MPI"):
        runtime._discover()
    monkeypatch.setenv("DL2_MPI", "0")
    monkeypatch.setenv("PMI_SIZE", "4")
    assert runtime._discover().size == 1


def test_launched_by_mpiexec_without_mpi4py_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)        # import mpi4py now fails
    monkeypatch.delenv("DL2_MPI", raising=False)
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("PMI_RANK", "0")
    with pytest.raises(RuntimeError, match=r"MPI launcher \(4 ranks\) but mpi4py cannot be imported.*"
                                           r"pip install 'dl2\[distributed\]'"):
        runtime._discover()
    monkeypatch.setenv("PMI_SIZE", "1")
    assert runtime._discover().size == 1       # mpiexec -n 1 without mpi4py: a world of one


@pytest.mark.parametrize("n", [1, 5, 31, 32, 33, 100])
@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_slice_bounds_cut_every_batch_into_consecutive_near_equal_slices(n, size):
    bounds = [distributed.slice_bounds(n, size, r) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_plan_buckets_fuses_parameters_in_reverse_order():
    params = [dl2.Parameter(np.zeros(n, np.float32)) for n in (10, 300, 20, 30, 40)]
    buckets = distributed.plan_buckets(params + params[:2], bucket_bytes=400)       # repeats are dropped
    assert [[p.size for p in b] for b in buckets] == [[40, 30, 20], [300], [10]]
    mixed = [dl2.Parameter(np.zeros(4, np.float64)), dl2.Parameter(np.zeros(4, np.float32))]
    assert [len(b) for b in distributed.plan_buckets(mixed)] == [1, 1]              # one dtype per buffer


def test_default_threads_share_the_cores():
    cores = len(os.sched_getaffinity(0))
    assert distributed.default_threads(1) == cores
    assert distributed.default_threads(cores + 5) == 1
    assert distributed.default_threads(2) * 2 <= max(cores, 2)


# --------------------------------------------------------------------- SyncBatchNorm in one process
@pytest.mark.parametrize("shape", [(6, 3, 4, 5), (9, 4)])
def test_sync_batchnorm_alone_is_batchnorm_and_gradchecks(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, size=shape)
    sync = dl2.SyncBatchNorm(momentum=0.3)
    sync.build(shape[1:], np.float64)
    plain = dl2.BatchNorm2D(momentum=0.3) if len(shape) == 4 else dl2.BatchNorm1D(momentum=0.3)
    plain.build(shape[1:], np.float64)
    sync.gamma.data[...] = plain.gamma.data[...] = rng.normal(size=shape[1])
    np.testing.assert_allclose(sync.forward(x), plain.forward(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sync.running_var, plain.running_var, rtol=1e-12)
    dy = rng.normal(size=shape)
    np.testing.assert_allclose(sync.backward(dy), plain.backward(dy), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sync.gamma.grad, plain.gamma.grad, rtol=1e-10, atol=1e-12)
    dl2.gradcheck(sync, x)
    sync.eval()
    np.testing.assert_allclose(sync.forward(x), plain.eval().forward(x), rtol=1e-12)


def test_sync_batchnorm_errors_and_config():
    layer = dl2.SyncBatchNorm(eps=1e-3)
    assert layer.get_config()["args"] == {"eps": 1e-3}
    layer.build((3,), np.float32)
    with pytest.raises(ValueError, match="more than one value per channel"):
        layer.forward(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="expects a per-sample input"):
        dl2.SyncBatchNorm().build((3, 4), np.float32)


def test_convert_sync_batchnorm_keeps_parameters_and_outputs():
    net = cli.get_model("cnn", (1, 8, 8), 10, seed=0)
    before = [m for m in net.modules() if isinstance(m, dl2.BatchNorm2D)]
    params = net.parameters()
    x = np.random.default_rng(0).normal(size=(8, 1, 8, 8)).astype(np.float32)
    expected = net.forward(x)
    assert dl2.convert_sync_batchnorm(net) is net
    after = [m for m in net.modules() if isinstance(m, dl2.SyncBatchNorm)]
    assert len(after) == len(before) == 2 and not any(isinstance(m, dl2.BatchNorm2D) for m in net.modules())
    assert all(isinstance(net.layers[i], dl2.SyncBatchNorm) for i in (1, 5))
    assert all(a is b for a, b in zip(net.parameters(), params))
    np.testing.assert_allclose(net.forward(x), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="build the model first"):
        dl2.convert_sync_batchnorm(dl2.Sequential(dl2.BatchNorm1D()))


# --------------------------------------------------------------------- N ranks = one process
def reference_run(tmp_path, *args):
    out = str(tmp_path / "reference.npz")
    mpi_worker.main(["train", *args, out])
    with open(out + ".json") as f:
        return dict(np.load(out)), json.load(f)


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("kind, dtype, tol", [("mlp", "float64", 1e-12), ("bn", "float64", 1e-12),
                                               ("mlp", "float32", 1e-5), ("bn", "float32", 1e-5)])
def test_n_ranks_end_with_the_weights_of_one_process(tmp_path, n, kind, dtype, tol):
    """Global batch 32 on 2 ranks (16+16) and on 3 (11+11+10; the last batch of 8: 3+3+2), one epoch; the
    batch-norm model with SyncBatchNorm. The ranks start from different seeds: rank 0's weights are broadcast."""
    ref, ref_info = reference_run(tmp_path, "--model", kind, "--dtype", dtype)
    args = ["train", "--model", kind, "--dtype", dtype] + (["--sync-bn"] if kind == "bn" else [])
    run_worker(n, *args, str(tmp_path / "dp.npz"))
    got = dict(np.load(tmp_path / "dp.npz"))
    with open(tmp_path / "dp.npz.json") as f:
        info = json.load(f)
    assert_states_close(got, ref, rtol=tol, atol=tol)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(info["history"][key], ref_info["history"][key], rtol=tol)
    np.testing.assert_allclose(info["evaluate"]["loss"], ref_info["evaluate"]["loss"], rtol=tol)
    assert info["evaluate"]["accuracy"] == ref_info["evaluate"]["accuracy"]
    assert info["stats"]["steps"] == 7 and info["stats"]["buckets"] == 1
    assert info["threads"] * n <= max(len(os.sched_getaffinity(0)), n)


def test_per_rank_batch_norm_statistics_by_default(tmp_path):
    """Without SyncBatchNorm each rank normalises with its own slice's statistics (as DDP): not the same
    training as one process with the whole batch."""
    ref, _ = reference_run(tmp_path, "--model", "bn")
    run_worker(2, "train", "--model", "bn", str(tmp_path / "dp.npz"))
    got = dict(np.load(tmp_path / "dp.npz"))
    assert max(np.abs(got[k] - ref[k]).max() for k in ref) > 1e-6
    # rank 0's running statistics were broadcast: the ranks' sharded evaluation is that of the saved model
    with open(tmp_path / "dp.npz.json") as f:
        evaluated = json.load(f)["evaluate"]
    net = mpi_worker.model("bn", np.float64, seed=0)
    net.load_state_dict(got)
    x, t = mpi_worker.digits(np.float64)
    alone = dl2.Trainer(net, dl2.SoftmaxCrossEntropy(), None, progress=False).evaluate(x, t, batch_size=37)
    np.testing.assert_allclose(evaluated["loss"], alone["loss"], rtol=1e-12)


@pytest.mark.parametrize("overlap", [True, False])
def test_many_small_buckets_with_and_without_overlap(tmp_path, overlap):
    ref, _ = reference_run(tmp_path, "--model", "bn")
    run_worker(3, "train", "--model", "bn", "--sync-bn", "--bucket-bytes", "200", *([] if overlap else
               ["--no-overlap"]), str(tmp_path / "dp.npz"))
    with open(tmp_path / "dp.npz.json") as f:
        stats = json.load(f)["stats"]
    assert stats["buckets"] > 4
    assert_states_close(dict(np.load(tmp_path / "dp.npz")), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, layout, batch", [(3, "2d", 11), (2, "1d", 7)])
def test_sync_batchnorm_across_ranks_is_batchnorm_of_the_concatenated_batch(tmp_path, n, layout, batch):
    run_worker(n, "sync-bn-layer", "--layout", layout, "--batch-size", str(batch), str(tmp_path / "bn.npz"))
    r = np.load(tmp_path / "bn.npz")
    y, mean, invstd = reference.batchnorm_forward(r["x"], r["gamma"], np.zeros_like(r["gamma"]))
    dx, dgamma, dbeta = reference.batchnorm_backward(r["dy"], r["x"], r["gamma"], mean, invstd)
    for got, want in ((r["y"], y), (r["dx"], dx), (r["dgamma"], dgamma), (r["dbeta"], dbeta),
                      (r["running_mean"], 0.1 * mean)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    m = r["x"].size // r["x"].shape[1]
    np.testing.assert_allclose(r["running_var"], 0.9 + 0.1 * (1 / invstd ** 2 - 1e-5) * m / (m - 1), rtol=1e-12)


def test_dropout_streams_differ_across_ranks_and_augmentation_sees_each_slice(tmp_path):
    run_worker(3, "randomness", str(tmp_path / "r.json"))
    with open(tmp_path / "r.json") as f:
        r = json.load(f)
    assert r["masks"][0] != r["masks"][1] != r["masks"][2]
    # 200 samples, global batch 32: six batches of 11+11+10 and a last one of 8 = 3+3+2
    assert r["sizes"] == [[11] * 6 + [3], [11] * 6 + [3], [10] * 6 + [2]]


# --------------------------------------------------------------------- the dl2 command under mpiexec
def _weights(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files if k.startswith("model/")}


def test_cli_checkpoint_from_2_ranks_resumes_on_3(tmp_path, capsys):
    common = ["--model", "mlp", "--optimizer", "momentum", "--no-progress"]
    ck, dp_model, ref_model = (str(tmp_path / name) for name in ("ck.npz", "dp.npz", "ref.npz"))
    code, out, err = launch(2, sys.executable, "-m", "dl2", "train", *common, "--epochs", "2", "--checkpoint", ck)
    assert code == 0, err
    assert out.count("   epoch ") == 1 and "data-parallel: 2 ranks" in out     # rank 0 alone prints
    code, out, err = launch(3, sys.executable, "-m", "dl2", "train", *common, "--epochs", "3", "--resume", ck,
                            "--save", dp_model)
    assert code == 0, err
    rows = [line.split() for line in out.splitlines() if line.split()[:1] == ["3"]]
    assert len(rows) == 1 and "data-parallel: 3 ranks" in out
    assert cli.main(["train", *common, "--epochs", "3", "--save", ref_model]) == 0
    ref_out = capsys.readouterr().out
    assert_states_close(_weights(dp_model), _weights(ref_model), rtol=1e-4, atol=1e-5)
    assert out.strip().splitlines()[-1] == ref_out.strip().splitlines()[-1]     # the same test accuracy


def test_cli_sync_bn_and_info(tmp_path):
    code, out, err = launch(2, sys.executable, "-m", "dl2", "train", "--epochs", "1", "--no-progress", "--sync-bn")
    assert code == 0, err
    assert "synchronised batch norm" in out and out.strip().splitlines()[-1].startswith("test accuracy: ")
    code, out, err = launch(2, sys.executable, "-m", "dl2", "info")
    assert code == 0, err
    assert out.count("world: 2 ranks") == 1 and "this is rank 0" in out


# --------------------------------------------------------------------- faults
def test_exception_on_one_rank_ends_every_rank_with_its_message():
    code, out, err = launch(3, sys.executable, WORKER, "fault", "--rank", "1", timeout=60)
    assert code != 0
    assert "injected failure on rank 1" in err and "rank 1 of 3" in err


def test_global_batch_smaller_than_the_ranks_is_an_error(tmp_path):
    code, _, err = launch(3, sys.executable, "-m", "dl2", "train", "--batch-size", "2", "--epochs", "1")
    assert code != 0 and "on 3 ranks needs a (global) batch size and a number of samples of at least 3" in err


def test_cli_error_on_every_rank_names_the_rank(tmp_path):
    code, _, err = launch(2, sys.executable, "-m", "dl2", "train", "--resume", str(tmp_path / "missing.npz"))
    assert code != 0 and "dl2: error (rank " in err and "no such file" in err


def test_sigkill_of_one_rank_ends_mpiexec():
    code, _, _ = launch(3, sys.executable, WORKER, "fault", "--rank", "2", "--how", "kill", timeout=60)
    assert code != 0


def test_mismatched_models_fail_at_start_up_with_a_clear_error():
    code, _, err = launch(2, sys.executable, WORKER, "mismatch", "--what", "model", timeout=60)
    assert code != 0
    assert "the model on rank 1 differs from rank 0's" in err and "'1.weight'" in err
    assert "(64, 24)" in err and "(64, 16)" in err


def test_different_amounts_of_data_fail_at_start_up_with_a_clear_error():
    code, _, err = launch(2, sys.executable, WORKER, "mismatch", "--what", "data", timeout=60)
    assert code != 0
    assert "the training plan on rank 1 differs from rank 0's: (190, 32, 1, 0) there, (200, 32, 1, 0)" in err
