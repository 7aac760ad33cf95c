"""The one table of unlearning methods: name -> factory of a ``Stepper`` for a classifier.

Adding a method = writing its step and one entry in ``METHODS``; runs, reports and benchmarks pick it up.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import optax

from rosu_jax.steps.baselines import (
    make_ft_step,
    make_ga_step,
    make_l1_sparse_step,
    make_neggrad_plus_step,
    make_random_label_step,
    make_scrub_step,
)
from rosu_jax.steps.classifier import ApplyFn, forget_loss_fn, retain_loss_fn
from rosu_jax.steps.minmax import make_rosu_step
from rosu_jax.steps.state import PyTree, Stepper
from rosu_jax.transforms.recipes import saliency_mask
from rosu_jax.transforms.rosu import DEFAULT_AMPLIFICATION, DEFAULT_RHO
from rosu_jax.transforms.schedules import cosine_decay, linear


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """Hyperparameters of one unlearning run (fields a method does not use are ignored).

    lr, momentum, weight_decay, lr_schedule: the SGD optimizer every method uses ('constant' or 'cosine').
    rho, amplification, rho_schedule: ROSU/UAM (rho_schedule 'constant' or 'cosine' to 0, as UAM offers).
    retain_weight: NegGrad+'s α. l1_weight: l1-sparse's γ (decayed linearly to 0). saliency_fraction: SalUn.
    kl_weight, ce_weight, temperature, scrub_max_fraction: SCRUB (max sub-steps in the first fraction of steps).
    """

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "constant"
    rho: float = DEFAULT_RHO
    amplification: float = DEFAULT_AMPLIFICATION
    rho_schedule: str = "constant"
    retain_weight: float = 0.99
    l1_weight: float = 5e-4
    saliency_fraction: float = 0.5
    kl_weight: float = 1.0
    ce_weight: float = 1.0
    temperature: float = 4.0
    scrub_max_fraction: float = 0.5

    def __post_init__(self):
        for name in ("lr", "rho", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"MethodConfig.{name} must be > 0, got {getattr(self, name)!r}.")
        for name in ("momentum", "weight_decay", "amplification", "l1_weight", "kl_weight", "ce_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"MethodConfig.{name} must be >= 0, got {getattr(self, name)!r}.")
        for name in ("lr_schedule", "rho_schedule"):
            if getattr(self, name) not in ("constant", "cosine"):
                raise ValueError(f"MethodConfig.{name} must be 'constant' or 'cosine', got {getattr(self, name)!r}.")

    def replace(self, **changes) -> MethodConfig:
        return dataclasses.replace(self, **changes)


def _schedule(value: float, kind: str, total_steps: int):
    return cosine_decay(value, max(total_steps, 1)) if kind == "cosine" else value


def make_optimizer(config: MethodConfig, total_steps: int) -> optax.GradientTransformation:
    """SGD with momentum; weight decay is added to the gradient (the PyTorch SGD convention)."""
    lr = _schedule(config.lr, config.lr_schedule, total_steps)
    parts = [optax.add_decayed_weights(config.weight_decay)] if config.weight_decay else []
    parts.append(optax.sgd(lr, momentum=config.momentum or None))
    return optax.chain(*parts)


def _minmax(project: bool, amplified: bool):
    def factory(apply_fn, num_classes, config, total_steps, *, jit=True):
        del num_classes
        return make_rosu_step(
            forget_loss_fn(apply_fn),
            retain_loss_fn(apply_fn),
            make_optimizer(config, total_steps),
            rho=_schedule(config.rho, config.rho_schedule, total_steps),
            amplification=config.amplification if amplified else 0.0,
            project=project,
            jit=jit,
        )

    return factory


def _recipe(make):
    def factory(apply_fn, num_classes, config, total_steps, *, jit=True):
        del num_classes
        return make(apply_fn, make_optimizer(config, total_steps), jit=jit)

    return factory


def _neggrad_plus(apply_fn, num_classes, config, total_steps, *, jit=True):
    return make_neggrad_plus_step(apply_fn, make_optimizer(config, total_steps), config.retain_weight, jit=jit)


def _l1(apply_fn, num_classes, config, total_steps, *, jit=True):
    gamma = linear(config.l1_weight, 0.0, max(total_steps, 1))
    return make_l1_sparse_step(apply_fn, make_optimizer(config, total_steps), gamma, jit=jit)


def _random_labels(apply_fn, num_classes, config, total_steps, *, jit=True):
    return make_random_label_step(apply_fn, make_optimizer(config, total_steps), num_classes, jit=jit)


def _scrub(apply_fn, num_classes, config, total_steps, *, jit=True):
    return make_scrub_step(
        apply_fn,
        make_optimizer(config, total_steps),
        kl_weight=config.kl_weight,
        ce_weight=config.ce_weight,
        temperature=config.temperature,
        max_steps=int(config.scrub_max_fraction * total_steps),
        jit=jit,
    )


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """factory(apply_fn, num_classes, config, total_steps, *, jit) -> Stepper; extras: what init needs."""

    factory: Callable[..., Stepper]
    description: str
    extras: str | None = None  # None, "teacher" or "saliency_mask"


METHODS: dict[str, MethodSpec] = {
    "FT": MethodSpec(_recipe(make_ft_step), "fine-tune on the retain set"),
    "GA": MethodSpec(_recipe(make_ga_step), "gradient ascent on the forget set"),
    "NegGrad+": MethodSpec(_neggrad_plus, "descend α·L_r − (1−α)·L_f"),
    "RL": MethodSpec(_random_labels, "random labels on the forget set, plus retain"),
    "l1-sparse": MethodSpec(_l1, "fine-tune with a decaying l1 penalty"),
    "SalUn": MethodSpec(_random_labels, "RL restricted to the top-saliency weights", extras="saliency_mask"),
    "SCRUB": MethodSpec(_scrub, "teacher-student max/min distillation", extras="teacher"),
    "UAM": MethodSpec(_minmax(project=False, amplified=False), "min-max step, δ = ρ g_f/‖g_f‖ (λ = 0)"),
    "UAM+λ": MethodSpec(_minmax(project=False, amplified=True), "UAM with ROSU's λ: projection off (ablation)"),
    "ROSU": MethodSpec(_minmax(project=True, amplified=True), "retain-orthogonal surrogate unlearning"),
}


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}.")
    return METHODS[name]


@functools.lru_cache(maxsize=32)
def _forget_grad_fn(apply_fn: ApplyFn):
    loss = forget_loss_fn(apply_fn)
    return jax.jit(jax.grad(lambda params, model_state, batch: loss(params, model_state, batch, None)[0]))


def forget_gradient_sum(
    apply_fn: ApplyFn, params: PyTree, model_state: PyTree, forget_batches: Iterable[dict]
) -> PyTree:
    """Σ over batches of ∇L_f (eval mode), for SalUn's saliency; compiled once per model and batch shape."""
    grad_fn = _forget_grad_fn(apply_fn)
    total = jax.tree.map(jnp.zeros_like, params)
    for batch in forget_batches:
        total = jax.tree.map(jnp.add, total, grad_fn(params, model_state, batch))
    return total


def method_extras(
    spec: MethodSpec,
    config: MethodConfig,
    apply_fn: ApplyFn,
    params: PyTree,
    model_state: PyTree,
    forget_batches: Callable[[], Iterable[dict]],
) -> PyTree:
    """What a method keeps in ``UnlearnState.extras``: SCRUB's teacher, SalUn's mask, or None."""
    if spec.extras == "teacher":
        return {"teacher_params": params, "teacher_model_state": model_state}
    if spec.extras == "saliency_mask":
        grads = forget_gradient_sum(apply_fn, params, model_state, forget_batches())
        return {"mask": saliency_mask(grads, config.saliency_fraction)}
    return None
