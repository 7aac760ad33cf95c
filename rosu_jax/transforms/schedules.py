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
