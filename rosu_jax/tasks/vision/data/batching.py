"""Host-side, seeded, deterministic batching with optional crop+flip augmentation (numpy only)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from rosu_jax.tasks.batching import FORGET_STREAM, RETAIN_STREAM, cycle_index_batches, index_batches

_AUG = 1  # seed-sequence word of the augmentation randomness (the order uses tasks.batching.PERMUTATION)


def dataset_stats(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std) of uint8 NHWC images, in [0, 1] units, as float32 arrays of shape (C,)."""
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"expected non-empty NHWC images, got shape {x.shape}")
    total = np.zeros(x.shape[-1], np.float64)
    total_sq = np.zeros(x.shape[-1], np.float64)
    for i in range(0, x.shape[0], chunk):
        block = x[i : i + chunk].reshape(-1, x.shape[-1]).astype(np.float64) / 255.0
        total += block.sum(0)
        total_sq += np.square(block).sum(0)
    count = x.size // x.shape[-1]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


def normalize_images(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 ((x / 255) - mean) / std, per channel (mean/std in [0, 1] units)."""
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    if np.any(std <= 0):
        raise ValueError(f"std must be positive per channel, got {std}; a constant channel cannot be standardised")
    return ((x.astype(np.float32) * np.float32(1 / 255)) - mean) / std


def default_pad(height: int) -> int:
    """Crop padding: 4 pixels for 32x32 and larger, max(1, H // 8) for smaller images (1 for 8x8 digits)."""
    return min(4, max(1, height // 8))


def augment_batch(x: np.ndarray, rng: np.random.Generator, pad: int | None = None) -> np.ndarray:
    """Random crop with zero padding plus random horizontal flip of uint8 NHWC images."""
    b, h, w, _ = x.shape
    p = default_pad(h) if pad is None else pad
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    oy = rng.integers(0, 2 * p + 1, size=b)
    ox = rng.integers(0, 2 * p + 1, size=b)
    flip = rng.random(b) < 0.5
    rows = oy[:, None] + np.arange(h)[None, :]
    cols = ox[:, None] + np.arange(w)[None, :]
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _check(x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
    if x.ndim != 4 or x.dtype != np.uint8:
        raise ValueError(f"images must be uint8 NHWC, got shape {x.shape} dtype {x.dtype}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels shape {y.shape} does not match {x.shape[0]} images")
    if x.shape[0] == 0:
        raise ValueError("cannot batch an empty set of images")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _stats(x: np.ndarray, mean, std) -> tuple[np.ndarray, np.ndarray]:
    if (mean is None) != (std is None):
        raise ValueError("pass mean and std together")
    return dataset_stats(x) if mean is None else (mean, std)


def _make_batch(x, y, idx, mean, std, aug_rng, pad) -> dict[str, np.ndarray]:
    images = x[idx]
    if aug_rng is not None:
        images = augment_batch(images, aug_rng, pad)
    return {"image": normalize_images(images, mean, std), "label": y[idx].astype(np.int32)}


def iterate_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epoch: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
    augment: bool = False,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
    pad: int | None = None,
    stream: int = RETAIN_STREAM,
) -> Iterator[dict[str, np.ndarray]]:
    """One epoch of {'image': float32 NHWC normalised, 'label': int32} batches.

    Order and augmentation are a pure function of (seed, stream, epoch). Pass the training-set
    ``dataset_stats`` as mean/std so every stream shares one normalisation; if omitted they are
    computed from ``x``. ``augment`` (training only) = zero-padded random crop + horizontal flip.
    """
    _check(x, y, batch_size)
    mean, std = _stats(x, mean, std)
    aug_rng = np.random.default_rng([seed, stream, epoch, _AUG]) if augment else None
    for idx in index_batches(
        x.shape[0], batch_size, seed=seed, epoch=epoch, stream=stream, shuffle=shuffle, drop_last=drop_last
    ):
        yield _make_batch(x, y, idx, mean, std, aug_rng, pad)


def cycle_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    shuffle: bool = True,
    augment: bool = False,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
    pad: int | None = None,
    stream: int = FORGET_STREAM,
) -> Iterator[dict[str, np.ndarray]]:
    """Infinite stream of full batches (wrapping across passes), reshuffled each pass; seeded.

    Used for the forget set; its default ``stream`` differs from iterate_batches', so the forget and
    retain streams are independent even with the same seed. Works when the set is smaller than a batch.
    """
    _check(x, y, batch_size)
    mean, std = _stats(x, mean, std)
    aug_rng = np.random.default_rng([seed, stream, _AUG]) if augment else None
    for idx in cycle_index_batches(x.shape[0], batch_size, seed=seed, stream=stream, shuffle=shuffle):
        yield _make_batch(x, y, idx, mean, std, aug_rng, pad)
