"""The state every unlearning step carries, and the (init, step) pair every method returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

PyTree = Any
Batch = Any
Metrics = dict[str, jax.Array]

# A loss on one batch: (params, model_state, batch, key) -> (scalar loss, new model_state).
# model_state holds non-trainable variables such as BatchNorm running statistics (use {} when there are none).
LossFn = Callable[[PyTree, PyTree, Batch, jax.Array], tuple[jax.Array, PyTree]]


class UnlearnState(NamedTuple):
    """params: trainable weights; model_state: e.g. BatchNorm statistics; opt_state: the optimizer's state;
    step: number of steps taken; extras: method-specific constants (SCRUB's teacher, SalUn's mask), or None."""

    params: PyTree
    model_state: PyTree
    opt_state: optax.OptState
    step: jax.Array
    extras: PyTree = None


# step(state, forget_batch, retain_batch, key) -> (new state, metrics of this step)
StepFn = Callable[[UnlearnState, Batch, Batch, jax.Array], tuple[UnlearnState, Metrics]]


class Stepper(NamedTuple):
    """What every method's factory returns: ``init(params, model_state) -> UnlearnState`` and a jitted ``step``.

    ``gradient_evaluations`` is the number of backward passes one step costs (the fair-comparison unit).
    """

    init: Callable[..., UnlearnState]
    step: StepFn
    gradient_evaluations: int
