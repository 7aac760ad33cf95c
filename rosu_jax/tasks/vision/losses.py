"""The loss terms of a classifier given as a pure ``apply_fn`` (the vision task's ``loss_terms``).

``apply_fn(params, model_state, images, *, train: bool) -> (logits, new_model_state)``: train mode uses batch
statistics and returns updated BatchNorm statistics, eval mode uses the running statistics.
Batches are dicts ``{"image": float array NHWC, "label": int32 array}``.

Project choice (documented, tested): forget objectives are evaluated with the **running** BatchNorm statistics
(``train=False``) and never update them. A class-wise forget batch holds one class; normalised by its own batch
statistics (train mode) its loss can grow without bound while test-time predictions on that class do not change
at all (measured on a toy BatchNorm classifier: train-mode forget loss 39, eval-mode forget accuracy still 100%).
Retain objectives use train mode and carry the BatchNorm statistics forward.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from rosu_jax.core.types import PyTree

ApplyFn = Callable[..., tuple[jax.Array, PyTree]]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy, computed in float32."""
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels).mean()


def kl_teacher_student(teacher_logits: jax.Array, student_logits: jax.Array, temperature: float = 1.0) -> jax.Array:
    """Mean KL(p_teacher ‖ p_student) at a temperature (SCRUB's distillation term)."""
    t = jax.nn.log_softmax(teacher_logits.astype(jnp.float32) / temperature)
    s = jax.nn.log_softmax(student_logits.astype(jnp.float32) / temperature)
    return jnp.mean(jnp.sum(jnp.exp(t) * (t - s), axis=-1))


def random_other_labels(key: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """A uniformly random label different from the true one, per example (the RL / SalUn relabelling)."""
    shift = jax.random.randint(key, labels.shape, 1, num_classes, dtype=labels.dtype)
    return (labels + shift) % num_classes


def retain_loss_fn(apply_fn: ApplyFn):
    """(params, model_state, batch, key) -> (cross-entropy, new model_state), train mode."""

    def loss(params, model_state, batch, key):
        del key
        logits, new_state = apply_fn(params, model_state, batch["image"], train=True)
        return cross_entropy(logits, batch["label"]), new_state

    return loss


def forget_loss_fn(apply_fn: ApplyFn, batch_statistics: bool = False):
    """(params, model_state, batch, key) -> (cross-entropy on the forget batch, unchanged model_state).

    Running BatchNorm statistics (eval mode) by default; ``batch_statistics`` normalises the forget batch by its own
    statistics instead (train mode; the running statistics are still never updated). Raising this loss is forgetting.
    """

    def loss(params, model_state, batch, key):
        del key
        logits, _ = apply_fn(params, model_state, batch["image"], train=batch_statistics)
        return cross_entropy(logits, batch["label"]), model_state

    return loss


def relabel_loss_fn(apply_fn: ApplyFn, num_classes: int):
    """(params, model_state, forget batch, key) -> (cross-entropy towards a random *wrong* label, model_state).

    The relabelling of RL and SalUn; eval mode, like every forget objective here.
    """
    if num_classes < 2:
        raise ValueError(f"random labels need at least 2 classes, got {num_classes}.")

    def loss(params, model_state, batch, key):
        wrong = random_other_labels(key, batch["label"], num_classes)
        logits, _ = apply_fn(params, model_state, batch["image"], train=False)
        return cross_entropy(logits, wrong), model_state

    return loss


def loss_terms(apply_fn: ApplyFn, num_classes: int, forget_batch_statistics: bool = False) -> dict[str, Callable]:
    """The named terms of ``rosu_jax.tasks.base`` for a classifier: forget (see ``forget_loss_fn``), retain,
    relabel, and SCRUB's outputs (logits) / divergence (KL at a temperature) / supervised (cross-entropy)."""
    return {
        "forget": forget_loss_fn(apply_fn, forget_batch_statistics),
        "retain": retain_loss_fn(apply_fn),
        "relabel": relabel_loss_fn(apply_fn, num_classes),
        "outputs": lambda params, model_state, batch, *, train: apply_fn(
            params, model_state, batch["image"], train=train
        ),
        "divergence": kl_teacher_student,
        "supervised": lambda logits, batch: cross_entropy(logits, batch["label"]),
    }
