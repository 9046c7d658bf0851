"""Train a dl2.models network with options the ``dl2 train`` CLI does not have: constructor arguments, a cosine
learning-rate schedule and flip/crop augmentation. Used for the longer runs of docs/RESULTS.md::

    python examples/train_zoo.py --model vgg --model-args '{"depth": 11, "batchnorm": true, "width": 0.25}' \\
        --dataset fashion-mnist --epochs 13 --augment flip --schedule cosine --threads 1 --out vgg.json

Prints one line per epoch and ``test accuracy: 0.XXXX`` (evaluated once, after the last epoch).
"""
import argparse
import json
import time

import numpy as np

import fastconv

import dl2
from dl2.data import augment


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help=f"one of {', '.join(dl2.models.names())}")
    p.add_argument("--model-args", default="{}", help="JSON dict of constructor arguments")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=("none", "cosine"), default="cosine")
    p.add_argument("--augment", choices=("none", "flip", "flip-crop"), default="none",
                   help="random horizontal flips, optionally with 2-pixel random crops (default: none)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the numbers as JSON here")
    args = p.parse_args(argv)
    if args.threads:
        fastconv.set_num_threads(args.threads)
    (x, t), (xt, tt) = dl2.data.load_dataset(args.dataset)
    model = dl2.models.get(args.model, x.shape[1:], 10, seed=args.seed, **json.loads(args.model_args))
    opt = dl2.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = dl2.optim.CosineLR(opt, t_max=args.epochs) if args.schedule == "cosine" else None
    transform = None
    if args.augment != "none":
        steps = [augment.RandomHorizontalFlip(seed=args.seed)]
        if args.augment == "flip-crop":
            steps.append(augment.RandomCrop(padding=2, seed=args.seed + 1))
        transform = augment.Compose(steps)
    print(f"{args.model} {args.model_args}: {model.num_parameters():,} parameters; {args.dataset} "
          f"{len(x)} train / {len(xt)} test; Adam lr {args.lr} ({args.schedule}), batch {args.batch_size}, "
          f"augment {args.augment}, fastconv threads {fastconv.get_num_threads()}", flush=True)
    trainer = dl2.Trainer(model, dl2.SoftmaxCrossEntropy(), opt, seed=args.seed, progress=False, scheduler=sched,
                          callbacks=[dl2.callbacks.LambdaCallback(on_epoch_end=lambda tr, e, logs: print(
                              f"epoch {e + 1:3d}  loss {logs['loss']:.4f}  acc {logs['accuracy']:.4f}  "
                              f"lr {logs['lr']:.2e}  {logs['time']:.1f} s", flush=True))])
    start = time.time()
    history = trainer.fit(x, t, epochs=args.epochs, batch_size=args.batch_size, transform=transform)
    wall = time.time() - start
    result = trainer.evaluate(xt, tt)
    print(f"training wall time: {wall:.1f} s ({wall / args.epochs:.1f} s/epoch)")
    print(f"test loss: {result['loss']:.4f}")
    print(f"test accuracy: {result['accuracy']:.4f}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "parameters": model.num_parameters(), "history": history,
                       "train_wall_s": wall, "test": result}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
