"""``python -m dl2.experiments NAME [--quick | --tiny] [--out DIR] [--dataset auto|digits|mnist|fashion-mnist]``;
``python -m dl2.experiments list`` prints the experiments with a one-line description of each."""
import argparse
import os
import sys

from . import EXPERIMENTS, descriptions, run


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dl2.experiments",
                                     description="Run a teaching experiment; writes <out>/<name>.json and .png.")
    parser.add_argument("name", choices=EXPERIMENTS + ["all", "list"],
                        help="experiment to run ('all': every one; 'list': print them with a description)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="subsampled data and fewer epochs: seconds to about a minute per experiment on 2 cores")
    size.add_argument("--tiny", action="store_true", help="a run of a few seconds (for tests and smoke checks)")
    parser.add_argument("--out", help="output directory (default: runs/<name>)")
    parser.add_argument("--dataset", default="auto", choices=["auto", "digits", "mnist", "fashion-mnist"],
                        help="auto (default): MNIST if its files are found, else Fashion-MNIST, else digits")
    parser.add_argument("--epochs", type=int, help="override the experiment's number of epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="fastconv threads (default: all cores)")
    parser.add_argument("--no-plot", action="store_true", help="write only the JSON")
    parser.add_argument("--download", action="store_true",
                        help="download a missing MNIST / Fashion-MNIST chosen with --dataset (needs a network)")
    args = parser.parse_args(argv)
    if args.name == "list":
        width = max(len(name) for name in EXPERIMENTS)
        for name, title in descriptions():
            print(f"{name:<{width}}  {title}")
        return 0
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be >= 1")
    if args.threads:
        import fastconv
        fastconv.set_num_threads(args.threads)
    mode = "quick" if args.quick else "tiny" if args.tiny else "full"
    names = EXPERIMENTS if args.name == "all" else [args.name]
    try:
        for name in names:
            out = args.out if args.out is None or len(names) == 1 else os.path.join(args.out, name)
            run(name, mode=mode, dataset=args.dataset, out=out, seed=args.seed, epochs=args.epochs,
                plot=not args.no_plot, download=args.download)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
