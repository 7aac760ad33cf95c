"""Layer 3: generic jitted steps, ``step(state, forget_batch, retain_batch, key) -> (state, metrics)``.

Steps know loss functions ``(params, model_state, batch, key) -> (loss, model_state)``, never images or tokens:
the one-call min-max step (ROSU, UAM, lagged mode), the gradient-recipe step, the combined-objective step and
SCRUB's distillation step.
"""

from rosu_jax.steps.distill import make_distill_step
from rosu_jax.steps.minmax import make_coupling_probe, make_rosu_step, make_uam_step
from rosu_jax.steps.objective import make_objective_step
from rosu_jax.steps.recipe import make_recipe_step
from rosu_jax.steps.state import LossFn, Stepper, UnlearnState

__all__ = [
    "LossFn",
    "Stepper",
    "UnlearnState",
    "make_coupling_probe",
    "make_distill_step",
    "make_objective_step",
    "make_recipe_step",
    "make_rosu_step",
    "make_uam_step",
]
