"""Speed of data-parallel training on one machine, for docs/DISTRIBUTED.md::

    python examples/distributed_speed.py --threads 1                    # 1 process x 1 thread
    python examples/distributed_speed.py --threads 2                    # 1 process x 2 threads
    mpiexec -n 2 python examples/distributed_speed.py --threads 1       # 2 ranks x 1 thread
    mpiexec -n 2 python examples/distributed_speed.py --threads 1 --no-overlap
    mpiexec -n 2 python examples/distributed_speed.py --allreduce       # all-reduce times by message size

Trains ``--model`` (default simple_conv_net) on the first ``--steps`` global batches of Fashion-MNIST for one
epoch after a short warm-up and prints (rank 0) one JSON line: images/s, seconds per step, and the time spent
in the gradient all-reduce (``issue``: MPI calls made during the backward pass, ``wait``: waiting after it).
``--allreduce`` instead times ``MPI_Allreduce`` of float32 buffers from 4 B to 4 MiB (median of many).
"""
import argparse
import json
import os
import time

import numpy as np

import fastconv

import dl2
from dl2 import distributed


class _SkewTimed(distributed.DataParallel):
    """``--skew``: a barrier before each gradient exchange, timed apart (the wait for the slowest rank), so that
    ``wait`` is the transfer alone."""

    skew = 0.0

    def sync_gradients(self):
        t0 = time.perf_counter()
        self.world.comm.Barrier()
        self.skew += time.perf_counter() - t0
        super().sync_gradients()


def train_speed(args):
    w = distributed.world()
    (x, t), _ = dl2.data.load_dataset(args.dataset)
    n = args.steps * args.batch_size
    x, t = x[:n], t[:n]
    model = dl2.models.get(args.model, x.shape[1:], 10, seed=0)
    opt = dl2.optim.Momentum(model.parameters(), lr=0.01)
    kind = _SkewTimed if args.skew else distributed.DataParallel
    parallel = (kind(model, overlap=not args.no_overlap, bucket_bytes=args.bucket_bytes)
                if w.size > 1 else distributed.SingleProcess())
    trainer = dl2.Trainer(model, dl2.SoftmaxCrossEntropy(), opt, seed=0, progress=False, data_parallel=parallel)
    trainer.fit(x[:10 * args.batch_size], t[:10 * args.batch_size], epochs=1, batch_size=args.batch_size)
    parallel.skew = 0.0
    history = trainer.fit(x, t, epochs=1, batch_size=args.batch_size)
    seconds = history["time"][0]
    stats = getattr(parallel, "stats", {}) or {}
    comm = stats.get("issue_seconds", 0.0) + stats.get("wait_seconds", 0.0)
    return {"model": args.model, "ranks": w.size, "threads": fastconv.get_num_threads(),
            "overlap": not args.no_overlap if w.size > 1 else None, "global_batch": args.batch_size,
            "steps": args.steps, "images_per_s": n / seconds, "s_per_step": seconds / args.steps,
            "gradient_bytes": 4 * model.num_parameters(), "buckets": stats.get("buckets"),
            "comm_s_per_step": comm / args.steps, "wait_s_per_step": stats.get("wait_seconds", 0.0) / args.steps,
            "comm_share": comm / seconds, "skew_s_per_step": parallel.skew / args.steps if args.skew else None,
            "loadavg": open("/proc/loadavg").read().split()[:3]}


def allreduce_times(args):
    from mpi4py import MPI
    w = distributed.world()
    out = {"ranks": w.size, "seconds": {}}
    for size in [1 << k for k in range(0, 21, 2)]:          # 1 .. 1 Mi float32 values (4 B .. 4 MiB)
        buf = np.ones(size, np.float32)
        reps = max(5, min(200, (1 << 22) // (4 * size)))
        times = []
        for _ in range(reps):
            w.comm.Barrier()
            t0 = time.perf_counter()
            w.comm.Allreduce(MPI.IN_PLACE, buf)
            times.append(time.perf_counter() - t0)
        slowest = np.empty(len(times))
        w.comm.Allreduce(np.array(times), slowest, op=MPI.MAX)
        out["seconds"][4 * size] = float(np.median(slowest))
    out["loadavg"] = open("/proc/loadavg").read().split()[:3]
    return out


# --------------------------------------------------------------------- the cost model of docs/DISTRIBUTED.md
LINKS = {"10 Gbit/s": (10e9 / 8, 25e-6), "100 Gbit/s": (100e9 / 8, 2e-6)}   # bytes/s, latency per message
ZOO = [("mlp", (1, 28, 28), {}), ("lenet5", (1, 28, 28), {}), ("simple_conv_net", (1, 28, 28), {}),
       ("double_conv_net", (1, 28, 28), {}), ("deep_conv_net", (1, 28, 28), {}), ("bn_cnn", (1, 28, 28), {}),
       ("resnet", (1, 28, 28), {}), ("se_resnet", (1, 28, 28), {}), ("googlenet", (1, 28, 28), {}),
       ("vgg", (1, 28, 28), {}), ("alexnet", (1, 28, 28), {})]
FULL_SIZE = [("resnet", {"depth": 18}), ("se_resnet", {"depth": 18}), ("googlenet", {}), ("alexnet", {}),
             ("vgg", {"depth": 16})]


def allreduce_seconds(nbytes, ranks, bandwidth, latency, buckets=1, algorithm="ring"):
    """Ring: ``2 (N-1)/N * bytes / bandwidth + 2 (N-1) * latency`` per bucket's latency; Rabenseifner
    (reduce-scatter + all-gather by recursive halving/doubling): the same bandwidth term, ``2 log2 N`` latencies."""
    if ranks == 1:
        return 0.0
    steps = 2 * (ranks - 1) if algorithm == "ring" else 2 * int(np.ceil(np.log2(ranks)))
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + buckets * steps * latency


def step_seconds(model, batch, steps=5):
    """Median time of one training step (forward, loss, backward, Momentum update) on ``batch`` images."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch,) + tuple(model.input_shape)).astype(np.float32)
    t = rng.integers(0, 10, size=batch)
    loss, opt = dl2.SoftmaxCrossEntropy(), dl2.optim.Momentum(model.parameters(), lr=0.01)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        model.zero_grad()
        loss.forward(model.forward(x), t)
        model.backward(loss.backward())
        opt.step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def cost_model(args):
    """Markdown tables: gradient bytes per step of every zoo model and the predicted scaling efficiency."""
    print("| model (28x28 variant) | parameters | gradient MiB/step | buckets | step, 32 images/rank, 1 thread | "
          + " | ".join(f"E({n}) {link}" for link in LINKS for n in (8, 64, 512)) + " |")
    print("|---" * (5 + 3 * len(LINKS)) + "|")
    for name, shape, kw in ZOO:
        model = dl2.models.get(name, shape, 10, seed=0, **kw)
        nbytes, nb = 4 * model.num_parameters(), len(distributed.plan_buckets(model.parameters()))
        compute = step_seconds(model, 32)
        cells = []
        for bandwidth, latency in LINKS.values():
            for n in (8, 64, 512):
                comm = allreduce_seconds(nbytes, n, bandwidth, latency, nb)
                cells.append(f"{compute / (compute + comm):.2f}")
        print(f"| {name} | {model.num_parameters():,} | {nbytes / 2**20:.2f} | {nb} | {1e3 * compute:.1f} ms | "
              + " | ".join(cells) + " |", flush=True)
    print()
    print("| model (ImageNet size) | parameters | gradient MiB/step | "
          + " | ".join(f"all-reduce {n} ranks {link}" for link in LINKS for n in (8, 64, 512)) + " |")
    print("|---" * (3 + 3 * len(LINKS)) + "|")
    for name, kw in FULL_SIZE:
        model = dl2.models.get(name, (3, 224, 224), 1000, seed=0, **kw)
        nbytes, nb = 4 * model.num_parameters(), len(distributed.plan_buckets(model.parameters()))
        cells = [f"{1e3 * allreduce_seconds(nbytes, n, bw, lat, nb):.0f} ms" for bw, lat in LINKS.values()
                 for n in (8, 64, 512)]
        print(f"| {name} {kw or ''} | {model.num_parameters():,} | {nbytes / 2**20:.1f} | " + " | ".join(cells) + " |",
              flush=True)
        del model
    print(f"\nloadavg {open('/proc/loadavg').read().split()[:3]}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="simple_conv_net")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--batch-size", type=int, default=64, help="global batch (default: 64)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-overlap", action="store_true")
    p.add_argument("--skew", action="store_true", help="time the wait for the slowest rank apart (a barrier)")
    p.add_argument("--bucket-bytes", type=int, default=distributed.DEFAULT_BUCKET_BYTES)
    p.add_argument("--allreduce", action="store_true", help="time MPI_Allreduce instead of training")
    p.add_argument("--cost-model", action="store_true", help="print the cost-model tables (one process)")
    args = p.parse_args(argv)
    if args.cost_model:
        fastconv.set_num_threads(1)
        return cost_model(args)
    distributed.world()
    if args.threads:
        fastconv.set_num_threads(args.threads)
    result = allreduce_times(args) if args.allreduce else train_speed(args)
    if distributed.world().is_root:
        result["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY")
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
