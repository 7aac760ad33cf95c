"""A small conv net sized for quick CPU runs on 8x8 digits and 32x32 CIFAR."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from rosu_jax.models.layers import BN_MOMENTUM, batch_norm


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
            conv = nnx.Conv(
                c_in,
                width,
                (3, 3),
                strides=stride,
                padding="SAME",
                use_bias=not use_batchnorm,
                kernel_init=nnx.initializers.he_normal(),
                dtype=dtype,
                param_dtype=jnp.float32,
                rngs=rngs,
            )
            setattr(self, f"conv{i}", conv)
            if use_batchnorm:
                bn = nnx.BatchNorm(width, momentum=BN_MOMENTUM, dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs)
                setattr(self, f"bn{i}", bn)
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
