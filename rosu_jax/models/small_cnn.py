"""A small conv net sized for quick CPU runs on 8x8 digits and 32x32 CIFAR."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from rosu_jax.models.layers import batch_norm, batch_norm_layer, conv2d


class SmallCNN(nnx.Module):
    """conv3x3-BN-relu stages (first stride 1, then stride 2), global average pool, MLP head.

    Call as ``model(images_nhwc, train=...)``; ``train`` selects batch vs running BatchNorm statistics.
    Logits are always float32, whatever the compute ``dtype``; parameters are float32.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        *,
        widths: Sequence[int] = (32, 64),
        hidden: int = 128,
        use_batchnorm: bool = True,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if not widths:
            raise ValueError("widths must be non-empty")
        self.dtype = dtype
        self.use_batchnorm = use_batchnorm
        self.num_stages = len(widths)
        c_in = in_channels
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"conv{i}", conv2d(c_in, width, 3, stride, dtype, rngs, use_bias=not use_batchnorm))
            if use_batchnorm:
                setattr(self, f"bn{i}", batch_norm_layer(width, rngs))
            c_in = width
        self.fc1 = nnx.Linear(c_in, hidden, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, num_classes, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = jnp.asarray(x).astype(self.dtype)
        for i in range(self.num_stages):
            x = getattr(self, f"conv{i}")(x)
            if self.use_batchnorm:
                x = batch_norm(getattr(self, f"bn{i}"), x, train)
            x = jax.nn.relu(x)
        x = jnp.mean(x, axis=(1, 2))
        x = jax.nn.relu(self.fc1(x))
        return self.fc2(x).astype(jnp.float32)
