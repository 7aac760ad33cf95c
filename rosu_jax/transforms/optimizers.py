"""The optimizers every run uses, built from a few named settings (one definition for training and unlearning).

``make_optimizer("sgd", lr, total_steps, schedule="cosine", momentum=0.9, weight_decay=5e-4)`` is SGD with
momentum and PyTorch-style weight decay (added to the gradient), the vision protocol's optimizer;
``make_optimizer("adamw", lr, total_steps, warmup_steps=n, weight_decay=0.01)`` is AdamW with decoupled weight
decay, the language-model setting (TOFU: linear warm-up, then constant or decaying).
"""

from __future__ import annotations

import optax

from rosu_jax.transforms.schedules import SCHEDULES, make_schedule

OPTIMIZERS = ("sgd", "adamw")


def make_optimizer(
    name: str,
    lr: float,
    total_steps: int,
    *,
    schedule: str = "constant",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
) -> optax.GradientTransformation:
    """SGD (momentum, weight decay added to the gradient) or AdamW (decoupled weight decay) with a schedule.

    ``schedule`` is one of ``SCHEDULES`` (see ``make_schedule``); a constant schedule without warm-up passes
    ``lr`` as a plain float, so its compiled step is the same whatever ``total_steps`` is.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}.")
    learning_rate = make_schedule(schedule, lr, total_steps, warmup_steps=warmup_steps)
    if name == "adamw":
        return optax.adamw(learning_rate, weight_decay=weight_decay)
    parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
    parts.append(optax.sgd(learning_rate, momentum=momentum or None))
    return optax.chain(*parts)
