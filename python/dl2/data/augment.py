"""Batch data augmentation for images ``(N, C, H, W)``.

Each transform is a callable ``x -> new array`` (the input is never modified) that keeps the dtype. The random
ones draw from their own ``np.random.Generator`` (``seed``), independently for each sample::

    train_tf = Compose([RandomCrop(padding=2, seed=0), RandomHorizontalFlip(seed=1), Normalize(0.5, 0.25)])
    loader = DataLoader(x, t, 64, transform=train_tf)
"""
import numpy as np

import fastconv

__all__ = ["Transform", "RandomCrop", "RandomHorizontalFlip", "RandomTranslate", "RandomErasing", "Normalize",
           "Compose", "translate"]


def _check_batch(x, who):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{who}: expected a batch (N, C, H, W), got shape {x.shape}")
    return x


def _crop(padded, top, left, h, w):
    """Per-sample crops: ``padded[n, :, top[n]:top[n]+h, left[n]:left[n]+w]`` -> ``(N, C, h, w)``."""
    n, c = padded.shape[:2]
    rows = (top[:, None] + np.arange(h))[:, None, :, None]
    cols = (left[:, None] + np.arange(w))[:, None, None, :]
    return padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols]


def translate(x, dy, dx, fill=0):
    """Shift each image of ``x`` ``(N, C, H, W)`` down by ``dy`` and right by ``dx`` pixels (ints or ``(N,)``
    arrays; negative = up / left), filling uncovered pixels with ``fill``. Returns a new array."""
    x = _check_batch(x, "translate")
    n, _, h, w = x.shape
    dy = np.broadcast_to(np.asarray(dy, np.int64), (n,))
    dx = np.broadcast_to(np.asarray(dx, np.int64), (n,))
    py = int(np.abs(dy).max(initial=0))
    px = int(np.abs(dx).max(initial=0))
    padded = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)), constant_values=fill)
    return _crop(padded, py - dy, px - dx, h, w)


class Transform:
    """Base class: ``__call__`` checks the batch and calls :meth:`apply`; ``seed`` seeds ``self.rng``."""

    def __init__(self, seed=None):
        self.rng = np.random.default_rng(seed)

    def __call__(self, x):
        return self.apply(_check_batch(x, type(self).__name__))

    def apply(self, x):
        raise NotImplementedError

    def generators(self):
        """The random generators this transform draws from, in a fixed order (:class:`dl2.Trainer` saves their
        states in checkpoints, so a resumed run augments as the uninterrupted one would)."""
        return [self.rng]


class RandomCrop(Transform):
    """Zero-pad by ``padding`` pixels on each side, then crop a random window of ``size`` per sample.

    ``size`` (int or ``(h, w)``) defaults to the input's own size, so ``RandomCrop(padding=4)`` gives
    random shifts of up to 4 pixels with the shape unchanged.
    """

    def __init__(self, size=None, padding=0, fill=0, seed=None):
        super().__init__(seed)
        self.size = None if size is None else fastconv.pair(size, "RandomCrop size", 0)
        self.padding = fastconv.pair(padding, "RandomCrop padding", 0)
        self.fill = fill

    def apply(self, x):
        n, _, h, w = x.shape
        py, px = self.padding
        ch, cw = self.size if self.size is not None else (h, w)
        if ch > h + 2 * py or cw > w + 2 * px or ch == 0 or cw == 0:
            raise ValueError(f"RandomCrop: crop size {(ch, cw)} does not fit the padded image "
                             f"{(h + 2 * py, w + 2 * px)}")
        padded = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)), constant_values=self.fill)
        top = self.rng.integers(0, h + 2 * py - ch, size=n, endpoint=True)
        left = self.rng.integers(0, w + 2 * px - cw, size=n, endpoint=True)
        return _crop(padded, top, left, ch, cw)


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p=0.5, seed=None):
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def apply(self, x):
        flip = self.rng.random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out


class RandomTranslate(Transform):
    """Shift each image by independent random integers ``dy, dx`` in ``[-max_shift, max_shift]``
    (int or ``(max_dy, max_dx)``), filling with ``fill``."""

    def __init__(self, max_shift, fill=0, seed=None):
        super().__init__(seed)
        self.max_shift = fastconv.pair(max_shift, "RandomTranslate max_shift", 0)
        self.fill = fill

    def apply(self, x):
        my, mx = self.max_shift
        dy = self.rng.integers(-my, my, size=len(x), endpoint=True)
        dx = self.rng.integers(-mx, mx, size=len(x), endpoint=True)
        return translate(x, dy, dx, self.fill)


class RandomErasing(Transform):
    """Random erasing (Zhong et al., AAAI 2020): with probability ``p`` per sample, fill one rectangle with
    ``value``.

    The rectangle covers a fraction ``s`` of the image, uniform in ``scale``, with aspect ratio (height /
    width) log-uniform in ``ratio`` restricted to the ratios at which that area fits in the image (the
    closest fitting ratio if none of ``ratio`` does); height and width are rounded to whole pixels (at least
    one), and the position is uniform with the rectangle fully inside. ``value``: a number, or ``"random"``
    for independent values per erased pixel, uniform between the batch's minimum and maximum (so it suits
    raw and normalised images alike). The rectangles are drawn for every sample, erased or not.
    """

    def __init__(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0, seed=None):
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomErasing: p must be in [0, 1], got {p}")
        if not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"RandomErasing: scale must be (lo, hi) with 0 < lo <= hi <= 1, got {scale}")
        if not (len(ratio) == 2 and 0 < ratio[0] <= ratio[1]):
            raise ValueError(f"RandomErasing: ratio must be (lo, hi) with 0 < lo <= hi, got {ratio}")
        if not (value == "random" or (isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
                                      and np.isfinite(value))):
            raise ValueError(f"RandomErasing: value must be a finite number or 'random', got {value!r}")
        self.p = float(p)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.value = value

    def apply(self, x):
        n, c, h, w = x.shape
        erase = self.rng.random(n) < self.p
        s = self.rng.uniform(*self.scale, size=n)
        # log ratios at which an area s*h*w fits: r <= h / (s w) (height) and r >= s h / w (width)
        fit_lo, fit_hi = np.log(s * h / w), np.log(h / (s * w))
        lo = np.maximum(np.log(self.ratio[0]), fit_lo)
        hi = np.minimum(np.log(self.ratio[1]), fit_hi)
        r = np.exp(np.clip(lo + self.rng.random(n) * (hi - lo), fit_lo, fit_hi))
        eh = np.clip(np.rint(np.sqrt(s * h * w * r)), 1, h).astype(np.int64)
        ew = np.clip(np.rint(np.sqrt(s * h * w / r)), 1, w).astype(np.int64)
        top = np.floor(self.rng.random(n) * (h - eh + 1)).astype(np.int64)
        left = np.floor(self.rng.random(n) * (w - ew + 1)).astype(np.int64)
        out = x.copy()
        if self.value == "random" and n:
            vmin, vmax = float(x.min()), float(x.max())
        for i in np.flatnonzero(erase):
            region = out[i, :, top[i]:top[i] + eh[i], left[i]:left[i] + ew[i]]
            if self.value == "random":
                region[...] = self.rng.uniform(vmin, vmax, size=region.shape)
            else:
                region[...] = self.value
        return out


class Normalize(Transform):
    """``(x - mean) / std`` per channel; ``mean`` and ``std`` are scalars or length-C sequences."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean = np.atleast_1d(np.asarray(mean, np.float64))
        self.std = np.atleast_1d(np.asarray(std, np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError("Normalize: mean and std must be scalars or 1-D sequences")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std}")

    def apply(self, x):
        c = x.shape[1]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, c):
                raise ValueError(f"Normalize: {name} has {v.size} values for {c} channels")
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
        mean = self.mean.astype(dtype).reshape(1, -1, 1, 1)
        std = self.std.astype(dtype).reshape(1, -1, 1, 1)
        return (x.astype(dtype, copy=False) - mean) / std


class Compose(Transform):
    """Apply ``transforms`` in order."""

    def __init__(self, transforms):
        super().__init__()
        self.transforms = list(transforms)
        if not all(callable(t) for t in self.transforms):
            raise TypeError("Compose: every transform must be callable")

    def apply(self, x):
        out = x
        for t in self.transforms:
            out = t(out)
        return out.copy() if out is x else out

    def generators(self):
        """Those of the transforms, in order (a plain function has none)."""
        return [g for t in self.transforms for g in (t.generators() if isinstance(t, Transform) else [])]
