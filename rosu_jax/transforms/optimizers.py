"""The optimizers every run uses, built from a few named settings (one definition for training and unlearning).

``make_optimizer("sgd", lr, total_steps, schedule="cosine", momentum=0.9, weight_decay=5e-4)`` is SGD with
momentum and PyTorch-style weight decay (added to the gradient), the vision protocol's optimizer;
``make_optimizer("adamw", lr, total_steps, warmup_steps=n, weight_decay=0.01)`` is AdamW with decoupled weight
decay, the language-model setting (TOFU: linear warm-up, then constant or decaying).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
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

    >>> import jax.numpy as jnp
    >>> opt = make_optimizer("adamw", 1e-3, total_steps=100, schedule="cosine", warmup_steps=10, weight_decay=0.01)
    >>> params = {"w": jnp.ones(3, jnp.bfloat16)}
    >>> updates, _ = opt.update({"w": jnp.ones(3, jnp.bfloat16)}, opt.init(params), params)
    >>> updates["w"].dtype  # each parameter's dtype is kept
    dtype(bfloat16)
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}.")
    learning_rate = make_schedule(schedule, lr, total_steps, warmup_steps=warmup_steps)
    if name == "adamw":
        return optax.chain(
            scale_by_adam(), optax.add_decayed_weights(weight_decay), optax.scale_by_learning_rate(learning_rate)
        )
    parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
    parts.append(optax.sgd(learning_rate, momentum=momentum or None))
    return optax.chain(*parts)


class AdamState(NamedTuple):
    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    """Adam's rescaling m̂/(√v̂ + ε) (Kingma & Ba 2015), as ``optax.scale_by_adam`` but with the bias corrections
    computed from a float32 step count (valid under ``jax_numpy_dtype_promotion='strict'``) and the moments kept in
    float32 whatever the parameters' dtype; the updates come back in each gradient's dtype."""

    def init_fn(params):
        zeros = lambda p: jnp.zeros(jnp.shape(p), jnp.float32)
        return AdamState(jnp.zeros((), jnp.int32), jax.tree.map(zeros, params), jax.tree.map(zeros, params))

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        t = count.astype(jnp.float32)
        mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g.astype(jnp.float32), state.mu, updates)
        nu = jax.tree.map(lambda v, g: b2 * v + (1.0 - b2) * jnp.square(g.astype(jnp.float32)), state.nu, updates)
        correction_mu, correction_nu = 1.0 - jnp.float32(b1) ** t, 1.0 - jnp.float32(b2) ** t
        scaled = jax.tree.map(
            lambda m, v, g: ((m / correction_mu) / (jnp.sqrt(v / correction_nu) + eps)).astype(g.dtype),
            mu,
            nu,
            updates,
        )
        return scaled, AdamState(count, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)
