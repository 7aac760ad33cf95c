"""rosu-jax: machine unlearning in JAX/Optax around ROSU (Retain-Orthogonal Surrogate Unlearning, arXiv 2605.05871).

Layers (each depends only on the ones above it):
  rosu_jax.core        tree maths and the closed-form perturbations (no Flax, no I/O)
  rosu_jax.transforms  Optax transformations: rosu, uam, and the baselines' gradient recipes
  rosu_jax.steps       one jitted step per method behind one interface
  rosu_jax.models, rosu_jax.data, rosu_jax.evaluation, rosu_jax.runs   the vision pipeline
  rosu_jax.parallel    device meshes and shardings
"""

from rosu_jax.core import (
    PerturbationDiagnostics,
    coupling,
    minmax_perturbation,
    perturbation_with_diagnostics,
    retain_orthogonal_perturbation,
    tree_norm,
    tree_vdot,
)
from rosu_jax.steps import Stepper, UnlearnState, make_rosu_step, make_uam_step
from rosu_jax.transforms import RosuDiagnostics, RosuState, rosu, uam

__version__ = "0.1.0"

__all__ = [
    "PerturbationDiagnostics",
    "RosuDiagnostics",
    "RosuState",
    "Stepper",
    "UnlearnState",
    "coupling",
    "make_rosu_step",
    "make_uam_step",
    "minmax_perturbation",
    "perturbation_with_diagnostics",
    "retain_orthogonal_perturbation",
    "rosu",
    "tree_norm",
    "tree_vdot",
    "uam",
]
