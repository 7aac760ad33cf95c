"""Model registry: build a model by name and split it into the functional triple."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rosu_jax.models.functional import ApplyFn, ModelState, Params, split_model
from rosu_jax.models.layers import numpy_init_value
from rosu_jax.models.resnet import ResNet18
from rosu_jax.models.resnet_fast import ResNetFast
from rosu_jax.models.small_cnn import SmallCNN

MODELS: dict[str, Callable[..., nnx.Module]] = {"small_cnn": SmallCNN, "resnet18": ResNet18, "resnet_fast": ResNetFast}


def build_model(
    name: str,
    num_classes: int,
    in_channels: int,
    *,
    seed: int = 0,
    dtype: Any = jnp.float32,
    init: str = "numpy",
    **kwargs: Any,
) -> tuple[ApplyFn, Params, ModelState]:
    """Build model ``name`` ('small_cnn' | 'resnet18' | 'resnet_fast') and return ``split_model``'s triple.

    ``dtype`` is the compute dtype; parameters are always float32. Extra ``kwargs`` go to the constructor.
    ``init="numpy"`` (default) draws the same distributions as the Flax initializers with a numpy
    generator seeded by ``seed`` (on CPU, compiling JAX's eager random ops takes seconds per shape);
    ``init="flax"`` runs the modules' own initializers with ``nnx.Rngs(seed)``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(MODELS)}")
    cls = MODELS[name]
    if init == "flax":
        return split_model(cls(num_classes, in_channels, dtype=dtype, rngs=nnx.Rngs(seed), **kwargs))
    if init != "numpy":
        raise ValueError(f"init must be 'numpy' or 'flax', got {init!r}")
    model = nnx.eval_shape(lambda: cls(num_classes, in_channels, dtype=dtype, rngs=nnx.Rngs(0), **kwargs))
    rng = np.random.default_rng(seed)
    for state in nnx.state(model, nnx.Param, nnx.BatchStat):
        values = [
            (path, var.replace(jnp.asarray(numpy_init_value(path, var.shape, rng))))
            for path, var in nnx.to_flat_state(state)
        ]
        nnx.update(model, nnx.from_flat_state(values))
    return split_model(model)


def count_params(params: Any) -> int:
    """Total number of scalar parameters in a pytree."""
    return int(sum(np.prod(np.shape(x), dtype=np.int64) for x in jax.tree.leaves(params)))
