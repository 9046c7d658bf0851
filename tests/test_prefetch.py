"""Tests of DataLoader(prefetch=N): same batches as without prefetching, bounded, stops cleanly, re-raises."""
import threading
import time
import traceback

import numpy as np
import pytest

from dl2.data import DataLoader
from dl2.data.augment import Compose, RandomCrop, RandomHorizontalFlip


def workers():
    return [th for th in threading.enumerate() if th.name == "dl2-prefetch"]


def no_workers_left():
    for _ in range(100):            # a finished thread can take a moment to leave threading.enumerate()
        if not workers():
            return True
        time.sleep(0.01)
    return False


def images(n=23):
    return np.random.default_rng(0).random((n, 1, 6, 6)).astype(np.float32), np.arange(n)


def augmentation(seed):
    return Compose([RandomHorizontalFlip(seed=seed), RandomCrop(padding=1, seed=seed + 1)])


@pytest.mark.parametrize("prefetch", [1, 3])
def test_prefetch_gives_the_same_batches_in_the_same_order(prefetch):
    x, t = images()
    plain = DataLoader(x, t, 4, seed=5, transform=augmentation(0))
    ahead = DataLoader(x, t, 4, seed=5, transform=augmentation(0), prefetch=prefetch)
    for _ in range(3):              # several epochs: new permutations, the transforms' generators move on
        a, b = list(plain), list(ahead)
        assert len(a) == len(b) == 6
        for (xa, ta), (xb, tb) in zip(a, b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ta, tb)
    assert plain.rng.bit_generator.state == ahead.rng.bit_generator.state
    assert no_workers_left()


def test_shuffling_state_between_epochs_is_untouched_by_the_worker():
    x, t = images()
    loader = DataLoader(x, t, 4, seed=1, prefetch=2)
    list(loader)
    state = loader.rng.bit_generator.state
    reference = DataLoader(x, t, 4, seed=1)
    list(reference)
    assert state == reference.rng.bit_generator.state    # exactly one permutation drawn per epoch


def test_queue_is_bounded():
    x, t = images(40)
    calls = []
    loader = DataLoader(x, t, 2, shuffle=False, transform=lambda b: calls.append(1) or b, prefetch=2)
    it = iter(loader)
    next(it)
    time.sleep(0.3)                 # give the worker time to run ahead as far as it may
    # one batch consumed, two waiting in the queue, at most one more computed and waiting to be put
    assert 3 <= len(calls) <= 4
    it.close()
    assert no_workers_left()


def test_worker_stops_when_the_consumer_breaks_or_raises():
    x, t = images(40)
    loader = DataLoader(x, t, 2, prefetch=2)
    for b, _ in enumerate(loader):
        if b == 2:
            break
    assert no_workers_left()
    with pytest.raises(ZeroDivisionError):
        for _ in loader:
            1 / 0
    assert no_workers_left()
    with pytest.raises(KeyboardInterrupt):
        for _ in loader:
            raise KeyboardInterrupt
    assert no_workers_left()


def test_transform_error_is_reraised_in_the_consumer_with_its_traceback():
    x, t = images(12)

    def broken(xb):
        if broken.calls == 1:
            raise ValueError("bad batch")
        broken.calls += 1
        return xb
    broken.calls = 0
    loader = DataLoader(x, t, 4, transform=broken, prefetch=1)
    got = []
    with pytest.raises(ValueError, match="bad batch") as info:
        for xb, _ in loader:
            got.append(xb)
    assert len(got) == 1            # the first batch arrived, the second raised
    assert "broken" in "".join(traceback.format_tb(info.value.__traceback__))
    assert no_workers_left()


@pytest.mark.parametrize("prefetch", [-1, 1.5, True, "2"])
def test_bad_prefetch(prefetch):
    with pytest.raises(ValueError, match="prefetch"):
        DataLoader(np.zeros((3, 2)), np.zeros(3), 2, prefetch=prefetch)
