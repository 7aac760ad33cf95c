"""A fast small residual network for 32x32 images (ResNet-9-like), sized to train CIFAR-10 on a few CPU cores.

In the spirit of the fast CIFAR-10 training recipes (Page's ResNet-9, Keller Jordan's airbench): a stem conv,
three stages of conv3x3 -> 2x2 max-pool -> BatchNorm -> ReLU (the pool before the normalisation, so BatchNorm
and ReLU run on a quarter of the pixels), residual blocks of two conv-BN-ReLU layers after the chosen stages, a
global max-pool, a bias-free dense layer and a fixed output scale (``logit_scale``, 0.125 as in ResNet-9, which
keeps the initial softmax soft). Convolutions are bias-free (BatchNorm follows each one).

Widths ``(stem, stage1, stage2, stage3)``; ``residual`` says which stages get a residual block (ResNet-9: the
first and the last). The compute ``dtype`` (e.g. ``"bfloat16"``) applies to convolutions, pools and the dense
layer; parameters, BatchNorm (statistics and normalisation, ``layers.batch_norm``) and the logits are float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from rosu_jax.models.layers import batch_norm, batch_norm_layer, conv2d


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max-pool, stride 2, of NHWC ``x`` (H and W even) as a reshape and a max: XLA:CPU's gradient of a
    reduction is a cheap select, where ``reduce_window``'s is a select-and-scatter."""
    b, h, w, c = x.shape
    return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


class ConvBN(nnx.Module):
    """conv3x3 (bias-free) -> [2x2 max-pool] -> BatchNorm (float32) -> ReLU."""

    def __init__(self, c_in: int, c_out: int, *, pool: bool, dtype, rngs: nnx.Rngs):
        self.pool = pool
        self.conv = conv2d(c_in, c_out, 3, 1, dtype, rngs)
        self.bn = batch_norm_layer(c_out, rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = self.conv(x)
        if self.pool:
            x = max_pool_2x2(x)
        return jax.nn.relu(batch_norm(self.bn, x, train))


class Residual(nnx.Module):
    """x + ConvBN(ConvBN(x)), widths unchanged."""

    def __init__(self, c: int, *, dtype, rngs: nnx.Rngs):
        self.layer1 = ConvBN(c, c, pool=False, dtype=dtype, rngs=rngs)
        self.layer2 = ConvBN(c, c, pool=False, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        return x + self.layer2(self.layer1(x, train=train), train=train)


class ResNetFast(nnx.Module):
    """Stem ConvBN, three stages (ConvBN with max-pool, then an optional Residual), global max-pool, dense, scale.

    Call as ``model(images_nhwc, train=...)``; the images' height and width must be divisible by 8. Logits are
    float32 whatever the compute ``dtype``; parameters are float32. Default widths (16, 32, 64, 128): 0.41M
    parameters and 24M multiply-adds per 32x32 image for 10 classes, 1/16 of ResNet-9's (64, 128, 256, 512).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        *,
        widths: Sequence[int] = (16, 32, 64, 128),
        residual: Sequence[bool] = (True, False, True),
        logit_scale: float = 0.125,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        widths, residual = tuple(widths), tuple(bool(r) for r in residual)
        if len(widths) != 4 or len(residual) != 3:
            raise ValueError(f"widths needs 4 entries (stem, 3 stages) and residual 3, got {widths}, {residual}")
        self.dtype = dtype
        self.logit_scale = float(logit_scale)
        self.residual = residual
        self.stem = ConvBN(in_channels, widths[0], pool=False, dtype=dtype, rngs=rngs)
        for i in range(3):
            setattr(self, f"stage{i + 1}", ConvBN(widths[i], widths[i + 1], pool=True, dtype=dtype, rngs=rngs))
            if residual[i]:
                setattr(self, f"res{i + 1}", Residual(widths[i + 1], dtype=dtype, rngs=rngs))
        self.fc = nnx.Linear(widths[3], num_classes, use_bias=False, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if x.shape[1] % 8 or x.shape[2] % 8:
            raise ValueError(f"ResNetFast needs image height and width divisible by 8, got {x.shape[1:3]}")
        x = self.stem(jnp.asarray(x).astype(self.dtype), train=train)
        for i in range(3):
            x = getattr(self, f"stage{i + 1}")(x, train=train)
            if self.residual[i]:
                x = getattr(self, f"res{i + 1}")(x, train=train)
        x = jnp.max(x, axis=(1, 2))
        return self.fc(x).astype(jnp.float32) * jnp.float32(self.logit_scale)
