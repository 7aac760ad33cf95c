import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from rosu_jax.models import SmallCNN, build_model


@pytest.mark.parametrize("shape", [(8, 8, 1), (32, 32, 3)])
def test_output_shape(shape):
    apply_fn, params, state = build_model("small_cnn", 10, shape[-1])
    logits, _ = apply_fn(params, state, jnp.ones((3, *shape)), train=False)
    assert logits.shape == (3, 10) and logits.dtype == jnp.float32


def test_module_with_flax_init():
    model = SmallCNN(3, 1, widths=(4,), hidden=4, rngs=nnx.Rngs(0))
    assert model(jnp.ones((2, 8, 8, 1)), train=True).shape == (2, 3)
    assert model(jnp.ones((2, 8, 8, 1)), train=False).dtype == jnp.float32


def test_bf16_compute_gives_f32_logits():
    apply_fn, params, state = build_model("small_cnn", 10, 1, dtype=jnp.bfloat16)
    fwd = jax.jit(apply_fn, static_argnames="train")
    logits, new_state = fwd(params, state, jnp.ones((2, 8, 8, 1)), train=True)
    assert logits.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((params, new_state)))


def test_no_batchnorm_has_empty_state():
    apply_fn, params, state = build_model("small_cnn", 4, 1, use_batchnorm=False)
    assert state == {}
    logits, new_state = apply_fn(params, state, jnp.ones((2, 8, 8, 1)), train=True)
    assert logits.shape == (2, 4) and new_state == {}


def test_sgd_reduces_loss():
    apply_fn, params, state = build_model("small_cnn", 4, 1, widths=(8, 16), hidden=32)
    rng = np.random.default_rng(0)
    y = jnp.asarray(np.arange(32) % 4)
    x = jnp.asarray((np.arange(32) % 4)[:, None, None, None] * 0.5 + rng.normal(size=(32, 8, 8, 1)), jnp.float32)
    opt = optax.sgd(0.1, momentum=0.9)
    opt_state = opt.init(params)

    def loss_fn(p, s):
        logits, new_s = apply_fn(p, s, x, train=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_s

    @jax.jit
    def step(p, s, o):
        (loss, new_s), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s)
        updates, o = opt.update(g, o, p)
        return optax.apply_updates(p, updates), new_s, o, loss

    losses = []
    for _ in range(20):
        params, state, opt_state, loss = step(params, state, opt_state)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert np.all(np.isfinite(losses))
