"""Where rosu-jax keeps what it caches (decoded datasets, XLA's compilation cache, runs): one definition."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ROSU_JAX_CACHE"


def cache_root() -> Path:
    """``$ROSU_JAX_CACHE`` if set, else ``~/.cache/rosu_jax``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rosu_jax"
