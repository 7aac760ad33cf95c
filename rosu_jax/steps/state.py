"""The state every unlearning step carries, and the (init, step) pair every method returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rosu_jax.core.tree_math import tree_all_finite
from rosu_jax.core.types import PyTree

Batch = Any
Metrics = dict[str, jax.Array]

# A loss on one batch: (params, model_state, batch, key) -> (scalar loss, new model_state).
# model_state holds what is not trained: BatchNorm running statistics, frozen weights of a partly trained model
# ({} when there is nothing). A loss marked with ``uses_extras`` also receives the state's extras (the constants a
# method keeps beside the weights, e.g. NPO's reference log-likelihoods) as a fifth argument.
LossFn = Callable[[PyTree, PyTree, Batch, jax.Array], tuple[jax.Array, PyTree]]


class UnlearnState(NamedTuple):
    """params: trainable weights; model_state: e.g. BatchNorm statistics or frozen weights; opt_state: the
    optimizer's state; step: number of steps taken; extras: method-specific constants (SCRUB's teacher, SalUn's
    ``{"mask": ...}``), or None."""

    params: PyTree
    model_state: PyTree
    opt_state: optax.OptState
    step: jax.Array
    extras: PyTree = None

    @property
    def mask(self) -> PyTree | None:
        """The 0/1 update mask kept in ``extras["mask"]`` (SalUn), or None."""
        return None if self.extras is None else self.extras.get("mask")


# step(state, forget_batch, retain_batch, key) -> (new state, metrics of this step)
StepFn = Callable[[UnlearnState, Batch, Batch, jax.Array], tuple[UnlearnState, Metrics]]


class Stepper(NamedTuple):
    """What every method's factory returns: ``init(params, model_state, extras) -> UnlearnState`` and a
    (jitted) ``step``.

    ``gradient_evaluations`` is the number of backward passes one step costs (the fair-comparison unit).
    """

    init: Callable[..., UnlearnState]
    step: StepFn
    gradient_evaluations: int


def make_init(optimizer: optax.GradientTransformation) -> Callable[..., UnlearnState]:
    """``init(params, model_state=None, extras=None)`` for a step driven by ``optimizer``."""

    def init(params: PyTree, model_state: PyTree | None = None, extras: PyTree = None) -> UnlearnState:
        return UnlearnState(
            params, {} if model_state is None else model_state, optimizer.init(params), jnp.zeros((), jnp.int32), extras
        )

    return init


def finish(state: UnlearnState, params, model_state, opt_state, metrics: Metrics) -> tuple[UnlearnState, Metrics]:
    """The next state (step + 1, same extras) and the metrics with ``all_finite`` of the new params."""
    metrics = dict(metrics, all_finite=tree_all_finite(params))
    return UnlearnState(params, model_state, opt_state, state.step + 1, state.extras), metrics


def maybe_jit(step: StepFn, jit: bool) -> StepFn:
    return jax.jit(step) if jit else step


def uses_extras(loss_fn: Callable) -> Callable:
    """Mark ``loss_fn(params, model_state, batch, key, extras)``: the steps pass it ``state.extras``."""
    loss_fn.uses_extras = True
    return loss_fn


def bind_extras(loss_fn: Callable | None, extras: PyTree) -> LossFn | None:
    """The four-argument loss of a step: ``loss_fn`` itself, or with ``extras`` bound if it is marked."""
    if loss_fn is None or not getattr(loss_fn, "uses_extras", False):
        return loss_fn
    return lambda params, model_state, batch, key: loss_fn(params, model_state, batch, key, extras)
