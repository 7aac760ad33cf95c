"""Tree maths on gradient pytrees: global inner products and norms, accumulated in float32.

Every function works leaf by leaf with ``jax.tree.map`` and a per-leaf ``jnp.sum(a * b)``: no ``ravel_pytree``
(a concatenation inside jit costs a full extra copy), and no ``jnp.vdot`` (it fails on arrays sharded over
explicit mesh axes). The per-leaf partial sums are added in float32, so bfloat16 or float16 leaves do not lose
the reduction to their short mantissa.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any

ACCUMULATION_DTYPE = jnp.float32


def _path_str(path) -> str:
    return jax.tree_util.keystr(path) or "<root>"


def check_same_structure(reference: PyTree, other: PyTree, *, names: tuple[str, str] = ("a", "b")) -> None:
    """Raise ``ValueError`` naming the first path where two pytrees differ in structure or leaf shape.

    Runs at trace time (shapes are static), so it costs nothing inside ``jax.jit``.
    """
    ref_leaves, ref_def = jax.tree_util.tree_flatten_with_path(reference)
    other_leaves, other_def = jax.tree_util.tree_flatten_with_path(other)
    ref_paths = [_path_str(p) for p, _ in ref_leaves]
    other_paths = [_path_str(p) for p, _ in other_leaves]
    if ref_def != other_def:
        for ref_path, other_path in zip(ref_paths, other_paths, strict=False):
            if ref_path != other_path:
                raise ValueError(
                    f"{names[0]} and {names[1]} have different tree structures: first difference at leaf "
                    f"{ref_path} in {names[0]} vs {other_path} in {names[1]}. Pass gradients of the same "
                    "parameter pytree (same keys, same nesting)."
                )
        shorter, longer = (names[0], names[1]) if len(ref_paths) < len(other_paths) else (names[1], names[0])
        extra = (other_paths if len(ref_paths) < len(other_paths) else ref_paths)[
            min(len(ref_paths), len(other_paths)) :
        ]
        first_extra = extra[0] if extra else "<container types differ>"
        raise ValueError(
            f"{names[0]} and {names[1]} have different tree structures ({len(ref_paths)} vs {len(other_paths)} "
            f"leaves): {longer} has leaf {first_extra} that {shorter} lacks. Pass gradients of the same "
            "parameter pytree."
        )
    for (path, ref_leaf), (_, other_leaf) in zip(ref_leaves, other_leaves, strict=True):
        if jnp.shape(ref_leaf) != jnp.shape(other_leaf):
            raise ValueError(
                f"{names[0]} and {names[1]} differ in shape at leaf {_path_str(path)}: "
                f"{jnp.shape(ref_leaf)} vs {jnp.shape(other_leaf)}. Both must be gradients of the same parameters."
            )


def tree_vdot(a: PyTree, b: PyTree) -> jax.Array:
    """Global inner product ⟨a, b⟩ = Σ_leaves Σ a·b, accumulated in float32 (shard-safe)."""
    partial_sums = jax.tree.map(lambda x, y: jnp.sum(x.astype(ACCUMULATION_DTYPE) * y.astype(ACCUMULATION_DTYPE)), a, b)
    return sum(jax.tree.leaves(partial_sums), jnp.zeros((), ACCUMULATION_DTYPE))


def tree_sq_norm(a: PyTree) -> jax.Array:
    """Squared global 2-norm ‖a‖², accumulated in float32."""
    partial_sums = jax.tree.map(lambda x: jnp.sum(jnp.square(x.astype(ACCUMULATION_DTYPE))), a)
    return sum(jax.tree.leaves(partial_sums), jnp.zeros((), ACCUMULATION_DTYPE))


def tree_norm(a: PyTree) -> jax.Array:
    """Global 2-norm ‖a‖ (float32)."""
    return jnp.sqrt(tree_sq_norm(a))


def tree_gram(a: PyTree, b: PyTree) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(‖a‖², ‖b‖², ⟨a, b⟩) in one pass over both trees, accumulated in float32.

    The three reductions of a leaf read the same two inputs, so XLA fuses them into one sweep over memory.
    """

    def leaf_sums(x, y):
        x32 = x.astype(ACCUMULATION_DTYPE)
        y32 = y.astype(ACCUMULATION_DTYPE)
        return jnp.stack([jnp.sum(x32 * x32), jnp.sum(y32 * y32), jnp.sum(x32 * y32)])

    sums = jax.tree.leaves(jax.tree.map(leaf_sums, a, b))
    total = sum(sums, jnp.zeros((3,), ACCUMULATION_DTYPE))
    return total[0], total[1], total[2]


def tree_axpby(alpha: jax.Array, x: PyTree, beta: jax.Array, y: PyTree) -> PyTree:
    """α·x + β·y per leaf, computed in float32 and cast back to each leaf of ``x``'s dtype."""
    return jax.tree.map(
        lambda u, v: (alpha * u.astype(ACCUMULATION_DTYPE) + beta * v.astype(ACCUMULATION_DTYPE)).astype(u.dtype),
        x,
        y,
    )


def tree_scale(alpha: jax.Array, x: PyTree) -> PyTree:
    """α·x per leaf, keeping each leaf's dtype."""
    return jax.tree.map(lambda u: (alpha * u.astype(ACCUMULATION_DTYPE)).astype(u.dtype), x)


def tree_add(x: PyTree, y: PyTree) -> PyTree:
    """x + y per leaf, in the dtype of ``x``'s leaves."""
    return jax.tree.map(lambda u, v: (u + v.astype(u.dtype)).astype(u.dtype), x, y)


def tree_mul(x: PyTree, mask: PyTree) -> PyTree:
    """x ⊙ mask per leaf (mask leaves may be bool or numeric), keeping ``x``'s dtypes."""
    return jax.tree.map(lambda u, m: (u * m.astype(u.dtype)).astype(u.dtype), x, mask)


def tree_zeros_like(x: PyTree) -> PyTree:
    """Zeros with the structure, shapes and dtypes of ``x``."""
    return jax.tree.map(jnp.zeros_like, x)


def tree_all_finite(x: PyTree) -> jax.Array:
    """True iff every element of every leaf is finite."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(x)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def tree_mean_over_axis(x: PyTree, axis_name: str | None) -> PyTree:
    """``lax.pmean`` of every leaf over a named mapped axis (``shard_map`` or ``pmap``); identity for None."""
    if axis_name is None:
        return x
    return jax.lax.pmean(x, axis_name=axis_name)
