"""scikit-learn's bundled 8x8 digits: the offline default dataset."""

from __future__ import annotations

import numpy as np

from rosu_jax.tasks.vision.data.dataset import ImageDataset


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> ImageDataset:
    """Load the 1,797 8x8 digits as uint8 (N, 8, 8, 1) with a seeded stratified train/test split."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = _sk_load_digits()
    x = np.clip(np.asarray(bunch.images) * 16.0, 0, 255).astype(np.uint8)[..., None]
    y = np.asarray(bunch.target).astype(np.int32)
    idx = np.arange(y.shape[0])
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    names = tuple(str(c) for c in range(10))
    return ImageDataset("digits", x[train_idx], y[train_idx], x[test_idx], y[test_idx], names)
