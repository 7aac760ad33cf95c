"""Seeded, deterministic orders of examples for every task: one epoch of index batches, and an endless cycle.

The order of epoch ``e`` of stream ``s`` is a pure function of ``(seed, s, e)``, so a resumed run sees the same
batches, and the forget and retain streams are independent even with the same seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

RETAIN_STREAM = 0
FORGET_STREAM = 1
PERMUTATION = 0  # the last word of the seed sequence of an order (tasks may draw other randomness with others)


def epoch_order(n: int, *, seed: int, stream: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order of the ``n`` examples in one epoch."""
    return np.random.default_rng([seed, stream, epoch, PERMUTATION]).permutation(n) if shuffle else np.arange(n)


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches ``index_batches`` yields for ``n`` examples."""
    return n // batch_size if drop_last else -(-n // batch_size)


def index_batches(
    n: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int = 0,
    stream: int = RETAIN_STREAM,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[np.ndarray]:
    """The index batches of one epoch (the last one partial unless ``drop_last``)."""
    order = epoch_order(n, seed=seed, stream=stream, epoch=epoch, shuffle=shuffle)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def cycle_index_batches(
    n: int, batch_size: int, *, seed: int, stream: int = FORGET_STREAM, shuffle: bool = True
) -> Iterator[np.ndarray]:
    """Full index batches forever, wrapping across passes (each pass reshuffled); works for ``n < batch_size``."""
    pending = np.zeros(0, np.int64)
    epoch = 0
    while True:
        while pending.size < batch_size:
            pending = np.concatenate([pending, epoch_order(n, seed=seed, stream=stream, epoch=epoch, shuffle=shuffle)])
            epoch += 1
        batch, pending = pending[:batch_size], pending[batch_size:]
        yield batch
