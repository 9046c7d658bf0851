"""Datasets, mini-batch loading and augmentation.

* :func:`load_digits` -- the UCI 8x8 hand-written digits, embedded (works offline).
* :func:`load_mnist`, :func:`load_fashion_mnist` -- from local IDX files (see :mod:`dl2.data.idx`).
* :func:`load_dataset` -- any of them by name.
* :class:`DataLoader` -- shuffled mini-batches; :mod:`dl2.data.augment` -- batch augmentation.
"""
from . import augment
from .digits import load_dataset, load_digits
from .idx import load_fashion_mnist, load_mnist, one_hot, read_idx, write_idx
from .loader import DataLoader

__all__ = ["augment", "load_dataset", "load_digits", "load_mnist", "load_fashion_mnist", "one_hot",
           "read_idx", "write_idx", "DataLoader"]
