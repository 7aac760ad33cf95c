"""Layer 2: Optax transformations (ROSU, UAM) and the gradient recipes of the classic baselines."""

from rosu_jax.transforms.recipes import (
    fine_tune,
    gradient_ascent,
    l1_sparse,
    masked_updates,
    neggrad_plus,
    saliency_mask,
)
from rosu_jax.transforms.rosu import (
    DEFAULT_AMPLIFICATION,
    DEFAULT_RHO,
    RosuDiagnostics,
    RosuState,
    rosu,
    uam,
)

__all__ = [
    "DEFAULT_AMPLIFICATION",
    "DEFAULT_RHO",
    "RosuDiagnostics",
    "RosuState",
    "fine_tune",
    "gradient_ascent",
    "l1_sparse",
    "masked_updates",
    "neggrad_plus",
    "rosu",
    "saliency_mask",
    "uam",
]
