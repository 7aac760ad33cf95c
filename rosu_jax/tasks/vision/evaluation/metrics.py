"""The four protocol metrics (UA, RA, TA, MIA, all in percent) and the Avg.Gap to Retrain."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rosu_jax.tasks.vision.evaluation.mia import mia_efficacy
from rosu_jax.tasks.vision.evaluation.predict import accuracy, true_label_confidence

METRIC_KEYS = ("UA", "RA", "TA", "MIA")

METRIC_DIRECTIONS: dict[str, str] = {
    "UA": "unlearning accuracy = 100 - forget accuracy; higher = more forgetting; best = closest to Retrain",
    "RA": "retain accuracy; higher = more utility; best = closest to Retrain",
    "TA": "test accuracy; higher = more utility; best = closest to Retrain",
    "MIA": "MIA-efficacy (forget examples predicted non-member); higher = more forgetting; "
    "best = closest to Retrain (~100 class-wise, ~13 for 10% random on CIFAR-10)",
    "Avg.Gap": "mean |method - Retrain| over UA, RA, TA, MIA; lower is better",
}


@dataclasses.dataclass(frozen=True)
class UnlearningMetrics:
    """UA, RA, TA and MIA, all in percent."""

    UA: float
    RA: float
    TA: float
    MIA: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def compute_metrics(
    forget_logits: np.ndarray,
    forget_labels: np.ndarray,
    retain_logits: np.ndarray,
    retain_labels: np.ndarray,
    test_logits: np.ndarray,
    test_labels: np.ndarray,
) -> dict[str, float]:
    """``{"UA", "RA", "TA", "MIA"}`` in percent from eval-mode logits of the three splits."""
    mia = mia_efficacy(
        true_label_confidence(retain_logits, retain_labels),
        true_label_confidence(test_logits, test_labels),
        true_label_confidence(forget_logits, forget_labels),
    )
    return UnlearningMetrics(
        UA=100.0 - accuracy(forget_logits, forget_labels),
        RA=accuracy(retain_logits, retain_labels),
        TA=accuracy(test_logits, test_labels),
        MIA=mia,
    ).as_dict()


def _as_mapping(row: Any) -> Mapping[str, float]:
    return row.as_dict() if isinstance(row, UnlearningMetrics) else row


def avg_gap(row: Any, retrain_row: Any, keys: Sequence[str] = METRIC_KEYS) -> float:
    """Mean absolute difference to Retrain over ``keys`` (rows are dicts or ``UnlearningMetrics``)."""
    if not keys:
        raise ValueError("avg_gap needs at least one key")
    a, b = _as_mapping(row), _as_mapping(retrain_row)
    return float(np.mean([abs(float(a[k]) - float(b[k])) for k in keys]))
