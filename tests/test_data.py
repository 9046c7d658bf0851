"""Tests of dl2.data: IDX files, dataset search, the embedded digits, DataLoader and augmentation."""
import gzip
import hashlib
import os
import shutil

import numpy as np
import pytest

from dl2.data import (DataLoader, load_dataset, load_digits, load_fashion_mnist, load_mnist, one_hot,
                      read_idx, write_idx)
from dl2.data import idx as idx_module
from dl2.data.augment import (Compose, Normalize, RandomCrop, RandomErasing, RandomHorizontalFlip,
                              RandomTranslate, translate)

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No real DL2_DATA or ~/.cache/dl2 may leak into these tests."""
    monkeypatch.delenv("DL2_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def make_split(rng, n, h=28, w=28):
    return rng.integers(0, 256, (n, h, w), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def write_dataset(directory, seed=0, n_train=5, n_test=3, gz=(True, False, True, False)):
    """Tiny MNIST-layout IDX files in ``directory``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    xtr, ttr = make_split(rng, n_train)
    xte, tte = make_split(rng, n_test)
    for stem, array, compress in zip(STEMS, (xtr, ttr, xte, tte), gz):
        write_idx(os.path.join(directory, stem + (".gz" if compress else "")), array)
    return xtr, ttr, xte, tte


# --------------------------------------------------------------------- IDX format
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype,shape", [(np.uint8, (4, 3, 2)), (np.uint8, (7,)), (np.int32, (2, 5)),
                                         (np.float32, (3,)), (np.float64, (2, 2)), (np.int16, (1, 1, 1, 3))])
def test_idx_round_trip(tmp_path, suffix, dtype, shape):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path / ("a.idx" + suffix)
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == dtype and back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_idx_bytes_match_the_format(tmp_path):
    write_idx(tmp_path / "labels", np.array([7, 2, 1], np.uint8))
    raw = (tmp_path / "labels").read_bytes()
    assert raw == bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1])
    write_idx(tmp_path / "images.gz", np.zeros((2, 3, 4), np.uint8))
    raw = gzip.decompress((tmp_path / "images.gz").read_bytes())
    assert raw[:16] == bytes.fromhex("00000803" "00000002" "00000003" "00000004") and len(raw) == 16 + 24


def test_gzip_detected_by_content_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8)
    write_idx(tmp_path / "x.gz", array)
    os.rename(tmp_path / "x.gz", tmp_path / "renamed")
    np.testing.assert_array_equal(read_idx(tmp_path / "renamed"), array)


@pytest.mark.parametrize("content,message", [
    (b"", "not an IDX"),
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "not an IDX"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX data type"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "truncated"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "trailing"),
])
def test_corrupt_idx_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_error_names_the_file(tmp_path):
    path = tmp_path / "t.gz"
    write_idx(path, np.arange(1000, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_mnist_file_error(tmp_path):
    write_dataset(tmp_path, gz=(False,) * 4)
    images = tmp_path / STEMS[0]
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated") as info:
        load_mnist(tmp_path)
    assert STEMS[0] in str(info.value)


def test_swapped_mnist_files_error(tmp_path):
    write_dataset(tmp_path, gz=(False,) * 4)
    os.replace(tmp_path / STEMS[1], tmp_path / "tmp")
    os.replace(tmp_path / STEMS[0], tmp_path / STEMS[1])
    os.replace(tmp_path / "tmp", tmp_path / STEMS[0])
    with pytest.raises(ValueError, match="0x00000803") as info:
        load_mnist(tmp_path)
    assert STEMS[0] in str(info.value)


def test_count_mismatch_error(tmp_path):
    write_dataset(tmp_path, gz=(False,) * 4)
    write_idx(tmp_path / STEMS[1], np.zeros(4, np.uint8))  # 5 images, 4 labels
    with pytest.raises(ValueError, match="5 images"):
        load_mnist(tmp_path)


# --------------------------------------------------------------------- MNIST loading
def test_load_mnist_from_path(tmp_path):
    xtr, ttr, xte, tte = write_dataset(tmp_path)
    (x, t), (x2, t2) = load_mnist(tmp_path)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    assert t.shape == (5,) and t.dtype == np.int64
    assert x2.shape == (3, 1, 28, 28) and t2.shape == (3,)
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(np.rint(x[:, 0] * 255), xtr)
    np.testing.assert_array_equal(t, ttr)
    np.testing.assert_array_equal(np.rint(x2[:, 0] * 255), xte)
    np.testing.assert_array_equal(t2, tte)


def test_load_mnist_options(tmp_path):
    xtr, ttr, _, _ = write_dataset(tmp_path)
    (x, t), (x2, t2) = load_mnist(tmp_path, flatten=True, one_hot=True, normalize=False)
    assert x.shape == (5, 784) and x2.shape == (3, 784) and x.dtype == np.float32
    np.testing.assert_array_equal(x, xtr.reshape(5, 784))
    assert t.shape == (5, 10) and t.dtype == np.float32
    np.testing.assert_array_equal(t.argmax(1), ttr)
    np.testing.assert_array_equal(t.sum(1), 1.0)


def test_search_order_with_dl2_data(tmp_path, monkeypatch):
    root = tmp_path / "store"
    monkeypatch.setenv("DL2_DATA", str(root))
    in_root = write_dataset(root, seed=1)
    in_named = write_dataset(root / "mnist", seed=2)
    explicit = write_dataset(tmp_path / "explicit", seed=3)

    (x, _), _ = load_mnist(tmp_path / "explicit")          # path comes first
    np.testing.assert_array_equal(np.rint(x[:, 0] * 255), explicit[0])
    (x, _), _ = load_mnist()                               # then $DL2_DATA/mnist
    np.testing.assert_array_equal(np.rint(x[:, 0] * 255), in_named[0])
    os.remove(root / "mnist" / (STEMS[3]))                 # incomplete -> skipped
    (x, _), _ = load_mnist()                               # then $DL2_DATA
    np.testing.assert_array_equal(np.rint(x[:, 0] * 255), in_root[0])
    (x, _), _ = load_mnist(tmp_path / "nothing-here")      # a path without files falls through
    np.testing.assert_array_equal(np.rint(x[:, 0] * 255), in_root[0])


def test_search_finds_home_cache(tmp_path):
    data = write_dataset(tmp_path / "home" / ".cache" / "dl2" / "fashion-mnist", seed=4)
    (x, _), _ = load_fashion_mnist()
    np.testing.assert_array_equal(np.rint(x[:, 0] * 255), data[0])


def test_missing_files_error_lists_directories(tmp_path, monkeypatch):
    monkeypatch.setenv("DL2_DATA", str(tmp_path / "store"))
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path / "mine")
    message = str(info.value)
    for d in (tmp_path / "mine", tmp_path / "store" / "mnist", tmp_path / "store",
              tmp_path / "home" / ".cache" / "dl2" / "mnist"):
        assert str(d) in message
    assert "train-images-idx3-ubyte" in message and "DL2_DATA" in message


def test_missing_fashion_mnist_error_has_apt_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(idx_module._SYSTEM_DIRS, "fashion-mnist", [str(tmp_path / "no-system-copy")])
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_fashion_mnist()
    assert str(tmp_path / "no-system-copy") in str(info.value)


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian_package():
    (x, t), (x2, t2) = load_fashion_mnist()
    assert x.shape == (60000, 1, 28, 28) and x2.shape == (10000, 1, 28, 28)
    assert x.dtype == np.float32 and t.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(np.bincount(t, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(t2, minlength=10), [1000] * 10)
    assert load_dataset("fashion_mnist", flatten=True)[1][0].shape == (10000, 784)


# --------------------------------------------------------------------- digits
def test_digits_shapes_and_range():
    (x, t), (x2, t2) = load_digits()
    assert len(x) + len(x2) == 1797
    assert x.shape[1:] == (1, 8, 8) and x2.shape[1:] == (1, 8, 8) and x.dtype == np.float32
    assert t.dtype == np.int64 and set(np.unique(t)) == set(range(10))
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x * 16, np.rint(x * 16))  # counts 0..16 scaled by 1/16


def test_digits_split_is_stratified_and_partitions_the_data():
    (x, t), (x2, t2) = load_digits(test_size=0.2, seed=3)
    train_counts = np.bincount(t, minlength=10)
    test_counts = np.bincount(t2, minlength=10)
    totals = train_counts + test_counts
    assert totals.sum() == 1797 and totals.min() >= 170  # about 180 of each class
    assert np.all(np.abs(test_counts - 0.2 * totals) <= 0.5)
    (xa, ta), (xe, _) = load_digits(test_size=0.0)
    assert len(xe) == 0 and len(xa) == 1797

    def rows(images, labels):
        return sorted(im.tobytes() + bytes([lab]) for im, lab in zip(images, labels))

    assert rows(np.concatenate([x, x2]), np.concatenate([t, t2])) == rows(xa, ta)


def test_digits_seeding_and_options():
    a = load_digits(seed=5)
    b = load_digits(seed=5)
    c = load_digits(seed=6)
    np.testing.assert_array_equal(a[0][0], b[0][0])
    assert not np.array_equal(a[0][1], c[0][1])
    (x, t), _ = load_digits(flatten=True, one_hot=True)
    assert x.shape[1:] == (64,) and t.shape[1:] == (10,) and t.dtype == np.float32
    with pytest.raises(ValueError):
        load_digits(test_size=1.0)


def test_digits_are_real_digits():
    """A nearest-class-mean classifier gets most of the held-out digits right."""
    (x, t), (x2, t2) = load_digits(flatten=True)
    means = np.stack([x[t == c].mean(0) for c in range(10)])
    pred = np.argmin(((x2[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(pred == t2) > 0.85


def test_load_dataset_dispatch(tmp_path):
    (x, _), _ = load_dataset("digits", seed=1)
    np.testing.assert_array_equal(x, load_digits(seed=1)[0][0])
    write_dataset(tmp_path)
    assert load_dataset("MNIST", path=tmp_path)[0][0].shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar10")


def test_one_hot():
    np.testing.assert_array_equal(one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError):
        one_hot([3], 3)


# --------------------------------------------------------------------- DataLoader
def test_loader_covers_every_sample_once_per_epoch_and_reshuffles():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    t = np.arange(10) * 2
    loader = DataLoader(x, t, batch_size=3, seed=0)
    assert len(loader) == 4
    orders = []
    for _ in range(3):
        batches = list(loader)
        assert [len(xb) for xb, _ in batches] == [3, 3, 3, 1]
        for xb, tb in batches:
            np.testing.assert_array_equal(tb, xb[:, 0] * 2)  # samples stay paired with their targets
        order = np.concatenate([xb[:, 0] for xb, _ in batches])
        assert sorted(order) == list(range(10))
        orders.append(order)
    assert not (np.array_equal(orders[0], orders[1]) and np.array_equal(orders[1], orders[2]))
    again = np.concatenate([xb[:, 0] for xb, _ in DataLoader(x, t, batch_size=3, seed=0)])
    np.testing.assert_array_equal(again, orders[0])


def test_loader_no_shuffle_and_drop_last():
    x = np.arange(7)
    loader = DataLoader(x, x, batch_size=3, shuffle=False, drop_last=True)
    assert len(loader) == 2
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in loader]), np.arange(6))
    assert len(DataLoader(x, x, batch_size=7)) == 1 and len(DataLoader(x, x, batch_size=100)) == 1


def test_loader_batches_are_copies_and_transform_applies():
    x = np.zeros((4, 1, 2, 2), np.float32)
    loader = DataLoader(x, np.zeros(4), batch_size=2, shuffle=False, transform=lambda b: b + 1)
    for xb, _ in loader:
        np.testing.assert_array_equal(xb, 1.0)
        xb[...] = 5
    for xb, _ in DataLoader(x, np.zeros(4), batch_size=2, shuffle=False):
        xb[...] = 5
    assert not x.any()


@pytest.mark.parametrize("args,message", [
    ((np.zeros((0, 2)), np.zeros(0), 2), "empty"),
    ((np.zeros((3, 2)), np.zeros(4), 2), "3 samples"),
    ((np.zeros((3, 2)), np.zeros(3), 0), "batch_size"),
    ((np.zeros((3, 2)), np.zeros(3), -1), "batch_size"),
    ((np.zeros((3, 2)), np.zeros(3), 1.5), "batch_size"),
])
def test_loader_errors(args, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(*args)


# --------------------------------------------------------------------- augmentation
@pytest.fixture
def batch():
    return np.random.default_rng(0).random((6, 2, 5, 7)).astype(np.float32)


def test_flip(batch):
    original = batch.copy()
    flip = RandomHorizontalFlip(p=1.0, seed=0)
    once = flip(batch)
    np.testing.assert_array_equal(once, batch[..., ::-1])
    np.testing.assert_array_equal(flip(once), batch)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(batch), batch)
    half = RandomHorizontalFlip(p=0.5, seed=1)(np.repeat(batch[:1], 200, axis=0))
    flipped = np.all(half == batch[:1, ..., ::-1], axis=(1, 2, 3))
    assert np.all(flipped | np.all(half == batch[:1], axis=(1, 2, 3)))
    assert 60 < flipped.sum() < 140
    np.testing.assert_array_equal(batch, original)


def test_crop_with_zero_padding_is_identity(batch):
    out = RandomCrop(padding=0, seed=0)(batch)
    np.testing.assert_array_equal(out, batch)
    assert out is not batch


def test_padded_crop_is_a_shift_within_the_padding(batch):
    original = batch.copy()
    out = RandomCrop(padding=2, seed=0)(batch)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    for n in range(len(batch)):
        shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                  if np.array_equal(out[n], translate(batch[n:n + 1], dy, dx)[0])]
        assert len(shifts) == 1
    np.testing.assert_array_equal(batch, original)


def test_crop_to_smaller_size_takes_a_window(batch):
    out = RandomCrop(size=(3, 4), seed=0)(batch)
    assert out.shape == (6, 2, 3, 4)
    for n in range(len(batch)):
        assert any(np.array_equal(out[n], batch[n, :, i:i + 3, j:j + 4]) for i in range(3) for j in range(4))
    with pytest.raises(ValueError, match="fit"):
        RandomCrop(size=9)(batch)


def test_translate_moves_a_bright_pixel():
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[0, 0, 3, 4] = 1.0
    for dy, dx in [(0, 0), (2, 1), (-3, 0), (1, -4), (4, 3)]:
        out = translate(x, dy, dx)
        assert out.sum() == 1.0 and out[0, 0, 3 + dy, 4 + dx] == 1.0
    assert translate(x, 0, 4).sum() == 0.0  # moved out of the frame
    per_sample = translate(np.repeat(x, 2, axis=0), np.array([1, -1]), np.array([0, 2]))
    assert per_sample[0, 0, 4, 4] == 1.0 and per_sample[1, 0, 2, 6] == 1.0


def test_random_translate_moves_a_bright_pixel_within_max_shift():
    x = np.zeros((300, 1, 9, 9), np.float32)
    x[:, 0, 4, 4] = 1.0
    out = RandomTranslate(max_shift=2, seed=0)(x)
    assert out.shape == x.shape and out.sum() == 300
    offsets = set()
    for n in range(300):
        (r,), (c,) = np.nonzero(out[n, 0])
        assert abs(r - 4) <= 2 and abs(c - 4) <= 2
        offsets.add((r - 4, c - 4))
    assert len(offsets) == 25  # every shift in [-2, 2]^2 occurs
    assert x[:, 0, 4, 4].all() and x.sum() == 300


def test_normalize(batch):
    out = Normalize(mean=[0.5, 0.25], std=[0.5, 2.0])(batch)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], (batch[:, 0] - 0.5) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(out[:, 1], (batch[:, 1] - 0.25) / 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        Normalize([0.0, 0.0, 0.0], 1.0)(batch)
    with pytest.raises(ValueError, match="positive"):
        Normalize(0.0, 0.0)


def test_compose_and_seeding(batch):
    tf = Compose([RandomCrop(padding=1, seed=3), RandomHorizontalFlip(seed=4), Normalize(0.5, 0.5)])
    out = tf(batch)
    manual = Normalize(0.5, 0.5)(RandomHorizontalFlip(seed=4)(RandomCrop(padding=1, seed=3)(batch)))
    np.testing.assert_array_equal(out, manual)
    assert Compose([])(batch) is not batch
    with pytest.raises(ValueError, match="N, C, H, W"):
        tf(batch[0])


def erased_boxes(before, after):
    """Per sample: the bounding box (top, left, h, w) of the changed pixels (all channels), or None."""
    boxes = []
    for changed in np.any(before != after, axis=1):
        rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
        boxes.append(None if not len(rows) else (rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))
    return boxes


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_random_erasing_erases_one_rectangle_of_the_asked_size(dtype):
    h, w = 28, 20
    x = (1 + np.random.default_rng(0).random((200, 3, h, w)) * 100).astype(dtype)   # no pixel is 0
    original = x.copy()
    out = RandomErasing(p=1.0, scale=(0.05, 0.3), seed=0)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(x, original)
    for (top, left, eh, ew), before, after in zip(erased_boxes(x, out), x, out):
        box = after[:, top:top + eh, left:left + ew]
        assert not box.any()                                        # the whole rectangle, every channel
        rest = np.ones((h, w), bool)
        rest[top:top + eh, left:left + ew] = False
        np.testing.assert_array_equal(after[:, rest], before[:, rest])
        # the area is the drawn fraction up to rounding the height and the width to whole pixels
        slack = (eh + ew) / 2 + 0.25
        assert 0.05 * h * w - slack <= eh * ew <= 0.3 * h * w + slack
        assert 0.3 / 1.5 <= eh / ew <= 3.3 * 1.5


def test_random_erasing_probability_value_and_seed():
    x = 1 + np.random.default_rng(1).random((400, 1, 16, 16)).astype(np.float32)
    np.testing.assert_array_equal(RandomErasing(p=0.0, seed=0)(x), x)
    assert RandomErasing(p=0.0)(x) is not x
    half = erased_boxes(x, RandomErasing(p=0.5, seed=0)(x))
    assert 150 < sum(b is not None for b in half) < 250
    a, b = RandomErasing(value="random", seed=3)(x), RandomErasing(value="random", seed=3)(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, RandomErasing(value="random", seed=4)(x))
    changed = a != x
    assert changed.any() and a[changed].min() >= x.min() and a[changed].max() <= x.max()
    c = RandomErasing(p=1.0, value=0.5, seed=0)(x)
    assert all(b is not None for b in erased_boxes(x, c))            # p=1: every sample changed
    np.testing.assert_array_equal(c[c != x], 0.5)


def test_random_erasing_fits_when_no_ratio_of_the_range_does():
    x = np.ones((50, 1, 4, 40), np.float32)              # a wide image, a tall ratio range
    for (top, left, eh, ew) in erased_boxes(x, RandomErasing(p=1.0, ratio=(2, 3), seed=0)(x)):
        assert eh <= 4 and ew <= 40


@pytest.mark.parametrize("kwargs,message", [
    ({"p": 1.5}, "p must"), ({"scale": (0.5, 0.1)}, "scale"), ({"scale": (0, 0.1)}, "scale"),
    ({"ratio": (-1, 2)}, "ratio"), ({"value": "noise"}, "value"), ({"value": float("nan")}, "value"),
])
def test_random_erasing_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomErasing(**kwargs)


def test_download_verifies_sha256(tmp_path, monkeypatch):
    """download=True with a local file:// mirror (no network): good files load, a bad checksum is refused."""
    mirror = tmp_path / "mirror"
    data = write_dataset(mirror, gz=(True,) * 4)
    digests = {stem: hashlib.sha256(gzip.decompress((mirror / (stem + ".gz")).read_bytes())).hexdigest()
               for stem in STEMS}
    monkeypatch.setitem(idx_module._SOURCES, "mnist", {"url": mirror.as_uri() + "/", "sha256": digests})
    (x, _), _ = load_mnist(download=True)
    np.testing.assert_array_equal(np.rint(x[:, 0] * 255), data[0])
    assert sorted(os.listdir(tmp_path / "home" / ".cache" / "dl2" / "mnist")) == sorted(s + ".gz" for s in STEMS)

    shutil.rmtree(tmp_path / "home" / ".cache")
    bad = dict(digests, **{STEMS[2]: "0" * 64})
    monkeypatch.setitem(idx_module._SOURCES, "mnist", {"url": mirror.as_uri() + "/", "sha256": bad})
    with pytest.raises(ValueError, match="SHA-256"):
        load_mnist(tmp_path / "fresh", download=True)
    assert sorted(os.listdir(tmp_path / "fresh")) == sorted(s + ".gz" for s in STEMS[:2])
