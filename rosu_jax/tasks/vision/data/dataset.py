"""In-memory image dataset container shared by every loader."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _check_images(name: str, x: np.ndarray) -> None:
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0..255), got dtype {x.dtype}; convert with .astype(np.uint8)")
    if x.ndim != 4:
        raise ValueError(f"{name} must be NHWC (4-D), got shape {x.shape}; add a channel axis for grayscale")


def _as_labels(name: str, y: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must hold integer labels, got dtype {y.dtype}")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} labels but there are {n} images")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"{name} has labels in {y.min()}..{y.max()}, outside 0..{num_classes - 1} ({num_classes} class names given)"
        )
    return y.astype(np.int32, copy=False)


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """Train/test (and optional validation) images: uint8 NHWC arrays with int32 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def __post_init__(self) -> None:
        names = tuple(str(c) for c in self.class_names)
        if not names:
            raise ValueError(f"dataset {self.name!r} needs at least one class name")
        if len(set(names)) != len(names):
            raise ValueError(f"dataset {self.name!r} has duplicate class names")
        object.__setattr__(self, "class_names", names)
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError("x_val and y_val must be given together (or both left as None)")
        parts = [("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)]
        if self.x_val is not None:
            parts.append(("val", self.x_val, self.y_val))
        for split, x, y in parts:
            _check_images(f"x_{split}", x)
            if x.shape[1:] != self.x_train.shape[1:]:
                raise ValueError(
                    f"x_{split} images have shape {x.shape[1:]} but x_train images have {self.x_train.shape[1:]}"
                )
            object.__setattr__(self, f"y_{split}", _as_labels(f"y_{split}", y, x.shape[0], len(names)))
        if self.x_train.shape[0] == 0:
            raise ValueError(f"dataset {self.name!r} has an empty training set")

    @property
    def num_classes(self) -> int:
        """Number of classes (length of class_names)."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one image."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @functools.cached_property
    def fingerprint(self) -> str:
        """A hash of the contents (every image and label of every split, and the class names): results computed
        from this dataset are keyed by it, so replacing images under the same folder name never reuses them."""
        return array_fingerprint(
            [self.x_train, self.y_train, self.x_test, self.y_test, self.x_val, self.y_val], extra=self.class_names
        )

    def __repr__(self) -> str:
        val = 0 if self.x_val is None else self.x_val.shape[0]
        return (
            f"ImageDataset({self.name!r}, train={self.x_train.shape[0]}, val={val}, "
            f"test={self.x_test.shape[0]}, "
            f"image_shape={self.image_shape}, num_classes={self.num_classes})"
        )


def array_fingerprint(arrays: Sequence[np.ndarray | None], extra: object = ()) -> str:
    """SHA-256 (first 16 hex digits) of the arrays' dtypes, shapes and bytes, plus ``repr(extra)``."""
    h = hashlib.sha256(repr(extra).encode())
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:16]


def per_class_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (keep, held_out), holding out round(fraction * n_c) of each class c; seeded."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(round(fraction * idx.size))
        held.append(rng.permutation(idx)[:k])
    held_idx = np.sort(np.concatenate(held)).astype(np.int64) if held else np.zeros(0, np.int64)
    keep = np.ones(labels.shape[0], dtype=bool)
    keep[held_idx] = False
    return np.flatnonzero(keep).astype(np.int64), held_idx


def with_validation(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    class_names: Sequence[str],
    val_fraction: float,
    seed: int,
) -> ImageDataset:
    """Build an ImageDataset, holding out val_fraction of each training class as validation (seeded)."""
    if val_fraction == 0:
        return ImageDataset(name, x_train, y_train, x_test, y_test, tuple(class_names))
    keep, held = per_class_holdout(y_train, val_fraction, seed)
    return ImageDataset(
        name,
        x_train[keep],
        y_train[keep],
        x_test,
        y_test,
        tuple(class_names),
        x_val=x_train[held],
        y_val=y_train[held],
    )


def subsample_per_class(dataset: ImageDataset, per_class: int, seed: int = 0) -> ImageDataset:
    """Keep at most ``per_class`` training images of each class (seeded); test and validation sets unchanged.

    For CPU-sized runs on large datasets; it is a deviation from the protocol's full training sets, so say so
    next to any figure it produced.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}.")
    rng = np.random.default_rng(seed)
    keep = [
        np.sort(rng.permutation(np.flatnonzero(dataset.y_train == c))[:per_class]) for c in range(dataset.num_classes)
    ]
    idx = np.sort(np.concatenate(keep))
    return dataclasses.replace(
        dataset, name=f"{dataset.name}-{per_class}pc", x_train=dataset.x_train[idx], y_train=dataset.y_train[idx]
    )
