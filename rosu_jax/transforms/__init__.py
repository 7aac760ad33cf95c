"""Layer 2: Optax transformations (ROSU, UAM) and the gradient recipes of the classic baselines."""

from rosu_jax.transforms.rosu import (
    DEFAULT_AMPLIFICATION,
    DEFAULT_RHO,
    RosuDiagnostics,
    RosuState,
    rosu,
    uam,
)

__all__ = ["DEFAULT_AMPLIFICATION", "DEFAULT_RHO", "RosuDiagnostics", "RosuState", "rosu", "uam"]
