"""Evaluation: batched prediction and the unlearning metrics (UA, RA, TA, MIA-efficacy, Avg.Gap)."""

from rosu_jax.tasks.vision.evaluation.metrics import (
    METRIC_DIRECTIONS,
    METRIC_KEYS,
    UnlearningMetrics,
    avg_gap,
    compute_metrics,
)
from rosu_jax.tasks.vision.evaluation.mia import mia_efficacy
from rosu_jax.tasks.vision.evaluation.predict import accuracy, predict_logits, softmax, true_label_confidence

__all__ = [
    "METRIC_DIRECTIONS",
    "METRIC_KEYS",
    "UnlearningMetrics",
    "accuracy",
    "avg_gap",
    "compute_metrics",
    "mia_efficacy",
    "predict_logits",
    "softmax",
    "true_label_confidence",
]
