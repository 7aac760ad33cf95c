"""Representation unlearning: RMU (Li et al. 2024, the WMDP paper), and ROSU / UAM wrapping it.

RMU steers the activations h_θ(x) of one decoder layer ℓ on forget text towards a random control vector and keeps
them on retain text (Li et al. 2024, the WMDP paper; means over real tokens and dimensions):

    L_RMU = mean ‖h_θ(x_f) − u_t‖² + α · mean ‖h_θ(x_r) − h_frozen(x_r)‖²,   u_t = c·v_t/‖v_t‖,  v_t ~ U[0, 1)^d

one control vector per forget topic t (drawn once, seeded), the forget batch's ``topic`` naming it, and h_frozen the
same layer of the model before unlearning (the trainable leaves' starting values are kept in the extras; the rest of
the model never changes). ROSU-RMU and UAM-RMU take L_f = −mean ‖h_θ(x_f) − u_t‖² (its increase is forgetting) and
L_r = RMU's retain term for the perturbation, and the outer gradient of the whole RMU loss at θ + δ.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rosu_jax.methods.base import ExtrasContext, Method, OptimizerSettings, hyper
from rosu_jax.methods.minmax import AmplifiedSettings, MinMaxSettings, minmax_step
from rosu_jax.steps import make_objective_step
from rosu_jax.steps.state import uses_extras


def _rmu_fields(cls):
    """RMU's own hyperparameters, added to a settings class (the official WMDP run's values as defaults)."""
    return dataclasses.make_dataclass(
        cls.__name__.replace("Settings", "") + "RmuSettings",
        [
            ("steering", float, hyper(6.5, "c: norm of the control vector", low=0.0, low_open=True)),
            ("alpha", float, hyper(1200.0, "α: weight of the activation-matching retain term", low=0.0)),
        ],
        bases=(cls,),
        frozen=True,
    )


RmuSettings = _rmu_fields(OptimizerSettings)
RosuRmuSettings = _rmu_fields(AmplifiedSettings)
UamRmuSettings = _rmu_fields(MinMaxSettings)


def _masked_mse(x: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of (x − target)² over the real tokens (mask 1) and the hidden dimensions, in float32."""
    weights = mask.astype(jnp.float32)[..., None]
    squared = jnp.square(x.astype(jnp.float32) - target.astype(jnp.float32)) * weights
    return jnp.sum(squared) / (jnp.sum(weights) * x.shape[-1])


def _terms(terms, s):
    hidden = terms["hidden"]

    @uses_extras
    def forget(params, model_state, batch, key, extras):
        (h, mask), _ = hidden(params, model_state, batch, key)
        control = extras["control"][batch["topic"]][:, None, :]
        return _masked_mse(h, control, mask), model_state

    @uses_extras
    def retain(params, model_state, batch, key, extras):
        (h, mask), new_state = hidden(params, model_state, batch, key)
        (h_frozen, _), _ = hidden(jax.lax.stop_gradient(extras["reference_params"]), model_state, batch, key)
        return s.alpha * _masked_mse(h, h_frozen, mask), new_state

    @uses_extras
    def negated_forget(params, model_state, batch, key, extras):
        loss, state = forget(params, model_state, batch, key, extras)
        return -loss, state

    def objective(params, model_state, forget_batch, retain_batch, key, extras):
        loss_f, _ = forget(params, model_state, forget_batch, key, extras)
        loss_r, new_state = retain(params, model_state, retain_batch, key, extras)
        return loss_f + loss_r, (new_state, {"forget_loss": loss_f, "retain_loss": loss_r})

    return forget, retain, negated_forget, objective


def _extras(ctx: ExtrasContext, s) -> dict:
    """One control vector per forget topic, u_t = c·v_t/‖v_t‖ with v_t ~ U[0, 1)^d (seeded by the run's seed and t),
    and the trainable leaves before unlearning (RMU's frozen model, with the never-trained rest)."""
    keys = jax.random.split(jax.random.fold_in(jax.random.key(ctx.seed), 0x524D55), ctx.info["num_topics"])
    v = jax.vmap(lambda k: jax.random.uniform(k, (ctx.info["hidden_size"],), jnp.float32))(keys)
    control = s.steering * v / jnp.linalg.norm(v, axis=-1, keepdims=True)
    return {"control": control, "reference_params": ctx.params}


def _rmu(terms, s, total_steps):
    return make_objective_step(_terms(terms, s)[3], s.make_optimizer(total_steps))


def _wrapped(project: bool):
    def build(terms, s, total_steps):
        _, retain, negated_forget, objective = _terms(terms, s)
        # UAM as published takes no retain gradient at θ (lagged); ROSU needs it for the projection
        return minmax_step(
            negated_forget, retain, s, total_steps, project=project, lagged=not project, surrogate_objective=objective
        )

    return build


HIDDEN = frozenset({"hidden"})

DECLARED = (
    Method(
        "RMU",
        "steer layer-ℓ activations on forget text to a random vector, keep them on retain text",
        RmuSettings,
        _rmu,
        requires=HIDDEN,
        extras=_extras,
    ),
    Method(
        "ROSU-RMU",
        "ROSU's perturbation from RMU's two terms, outer gradient of the whole RMU loss at θ+δ",
        RosuRmuSettings,
        _wrapped(project=True),
        requires=HIDDEN,
        extras=_extras,
        coupling="exact",
    ),
    Method(
        "UAM-RMU",
        "UAM's perturbation (forget term), outer gradient of the whole RMU loss at θ+δ",
        UamRmuSettings,
        _wrapped(project=False),
        requires=HIDDEN,
        extras=_extras,
        coupling="none",
    ),
)
