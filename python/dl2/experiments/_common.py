"""What the experiments share: data selection and subsampling, run sizes, JSON output and optional plotting."""
import json
import math
import os

import numpy as np

from ..data import load_dataset

#: Run sizes. ``full``: whole data set; ``quick``: subsampled, each experiment at most about a minute on 2 cores;
#: ``tiny``: a few seconds (tests).
MODES = {
    "full": {"n_train": None, "n_test": None},
    "quick": {"n_train": 5000, "n_test": 1000},
    "tiny": {"n_train": 1000, "n_test": 359},
}


class Context:
    """Options of one run: ``mode`` (``full``/``quick``/``tiny``), ``dataset`` (``auto``, ``digits``, ``mnist``,
    ``fashion-mnist``), ``seed``, ``epochs`` (None: the experiment's default for the mode), ``out`` directory,
    ``download`` (fetch a missing MNIST / Fashion-MNIST named by ``dataset``)."""

    def __init__(self, name, mode="full", dataset="auto", seed=0, epochs=None, out=None, download=False):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
        self.name, self.mode, self.dataset, self.seed, self.epochs = name, mode, dataset, int(seed), epochs
        self.out = out if out is not None else os.path.join("runs", name)
        self.dataset_name = None
        self.download = bool(download)
        self._cache = {}

    def pick(self, table):
        """``table[mode]`` -- a per-mode default (``epochs`` when given on the command line wins for epochs)."""
        return table[self.mode]

    def n_epochs(self, table):
        return int(self.epochs) if self.epochs is not None else table[self.mode]

    def data(self, flatten=False, n_train=None, n_test=None):
        """``(x, t), (x_test, t_test)``, subsampled to the mode's size (or ``n_train``/``n_test`` when smaller).

        ``dataset="auto"`` takes MNIST when its files are found, else Fashion-MNIST, else the embedded 8x8 digits.
        """
        key = (flatten, n_train, n_test)
        if key in self._cache:
            return self._cache[key]
        name, ((x, t), (xt, tt)) = _load(self.dataset, self.download)
        self.dataset_name = name
        sizes = MODES[self.mode]
        rng = np.random.default_rng(1000 + self.seed)

        def subsample(a, b, limit, cap):
            n = min(v for v in (len(a), limit, cap) if v is not None)
            idx = rng.permutation(len(a))[:n] if n < len(a) else np.arange(len(a))
            return a[idx], b[idx]

        x, t = subsample(x, t, sizes["n_train"], n_train)
        xt, tt = subsample(xt, tt, sizes["n_test"], n_test)
        if flatten:
            x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
        self._cache[key] = (x, t), (xt, tt)
        return self._cache[key]

    def describe_data(self, train, test):
        return (f"{self.dataset_name}: {len(train[0])} training and {len(test[0])} test samples of shape "
                f"{tuple(train[0].shape[1:])}")


def _load(dataset, download=False):
    dataset = str(dataset).lower()
    if dataset == "digits":
        return dataset, load_dataset(dataset)
    if dataset != "auto":
        return dataset, load_dataset(dataset, download=download)
    for name in ("mnist", "fashion-mnist"):
        try:
            return name, load_dataset(name)
        except FileNotFoundError:
            continue
    return "digits", load_dataset("digits")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path, result):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(_jsonable(result), f, indent=1)
    os.replace(tmp, path)


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend, or None when matplotlib (the ``plot`` extra) is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def epoch_axis(ax, label="epoch"):
    """Label the x axis of a per-epoch plot and put its ticks at whole epochs only."""
    from matplotlib.ticker import MaxNLocator
    ax.set_xlabel(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def legend_outside(ax, **kwargs):
    """A legend below the axes, where it can never hide data."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False, **kwargs)


def save_figure(fig, path):
    """Write ``fig`` as a PNG at ``path`` (a temporary file renamed over it), legends outside the axes included."""
    plt = pyplot()
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=90, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


def chance(t):
    return 1.0 / len(np.unique(t))


def smooth(values, window):
    """Moving average (``window`` points, shorter at the start)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return values
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)
