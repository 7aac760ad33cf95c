"""Type aliases shared by every layer (one definition each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

PyTree = Any
"""A nested structure of arrays (params, gradients, optimizer states, batches)."""

ScalarOrSchedule = float | Callable[[jax.Array], jax.Array]
"""A constant, or a schedule ``step count -> value`` (as Optax takes them)."""
