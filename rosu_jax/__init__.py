"""rosu-jax: machine unlearning in JAX/Optax around ROSU (Retain-Orthogonal Surrogate Unlearning, arXiv 2605.05871).

Layers, each importing only the ones before it (``tests/test_layering.py`` enforces it):
  rosu_jax.core        tree maths and the closed-form perturbations (no Flax, no data, no I/O)
  rosu_jax.transforms  Optax transformations: rosu, uam, the baselines' gradient recipes, optimizers, schedules
  rosu_jax.steps       generic jitted steps over loss functions (min-max, recipe, objective, distillation)
  rosu_jax.parallel    device meshes, shardings, multi-host batching
  rosu_jax.models      Flax NNX models behind pure functions (vision classifiers, the causal-LM decoder)
  rosu_jax.tasks       what is unlearned: data, model boundary, loss terms, metrics (vision, tofu, wmdp)
  rosu_jax.methods     each unlearning method declared once with its hyperparameters
  rosu_jax.runs        the generic pipeline: training, unlearning, caching, statistics, reports
  rosu_jax.cli         the ``rosu-unlearn`` command
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

__version__ = "0.2.0"

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
