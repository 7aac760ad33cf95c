"""Gradient recipes of the classic unlearning baselines, in the same shape as ``rosu``.

Every transformation here is a ``GradientTransformationExtraArgs`` whose ``update`` takes the forget gradient
as ``updates`` and the retain gradient as the keyword ``retain_grads`` (either may be unused), so a loop can swap
methods without rewiring:

    fine_tune        U = opt(g_r)                                  (FT)
    gradient_ascent  U = opt(−g_f)                                 (GA)
    neggrad_plus     U = opt(α·g_r − (1 − α)·g_f)                  (NegGrad+, Kurmanji et al. 2023)
    l1_sparse        U = opt(g_r + γ_t·sign(θ))                    (l1-sparse, Jia et al. 2023)

``saliency_mask`` builds SalUn's weight-saliency mask (Fan et al. 2024); pass the mask to ``masked_updates`` (or
to ``rosu(...).update(mask=...)``) so that the final update, not only the gradient, is masked.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from rosu_jax.core.tree_math import ACCUMULATION_DTYPE, PyTree, check_same_structure, tree_mul
from rosu_jax.core.types import ScalarOrSchedule


def _combine(
    optimizer: optax.GradientTransformation,
    combine: Callable[[PyTree | None, PyTree | None, PyTree, jax.Array], PyTree],
    needs: tuple[str, ...],
) -> optax.GradientTransformationExtraArgs:
    """Wrap ``optimizer`` so that its gradient is ``combine(g_f, g_r, params, count)``."""
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation, got {optimizer!r}.")
    inner = optax.with_extra_args_support(optimizer)

    def init_fn(params):
        return (jnp.zeros((), jnp.int32), inner.init(params))

    def update_fn(updates, state, params=None, *, retain_grads=None, **extra_args):
        del extra_args
        count, inner_state = state
        if "forget" in needs and updates is None:
            raise ValueError("this method needs the forget gradient as `updates`.")
        if "retain" in needs and retain_grads is None:
            raise ValueError("this method needs retain_grads=<gradient of the retain loss>.")
        if "params" in needs and params is None:
            raise ValueError("this method needs params.")
        if updates is not None and retain_grads is not None:
            check_same_structure(updates, retain_grads, names=("forget_grads", "retain_grads"))
        grads = combine(updates, retain_grads, params, count)
        new_updates, inner_state = inner.update(grads, inner_state, params)
        return new_updates, (optax.safe_increment(count), inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def fine_tune(optimizer: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """FT: descend the retain loss only (catastrophic-forgetting baseline)."""
    return _combine(optimizer, lambda gf, gr, p, t: gr, ("retain",))


def gradient_ascent(optimizer: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """GA: ascend the forget loss only."""
    return _combine(optimizer, lambda gf, gr, p, t: jax.tree.map(jnp.negative, gf), ("forget",))


def neggrad_plus(
    optimizer: optax.GradientTransformation, retain_weight: float = 0.99
) -> optax.GradientTransformationExtraArgs:
    """NegGrad+: descend α·L_r − (1 − α)·L_f, α = ``retain_weight`` in [0, 1]."""
    if not 0.0 <= retain_weight <= 1.0:
        raise ValueError(f"retain_weight must be in [0, 1], got {retain_weight!r}.")
    alpha = retain_weight
    return _combine(
        optimizer,
        lambda gf, gr, p, t: jax.tree.map(
            lambda f, r: (alpha * r.astype(ACCUMULATION_DTYPE) - (1 - alpha) * f.astype(ACCUMULATION_DTYPE)).astype(
                r.dtype
            ),
            gf,
            gr,
        ),
        ("forget", "retain"),
    )


def l1_sparse(
    optimizer: optax.GradientTransformation, l1_weight: ScalarOrSchedule = 5e-4
) -> optax.GradientTransformationExtraArgs:
    """l1-sparse: descend L_r + γ_t‖θ‖₁ (subgradient γ_t·sign θ); γ may be a schedule (the paper decays it)."""
    if not callable(l1_weight) and not float(l1_weight) >= 0:
        raise ValueError(f"l1_weight must be >= 0 or a schedule, got {l1_weight!r}.")

    def combine(gf, gr, params, count):
        gamma = jnp.asarray(l1_weight(count) if callable(l1_weight) else l1_weight, ACCUMULATION_DTYPE)
        return jax.tree.map(
            lambda g, p: (g.astype(ACCUMULATION_DTYPE) + gamma * jnp.sign(p).astype(ACCUMULATION_DTYPE)).astype(
                g.dtype
            ),
            gr,
            params,
        )

    return _combine(optimizer, combine, ("retain", "params"))


def saliency_mask(forget_grads: PyTree, fraction: float = 0.5) -> PyTree:
    """SalUn's mask: 1 for the ``fraction`` of weights with the largest |∇L_f| (one global threshold), else 0.

    A one-off host-side computation at the start of a run (it sorts all |g| once), not a per-step cost.

    >>> import jax.numpy as jnp
    >>> saliency_mask({"w": jnp.array([0.1, -3.0, 2.0, 0.0])}, fraction=0.5)["w"].tolist()
    [0.0, 1.0, 1.0, 0.0]
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}.")
    magnitudes = jnp.concatenate([jnp.abs(g).astype(ACCUMULATION_DTYPE).ravel() for g in jax.tree.leaves(forget_grads)])
    threshold = jnp.quantile(magnitudes, 1.0 - fraction)
    return jax.tree.map(lambda g: (jnp.abs(g).astype(ACCUMULATION_DTYPE) >= threshold).astype(g.dtype), forget_grads)


def masked_updates(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """Mask the gradient *and* the final update with the extra arg ``mask`` (so momentum and weight decay cannot
    move masked-out weights). Without ``mask`` it is ``inner`` unchanged.

    >>> import jax.numpy as jnp
    >>> from rosu_jax.transforms.optimizers import make_optimizer
    >>> opt = masked_updates(make_optimizer("adamw", 0.1, total_steps=10, weight_decay=0.5))
    >>> params = {"w": jnp.ones(2)}
    >>> updates, _ = opt.update({"w": jnp.ones(2)}, opt.init(params), params, mask={"w": jnp.array([1.0, 0.0])})
    >>> bool(updates["w"][1] == 0.0)  # neither the gradient nor the decay moves the masked weight
    True
    """
    inner = optax.with_extra_args_support(inner)

    def update_fn(updates, state, params=None, *, mask=None, retain_grads=None, **extra_args):
        if mask is not None:
            updates = None if updates is None else tree_mul(updates, mask)
            retain_grads = None if retain_grads is None else tree_mul(retain_grads, mask)
        new_updates, state = inner.update(updates, state, params, retain_grads=retain_grads, **extra_args)
        if mask is not None:
            new_updates = tree_mul(new_updates, mask)
        return new_updates, state

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)
