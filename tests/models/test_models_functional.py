import jax
import jax.numpy as jnp
import numpy as np

from rosu_jax.models import build_model, merge_model

_CACHE = {}


def _setup():
    """One small model per module; ``fwd`` is the jitted apply_fn (one compile per mode)."""
    if not _CACHE:
        apply_fn, params, state = build_model("small_cnn", 5, 1, widths=(8, 16), hidden=16)
        x = jnp.asarray(np.random.default_rng(0).normal(1.0, 2.0, size=(6, 8, 8, 1)), jnp.float32)
        _CACHE["v"] = (apply_fn, params, state, x, jax.jit(apply_fn, static_argnames="train"))
    return _CACHE["v"]


def test_pytrees_are_plain_dicts_of_arrays():
    _, params, state, _, _ = _setup()
    for tree in (params, state):
        assert type(tree) is dict
        assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(tree))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    assert set(state["bn0"]) == {"mean", "var"}


def test_train_updates_batch_stats_eval_does_not():
    apply_fn, params, state, x, fwd = _setup()
    _, s_train = fwd(params, state, x, train=True)
    assert jax.tree.structure(s_train) == jax.tree.structure(state)
    assert not np.allclose(s_train["bn0"]["mean"], state["bn0"]["mean"])
    _, s_eval = fwd(params, state, x, train=False)
    jax.tree.map(np.testing.assert_array_equal, s_eval, state)
    # momentum 0.9: new running mean = 0.9 * old + 0.1 * batch mean (old mean is 0)
    assert np.abs(np.asarray(s_train["bn0"]["mean"])).max() > 0


def test_eval_returns_state_object_unchanged():
    apply_fn, params, state, x, _ = _setup()
    assert apply_fn(params, state, x, train=False)[1] is state


def test_train_and_eval_differ():
    apply_fn, params, state, x, fwd = _setup()
    a, _ = fwd(params, state, x, train=True)
    b, _ = fwd(params, state, x, train=False)
    assert not np.allclose(a, b)


def test_pure_and_inputs_untouched():
    apply_fn, params, state, x, fwd = _setup()
    before = jax.tree.map(np.array, (params, state))
    out1 = fwd(params, state, x, train=True)
    out2 = fwd(params, state, x, train=True)
    jax.tree.map(np.testing.assert_array_equal, out1, out2)
    jax.tree.map(np.testing.assert_array_equal, before, (params, state))


def test_jit_matches_eager():
    apply_fn, params, state, x, fwd = _setup()
    jitted = jax.jit(apply_fn, static_argnames="train")
    for train in (True, False):
        eager = apply_fn(params, state, x, train=train)
        jit_out = jitted(params, state, x, train=train)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), eager, jit_out)


def test_grad_structure_matches_params():
    apply_fn, params, state, x, fwd = _setup()
    grads = jax.jit(jax.grad(lambda p: jnp.mean(apply_fn(p, state, x, train=True)[0] ** 2)))(params)
    assert type(grads) is dict
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert all(g.shape == p.shape for g, p in zip(jax.tree.leaves(grads), jax.tree.leaves(params), strict=True))
    assert any(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))


def test_merge_model_roundtrip():
    apply_fn, params, state, x, fwd = _setup()
    model = merge_model(apply_fn.apply_info, params, state)
    np.testing.assert_allclose(model(x, train=False), apply_fn(params, state, x, train=False)[0], rtol=1e-6)
