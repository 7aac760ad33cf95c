"""The one-call jitted ROSU/UAM step on a small Flax NNX classifier with BatchNorm."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import rosu_jax


class TinyNet(nnx.Module):
    def __init__(self, rngs):
        self.dense1 = nnx.Linear(2, 32, rngs=rngs)
        self.norm = nnx.BatchNorm(32, rngs=rngs)
        self.dense2 = nnx.Linear(32, 3, rngs=rngs)

    def __call__(self, x):
        return self.dense2(jax.nn.relu(self.norm(self.dense1(x))))


def blobs(n_per_class, seed):
    rng = np.random.default_rng(seed)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    x = np.concatenate([c + 0.6 * rng.normal(size=(n_per_class, 2)) for c in centers]).astype(np.float32)
    y = np.repeat(np.arange(3), n_per_class).astype(np.int32)
    return jnp.asarray(x), jnp.asarray(y)


def functional_model():
    """Functional split/merge around jit: apply(params, batch_stats, x, train) -> (logits, batch_stats)."""
    model = TinyNet(nnx.Rngs(0))
    graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)

    def apply(params, stats, x, train):
        m = nnx.merge(graphdef, params, stats)
        if train:
            m.train()
        else:
            m.eval()
        logits = m(x)
        return logits, nnx.state(m, nnx.BatchStat).to_pure_dict()

    return apply, params.to_pure_dict(), stats.to_pure_dict()


def make_losses(apply, train=True):
    def ce(params, stats, batch, key):
        del key
        logits, new_stats = apply(params, stats, batch[0], train)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean(), new_stats

    return ce


def accuracy(apply, params, stats, x, y):
    logits, _ = apply(params, stats, x, False)
    return float(jnp.mean(jnp.argmax(logits, -1) == y))


@pytest.fixture(scope="module")
def trained():
    apply, params, stats = functional_model()
    x, y = blobs(100, 0)
    ce = make_losses(apply)
    opt = optax.sgd(0.1, momentum=0.9)
    opt_state = opt.init(params)

    @jax.jit
    def train_step(params, stats, opt_state):
        (loss, stats), grads = jax.value_and_grad(ce, has_aux=True)(params, stats, (x, y), None)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state

    for _ in range(150):
        params, stats, opt_state = train_step(params, stats, opt_state)
    return apply, params, stats, x, y


def test_default_rosu_forgets_a_class_and_keeps_the_rest(trained):
    apply, params, stats, x, y = trained
    forget, retain = (x[y == 0], y[y == 0]), (x[y != 0], y[y != 0])
    assert accuracy(apply, params, stats, *forget) > 0.95
    # The forget objective uses running BatchNorm statistics: a one-class forget batch normalised by its own
    # statistics (train mode) is a poor proxy for the model's test-time predictions on that class.
    forget_ce, retain_ce = make_losses(apply, train=False), make_losses(apply)
    stepper = rosu_jax.make_rosu_step(forget_ce, retain_ce, optax.sgd(0.01))  # default ρ and λ
    state = stepper.init(params, stats)
    key = jax.random.key(0)
    for i in range(200):
        state, metrics = stepper.step(state, forget, retain, jax.random.fold_in(key, i))
    assert bool(metrics["all_finite"])
    forget_acc = accuracy(apply, state.params, state.model_state, *forget)
    retain_acc = accuracy(apply, state.params, state.model_state, *retain)
    assert forget_acc < 0.2, forget_acc
    assert retain_acc > 0.9, retain_acc
    assert stepper.gradient_evaluations == 3
    assert float(metrics["predicted_retain_change"]) == 0.0


def test_step_matches_transformation_and_reports_diagnostics(trained):
    apply, params, stats, x, y = trained
    ce = make_losses(apply)
    forget, retain = (x[:20], y[:20]), (x[100:], y[100:])
    stepper = rosu_jax.make_rosu_step(ce, ce, optax.sgd(0.05), rho=0.3, amplification=0.1, measure_surrogate=True)
    state, metrics = stepper.step(stepper.init(params, stats), forget, retain, jax.random.key(1))

    # the same step wired by hand through the Optax transformation
    f = lambda p: ce(p, stats, forget, None)[0]
    r = lambda p: ce(p, stats, retain, None)[0]
    tx = rosu_jax.rosu(optax.sgd(0.05), 0.3, 0.1)
    updates, tx_state = tx.update(
        jax.grad(f)(params),
        tx.init(params),
        params,
        retain_grads=jax.grad(r)(params),
        retain_grad_fn=jax.grad(r),
    )
    chex.assert_trees_all_close(state.params, optax.apply_updates(params, updates), atol=1e-6)
    for name in (
        "coupling",
        "forget_norm",
        "retain_norm",
        "neutral_fraction",
        "predicted_retain_change_minmax",
    ):
        np.testing.assert_allclose(metrics[name], getattr(tx_state.diagnostics, name), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(metrics["forget_loss"], f(params), rtol=1e-6)
    np.testing.assert_allclose(metrics["retain_loss"], r(params), rtol=1e-6)
    assert np.isfinite(float(metrics["surrogate_retain_increase"]))


def test_surrogate_forward_does_not_touch_batch_statistics(trained):
    apply, params, stats, x, y = trained
    ce = make_losses(apply)
    forget, retain = (x[:20], y[:20]), (x[100:], y[100:])
    stepper = rosu_jax.make_rosu_step(ce, ce, optax.sgd(0.05), rho=5.0)
    state, _ = stepper.step(stepper.init(params, stats), forget, retain, jax.random.key(2))
    # running statistics are exactly those of the retain forward pass at θ (not θ + δ, not the forget batch)
    _, expected_stats = apply(params, stats, retain[0], True)
    chex.assert_trees_all_close(state.model_state, expected_stats, atol=0)
    _, surrogate_stats = apply(jax.tree.map(lambda p: p + 1.0, params), stats, retain[0], True)
    assert not np.allclose(jax.tree.leaves(surrogate_stats)[0], jax.tree.leaves(state.model_state)[0])


def test_lagged_step_updates_model_state_at_theta_and_costs_two_gradients(trained):
    """Lagged mode (and the published two-gradient UAM) takes no retain gradient at θ, but the running statistics
    still come from a forward-only retain pass at θ (never from the surrogate point)."""
    apply, params, stats, x, y = trained
    ce = make_losses(apply)
    forget, retain = (x[:20], y[:20]), (x[100:], y[100:])
    stepper = rosu_jax.make_rosu_step(ce, ce, optax.sgd(0.05), rho=0.5, lagged=True)
    assert stepper.gradient_evaluations == 2
    state, metrics = stepper.step(stepper.init(params, stats), forget, retain, jax.random.key(3))
    assert np.isnan(float(metrics["retain_loss"]))
    _, expected = apply(params, stats, retain[0], True)
    chex.assert_trees_all_close(state.model_state, expected, atol=0)


def test_uam_step_is_rosu_without_projection(trained):
    apply, params, stats, x, y = trained
    ce = make_losses(apply)
    args = (ce, ce, optax.sgd(0.05))
    forget, retain = (x[:20], y[:20]), (x[100:], y[100:])
    uam = rosu_jax.make_uam_step(*args, rho=0.4, report_coupling=True)
    off = rosu_jax.make_rosu_step(*args, rho=0.4, amplification=0.0, project=False)
    s1, m1 = uam.step(uam.init(params, stats), forget, retain, jax.random.key(4))
    s2, _ = off.step(off.init(params, stats), forget, retain, jax.random.key(4))
    chex.assert_trees_all_close(s1.params, s2.params, atol=0)
    np.testing.assert_allclose(m1["predicted_retain_change"], 0.4 * m1["retain_norm"] * m1["coupling"], rtol=1e-5)
    two_gradient = rosu_jax.make_uam_step(*args, rho=0.4)
    assert two_gradient.gradient_evaluations == 2
    s3, _ = two_gradient.step(two_gradient.init(params, stats), forget, retain, jax.random.key(4))
    chex.assert_trees_all_close(s3.params, s1.params, atol=1e-6)


def test_second_call_does_not_recompile(trained):
    apply, params, stats, x, y = trained
    ce = make_losses(apply)
    stepper = rosu_jax.make_rosu_step(ce, ce, optax.sgd(0.05))
    state = stepper.init(params, stats)
    forget, retain = (x[:20], y[:20]), (x[100:], y[100:])
    state, _ = stepper.step(state, forget, retain, jax.random.key(0))
    before = stepper.step._cache_size()
    for i in range(3):
        state, _ = stepper.step(state, forget, retain, jax.random.key(i))
    assert stepper.step._cache_size() == before == 1


def test_optax_chain_on_a_flax_model_forgets_and_keeps_retain(trained):
    """The transformation wired by hand: optax.chain(clip, rosu(sgd)) + optax.apply_updates on the Flax model."""
    apply, params, stats, x, y = trained
    forget, retain = (x[y == 0], y[y == 0]), (x[y != 0], y[y != 0])
    forget_ce, retain_ce = make_losses(apply, train=False), make_losses(apply)
    f = lambda p: forget_ce(p, stats, forget, None)[0]
    r = lambda p: retain_ce(p, stats, retain, None)[0]
    opt = optax.chain(optax.clip_by_global_norm(100.0), rosu_jax.rosu(optax.sgd(0.01)))
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state):
        updates, opt_state = opt.update(
            jax.grad(f)(params), opt_state, params, retain_grads=jax.grad(r)(params), retain_grad_fn=jax.grad(r)
        )
        return optax.apply_updates(params, updates), opt_state

    for _ in range(200):
        params, opt_state = step(params, opt_state)
    assert accuracy(apply, params, stats, *forget) < 0.2
    assert accuracy(apply, params, stats, *retain) > 0.9
