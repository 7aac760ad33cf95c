"""CIFAR ResNet-18 (3x3 stem, stride 1, no max-pool), ~11.17M parameters for 10 classes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rosu_jax.models.layers import batch_norm, batch_norm_layer, conv2d


class BasicBlock(nnx.Module):
    """Two conv3x3-BN layers with an identity (or 1x1 conv-BN projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, *, dtype, rngs: nnx.Rngs):
        self.conv1 = conv2d(c_in, c_out, 3, stride, dtype, rngs)
        self.bn1 = batch_norm_layer(c_out, rngs)
        self.conv2 = conv2d(c_out, c_out, 3, 1, dtype, rngs)
        self.bn2 = batch_norm_layer(c_out, rngs)
        self.has_projection = stride != 1 or c_in != c_out
        if self.has_projection:
            self.proj_conv = conv2d(c_in, c_out, 1, stride, dtype, rngs)
            self.proj_bn = batch_norm_layer(c_out, rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        y = jax.nn.relu(batch_norm(self.bn1, self.conv1(x), train))
        y = batch_norm(self.bn2, self.conv2(y), train)
        shortcut = batch_norm(self.proj_bn, self.proj_conv(x), train) if self.has_projection else x
        return jax.nn.relu(y + shortcut)


class ResNet18(nnx.Module):
    """CIFAR ResNet-18: BasicBlocks [2, 2, 2, 2], widths 64-128-256-512, global average pool, dense.

    ``dtype`` is the compute dtype (e.g. ``jnp.bfloat16``); parameters and BatchNorm statistics stay
    float32 and the logits are always returned as float32.
    """

    STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))

    def __init__(self, num_classes: int, in_channels: int = 3, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.dtype = dtype
        self.stem_conv = conv2d(in_channels, 64, 3, 1, dtype, rngs)
        self.stem_bn = batch_norm_layer(64, rngs)
        names = []
        c_in = 64
        for s, (width, stride) in enumerate(self.STAGES):
            for b in range(2):
                name = f"layer{s + 1}_block{b}"
                setattr(self, name, BasicBlock(c_in, width, stride if b == 0 else 1, dtype=dtype, rngs=rngs))
                names.append(name)
                c_in = width
        self.block_names = tuple(names)
        self.fc = nnx.Linear(c_in, num_classes, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = jnp.asarray(x).astype(self.dtype)
        x = jax.nn.relu(batch_norm(self.stem_bn, self.stem_conv(x), train))
        for name in self.block_names:
            x = getattr(self, name)(x, train=train)
        x = jnp.mean(x, axis=(1, 2))
        return self.fc(x).astype(jnp.float32)
