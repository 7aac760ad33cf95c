import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rosu_jax.models import build_model, count_params


@pytest.fixture(scope="module")
def resnet_bf16():
    return build_model("resnet18", 10, 3, dtype=jnp.bfloat16)


def test_param_count(resnet_bf16):
    _, params, state = resnet_bf16
    assert count_params(params) == 11_173_962
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((params, state)))


def test_bf16_forward_train(resnet_bf16):
    apply_fn, params, state = resnet_bf16
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    logits, new_state = jax.jit(apply_fn, static_argnames="train")(params, state, x, train=True)
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32  # documented: logits always float32
    assert np.all(np.isfinite(logits))
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(new_state))


def test_bf16_eval_shape(resnet_bf16):
    apply_fn, params, state = resnet_bf16
    out = jax.eval_shape(lambda p, s, x: apply_fn(p, s, x, train=False), params, state, jnp.ones((4, 32, 32, 3)))
    assert out[0].shape == (4, 10) and out[0].dtype == jnp.float32
