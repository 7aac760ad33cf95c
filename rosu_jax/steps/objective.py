"""The step of a method that descends one combined objective of the forget and retain batches.

RL and SalUn (relabelled forget loss + retain loss), GradDiff, IdK, NPO, SimNPO and RMU are all of this form:
``objective(params, model_state, forget_batch, retain_batch, key, extras) -> (loss, (new_model_state, metrics))``
is differentiated once (one backward pass over both batches) and the optimizer applies the gradient; ``extras``
are the state's (the constants the method keeps, or None).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax

from rosu_jax.steps.state import Stepper, UnlearnState, finish, make_init, maybe_jit
from rosu_jax.transforms.recipes import masked_updates

Objective = Callable[..., tuple[jax.Array, tuple]]


def make_objective_step(
    objective: Objective,
    optimizer: optax.GradientTransformation,
    *,
    gradient_evaluations: int = 2,
    jit: bool = True,
) -> Stepper:
    """Descend ``objective`` with ``optimizer``; ``state.mask`` masks the gradient and the final update.

    ``gradient_evaluations`` is what one step costs in backward passes over a batch (2 when both batches are
    differentiated), for fair run-time comparisons.
    """
    optimizer = masked_updates(optimizer)

    def step(state: UnlearnState, forget_batch, retain_batch, key):
        (_, (new_model_state, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params, state.model_state, forget_batch, retain_batch, key, state.extras
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params, mask=state.mask)
        params = optax.apply_updates(state.params, updates)
        return finish(state, params, new_model_state, opt_state, metrics)

    return Stepper(make_init(optimizer), maybe_jit(step, jit), gradient_evaluations)
