"""Step-size schedules that also work under ``jax_numpy_dtype_promotion='strict'``.

Optax's own schedules mix Python floats with the int32 step count, which strict promotion rejects; these cast the
count to float32 first. Each returns a callable ``count -> float32 scalar`` usable wherever Optax takes a schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

Schedule = Callable[[jax.Array], jax.Array]


def _count(count) -> jax.Array:
    return jnp.asarray(count).astype(jnp.float32)


def cosine_decay(init_value: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """init · ((1 − α)·½(1 + cos(π·min(t, T)/T)) + α)."""
    if decay_steps <= 0:
        raise ValueError(f"decay_steps must be > 0, got {decay_steps}.")

    def schedule(count):
        t = jnp.minimum(_count(count), jnp.float32(decay_steps)) / jnp.float32(decay_steps)
        cosine = 0.5 * (1.0 + jnp.cos(jnp.float32(jnp.pi) * t))
        return jnp.float32(init_value) * ((1.0 - jnp.float32(alpha)) * cosine + jnp.float32(alpha))

    return schedule


def linear(init_value: float, end_value: float, transition_steps: int) -> Schedule:
    """Linear from init to end over ``transition_steps``, then constant."""
    if transition_steps <= 0:
        raise ValueError(f"transition_steps must be > 0, got {transition_steps}.")

    def schedule(count):
        frac = jnp.minimum(_count(count), jnp.float32(transition_steps)) / jnp.float32(transition_steps)
        return jnp.float32(init_value) + (jnp.float32(end_value) - jnp.float32(init_value)) * frac

    return schedule


def piecewise_constant(init_value: float, boundaries_and_scales: Mapping[int, float]) -> Schedule:
    """init, multiplied by ``scale`` once the count passes each boundary (the classic step decay)."""

    def schedule(count):
        value = jnp.float32(init_value)
        c = _count(count)
        for boundary, scale in sorted(boundaries_and_scales.items()):
            value = jnp.where(c >= boundary, value * jnp.float32(scale), value)
        return value

    return schedule


SCHEDULES = ("constant", "cosine", "step", "linear")


def make_schedule(kind: str, value: float, total_steps: int, *, warmup_steps: int = 0) -> float | Schedule:
    """A named schedule over ``total_steps``: 'constant' (``value`` itself, a float), 'cosine' (to 0),
    'step' (×0.1 at 50% and 75% of the steps, the classic CIFAR recipe) or 'linear' (to 0); ``warmup_steps`` > 0
    prepends a linear warm-up from 0 (the language-model setting) and the decay takes the remaining steps, as in
    ``optax.warmup_cosine_decay_schedule``.

    >>> schedule = make_schedule("cosine", 0.1, total_steps=100, warmup_steps=10)
    >>> [round(float(schedule(t)), 4) for t in (0, 5, 10, 55, 100)]
    [0.0, 0.05, 0.1, 0.05, 0.0]
    >>> make_schedule("constant", 0.1, total_steps=100)
    0.1
    """
    warmup_steps = max(int(warmup_steps), 0)
    total_steps = max(int(total_steps) - warmup_steps, 1)
    if kind == "constant":
        decay = value
    elif kind == "cosine":
        decay = cosine_decay(value, total_steps)
    elif kind == "step":
        decay = piecewise_constant(value, {int(total_steps * 0.5): 0.1, int(total_steps * 0.75): 0.1})
    elif kind == "linear":
        decay = linear(value, 0.0, total_steps)
    else:
        raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}.")
    if warmup_steps == 0:
        return decay
    return warmup_then(value, warmup_steps, decay)


def warmup_then(peak: float, warmup_steps: int, after: float | Schedule) -> Schedule:
    """Linear from 0 to ``peak`` over ``warmup_steps``, then ``after`` (counted from the end of the warm-up)."""
    ramp = linear(0.0, peak, warmup_steps)

    def schedule(count):
        c = _count(count)
        later = after(c - jnp.float32(warmup_steps)) if callable(after) else jnp.float32(after)
        return jnp.where(c < warmup_steps, ramp(c), later)

    return schedule
