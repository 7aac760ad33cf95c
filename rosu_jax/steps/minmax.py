"""The one-call jitted min-max unlearning step: ROSU, UAM, and their ablations.

``make_rosu_step(forget_loss_fn, retain_loss_fn, outer_optimizer, ...)`` returns a ``Stepper``. One call of its
``step(state, forget_batch, retain_batch, key)`` computes, inside one ``jax.jit``:

    g_f = ∇L_f(θ; B_f),  g_r = ∇L_r(θ; B_r),  δ (ROSU or UAM),  g̃ = ∇L_r(θ + δ; B_r),
    θ ← θ + λ·δ + outer.update(g̃),

and returns the new state plus the diagnostics of the spec (coupling κ, ‖g_f‖, ‖g_r‖, ‖d‖/‖g_f‖, the predicted
first-order retain change of UAM and of the step taken, the losses, and on request the measured surrogate
retain increase L_r(θ+δ) − L_r(θ)).

Model state (BatchNorm running statistics) is taken from the retain forward pass at θ; the forget pass and the
surrogate pass never update it. In lagged mode (and so in the published two-gradient UAM) no retain *gradient* is
taken at θ, but a forward-only retain pass at θ still updates the statistics (measured on digits: statistics
left frozen, or taken from the surrogate point θ + δ, drop UAM's retain accuracy from 99% to ~29%, because
eval-mode normalisation then no longer matches the moved weights). For a model without such state the pass has
no output and XLA removes it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from rosu_jax.core.perturbation import DEFAULT_EPS, coupling
from rosu_jax.core.tree_math import tree_all_finite, tree_norm
from rosu_jax.core.types import PyTree, ScalarOrSchedule
from rosu_jax.steps.state import LossFn, Stepper, UnlearnState, bind_extras, maybe_jit
from rosu_jax.transforms.rosu import DEFAULT_AMPLIFICATION, DEFAULT_RHO, rosu


def _after(grads: PyTree, batch: PyTree) -> PyTree:
    """``batch`` unchanged in value, but data-dependent on every leaf of ``grads``.

    The forget and retain gradients at θ are independent, so XLA may run both passes at once and keep both sets
    of activations alive: measured on ResNet-18 (batch 64), a fresh ROSU step needed 904 MiB of temporaries
    against UAM's 470 MiB. Making the retain batch depend on all of g_f (through an exact zero that stays 0 for
    NaN/inf gradients too) orders the passes: 445 MiB for the two gradients, the same as one.
    (``lax.optimization_barrier`` on (params, g_f) did not change XLA's CPU schedule.)
    """
    total = sum((leaf.ravel()[0].astype(jnp.float32) for leaf in jax.tree.leaves(grads)), jnp.zeros((), jnp.float32))
    zero = jnp.where(jnp.isfinite(total), total, 0.0) * 0.0
    return jax.tree.map(
        lambda x: x + zero.astype(x.dtype) if jnp.issubdtype(jnp.result_type(x), jnp.number) else x, batch
    )


def make_rosu_step(
    forget_loss_fn: LossFn,
    retain_loss_fn: LossFn,
    outer_optimizer: optax.GradientTransformation,
    *,
    rho: ScalarOrSchedule = DEFAULT_RHO,
    amplification: ScalarOrSchedule = DEFAULT_AMPLIFICATION,
    project: bool = True,
    lagged: bool = False,
    measure_surrogate: bool = False,
    forget_sign: float = 1.0,
    surrogate_objective: Callable | None = None,
    eps: float = DEFAULT_EPS,
    jit: bool = True,
) -> Stepper:
    """Build ROSU's jitted step (``project=False`` gives the UAM step, λ = 0 the pure transported step).

    Args:
      forget_loss_fn: ``(params, model_state, batch, key) -> (loss, model_state)``, the loss whose *increase*
        is forgetting (e.g. cross-entropy on the forget batch).
      retain_loss_fn: same signature, the loss to keep low on the retain batch.
      outer_optimizer: any Optax optimizer (e.g. ``optax.sgd(0.01, momentum=0.9)``).
      rho, amplification, project, lagged, eps: see ``rosu_jax.rosu``.
      measure_surrogate: also measure L_r(θ+δ) − L_r(θ) each step (one extra forward pass).
      forget_sign: +1 when forgetting means raising ``forget_loss_fn`` (the spec's convention).
      surrogate_objective: ``(params, model_state, forget_batch, retain_batch, key, extras) -> (loss, aux)``: the
        outer gradient is this whole objective's at θ + δ instead of L_r's (ROSU wrapping GradDiff, NPO or
        RMU); one more batch in the outer gradient, so a step costs four batch-gradients.
      jit: wrap ``step`` in ``jax.jit`` (set False to compose it inside your own jitted or sharded function).

    >>> import jax, jax.numpy as jnp, optax
    >>> def loss(params, model_state, batch, key):  # squared error of a linear model
    ...     return jnp.mean((batch["x"] @ params["w"] - batch["y"]) ** 2), model_state
    >>> stepper = make_rosu_step(loss, loss, optax.sgd(0.05), rho=0.1, amplification=0.05)
    >>> state = stepper.init({"w": jnp.zeros(2)})
    >>> forget = {"x": jnp.array([[1.0, 0.0]]), "y": jnp.array([1.0])}
    >>> retain = {"x": jnp.array([[1.0, 1.0], [0.0, 1.0]]), "y": jnp.array([2.0, 1.0])}
    >>> for _ in range(3):
    ...     state, metrics = stepper.step(state, forget, retain, jax.random.key(0))
    >>> int(state.step), bool(metrics["forget_loss"] > 0), round(float(metrics["predicted_retain_change"]), 6)
    (3, True, 0.0)
    """
    if forget_sign not in (1.0, -1.0):
        raise ValueError(f"forget_sign must be +1.0 or -1.0, got {forget_sign!r}.")
    forget_term, retain_term = forget_loss_fn, retain_loss_fn
    transformation = rosu(outer_optimizer, rho, amplification, project=project, lagged=lagged, eps=eps)

    def init(params: PyTree, model_state: PyTree | None = None, extras: PyTree = None) -> UnlearnState:
        return UnlearnState(
            params=params,
            model_state={} if model_state is None else model_state,
            opt_state=transformation.init(params),
            step=jnp.zeros((), jnp.int32),
            extras=extras,
        )

    def step(state: UnlearnState, forget_batch, retain_batch, key: jax.Array):
        forget_key, retain_key = jax.random.split(key)
        model_state = state.model_state
        forget_loss_fn, retain_loss_fn = bind_extras(forget_term, state.extras), bind_extras(retain_term, state.extras)

        def forget_objective(p):
            loss, _ = forget_loss_fn(p, model_state, forget_batch, forget_key)
            return forget_sign * loss

        def retain_objective(p):
            loss, _ = retain_loss_fn(p, model_state, retain_batch, retain_key)
            return loss

        def outer_objective(p):
            loss, _ = surrogate_objective(p, model_state, forget_batch, retain_batch, retain_key, state.extras)
            return loss

        forget_loss, forget_grads = jax.value_and_grad(forget_objective)(state.params)
        if lagged:
            # No retain gradient at θ; the model state (BatchNorm statistics) still comes from a retain forward
            # pass at θ: one forward, not a gradient. XLA drops it when the model state does not change.
            retain_loss, retain_grads = jnp.full((), jnp.nan), None
            _, new_model_state = retain_loss_fn(
                state.params, model_state, _after(forget_grads, retain_batch), retain_key
            )
        else:
            retain_batch_after = _after(forget_grads, retain_batch)
            (retain_loss, new_model_state), retain_grads = jax.value_and_grad(
                lambda p: retain_loss_fn(p, model_state, retain_batch_after, retain_key), has_aux=True
            )(state.params)

        updates, opt_state = transformation.update(
            forget_grads,
            state.opt_state,
            state.params,
            retain_grads=retain_grads,
            retain_grad_fn=jax.grad(retain_objective if surrogate_objective is None else outer_objective),
            retain_loss_fn=retain_objective if measure_surrogate else None,
            mask=state.mask,
        )
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "forget_loss": forget_sign * forget_loss,
            "retain_loss": retain_loss,
            "all_finite": tree_all_finite(params),
            **opt_state.diagnostics._asdict(),
        }
        new_state = UnlearnState(params, new_model_state, opt_state, state.step + 1, state.extras)
        return new_state, metrics

    gradient_evaluations = (2 if lagged else 3) + (surrogate_objective is not None)
    return Stepper(init=init, step=maybe_jit(step, jit), gradient_evaluations=gradient_evaluations)


def make_uam_step(
    forget_loss_fn: LossFn,
    retain_loss_fn: LossFn,
    outer_optimizer: optax.GradientTransformation,
    *,
    rho: ScalarOrSchedule = DEFAULT_RHO,
    amplification: ScalarOrSchedule = 0.0,
    report_coupling: bool = False,
    measure_surrogate: bool = False,
    eps: float = DEFAULT_EPS,
    jit: bool = True,
) -> Stepper:
    """The standard min-max (UAM) step: δ = ρ g_f/‖g_f‖, g̃ = ∇L_r(θ+δ), θ ← θ + λ·δ + outer.update(g̃).

    Without ``report_coupling`` a step costs two gradients (as published); κ is then reported against the
    previous step's surrogate gradient (use ``make_coupling_probe`` for the κ at θ outside the step), and the model
    state comes from a forward-only retain pass at θ.
    With ``report_coupling`` it also takes g_r at θ (three gradients): the exact κ and UAM's first-order retain
    change are reported and the model state is updated from the retain pass at θ, exactly as ROSU's step does.
    """
    return make_rosu_step(
        forget_loss_fn,
        retain_loss_fn,
        outer_optimizer,
        rho=rho,
        amplification=amplification,
        project=False,
        lagged=not report_coupling,
        measure_surrogate=measure_surrogate,
        eps=eps,
        jit=jit,
    )


def make_coupling_probe(forget_loss_fn: LossFn, retain_loss_fn: LossFn, *, forget_sign: float = 1.0, jit: bool = True):
    """``probe(state, forget_batch, retain_batch, key) -> {"coupling", "forget_norm", "retain_norm"}`` at θ.

    For steps that do not compute g_r at θ (UAM as published: two gradients), the coupling κ = cos(g_f, g_r) is
    measured by this separate function, on a sample of steps and outside the timed step, with the same batches
    and the same key split as the step itself.
    """
    forget_term, retain_term = forget_loss_fn, retain_loss_fn

    def probe(state: UnlearnState, forget_batch, retain_batch, key: jax.Array):
        forget_key, retain_key = jax.random.split(key)
        model_state = state.model_state
        forget_loss_fn, retain_loss_fn = bind_extras(forget_term, state.extras), bind_extras(retain_term, state.extras)
        forget_grads = jax.grad(lambda p: forget_sign * forget_loss_fn(p, model_state, forget_batch, forget_key)[0])(
            state.params
        )
        retain_grads = jax.grad(lambda p: retain_loss_fn(p, model_state, retain_batch, retain_key)[0])(state.params)
        return {
            "coupling": coupling(forget_grads, retain_grads),
            "forget_norm": tree_norm(forget_grads),
            "retain_norm": tree_norm(retain_grads),
        }

    return maybe_jit(probe, jit)
