"""Forget/retain/test index splits for class-wise and random forgetting (pure functions of their inputs)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rosu_jax.tasks.vision.data.dataset import ImageDataset

SCENARIOS = ("classwise", "random")


def _index_array(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1 or not (a.size == 0 or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D integer index array, got shape {a.shape} dtype {a.dtype}")
    a = a.astype(np.int64, copy=False)
    if a.size > 1 and np.any(np.diff(a) <= 0):
        raise ValueError(f"{name} must be sorted and free of duplicates")
    return a


@dataclass(frozen=True, eq=False)
class ForgetSplit:
    """Index arrays (sorted int64) for one unlearning scenario.

    forget_idx / retain_idx index the training set; test_idx indexes the test set (forgotten classes are
    excluded for class-wise forgetting). ``fraction`` and ``seed`` are None for class-wise splits.
    """

    forget_idx: np.ndarray
    retain_idx: np.ndarray
    test_idx: np.ndarray
    scenario: str
    forget_classes: tuple[int, ...] = ()
    fraction: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        for field in ("forget_idx", "retain_idx", "test_idx"):
            object.__setattr__(self, field, _index_array(field, getattr(self, field)))
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; use one of {', '.join(SCENARIOS)}")
        if np.intersect1d(self.forget_idx, self.retain_idx).size:
            raise ValueError("forget_idx and retain_idx overlap")

    @property
    def num_forget(self) -> int:
        """Size of the forget set."""
        return int(self.forget_idx.size)

    @property
    def num_retain(self) -> int:
        """Size of the retain set."""
        return int(self.retain_idx.size)

    def subsets(self, dataset: ImageDataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{'forget', 'retain', 'test'} -> (images, labels) taken from ``dataset``."""
        return {
            "forget": (dataset.x_train[self.forget_idx], dataset.y_train[self.forget_idx]),
            "retain": (dataset.x_train[self.retain_idx], dataset.y_train[self.retain_idx]),
            "test": (dataset.x_test[self.test_idx], dataset.y_test[self.test_idx]),
        }

    def __repr__(self) -> str:
        return (
            f"ForgetSplit({self.scenario!r}, forget={self.num_forget}, retain={self.num_retain}, "
            f"test={self.test_idx.size}, forget_classes={self.forget_classes}, fraction={self.fraction}, "
            f"seed={self.seed})"
        )


def _as_classes(classes: int | Sequence[int], dataset: ImageDataset) -> tuple[int, ...]:
    items = [classes] if isinstance(classes, numbers.Integral) else list(classes)
    if not items:
        raise ValueError("classes is empty; pass a class index such as classes=0 or a list such as [0, 3]")
    out = []
    for c in items:
        if isinstance(c, bool) or not isinstance(c, numbers.Integral):
            raise ValueError(f"class {c!r} must be an integer class index in 0..{dataset.num_classes - 1}")
        if not 0 <= int(c) < dataset.num_classes:
            raise ValueError(
                f"class {c} is not in 0..{dataset.num_classes - 1} for {dataset.name}; pick a class index in that range"
            )
        out.append(int(c))
    return tuple(sorted(set(out)))


def classwise_split(dataset: ImageDataset, classes: int | Sequence[int] = 0) -> ForgetSplit:
    """Forget every training image of ``classes``; the test set excludes those classes."""
    forget_classes = _as_classes(classes, dataset)
    in_forget = np.isin(dataset.y_train, forget_classes)
    forget_idx = np.flatnonzero(in_forget)
    retain_idx = np.flatnonzero(~in_forget)
    if forget_idx.size == 0:
        raise ValueError(
            f"forget set is empty: {dataset.name} has no training images of "
            f"class(es) {list(forget_classes)}; "
            "pick a class that occurs in the training set"
        )
    if retain_idx.size == 0:
        raise ValueError(f"forgetting class(es) {list(forget_classes)} leaves no retain set; forget fewer classes")
    test_idx = np.flatnonzero(~np.isin(dataset.y_test, forget_classes))
    if test_idx.size == 0:
        raise ValueError(f"no test images remain after excluding class(es) {list(forget_classes)}")
    return ForgetSplit(forget_idx, retain_idx, test_idx, "classwise", forget_classes=forget_classes)


def random_split(dataset: ImageDataset, fraction: float = 0.1, seed: int = 0) -> ForgetSplit:
    """Forget round(fraction * n_train) training images drawn uniformly without replacement (seeded)."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}; e.g. fraction=0.1 forgets 10%")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    n = dataset.x_train.shape[0]
    k = int(round(float(fraction) * n))
    if k == 0:
        raise ValueError(
            f"fraction={fraction} of {n} training images rounds to an empty forget set; use fraction >= {1 / n:.3g}"
        )
    if k == n:
        raise ValueError(f"fraction={fraction} of {n} training images leaves no retain set; use a smaller fraction")
    rng = np.random.default_rng(int(seed))
    forget_idx = np.sort(rng.choice(n, size=k, replace=False))
    mask = np.ones(n, dtype=bool)
    mask[forget_idx] = False
    return ForgetSplit(
        forget_idx,
        np.flatnonzero(mask),
        np.arange(dataset.x_test.shape[0]),
        "random",
        fraction=float(fraction),
        seed=int(seed),
    )


def make_split(
    dataset: ImageDataset,
    scenario: str,
    *,
    forget_class: int | Sequence[int] = 0,
    fraction: float = 0.1,
    seed: int = 0,
) -> ForgetSplit:
    """Dispatch on scenario: 'classwise' uses forget_class, 'random' uses fraction and seed."""
    if scenario == "classwise":
        return classwise_split(dataset, forget_class)
    if scenario == "random":
        return random_split(dataset, fraction=fraction, seed=seed)
    raise ValueError(f"unknown scenario {scenario!r}; use one of {', '.join(SCENARIOS)}")
