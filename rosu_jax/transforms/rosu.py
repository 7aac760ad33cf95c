"""ROSU and UAM as Optax transformations (``GradientTransformationExtraArgs``), in the style of optax.contrib.sam.

One ROSU step (arXiv 2605.05871; the choices the paper leaves open are listed in the README):

    d = g_f − (⟨g_f, g_r⟩/‖g_r‖²) g_r,   δ = ρ d/‖d‖           (retain-orthogonal perturbation)
    g̃ = ∇L_r(θ + δ)                                          (surrogate retain gradient)
    θ ← θ + λ·δ + outer.update(g̃)                             (transported outer step + amplification)

UAM (Unlearning-Aware Minimization) is the same step with δ = ρ g_f/‖g_f‖ and λ = 0: ``uam(...)`` is
``rosu(..., project=False, amplification=0.0)``.

Calling convention (the "opaque" mode of ``optax.contrib.sam``): the incoming ``updates`` are the **forget
gradient** g_f at θ; the retain gradient at θ comes as the keyword ``retain_grads`` and the surrogate gradient
from the keyword ``retain_grad_fn(params) -> grads``, which the transformation calls once at θ + δ:

>>> import jax, jax.numpy as jnp, optax, rosu_jax
>>> params = {"w": jnp.array([1.0, -2.0])}
>>> forget_loss = lambda p: jnp.sum(p["w"] ** 2)          # the loss to raise
>>> retain_loss = lambda p: jnp.sum((p["w"] - 1.0) ** 2)  # the loss to keep low
>>> opt = rosu_jax.rosu(optax.sgd(0.1), rho=0.5, amplification=0.05)
>>> state = opt.init(params)
>>> updates, state = opt.update(
...     jax.grad(forget_loss)(params), state, params,
...     retain_grads=jax.grad(retain_loss)(params),
...     retain_grad_fn=jax.grad(retain_loss),
... )
>>> params = optax.apply_updates(params, updates)
>>> round(float(state.diagnostics.coupling), 4)  # κ = cos(g_f, g_r) = 24 / (√20 · 6)
0.8944
>>> float(state.diagnostics.predicted_retain_change)  # ⟨g_r, δ⟩: zero by construction
0.0

The returned updates are λ·δ + U in each parameter's dtype, ready for ``optax.apply_updates``. The transformation
chains with ``optax.chain``: transformations before it see g_f, those after it see the final update.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rosu_jax.core.perturbation import DEFAULT_EPS, PerturbationDiagnostics, perturbation_with_diagnostics
from rosu_jax.core.tree_math import (
    ACCUMULATION_DTYPE,
    PyTree,
    check_same_structure,
    tree_add,
    tree_mean_over_axis,
    tree_mul,
    tree_zeros_like,
)
from rosu_jax.core.types import ScalarOrSchedule

# The default amplification λ and radius ρ, from the project's ablation on digits (benchmarks/ablation_lambda.py,
# table in benchmarks/results/ablation.md; small CNN, 5 epochs, lr 0.1, seeds 0-4, Avg.Gap mean ± std): λ = 0 does
# not forget a class (UA 22%, Avg.Gap 24.4 ± 6.7); λ = 0.05 at ρ = 0.5 forgets it on every seed (UA 100, Avg.Gap
# 1.49 ± 1.29 class-wise, 3.10 ± 1.60 random); λ >= 0.1 collapses random forgetting (paired +36 [+13, +60]).
# ρ = 0.2 and λ = 0.02 are as good within the seeds' spread (ρ = 0.2 minus the default, paired: −0.74 [−1.49, 0.00]
# class-wise, −0.99 [−4.55, +2.57] random), so the default stays; tune λ·ρ on your model (--tune).
DEFAULT_RHO = 0.5
DEFAULT_AMPLIFICATION = 0.05


class RosuDiagnostics(
    collections.namedtuple(
        "RosuDiagnostics", (*PerturbationDiagnostics._fields, "rho", "amplification", "surrogate_retain_increase")
    )
):
    """Per-step diagnostics kept in the state (float32 scalars): the fields of ``PerturbationDiagnostics``
    (coupling, norms, neutral fraction, predicted first-order retain changes, ‖δ‖), plus

    rho, amplification: the values used this step (after schedules).
    surrogate_retain_increase: L_r(θ+δ) − L_r(θ), measured only when ``retain_loss_fn`` is passed (else NaN).
    """

    __slots__ = ()

    @classmethod
    def initial(cls) -> RosuDiagnostics:
        zero = jnp.zeros((), ACCUMULATION_DTYPE)
        values = dict.fromkeys(cls._fields, zero)
        values["surrogate_retain_increase"] = jnp.full((), jnp.nan, ACCUMULATION_DTYPE)
        return cls(**values)


class RosuState(NamedTuple):
    """State of ``rosu``.

    count: number of updates made (drives the ρ and λ schedules).
    outer_state: the outer optimizer's state.
    lagged_retain_grads: the previous step's surrogate gradient g̃ (lagged mode only, else None).
    diagnostics: the geometry of the last step.
    """

    count: jax.Array
    outer_state: optax.OptState
    lagged_retain_grads: PyTree | None
    diagnostics: RosuDiagnostics


def _validate_scalar_or_schedule(name: str, value: Any, *, allow_zero: bool) -> None:
    if callable(value):
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a float or a schedule (callable of the step count), got {value!r}.") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")


def _evaluate(value: ScalarOrSchedule, count: jax.Array) -> jax.Array:
    return jnp.asarray(value(count) if callable(value) else value, ACCUMULATION_DTYPE)


def rosu(
    outer_optimizer: optax.GradientTransformation,
    rho: ScalarOrSchedule = DEFAULT_RHO,
    amplification: ScalarOrSchedule = DEFAULT_AMPLIFICATION,
    *,
    project: bool = True,
    lagged: bool = False,
    axis_name: str | None = None,
    eps: float = DEFAULT_EPS,
) -> optax.GradientTransformationExtraArgs:
    """Retain-Orthogonal Surrogate Unlearning (ROSU; arXiv 2605.05871) as an Optax transformation.

    Args:
      outer_optimizer: any Optax optimizer; it receives the surrogate retain gradient g̃ = ∇L_r(θ + δ) and its
        update U is applied at θ ("transported" outer step).
      rho: perturbation radius ρ > 0, or a schedule ``count -> ρ`` (``rosu_jax.transforms.schedules.cosine_decay``).
      amplification: λ ≥ 0 (or a schedule): θ also moves by λ·δ, along the retain-neutral direction, which is
        what makes forgetting advance; λ = 0 is the pure transported step (which, in our ablation, does not
        forget).
      project: True for ROSU's retain-orthogonal δ; False for the unconstrained min-max δ = ρ g_f/‖g_f‖ (UAM).
      lagged: use the previous step's surrogate gradient g̃ as g_r, so a step costs two gradient evaluations
        (as UAM). The first lagged step has no g̃ yet and takes the UAM direction. ``retain_grads`` is ignored.
      axis_name: name of a mapped axis (``shard_map``/``pmap``) over which g_f, g_r and g̃ are averaged
        before they are used: projecting per replica and averaging afterwards would give a different vector.
      eps: degeneracy threshold of the projection (see ``retain_orthogonal_perturbation``).

    Update extra args (keyword-only):
      retain_grad_fn: ``params -> grads`` of the retain loss; called once, at θ + δ. Required.
      retain_grads: ∇L_r(θ). Required with ``project=True`` unless ``lagged``.
      mask: optional pytree of 0/1 (or bool) leaves: the projection runs inside the masked subspace and the
        final update is masked, so momentum or weight decay never move masked-out weights.
      retain_loss_fn: optional ``params -> scalar``; if given, L_r(θ + δ) − L_r(θ) is measured (two extra
        forward passes) and stored in ``state.diagnostics.surrogate_retain_increase``.
    """
    _validate_scalar_or_schedule("rho", rho, allow_zero=False)
    _validate_scalar_or_schedule("amplification", amplification, allow_zero=True)
    if not isinstance(outer_optimizer, optax.GradientTransformation):
        raise ValueError(
            f"outer_optimizer must be an optax.GradientTransformation (e.g. optax.sgd(0.01)), got {outer_optimizer!r}."
        )
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}.")
    outer = optax.with_extra_args_support(outer_optimizer)

    def init_fn(params: optax.Params) -> RosuState:
        return RosuState(
            count=jnp.zeros((), jnp.int32),
            outer_state=outer.init(params),
            lagged_retain_grads=tree_zeros_like(params) if lagged else None,
            diagnostics=RosuDiagnostics.initial(),
        )

    def update_fn(
        updates: optax.Updates,
        state: RosuState,
        params: optax.Params | None = None,
        *,
        retain_grad_fn: Callable[[optax.Params], optax.Updates] | None = None,
        retain_grads: optax.Updates | None = None,
        mask: PyTree | None = None,
        retain_loss_fn: Callable[[optax.Params], jax.Array] | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, RosuState]:
        del extra_args
        if params is None:
            raise ValueError("rosu needs params: call opt.update(forget_grads, state, params, ...).")
        if retain_grad_fn is None:
            raise ValueError(
                "rosu needs retain_grad_fn=<params -> retain gradient>: it evaluates the retain gradient at the "
                "surrogate point θ + δ (e.g. retain_grad_fn=jax.grad(retain_loss))."
            )
        forget_grads = updates
        check_same_structure(params, forget_grads, names=("params", "forget_grads"))
        if lagged:
            retain_at_theta = state.lagged_retain_grads
        elif project:
            if retain_grads is None:
                raise ValueError(
                    "rosu with project=True needs retain_grads=<∇L_r(θ)> (or lagged=True to reuse the previous "
                    "surrogate gradient)."
                )
            retain_at_theta = tree_mean_over_axis(retain_grads, axis_name)
        else:
            retain_at_theta = None if retain_grads is None else tree_mean_over_axis(retain_grads, axis_name)
        if retain_at_theta is not None:
            check_same_structure(params, retain_at_theta, names=("params", "retain_grads"))

        forget_grads = tree_mean_over_axis(forget_grads, axis_name)
        if mask is not None:
            check_same_structure(params, mask, names=("params", "mask"))
            forget_grads = tree_mul(forget_grads, mask)
            if retain_at_theta is not None:
                retain_at_theta = tree_mul(retain_at_theta, mask)

        rho_t = _evaluate(rho, state.count)
        lam_t = _evaluate(amplification, state.count)
        delta, geometry = perturbation_with_diagnostics(forget_grads, retain_at_theta, rho_t, project=project, eps=eps)
        delta = jax.tree.map(lambda d, p: d.astype(p.dtype), delta, params)
        surrogate_params = tree_add(params, delta)
        surrogate_grads = tree_mean_over_axis(retain_grad_fn(surrogate_params), axis_name)
        check_same_structure(params, surrogate_grads, names=("params", "retain_grad_fn(params)"))
        if mask is not None:
            surrogate_grads = tree_mul(surrogate_grads, mask)

        outer_updates, outer_state = outer.update(surrogate_grads, state.outer_state, params)
        new_updates = jax.tree.map(
            lambda u, d, p: (u.astype(ACCUMULATION_DTYPE) + lam_t * d.astype(ACCUMULATION_DTYPE)).astype(p.dtype),
            outer_updates,
            delta,
            params,
        )
        if mask is not None:
            new_updates = tree_mul(new_updates, mask)

        if retain_loss_fn is not None:
            increase = (retain_loss_fn(surrogate_params) - retain_loss_fn(params)).astype(ACCUMULATION_DTYPE)
            if axis_name is not None:
                increase = jax.lax.pmean(increase, axis_name)
        else:
            increase = jnp.full((), jnp.nan, ACCUMULATION_DTYPE)
        diagnostics = RosuDiagnostics(
            **geometry._asdict(), rho=rho_t, amplification=lam_t, surrogate_retain_increase=increase
        )
        new_state = RosuState(
            count=optax.safe_increment(state.count),
            outer_state=outer_state,
            lagged_retain_grads=surrogate_grads if lagged else None,
            diagnostics=diagnostics,
        )
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def uam(
    outer_optimizer: optax.GradientTransformation,
    rho: ScalarOrSchedule = DEFAULT_RHO,
    amplification: ScalarOrSchedule = 0.0,
    *,
    axis_name: str | None = None,
    eps: float = DEFAULT_EPS,
) -> optax.GradientTransformationExtraArgs:
    """Unlearning-Aware Minimization (the standard min-max step): δ = ρ g_f/‖g_f‖, g̃ = ∇L_r(θ+δ), θ ← θ + U.

    Exactly ``rosu(outer_optimizer, rho, amplification, project=False)``; ``amplification`` defaults to 0 (UAM as
    published). A non-zero λ gives the "UAM with ROSU's λ" ablation that isolates what the projection buys.
    ``retain_grads`` is optional: when given, the coupling and UAM's first-order retain change are reported.

    >>> import jax, jax.numpy as jnp, optax
    >>> opt = uam(optax.sgd(0.1), rho=0.5)
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> retain_grad_fn = jax.grad(lambda p: jnp.sum((p["w"] - 1.0) ** 2))
    >>> updates, state = opt.update(params, opt.init(params), params, retain_grad_fn=retain_grad_fn)
    >>> [round(u, 2) for u in updates["w"].tolist()]  # −lr · ∇L_r(θ + 0.5 g_f/‖g_f‖)
    [-0.46, -0.68]
    """
    return rosu(outer_optimizer, rho, amplification, project=False, axis_name=axis_name, eps=eps)


__all__ = [
    "DEFAULT_AMPLIFICATION",
    "DEFAULT_RHO",
    "RosuDiagnostics",
    "RosuState",
    "rosu",
    "uam",
]
