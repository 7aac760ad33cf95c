"""Shared layer helpers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# PyTorch-style BatchNorm momentum 0.1 (Flax's default 0.99 adapts too slowly for short runs).
BN_MOMENTUM = 0.9


def conv2d(c_in: int, c_out: int, k: int, stride: int, dtype, rngs: nnx.Rngs, *, use_bias: bool = False) -> nnx.Conv:
    """A k x k convolution, bias-free by default (BatchNorm follows it), He-normal init, float32 parameters,
    ``dtype`` compute; 'SAME' padding for k = 3, 'VALID' for the 1x1 projections."""
    return nnx.Conv(
        c_in,
        c_out,
        (k, k),
        strides=stride,
        padding="SAME" if k == 3 else "VALID",
        use_bias=use_bias,
        kernel_init=nnx.initializers.he_normal(),
        dtype=dtype,
        param_dtype=jnp.float32,
        rngs=rngs,
    )


def batch_norm_layer(c: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """BatchNorm over ``c`` channels in float32 (statistics and normalisation), momentum ``BN_MOMENTUM``."""
    return nnx.BatchNorm(c, momentum=BN_MOMENTUM, dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs)


def batch_norm(bn: nnx.BatchNorm, x: jax.Array, train: bool) -> jax.Array:
    """Run ``bn`` in float32 and cast back to ``x.dtype``.

    Flax's BatchNorm with a bfloat16 ``dtype`` calls ``jnp.promote_types(bf16, f32)``, which fails under
    ``jax_numpy_dtype_promotion='strict'``; normalising in float32 is also the numerically safer choice.
    """
    return bn(x.astype(jnp.float32), use_running_average=not train).astype(x.dtype)


def _truncated_normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """N(0, std^2) truncated to +-2 std after rescaling, like ``jax.nn.initializers.variance_scaling``."""
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2.0
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2.0
    # 0.8796... is the std of a standard normal truncated to [-2, 2].
    return (z * (std / 0.87962566103423978)).astype(np.float32)


def numpy_init_value(path: tuple, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Host-side initial value of one model variable, mirroring the models' Flax initializers.

    Conv kernels (4-D): He normal (fan_in, scale 2); dense kernels (2-D): LeCun normal (fan_in, scale 1);
    ``bias``/``mean``: zeros; ``scale``/``var``: ones.
    """
    name = str(path[-1])
    if name == "kernel":
        fan_in = int(np.prod(shape[:-1]))
        gain = 2.0 if len(shape) == 4 else 1.0
        return _truncated_normal(rng, shape, float(np.sqrt(gain / fan_in)))
    if name in ("bias", "mean"):
        return np.zeros(shape, np.float32)
    if name in ("scale", "var"):
        return np.ones(shape, np.float32)
    raise ValueError(f"no numpy initializer for variable {'/'.join(map(str, path))}")
