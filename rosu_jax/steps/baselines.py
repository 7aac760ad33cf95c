"""Jitted steps of the classic baselines for a classifier, behind the same ``Stepper`` interface as ROSU.

FT, GA, NegGrad+ and l1-sparse use the gradient recipes of ``rosu_jax.transforms.recipes``; RL, SalUn and
SCRUB are loss recipes (they need logits). Every step has the signature
``step(state, forget_batch, retain_batch, key) -> (state, metrics)`` and counts its gradient evaluations
(one per batch differentiated), so run times compare fairly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from rosu_jax.core.tree_math import tree_all_finite, tree_mul
from rosu_jax.steps.classifier import (
    ApplyFn,
    cross_entropy,
    forget_loss_fn,
    kl_teacher_student,
    random_other_labels,
    retain_loss_fn,
)
from rosu_jax.steps.state import PyTree, Stepper, UnlearnState
from rosu_jax.transforms.recipes import fine_tune, gradient_ascent, l1_sparse, neggrad_plus


def _init_fn(optimizer):
    def init(params: PyTree, model_state: PyTree | None = None, extras: PyTree = None) -> UnlearnState:
        return UnlearnState(
            params,
            {} if model_state is None else model_state,
            optimizer.init(params),
            jnp.zeros((), jnp.int32),
            extras,
        )

    return init


def _finish(state, params, model_state, opt_state, metrics):
    metrics = dict(metrics, all_finite=tree_all_finite(params))
    return UnlearnState(params, model_state, opt_state, state.step + 1, state.extras), metrics


def make_recipe_step(
    apply_fn: ApplyFn,
    transformation: optax.GradientTransformationExtraArgs,
    *,
    uses_forget: bool,
    uses_retain: bool,
    jit: bool = True,
) -> Stepper:
    """A step for a gradient recipe: g_f (if used) and g_r (if used) at θ, then ``transformation.update``.

    ``state.extras`` may hold ``{"mask": mask}`` to mask the gradients and the final update.
    """
    forget_loss, retain_loss = forget_loss_fn(apply_fn), retain_loss_fn(apply_fn)

    def step(state: UnlearnState, forget_batch, retain_batch, key):
        metrics = {}
        forget_grads = retain_grads = None
        new_model_state = state.model_state
        if uses_forget:
            (loss_f, _), forget_grads = jax.value_and_grad(forget_loss, has_aux=True)(
                state.params, state.model_state, forget_batch, key
            )
            metrics["forget_loss"] = loss_f
        if uses_retain:
            (loss_r, new_model_state), retain_grads = jax.value_and_grad(retain_loss, has_aux=True)(
                state.params, state.model_state, retain_batch, key
            )
            metrics["retain_loss"] = loss_r
        mask = None if state.extras is None else state.extras.get("mask")
        if mask is not None:
            forget_grads = None if forget_grads is None else tree_mul(forget_grads, mask)
            retain_grads = None if retain_grads is None else tree_mul(retain_grads, mask)
        updates, opt_state = transformation.update(
            forget_grads, state.opt_state, state.params, retain_grads=retain_grads
        )
        if mask is not None:
            updates = tree_mul(updates, mask)
        params = optax.apply_updates(state.params, updates)
        return _finish(state, params, new_model_state, opt_state, metrics)

    return Stepper(_init_fn(transformation), jax.jit(step) if jit else step, int(uses_forget) + int(uses_retain))


def make_ft_step(apply_fn, optimizer, **kw) -> Stepper:
    """FT: fine-tune on the retain set."""
    return make_recipe_step(apply_fn, fine_tune(optimizer), uses_forget=False, uses_retain=True, **kw)


def make_ga_step(apply_fn, optimizer, **kw) -> Stepper:
    """GA: gradient ascent on the forget set."""
    return make_recipe_step(apply_fn, gradient_ascent(optimizer), uses_forget=True, uses_retain=False, **kw)


def make_neggrad_plus_step(apply_fn, optimizer, retain_weight: float = 0.99, **kw) -> Stepper:
    """NegGrad+: descend α·L_r − (1 − α)·L_f."""
    return make_recipe_step(apply_fn, neggrad_plus(optimizer, retain_weight), uses_forget=True, uses_retain=True, **kw)


def make_l1_sparse_step(apply_fn, optimizer, l1_weight=5e-4, **kw) -> Stepper:
    """l1-sparse: fine-tune with an l1 penalty γ_t‖θ‖₁ (γ may be a schedule)."""
    return make_recipe_step(apply_fn, l1_sparse(optimizer, l1_weight), uses_forget=False, uses_retain=True, **kw)


def make_random_label_step(apply_fn, optimizer, num_classes: int, *, jit: bool = True) -> Stepper:
    """RL (and SalUn with a mask in ``state.extras["mask"]``): descend CE(forget, random other labels) + CE(retain).

    Both terms are differentiated in one backward pass over the two batches (two gradient evaluations' worth
    of examples). The forget batch runs in eval mode (running BatchNorm statistics), see ``classifier``.
    """
    if num_classes < 2:
        raise ValueError(f"random labels need at least 2 classes, got {num_classes}.")
    retain_loss = retain_loss_fn(apply_fn)

    def objective(params, model_state, forget_batch, retain_batch, key):
        wrong = random_other_labels(key, forget_batch["label"], num_classes)
        logits_f, _ = apply_fn(params, model_state, forget_batch["image"], train=False)
        loss_f = cross_entropy(logits_f, wrong)
        loss_r, new_state = retain_loss(params, model_state, retain_batch, key)
        return loss_f + loss_r, (new_state, loss_f, loss_r)

    def step(state: UnlearnState, forget_batch, retain_batch, key):
        (_, (new_model_state, loss_f, loss_r)), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params, state.model_state, forget_batch, retain_batch, key
        )
        mask = None if state.extras is None else state.extras.get("mask")
        if mask is not None:
            grads = tree_mul(grads, mask)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        if mask is not None:
            updates = tree_mul(updates, mask)
        params = optax.apply_updates(state.params, updates)
        return _finish(state, params, new_model_state, opt_state, {"random_label_loss": loss_f, "retain_loss": loss_r})

    return Stepper(_init_fn(optimizer), jax.jit(step) if jit else step, 2)


def make_scrub_step(
    apply_fn,
    optimizer,
    *,
    kl_weight: float = 1.0,
    ce_weight: float = 1.0,
    temperature: float = 4.0,
    max_steps: int | None = None,
    jit: bool = True,
) -> Stepper:
    """SCRUB (Kurmanji et al., 2023): teacher-student distillation.

    Each step makes a *max* sub-step on the forget batch (descend −KL(T‖S), pushing the student away from the
    teacher) followed by a *min* sub-step on the retain batch (descend α·KL(T‖S) + γ·CE). After ``max_steps``
    steps only min sub-steps are made (the paper's msteps). The teacher (the original model) lives in
    ``state.extras = {"teacher_params", "teacher_model_state"}``.
    """
    if kl_weight < 0 or ce_weight < 0 or temperature <= 0:
        raise ValueError("SCRUB needs kl_weight >= 0, ce_weight >= 0 and temperature > 0.")

    def max_objective(params, model_state, batch, teacher_logits):
        logits, _ = apply_fn(params, model_state, batch["image"], train=False)
        return -kl_teacher_student(teacher_logits, logits, temperature)

    def min_objective(params, model_state, batch, teacher_logits):
        logits, new_state = apply_fn(params, model_state, batch["image"], train=True)
        kl = kl_teacher_student(teacher_logits, logits, temperature)
        ce = cross_entropy(logits, batch["label"])
        return kl_weight * kl + ce_weight * ce, (new_state, kl, ce)

    def step(state: UnlearnState, forget_batch, retain_batch, key):
        del key
        teacher_params = state.extras["teacher_params"]
        teacher_state = state.extras["teacher_model_state"]
        teacher_f, _ = apply_fn(teacher_params, teacher_state, forget_batch["image"], train=False)
        teacher_r, _ = apply_fn(teacher_params, teacher_state, retain_batch["image"], train=False)
        teacher_f, teacher_r = jax.lax.stop_gradient((teacher_f, teacher_r))

        neg_kl_f, grads_max = jax.value_and_grad(max_objective)(
            state.params, state.model_state, forget_batch, teacher_f
        )
        updates, opt_state = optimizer.update(grads_max, state.opt_state, state.params)
        do_max = jnp.array(True) if max_steps is None else state.step < max_steps
        params = jax.tree.map(lambda p, u: jnp.where(do_max, p + u, p), state.params, updates)
        opt_state = jax.tree.map(lambda new, old: jnp.where(do_max, new, old), opt_state, state.opt_state)

        (_, (new_model_state, kl_r, ce_r)), grads_min = jax.value_and_grad(min_objective, has_aux=True)(
            params, state.model_state, retain_batch, teacher_r
        )
        updates, opt_state = optimizer.update(grads_min, opt_state, params)
        params = optax.apply_updates(params, updates)
        return _finish(
            state,
            params,
            new_model_state,
            opt_state,
            {"forget_kl": -neg_kl_f, "retain_kl": kl_r, "retain_loss": ce_r},
        )

    return Stepper(_init_fn(optimizer), jax.jit(step) if jit else step, 2)
