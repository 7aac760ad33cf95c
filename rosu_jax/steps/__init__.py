"""Layer 3: one jitted step per method, (state, forget batch, retain batch, key) -> (state, metrics)."""

from rosu_jax.steps.minmax import make_rosu_step, make_uam_step
from rosu_jax.steps.state import LossFn, Stepper, UnlearnState

__all__ = ["LossFn", "Stepper", "UnlearnState", "make_rosu_step", "make_uam_step"]
