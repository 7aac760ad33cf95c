"""Steps of the gradient recipes (FT, GA, NegGrad+, l1-sparse): g_f and/or g_r at θ, then one transformation.

The recipes themselves are the Optax transformations of ``rosu_jax.transforms.recipes``; this step takes the
gradients of the task's loss terms, so the same step serves images and tokens.
"""

from __future__ import annotations

import jax
import optax

from rosu_jax.steps.state import LossFn, Stepper, UnlearnState, bind_extras, finish, make_init, maybe_jit
from rosu_jax.transforms.recipes import masked_updates


def make_recipe_step(
    forget_loss_fn: LossFn | None,
    retain_loss_fn: LossFn | None,
    transformation: optax.GradientTransformationExtraArgs,
    *,
    jit: bool = True,
) -> Stepper:
    """g_f = ∇L_f(θ) (if ``forget_loss_fn``), g_r = ∇L_r(θ) (if ``retain_loss_fn``), then
    ``transformation.update(g_f, ..., retain_grads=g_r)``.

    Model state comes from the retain pass. ``state.mask`` (SalUn) masks both gradients and the final update.
    One gradient evaluation per loss given.
    """
    if forget_loss_fn is None and retain_loss_fn is None:
        raise ValueError("make_recipe_step needs a forget loss, a retain loss, or both.")
    transformation = masked_updates(transformation)
    forget_term, retain_term = forget_loss_fn, retain_loss_fn

    def step(state: UnlearnState, forget_batch, retain_batch, key):
        forget_loss_fn, retain_loss_fn = bind_extras(forget_term, state.extras), bind_extras(retain_term, state.extras)
        metrics = {}
        forget_grads = retain_grads = None
        new_model_state = state.model_state
        if forget_loss_fn is not None:
            (loss_f, _), forget_grads = jax.value_and_grad(forget_loss_fn, has_aux=True)(
                state.params, state.model_state, forget_batch, key
            )
            metrics["forget_loss"] = loss_f
        if retain_loss_fn is not None:
            (loss_r, new_model_state), retain_grads = jax.value_and_grad(retain_loss_fn, has_aux=True)(
                state.params, state.model_state, retain_batch, key
            )
            metrics["retain_loss"] = loss_r
        updates, opt_state = transformation.update(
            forget_grads, state.opt_state, state.params, retain_grads=retain_grads, mask=state.mask
        )
        params = optax.apply_updates(state.params, updates)
        return finish(state, params, new_model_state, opt_state, metrics)

    evaluations = int(forget_loss_fn is not None) + int(retain_loss_fn is not None)
    return Stepper(make_init(transformation), maybe_jit(step, jit), evaluations)
