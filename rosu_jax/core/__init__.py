"""Layer 1: framework-free maths on gradient pytrees (no Flax, no data, no I/O)."""

from rosu_jax.core.perturbation import (
    DEFAULT_EPS,
    PerturbationDiagnostics,
    coupling,
    minmax_perturbation,
    perturbation_with_diagnostics,
    retain_orthogonal_perturbation,
)
from rosu_jax.core.tree_math import (
    check_same_structure,
    tree_all_finite,
    tree_gram,
    tree_norm,
    tree_sq_norm,
    tree_vdot,
)

__all__ = [
    "DEFAULT_EPS",
    "PerturbationDiagnostics",
    "check_same_structure",
    "coupling",
    "minmax_perturbation",
    "perturbation_with_diagnostics",
    "retain_orthogonal_perturbation",
    "tree_all_finite",
    "tree_gram",
    "tree_norm",
    "tree_sq_norm",
    "tree_vdot",
]
