"""MNIST and Fashion-MNIST from their standard IDX files (gzipped or not).

The IDX format: two zero bytes, a type byte (0x08 = uint8, ...), a byte with the number of dimensions ``d``,
then ``d`` big-endian uint32 sizes and the big-endian data. Image files are ``(N, rows, cols)`` uint8
(magic 0x00000803), label files ``(N,)`` uint8 (magic 0x00000801).

Files are looked up, in order, in ``path``, ``$DL2_DATA/<name>``, ``$DL2_DATA``, ``~/.cache/dl2/<name>`` and
(Fashion-MNIST only) ``/usr/share/datasets/fashion-mnist``, where Debian's ``dataset-fashion-mnist``
package puts them. ``<name>`` is ``mnist`` or ``fashion-mnist``.
"""
import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zlib

import numpy as np

__all__ = ["read_idx", "write_idx", "load_mnist", "load_fashion_mnist", "one_hot", "search_dirs"]

# type byte -> big-endian dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {(np.dtype(v).kind, np.dtype(v).itemsize): k for k, v in _IDX_TYPES.items()}

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# Where download=True fetches from, and the SHA-256 of each *decompressed* file (so a recompressed
# mirror still verifies).
_SOURCES = {
    "mnist": {
        "url": "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "sha256": {
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    },
    "fashion-mnist": {
        "url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "sha256": {
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    },
}
_SYSTEM_DIRS = {"fashion-mnist": ["/usr/share/datasets/fashion-mnist"]}
_INSTALL_HINTS = {"fashion-mnist": "On Debian/Ubuntu: apt-get install dataset-fashion-mnist."}


# --------------------------------------------------------------------- IDX reading and writing
def _read_bytes(path):
    """The file's bytes, decompressed when it is gzip (detected by content, not by name)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def read_idx(path):
    """Read an IDX file (raw or gzip) into a native-endian numpy array of the shape it declares."""
    path = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX data type 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX file declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(f"{path}: IDX file {what}: {len(raw)} bytes, expected {expected} for shape {shape}")
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write ``array`` as an IDX file; gzip-compressed when ``path`` ends with ``.gz``."""
    path = os.fspath(path)
    array = np.asarray(array)
    key = (array.dtype.kind, array.dtype.itemsize)
    if key not in _IDX_CODES:
        raise TypeError(f"write_idx: dtype {array.dtype} has no IDX type code")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx: need 1..255 dimensions, got {array.ndim}")
    code = _IDX_CODES[key]
    payload = (bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
               + np.ascontiguousarray(array, _IDX_TYPES[code]).tobytes())
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


# --------------------------------------------------------------------- finding files
def _cache_dir(name):
    return os.path.join(os.path.expanduser("~"), ".cache", "dl2", name)


def search_dirs(name, path=None):
    """The directories searched for dataset ``name`` ('mnist' or 'fashion-mnist'), in order."""
    dirs = []
    if path is not None:
        dirs.append(os.fspath(path))
    env = os.environ.get("DL2_DATA")
    if env:
        dirs += [os.path.join(env, name), env]
    dirs.append(_cache_dir(name))
    dirs += _SYSTEM_DIRS.get(name, [])
    return dirs


def _find_file(directory, stem):
    for candidate in (stem, stem + ".gz"):
        full = os.path.join(directory, candidate)
        if os.path.isfile(full):
            return full
    return None


def _locate(name, path):
    """``{key: file}`` from the first directory holding all four files."""
    dirs = search_dirs(name, path)
    for d in dirs:
        found = {key: _find_file(d, stem) for key, stem in _FILES.items()}
        if all(found.values()):
            return found
    files = ", ".join(f"{stem}[.gz]" for stem in _FILES.values())
    hint = _INSTALL_HINTS.get(name, "")
    raise FileNotFoundError(
        f"{name} IDX files not found. Searched: {', '.join(dirs)}. "
        f"Put {files} in one of them (e.g. set DL2_DATA=/some/dir and use /some/dir/{name}), "
        f"or let dl2 download them when online (download=True; on the command line: --download). {hint}".rstrip()
    )


def _download(name, directory):
    """Fetch the four gz files into ``directory``, checking the SHA-256 of their decompressed content."""
    source = _SOURCES[name]
    os.makedirs(directory, exist_ok=True)
    for stem, digest in source["sha256"].items():
        target = os.path.join(directory, stem + ".gz")
        if os.path.isfile(target):
            continue
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source["url"] + stem + ".gz", timeout=60) as r:
                shutil.copyfileobj(r, out)
            actual = hashlib.sha256(_read_bytes(tmp)).hexdigest()
            if actual != digest:
                raise ValueError(f"{stem}.gz from {source['url']}: SHA-256 {actual} does not match {digest}")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


# --------------------------------------------------------------------- loaders
def one_hot(labels, num_classes=10):
    """``(N,)`` integer labels -> ``(N, num_classes)`` float32 one-hot rows."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: labels must be in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    out = np.zeros((labels.shape[0], num_classes), np.float32)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def _load_pair(images_file, labels_file, flatten, one_hot_labels, normalize):
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{images_file}: expected a uint8 (N, rows, cols) image file (magic 0x00000803), "
                         f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{labels_file}: expected a uint8 (N,) label file (magic 0x00000801), "
                         f"got {labels.dtype} {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images_file} has {images.shape[0]} images but {labels_file} has "
                         f"{labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_file}: label {labels.max()} outside 0..9")
    x = images.astype(np.float32)
    if normalize:
        x /= 255.0
    x = x.reshape(len(x), -1) if flatten else x[:, None, :, :]
    t = one_hot(labels, 10) if one_hot_labels else labels.astype(np.int64)
    return x, t


def _load(name, path, flatten, one_hot_labels, normalize, download):
    try:
        files = _locate(name, path)
    except FileNotFoundError:
        if not download:
            raise
        target = os.fspath(path) if path is not None else _cache_dir(name)
        _download(name, target)
        files = _locate(name, target)
    train = _load_pair(files["train_images"], files["train_labels"], flatten, one_hot_labels, normalize)
    test = _load_pair(files["test_images"], files["test_labels"], flatten, one_hot_labels, normalize)
    return train, test


def load_mnist(path=None, flatten=False, one_hot=False, normalize=True, download=False):
    """MNIST: ``(x_train, t_train), (x_test, t_test)``.

    Images float32 ``(N, 1, 28, 28)`` in [0, 1] (``(N, 784)`` with ``flatten``; 0..255 without ``normalize``);
    labels int64 ``(N,)`` or float32 ``(N, 10)`` with ``one_hot``. ``download=True`` fetches missing files into
    ``path`` (or ``~/.cache/dl2/mnist``) and checks their SHA-256.
    """
    return _load("mnist", path, flatten, one_hot, normalize, download)


def load_fashion_mnist(path=None, flatten=False, one_hot=False, normalize=True, download=False):
    """Fashion-MNIST, same layout as :func:`load_mnist` (also found in ``/usr/share/datasets/fashion-mnist``)."""
    return _load("fashion-mnist", path, flatten, one_hot, normalize, download)
