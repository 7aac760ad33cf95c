"""Seeded host-side batching, normalisation and crop+flip augmentation."""

import itertools

import numpy as np
import pytest

from rosu_jax.tasks.vision.data import (
    augment_batch,
    cycle_batches,
    dataset_stats,
    iterate_batches,
    normalize_images,
    num_batches,
)
from rosu_jax.tasks.vision.data.batching import default_pad


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    return x, np.arange(50, dtype=np.int32)


def test_dataset_stats_and_normalize(data):
    x, _ = data
    mean, std = dataset_stats(x, chunk=7)
    ref = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, ref.mean((0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(std, ref.std((0, 1, 2)), rtol=1e-5)
    z = normalize_images(x, mean, std)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose(z.mean((0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(z.std((0, 1, 2)), 1, atol=1e-3)
    with pytest.raises(ValueError, match="std must be positive"):
        normalize_images(x, mean, np.zeros(3))


def test_iterate_covers_epoch_and_is_deterministic(data):
    x, y = data
    mean, std = dataset_stats(x)
    batches = list(iterate_batches(x, y, 16, seed=0, mean=mean, std=std))
    assert [b["label"].shape[0] for b in batches] == [16, 16, 16, 2]
    assert len(batches) == num_batches(50, 16)
    labels = np.concatenate([b["label"] for b in batches])
    assert labels.dtype == np.int32 and sorted(labels) == list(range(50))
    assert not np.array_equal(labels, np.arange(50))
    b0 = batches[0]
    assert b0["image"].dtype == np.float32 and b0["image"].shape == (16, 8, 8, 3)
    np.testing.assert_array_equal(b0["image"], normalize_images(x[b0["label"]], mean, std))
    again = np.concatenate([b["label"] for b in iterate_batches(x, y, 16, seed=0)])
    assert np.array_equal(labels, again)
    other_epoch = np.concatenate([b["label"] for b in iterate_batches(x, y, 16, seed=0, epoch=1)])
    assert not np.array_equal(labels, other_epoch)
    other_seed = np.concatenate([b["label"] for b in iterate_batches(x, y, 16, seed=1)])
    assert not np.array_equal(labels, other_seed)


def test_iterate_drop_last_and_no_shuffle(data):
    x, y = data
    batches = list(iterate_batches(x, y, 16, seed=0, drop_last=True, shuffle=False))
    assert len(batches) == 3 == num_batches(50, 16, drop_last=True)
    assert np.array_equal(np.concatenate([b["label"] for b in batches]), np.arange(48))
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_batches(x, y, 0, seed=0))


def test_default_pad():
    assert (default_pad(8), default_pad(16), default_pad(32), default_pad(64)) == (1, 2, 4, 4)


def test_augment_is_a_padded_crop_or_its_flip():
    x = np.random.default_rng(1).integers(1, 256, (20, 8, 8, 3), dtype=np.uint8)
    out = augment_batch(x, np.random.default_rng(0), pad=2)
    assert out.shape == x.shape and out.dtype == np.uint8
    flips = 0
    for img, aug in zip(x, out, strict=True):
        padded = np.pad(img, ((2, 2), (2, 2), (0, 0)))
        windows = [padded[i : i + 8, j : j + 8] for i, j in itertools.product(range(5), range(5))]
        plain = any(np.array_equal(aug, w) for w in windows)
        flipped = any(np.array_equal(aug, w[:, ::-1]) for w in windows)
        assert plain or flipped
        flips += flipped and not plain
    assert 0 < flips < 20


def test_augmented_batches_are_seeded(data):
    x, y = data
    a = next(iterate_batches(x, y, 16, seed=5, augment=True))
    b = next(iterate_batches(x, y, 16, seed=5, augment=True))
    plain = next(iterate_batches(x, y, 16, seed=5))
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["label"], plain["label"])
    assert not np.array_equal(a["image"], plain["image"])


def test_cycle_batches_passes_and_independence(data):
    x, y = data
    stream = cycle_batches(x[:10], y[:10], 5, seed=0)
    idx = np.concatenate([next(stream)["label"] for _ in range(8)])  # four passes of 10
    passes = idx.reshape(4, 10)
    assert all(sorted(p) == list(range(10)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1  # reshuffled each pass
    again = cycle_batches(x[:10], y[:10], 5, seed=0)
    assert np.array_equal(idx, np.concatenate([next(again)["label"] for _ in range(8)]))
    retain_first = next(iterate_batches(x[:10], y[:10], 10, seed=0))["label"]
    assert not np.array_equal(passes[0], retain_first)  # forget and retain streams differ for one seed


def test_cycle_batches_smaller_than_batch(data):
    x, y = data
    stream = cycle_batches(x[:3], y[:3], 8, seed=2, augment=True)
    batches = [next(stream) for _ in range(3)]
    assert all(b["image"].shape == (8, 8, 8, 3) and b["label"].shape == (8,) for b in batches)
    assert set(np.concatenate([b["label"] for b in batches])) == {0, 1, 2}
