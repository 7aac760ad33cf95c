import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from rosu_jax.models import MODELS, ResNetFast, build_model, count_params, merge_model, split_model
from rosu_jax.models.resnet_fast import max_pool_2x2

TINY = {"widths": (4, 8, 8, 16)}


def test_registered():
    assert MODELS["resnet_fast"] is ResNetFast


@pytest.mark.parametrize("train", [True, False])
def test_output_shape_and_state(train):
    apply_fn, params, state = build_model("resnet_fast", 10, 3, **TINY)
    logits, new_state = apply_fn(params, state, jnp.ones((3, 32, 32, 3)), train=train)
    assert logits.shape == (3, 10) and logits.dtype == jnp.float32
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert set(params) == {"stem", "stage1", "res1", "stage2", "stage3", "res3", "fc"}
    assert "bias" not in params["fc"] and "bias" not in params["stem"]["conv"]


def test_default_size():
    _, params, state = build_model("resnet_fast", 10, 3)
    # widths (16, 32, 64, 128): convs 3*3*(3*16 + 16*32 + 2*32*32 + 32*64 + 64*128 + 2*128*128), BN, fc 128*10
    convs = 9 * (3 * 16 + 16 * 32 + 2 * 32 * 32 + 32 * 64 + 64 * 128 + 2 * 128 * 128)
    assert count_params(params) == convs + 2 * (16 + 3 * 32 + 64 + 3 * 128) + 128 * 10 == 412_944
    assert state["stage3"]["bn"]["var"].shape == (128,)


def test_residual_choice_and_errors():
    _, params, _ = build_model("resnet_fast", 10, 3, widths=(4, 8, 8, 16), residual=(False, True, False))
    assert "res2" in params and "res1" not in params and "res3" not in params
    with pytest.raises(ValueError, match="widths needs 4"):
        build_model("resnet_fast", 10, 3, widths=(4, 8, 16))
    apply_fn, params, state = build_model("resnet_fast", 10, 3, **TINY)
    with pytest.raises(ValueError, match="divisible by 8"):
        apply_fn(params, state, jnp.ones((1, 28, 30, 3)), train=False)


def test_logit_scale():
    a = build_model("resnet_fast", 10, 3, **TINY)
    b = build_model("resnet_fast", 10, 3, **TINY, logit_scale=1.0)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, 32, 3)), jnp.float32)
    la, _ = a[0](a[1], a[2], x, train=False)
    lb, _ = b[0](b[1], b[2], x, train=False)
    np.testing.assert_allclose(la, 0.125 * lb, rtol=1e-5, atol=1e-6)


def test_max_pool_matches_reduce_window():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 6, 3)), jnp.float32)
    expected = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    np.testing.assert_array_equal(max_pool_2x2(x), expected)


def test_bf16_compute_f32_params_and_logits():
    apply_fn, params, state = build_model("resnet_fast", 10, 3, dtype="bfloat16", **TINY)
    fwd = jax.jit(apply_fn, static_argnames="train")
    logits, new_state = fwd(params, state, jnp.ones((2, 32, 32, 3)), train=True)
    assert logits.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((params, new_state)))
    ref, _ = build_model("resnet_fast", 10, 3, **TINY)[0](params, state, jnp.ones((2, 32, 32, 3)), train=True)
    np.testing.assert_allclose(logits, ref, atol=0.05)


def test_split_merge_round_trip_and_flax_init():
    model = ResNetFast(10, 3, **TINY, rngs=nnx.Rngs(0))
    apply_fn, params, state = split_model(model)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 32, 32, 3)), jnp.float32)
    logits, _ = apply_fn(params, state, x, train=False)
    np.testing.assert_allclose(logits, model(x, train=False), rtol=1e-5, atol=1e-6)
    rebuilt = merge_model(apply_fn.apply_info, params, state)
    np.testing.assert_allclose(rebuilt(x, train=False), logits, rtol=1e-6)
    _, params2, state2 = split_model(rebuilt)
    assert jax.tree.structure(params2) == jax.tree.structure(params)
    assert jax.tree.structure(state2) == jax.tree.structure(state)


def test_numpy_init_seeded():
    a, b, c = (build_model("resnet_fast", 10, 3, seed=s, **TINY)[1] for s in (1, 1, 2))
    np.testing.assert_array_equal(a["res3"]["layer2"]["conv"]["kernel"], b["res3"]["layer2"]["conv"]["kernel"])
    assert not np.allclose(a["stem"]["conv"]["kernel"], c["stem"]["conv"]["kernel"])
    k = np.asarray(build_model("resnet_fast", 10, 3, seed=0)[1]["res3"]["layer1"]["conv"]["kernel"])
    np.testing.assert_allclose(k.std(), np.sqrt(2.0 / (9 * 128)), rtol=0.03)


def test_gradient_steps_reduce_loss_and_update_statistics():
    apply_fn, params, state = build_model("resnet_fast", 4, 3, **TINY)
    rng = np.random.default_rng(0)
    y = jnp.asarray(np.arange(32) % 4)
    x = jnp.asarray((np.arange(32) % 4)[:, None, None, None] * 0.5 + rng.normal(size=(32, 16, 16, 3)), jnp.float32)
    opt = optax.sgd(0.2, momentum=0.9, nesterov=True)
    opt_state = opt.init(params)

    def loss_fn(p, s):
        logits, new_s = apply_fn(p, s, x, train=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_s

    @jax.jit
    def step(p, s, o):
        (loss, new_s), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s)
        assert jax.tree.structure(g) == jax.tree.structure(p)
        updates, o = opt.update(g, o, p)
        return optax.apply_updates(p, updates), new_s, o, loss

    losses, start = [], state
    for _ in range(25):
        params, state, opt_state, loss = step(params, state, opt_state)
        losses.append(float(loss))
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]
    assert not np.allclose(state["stem"]["bn"]["mean"], start["stem"]["bn"]["mean"])
