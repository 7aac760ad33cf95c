"""Batched eval-mode prediction and simple per-example statistics (numpy on the host)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import numpy as np


@partial(jax.jit, static_argnames=("apply_fn",))
def _eval_forward(apply_fn: Callable[..., Any], params: Any, model_state: Any, images: jax.Array) -> jax.Array:
    return apply_fn(params, model_state, images, train=False)[0]


def _to_float(batch: np.ndarray, normalize: Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
    if normalize is not None:
        return np.asarray(normalize(batch), dtype=np.float32)
    if np.issubdtype(batch.dtype, np.integer):
        return batch.astype(np.float32) / np.float32(255.0)
    return batch.astype(np.float32, copy=False)


def predict_logits(
    apply_fn: Callable[..., Any],
    params: Any,
    model_state: Any,
    images: np.ndarray,
    *,
    batch_size: int = 512,
    normalize: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Eval-mode (``train=False``) logits for ``images`` (N, H, W, C) as a float32 numpy array (N, K).

    ``normalize`` (e.g. ``lambda x: normalize_images(x, mean, std)``) is applied per batch on the host.
    Without it, integer images are scaled to [0, 1] and float images are used as they are. Every batch
    has ``batch_size`` rows (the last one zero-padded, also when the whole set is smaller), so one shape is
    compiled per ``apply_fn`` and image shape, shared by every set and every model evaluated.
    """
    images = np.asarray(images)
    n = images.shape[0]
    if n == 0:
        raise ValueError("predict_logits got no images")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    bs = batch_size
    out = []
    for start in range(0, n, bs):
        batch = _to_float(images[start : start + bs], normalize)
        m = batch.shape[0]
        if m < bs:
            batch = np.concatenate([batch, np.zeros((bs - m, *batch.shape[1:]), batch.dtype)])
        logits = _eval_forward(apply_fn, params, model_state, batch)
        out.append(np.asarray(logits, dtype=np.float32)[:m])
    return np.concatenate(out)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent (0..100)."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"{logits.shape[0]} logits vs {labels.shape[0]} labels")
    if labels.shape[0] == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float(100.0 * np.mean(np.argmax(logits, axis=-1) == labels))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable float64 softmax over the last axis."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)


def true_label_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Softmax probability of the true label per example, float64 array of shape (N,)."""
    probs = softmax(logits)
    labels = np.asarray(labels).astype(np.int64)
    if probs.shape[0] != labels.shape[0]:
        raise ValueError(f"{probs.shape[0]} logits vs {labels.shape[0]} labels")
    return np.take_along_axis(probs, labels[:, None], axis=-1)[:, 0]
