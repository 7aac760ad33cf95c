"""Layer 3: one jitted step per method, (state, forget batch, retain batch, key) -> (state, metrics)."""

from rosu_jax.steps.baselines import (
    make_ft_step,
    make_ga_step,
    make_l1_sparse_step,
    make_neggrad_plus_step,
    make_random_label_step,
    make_recipe_step,
    make_scrub_step,
)
from rosu_jax.steps.minmax import make_rosu_step, make_uam_step
from rosu_jax.steps.registry import (
    METHODS,
    MethodConfig,
    MethodSpec,
    get_method,
    make_optimizer,
    method_extras,
)
from rosu_jax.steps.state import LossFn, Stepper, UnlearnState

__all__ = [
    "METHODS",
    "LossFn",
    "MethodConfig",
    "MethodSpec",
    "Stepper",
    "UnlearnState",
    "get_method",
    "make_ft_step",
    "make_ga_step",
    "make_l1_sparse_step",
    "make_neggrad_plus_step",
    "make_optimizer",
    "make_random_label_step",
    "make_recipe_step",
    "make_rosu_step",
    "make_scrub_step",
    "make_uam_step",
    "method_extras",
]
