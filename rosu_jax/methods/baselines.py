"""The classic unlearning baselines, declared once each: FT, GA, NegGrad+, RL, l1-sparse, SalUn, SCRUB.

References: FT / GA / RL (the standard baselines of Jia et al., "Model Sparsity Can Simplify Machine Unlearning",
NeurIPS 2023, which also gives l1-sparse); NegGrad+ and SCRUB (Kurmanji et al., "Towards Unbounded Machine
Unlearning", NeurIPS 2023); SalUn (Fan et al., ICLR 2024).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from rosu_jax.methods.base import ExtrasContext, Method, OptimizerSettings, hyper
from rosu_jax.steps import make_distill_step, make_objective_step, make_recipe_step
from rosu_jax.transforms.recipes import fine_tune, gradient_ascent, l1_sparse, neggrad_plus, saliency_mask
from rosu_jax.transforms.schedules import linear


@dataclasses.dataclass(frozen=True)
class NegGradPlusSettings(OptimizerSettings):
    retain_weight: float = hyper(0.99, "α: weight of the retain loss; the forget loss gets 1 − α", low=0.0)


@dataclasses.dataclass(frozen=True)
class L1Settings(OptimizerSettings):
    l1_weight: float = hyper(5e-4, "γ: weight of the l1 penalty, decayed linearly to 0 over the run", low=0.0)


@dataclasses.dataclass(frozen=True)
class SalUnSettings(OptimizerSettings):
    saliency_fraction: float = hyper(
        0.5, "share of the weights (largest |∇L_f|) that may change", low=0.0, low_open=True
    )


@dataclasses.dataclass(frozen=True)
class ScrubSettings(OptimizerSettings):
    kl_weight: float = hyper(1.0, "α: weight of the distillation term on retain data", low=0.0)
    ce_weight: float = hyper(1.0, "γ: weight of the supervised term on retain data", low=0.0)
    temperature: float = hyper(4.0, "distillation temperature", low=0.0, low_open=True)
    max_fraction: float = hyper(0.5, "share of the steps that also make the max sub-step on forget data", low=0.0)


def _relabel_objective(terms):
    relabel, retain = terms["relabel"], terms["retain"]

    def objective(params, model_state, forget_batch, retain_batch, key, extras):
        loss_f, _ = relabel(params, model_state, forget_batch, key)
        loss_r, new_state = retain(params, model_state, retain_batch, key)
        return loss_f + loss_r, (new_state, {"random_label_loss": loss_f, "retain_loss": loss_r})

    return objective


@functools.lru_cache(maxsize=16)
def _forget_grad_fn(forget_loss):
    return jax.jit(jax.grad(lambda params, model_state, batch: forget_loss(params, model_state, batch, None)[0]))


def _saliency(ctx: ExtrasContext, settings: SalUnSettings):
    """SalUn's mask from Σ over the forget batches of ∇L_f at the original weights."""
    grad_fn = _forget_grad_fn(ctx.terms["forget"])
    total = jax.tree.map(jnp.zeros_like, ctx.params)
    for batch in ctx.forget_batches():
        total = jax.tree.map(jnp.add, total, grad_fn(ctx.params, ctx.model_state, batch))
    return {"mask": saliency_mask(total, settings.saliency_fraction)}


def _teacher(ctx: ExtrasContext, settings: ScrubSettings):
    return {"teacher_params": ctx.params, "teacher_model_state": ctx.model_state}


def _scrub(terms, s: ScrubSettings, total_steps):
    return make_distill_step(
        terms["outputs"],
        functools.partial(terms["divergence"], temperature=s.temperature),
        terms["supervised"],
        s.make_optimizer(total_steps),
        divergence_weight=s.kl_weight,
        supervised_weight=s.ce_weight,
        max_steps=int(s.max_fraction * total_steps),
    )


RETAIN = frozenset({"retain"})
FORGET = frozenset({"forget"})
RELABEL = frozenset({"relabel", "retain"})

DECLARED = (
    Method(
        "FT",
        "fine-tune on the retain set",
        OptimizerSettings,
        lambda t, s, n: make_recipe_step(None, t["retain"], fine_tune(s.make_optimizer(n))),
        requires=RETAIN,
    ),
    Method(
        "GA",
        "gradient ascent on the forget set",
        OptimizerSettings,
        lambda t, s, n: make_recipe_step(t["forget"], None, gradient_ascent(s.make_optimizer(n))),
        requires=FORGET,
    ),
    Method(
        "NegGrad+",
        "descend α·L_r − (1−α)·L_f",
        NegGradPlusSettings,
        lambda t, s, n: make_recipe_step(t["forget"], t["retain"], neggrad_plus(s.make_optimizer(n), s.retain_weight)),
    ),
    Method(
        "RL",
        "random wrong labels on the forget set, plus the retain loss",
        OptimizerSettings,
        lambda t, s, n: make_objective_step(_relabel_objective(t), s.make_optimizer(n)),
        requires=RELABEL,
    ),
    Method(
        "l1-sparse",
        "fine-tune with a linearly decaying l1 penalty",
        L1Settings,
        lambda t, s, n: make_recipe_step(
            None, t["retain"], l1_sparse(s.make_optimizer(n), linear(s.l1_weight, 0.0, max(n, 1)))
        ),
        requires=RETAIN,
    ),
    Method(
        "SalUn",
        "RL restricted to the most salient weights (|∇L_f|); the final update is masked",
        SalUnSettings,
        lambda t, s, n: make_objective_step(_relabel_objective(t), s.make_optimizer(n)),
        requires=RELABEL | FORGET,
        extras=_saliency,
    ),
    Method(
        "SCRUB",
        "teacher-student distillation: max step on forget, min step on retain",
        ScrubSettings,
        _scrub,
        requires=frozenset({"outputs", "divergence", "supervised"}),
        extras=_teacher,
    ),
)
