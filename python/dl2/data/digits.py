"""The UCI hand-written digits (8x8, 1,797 images, classes 0-9), shipped with dl2 so examples run offline.

Source and licence: ``DIGITS_LICENSE.txt`` beside this file. ``digits.csv.gz`` holds one image per line:
64 pixel values 0..16 (row-major 8x8), then the label.
"""
import functools
import gzip
import os

import numpy as np

from .idx import load_fashion_mnist, load_mnist, one_hot as _one_hot

__all__ = ["load_digits", "load_dataset", "DIGITS_FILE"]

DIGITS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.csv.gz")


@functools.lru_cache(maxsize=1)
def _digits_raw():
    """``(images uint8 (1797, 8, 8), labels int64 (1797,))``, parsed once (read-only arrays)."""
    try:
        with gzip.open(DIGITS_FILE, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except FileNotFoundError:
        raise FileNotFoundError(f"the embedded digits data {DIGITS_FILE} is missing: reinstall dl2") from None
    if table.ndim != 2 or table.shape[1] != 65:
        raise ValueError(f"{DIGITS_FILE}: expected 65 columns (64 pixels + label), got shape {table.shape}")
    images = table[:, :64].reshape(-1, 8, 8).astype(np.uint8)
    labels = table[:, 64].copy()
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_digits(flatten=False, one_hot=False, test_size=0.2, seed=0):
    """Stratified, seeded train/test split of the digits: ``(x_train, t_train), (x_test, t_test)``.

    Images float32 ``(N, 1, 8, 8)`` scaled to [0, 1] (pixel / 16), or ``(N, 64)`` with ``flatten``; labels
    int64 ``(N,)`` or float32 ``(N, 10)`` with ``one_hot``. Each class contributes ``round(test_size * n_c)``
    images to the test set; both sets are shuffled. ``test_size=0`` gives an empty test set.
    """
    if not 0.0 <= test_size < 1.0:
        raise ValueError(f"load_digits: test_size must be in [0, 1), got {test_size}")
    images, labels = _digits_raw()
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_size * len(idx)))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))

    def take(idx):
        x = images[idx].astype(np.float32) / 16.0
        x = x.reshape(len(idx), 64) if flatten else x.reshape(len(idx), 1, 8, 8)
        t = _one_hot(labels[idx], 10) if one_hot else labels[idx].copy()
        return x, t

    return take(train_idx), take(test_idx)


_LOADERS = {"digits": load_digits, "mnist": load_mnist, "fashion-mnist": load_fashion_mnist}


def load_dataset(name, **kwargs):
    """``load_dataset('digits' | 'mnist' | 'fashion-mnist', **kwargs)``: the matching ``load_*`` function."""
    key = str(name).lower().replace("_", "-")
    if key == "fashionmnist":
        key = "fashion-mnist"
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(_LOADERS)}")
    return _LOADERS[key](**kwargs)
