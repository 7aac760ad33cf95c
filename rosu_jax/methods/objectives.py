"""The language-model unlearning objectives, declared once each: GradDiff, IdK, NPO, SimNPO, and ROSU wrapping
GradDiff and NPO (GA, UAM and ROSU over the NLL are the generic methods of ``baselines`` and ``minmax``).

Definitions (NLL summed over a sequence's answer tokens, averaged over the batch):
  GradDiff   γ·(−NLL_θ(forget)) + α·NLL_θ(retain)
  IdK        NLL_θ(forget questions answered with a refusal) + NLL_θ(retain)
  NPO        γ·L_NPO + α·NLL_θ(retain),  L_NPO = −(2/β) mean_i log σ(β (NLL_θ,i − NLL_ref,i))   (Zhang et al. 2024)
  SimNPO     γ·L_Sim + α·NLL_θ(retain),  L_Sim = −(2/β) mean_i log σ(β (NLL_θ,i/|y_i| − δ))      (Fan et al. 2024)
NPO's reference is the model before unlearning: its per-item NLL on the forget set is computed once, before the
first step (the forget batches carry each item's ``index``), and kept in the state's extras.
ROSU-GradDiff / ROSU-NPO: ROSU's perturbation from L_f = NLL_θ(forget) and L_r = NLL_θ(retain), and the outer
gradient of the whole objective at θ + δ (ROSU and UAM on a language model: the README).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from rosu_jax.methods.base import ExtrasContext, Method, OptimizerSettings, hyper
from rosu_jax.methods.minmax import RosuSettings, minmax_step
from rosu_jax.steps import make_objective_step


@dataclasses.dataclass(frozen=True)
class WeightedSettings(OptimizerSettings):
    gamma: float = hyper(1.0, "γ: weight of the forget term", low=0.0)
    alpha: float = hyper(1.0, "α: weight of the retain term", low=0.0)


@dataclasses.dataclass(frozen=True)
class NpoSettings(WeightedSettings):
    beta: float = hyper(0.1, "β: inverse temperature of the preference loss", low=0.0, low_open=True)


@dataclasses.dataclass(frozen=True)
class SimNpoSettings(WeightedSettings):
    gamma: float = hyper(0.125, "γ: weight of the forget term", low=0.0)
    beta: float = hyper(4.5, "β: inverse temperature of the preference loss", low=0.0, low_open=True)
    delta: float = hyper(0.0, "δ: margin on the length-normalised NLL")


@dataclasses.dataclass(frozen=True)
class RosuGradDiffSettings(RosuSettings):
    gamma: float = hyper(1.0, "γ: weight of the forget term in the outer objective", low=0.0)
    alpha: float = hyper(1.0, "α: weight of the retain term in the outer objective", low=0.0)


@dataclasses.dataclass(frozen=True)
class RosuNpoSettings(RosuGradDiffSettings):
    beta: float = hyper(0.1, "β: inverse temperature of NPO's preference loss", low=0.0, low_open=True)


def _graddiff(terms, s):
    forget, retain = terms["forget"], terms["retain"]

    def objective(params, model_state, forget_batch, retain_batch, key, extras):
        loss_f, _ = forget(params, model_state, forget_batch, key)
        loss_r, new_state = retain(params, model_state, retain_batch, key)
        return -s.gamma * loss_f + s.alpha * loss_r, (new_state, {"forget_loss": loss_f, "retain_loss": loss_r})

    return objective


def _idk(terms, s):
    idk, retain = terms["idk"], terms["retain"]

    def objective(params, model_state, forget_batch, retain_batch, key, extras):
        loss_idk, _ = idk(params, model_state, forget_batch, key)
        loss_r, new_state = retain(params, model_state, retain_batch, key)
        return loss_idk + loss_r, (new_state, {"idk_loss": loss_idk, "retain_loss": loss_r})

    return objective


def _preference(terms, s, forget_term):
    """γ·(a per-item preference loss on the forget batch) + α·NLL(retain)."""
    sequence_nll, retain = terms["sequence_nll"], terms["retain"]

    def objective(params, model_state, forget_batch, retain_batch, key, extras):
        (nll, count), _ = sequence_nll(params, model_state, forget_batch, key)
        loss_f = forget_term(nll, count, forget_batch, extras)
        loss_r, new_state = retain(params, model_state, retain_batch, key)
        metrics = {"forget_loss": jnp.mean(nll), "preference_loss": loss_f, "retain_loss": loss_r}
        return s.gamma * loss_f + s.alpha * loss_r, (new_state, metrics)

    return objective


def _npo_forget(s):
    def loss(nll, count, batch, extras):
        reference = extras["reference_nll"][batch["index"]]
        return -(2.0 / s.beta) * jnp.mean(jax.nn.log_sigmoid(s.beta * (nll - reference)))

    return loss


def _simnpo_forget(s):
    def loss(nll, count, batch, extras):
        return -(2.0 / s.beta) * jnp.mean(jax.nn.log_sigmoid(s.beta * (nll / jnp.maximum(count, 1.0) - s.delta)))

    return loss


@functools.lru_cache(maxsize=8)
def _nll_fn(sequence_nll):
    return jax.jit(lambda params, model_state, batch: sequence_nll(params, model_state, batch, None)[0][0])


def _reference_nll(ctx: ExtrasContext, settings) -> dict:
    """NPO's reference: the summed NLL of every forget item under the weights before unlearning, by item index."""
    nll_fn = _nll_fn(ctx.terms["sequence_nll"])
    table = jnp.zeros(ctx.num_forget, jnp.float32)
    for batch in ctx.forget_batches():
        table = table.at[batch["index"]].set(nll_fn(ctx.params, ctx.model_state, batch))
    return {"reference_nll": table}


def _rosu_wrapping(objective_of):
    def build(terms, s, total_steps):
        return minmax_step(terms["forget"], terms["retain"], s, total_steps, surrogate_objective=objective_of(terms, s))

    return build


LIKELIHOOD = frozenset({"sequence_nll", "retain"})

DECLARED = (
    Method(
        "GradDiff",
        "gradient difference: ascend the forget NLL, descend the retain NLL",
        WeightedSettings,
        lambda t, s, n: make_objective_step(_graddiff(t, s), s.make_optimizer(n)),
    ),
    Method(
        "IdK",
        "answer forget questions with a refusal, keep the retain NLL",
        OptimizerSettings,
        lambda t, s, n: make_objective_step(_idk(t, s), s.make_optimizer(n)),
        requires=frozenset({"idk", "retain"}),
    ),
    Method(
        "NPO",
        "negative preference optimisation against the model before unlearning (+ retain NLL)",
        NpoSettings,
        lambda t, s, n: make_objective_step(_preference(t, s, _npo_forget(s)), s.make_optimizer(n)),
        requires=LIKELIHOOD,
        extras=_reference_nll,
    ),
    Method(
        "SimNPO",
        "reference-free NPO on the length-normalised NLL (+ retain NLL)",
        SimNpoSettings,
        lambda t, s, n: make_objective_step(_preference(t, s, _simnpo_forget(s)), s.make_optimizer(n)),
        requires=LIKELIHOOD,
    ),
    Method(
        "ROSU-GradDiff",
        "ROSU's perturbation (forget/retain NLL), outer gradient of GradDiff at θ+δ",
        RosuGradDiffSettings,
        _rosu_wrapping(_graddiff),
        coupling="exact",
    ),
    Method(
        "ROSU-NPO",
        "ROSU's perturbation (forget/retain NLL), outer gradient of NPO at θ+δ",
        RosuNpoSettings,
        _rosu_wrapping(lambda t, s: _preference(t, s, _npo_forget(s))),
        requires=LIKELIHOOD | {"forget"},
        extras=_reference_nll,
        coupling="exact",
    ),
)
