"""SCRUB's alternating teacher-student step (Kurmanji et al., 2023), over any model that gives outputs.

Each step makes a *max* sub-step on the forget batch (descend −D(T‖S): push the student away from the teacher)
and then a *min* sub-step on the retain batch (descend α·D(T‖S) + γ·L_sup). After ``max_steps`` steps only min
sub-steps are made (the paper's msteps). The teacher (the model before unlearning) lives in
``state.extras = {"teacher_params", "teacher_model_state"}``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from rosu_jax.core.types import PyTree
from rosu_jax.steps.state import Stepper, UnlearnState, finish, make_init, maybe_jit

# outputs_fn(params, model_state, batch, *, train) -> (outputs, new_model_state)
OutputsFn = Callable[..., tuple[jax.Array, PyTree]]


def make_distill_step(
    outputs_fn: OutputsFn,
    divergence_fn: Callable[[jax.Array, jax.Array], jax.Array],
    supervised_fn: Callable[[jax.Array, PyTree], jax.Array],
    optimizer: optax.GradientTransformation,
    *,
    divergence_weight: float = 1.0,
    supervised_weight: float = 1.0,
    max_steps: int | None = None,
    jit: bool = True,
) -> Stepper:
    """SCRUB: ``divergence_fn(teacher_outputs, student_outputs)`` (e.g. KL at a temperature) and
    ``supervised_fn(outputs, batch)`` (e.g. cross-entropy) over ``outputs_fn``'s outputs; the forget batch runs
    with ``train=False``, the retain batch with ``train=True`` (it carries the model state forward)."""
    if divergence_weight < 0 or supervised_weight < 0:
        raise ValueError("SCRUB needs divergence_weight >= 0 and supervised_weight >= 0.")

    def max_objective(params, model_state, batch, teacher_outputs):
        outputs, _ = outputs_fn(params, model_state, batch, train=False)
        return -divergence_fn(teacher_outputs, outputs)

    def min_objective(params, model_state, batch, teacher_outputs):
        outputs, new_state = outputs_fn(params, model_state, batch, train=True)
        divergence = divergence_fn(teacher_outputs, outputs)
        supervised = supervised_fn(outputs, batch)
        return divergence_weight * divergence + supervised_weight * supervised, (new_state, divergence, supervised)

    def step(state: UnlearnState, forget_batch, retain_batch, key):
        del key
        teacher_params = state.extras["teacher_params"]
        teacher_state = state.extras["teacher_model_state"]
        teacher_f, _ = outputs_fn(teacher_params, teacher_state, forget_batch, train=False)
        teacher_r, _ = outputs_fn(teacher_params, teacher_state, retain_batch, train=False)
        teacher_f, teacher_r = jax.lax.stop_gradient((teacher_f, teacher_r))

        neg_divergence_f, grads_max = jax.value_and_grad(max_objective)(
            state.params, state.model_state, forget_batch, teacher_f
        )
        updates, opt_state = optimizer.update(grads_max, state.opt_state, state.params)
        do_max = jnp.array(True) if max_steps is None else state.step < max_steps
        params = jax.tree.map(lambda p, u: jnp.where(do_max, p + u, p), state.params, updates)
        opt_state = jax.tree.map(lambda new, old: jnp.where(do_max, new, old), opt_state, state.opt_state)

        (_, (new_model_state, divergence_r, supervised_r)), grads_min = jax.value_and_grad(min_objective, has_aux=True)(
            params, state.model_state, retain_batch, teacher_r
        )
        updates, opt_state = optimizer.update(grads_min, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {"forget_kl": -neg_divergence_f, "retain_kl": divergence_r, "retain_loss": supervised_r}
        return finish(state, params, new_model_state, opt_state, metrics)

    return Stepper(make_init(optimizer), maybe_jit(step, jit), 2)
