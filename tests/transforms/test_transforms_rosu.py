"""The ROSU Optax transformation: UAM identity, chaining, masks, lagged mode, schedules, errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rosu_jax

W_TRUE = jnp.array([[1.0, -2.0, 0.5], [0.3, 0.8, -1.0]])


def make_problem(seed=0):
    """A tiny least-squares model with separate forget and retain data."""
    k = jax.random.split(jax.random.key(seed), 5)
    params = {"w": jax.random.normal(k[0], (2, 3)), "b": jax.random.normal(k[1], (3,))}
    xf = jax.random.normal(k[2], (16, 2))
    xr = jax.random.normal(k[3], (32, 2))
    yf = xf @ W_TRUE
    yr = xr @ W_TRUE + 0.1 * jax.random.normal(k[4], (32, 3))

    def loss(p, x, y):
        return jnp.mean(jnp.sum((x @ p["w"] + p["b"] - y) ** 2, axis=-1))

    return params, (lambda p: loss(p, xf, yf)), (lambda p: loss(p, xr, yr))


def reference_uam_step(params, forget_loss, retain_loss, lr, rho):
    """UAM written out independently: δ = ρ g_f/‖g_f‖, θ ← θ − lr ∇L_r(θ + δ) (plain SGD)."""
    gf = jax.grad(forget_loss)(params)
    norm = np.sqrt(sum(float(jnp.sum(x**2)) for x in jax.tree.leaves(gf)))
    surrogate = jax.tree.map(lambda p, g: p + rho * g / norm, params, gf)
    g_tilde = jax.grad(retain_loss)(surrogate)
    return jax.tree.map(lambda p, g: p - lr * g, params, g_tilde)


def rosu_step(tx, params, state, forget_loss, retain_loss, **extra):
    """One update of a rosu-style transformation, wired as the README shows."""
    updates, state = tx.update(
        jax.grad(forget_loss)(params),
        state,
        params,
        retain_grads=jax.grad(retain_loss)(params),
        retain_grad_fn=jax.grad(retain_loss),
        **extra,
    )
    return optax.apply_updates(params, updates), state


def run_steps(tx, params, forget_loss, retain_loss, n, **extra):
    state = tx.init(params)
    for _ in range(n):
        params, state = rosu_step(tx, params, state, forget_loss, retain_loss, **extra)
    return params, state


def test_projection_off_and_no_amplification_is_exactly_uam():
    params, forget_loss, retain_loss = make_problem()
    expected = params
    for _ in range(3):
        expected = reference_uam_step(expected, forget_loss, retain_loss, lr=0.05, rho=0.3)
    for tx in (
        rosu_jax.rosu(optax.sgd(0.05), rho=0.3, amplification=0.0, project=False),
        rosu_jax.uam(optax.sgd(0.05), rho=0.3),
    ):
        got, _ = run_steps(tx, params, forget_loss, retain_loss, 3)
        chex.assert_trees_all_close(got, expected, atol=1e-6)


def test_rosu_step_is_transported_plus_amplified():
    """θ' = θ + λδ − lr ∇L_r(θ + δ) with δ the retain-orthogonal perturbation."""
    params, forget_loss, retain_loss = make_problem(1)
    gf, gr = jax.grad(forget_loss)(params), jax.grad(retain_loss)(params)
    delta = rosu_jax.retain_orthogonal_perturbation(gf, gr, 0.4)
    g_tilde = jax.grad(retain_loss)(jax.tree.map(jnp.add, params, delta))
    expected = jax.tree.map(lambda p, d, g: p + 0.2 * d - 0.1 * g, params, delta, g_tilde)
    got, state = run_steps(rosu_jax.rosu(optax.sgd(0.1), 0.4, 0.2), params, forget_loss, retain_loss, 1)
    chex.assert_trees_all_close(got, expected, atol=1e-6)
    np.testing.assert_allclose(state.diagnostics.coupling, rosu_jax.coupling(gf, gr), atol=1e-6)
    assert int(state.count) == 1


def test_amplification_moves_along_retain_neutral_direction():
    """With a zero-lr outer optimizer the whole update is λδ, orthogonal to g_r."""
    params, forget_loss, retain_loss = make_problem(2)
    tx = rosu_jax.rosu(optax.sgd(0.0), rho=1.0, amplification=0.5)
    got, _ = run_steps(tx, params, forget_loss, retain_loss, 1)
    step = jax.tree.map(jnp.subtract, got, params)
    gr = jax.grad(retain_loss)(params)
    assert abs(float(rosu_jax.tree_vdot(step, gr))) < 1e-5 * float(rosu_jax.tree_norm(gr))
    np.testing.assert_allclose(rosu_jax.tree_norm(step), 0.5, rtol=1e-5)


def test_chains_with_optax_and_jits():
    """Inside optax.chain (with a clip before and a scale after) under jit it gives the same trajectory as
    rosu alone when the clip is inactive, and the outer Adam lowers the retain loss."""
    params, forget_loss, retain_loss = make_problem(3)

    def trajectory(tx, n=10):
        step = jax.jit(lambda params, state: rosu_step(tx, params, state, forget_loss, retain_loss))

        p, state = params, tx.init(params)
        with jax.numpy_dtype_promotion("standard"):  # optax.adam's bias correction mixes float and int32
            for _ in range(n):
                p, state = step(p, state)
        return p

    alone = trajectory(rosu_jax.rosu(optax.adam(1e-2), rho=0.2, amplification=0.1))
    chained = trajectory(
        optax.chain(
            optax.clip_by_global_norm(1e6),
            rosu_jax.rosu(optax.adam(1e-2), rho=0.2, amplification=0.1),
            optax.scale(1.0),
        )
    )
    chex.assert_trees_all_close(chained, alone, atol=1e-6)
    assert retain_loss(chained) < retain_loss(params)


def test_dtype_of_updates_follows_params():
    params = {"w": jnp.ones((3, 3), jnp.bfloat16), "b": jnp.zeros(3, jnp.float32)}
    loss_f = lambda p: jnp.sum(p["w"].astype(jnp.float32) ** 2) + jnp.sum(p["b"])
    loss_r = lambda p: jnp.sum((p["w"].astype(jnp.float32) - 2) ** 2) + jnp.sum(p["b"] ** 2)
    tx = rosu_jax.rosu(optax.sgd(0.1, momentum=0.9))
    updates, _ = tx.update(
        jax.grad(loss_f)(params),
        tx.init(params),
        params,
        retain_grads=jax.grad(loss_r)(params),
        retain_grad_fn=jax.grad(loss_r),
    )
    chex.assert_trees_all_equal_dtypes(updates, params)


def test_mask_freezes_masked_weights_even_with_momentum_and_weight_decay():
    params, forget_loss, retain_loss = make_problem(4)
    mask = {"w": jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]), "b": jnp.zeros(3)}
    tx = rosu_jax.rosu(optax.chain(optax.add_decayed_weights(0.1), optax.sgd(0.1, momentum=0.9)), 0.5, 0.3)
    got, _ = run_steps(tx, params, forget_loss, retain_loss, 4, mask=mask)
    frozen = jax.tree.map(lambda p, q, m: jnp.where(m == 0, p - q, 0.0), got, params, mask)
    assert float(rosu_jax.tree_norm(frozen)) == 0.0
    moved = jax.tree.map(lambda p, q, m: jnp.where(m == 1, p - q, 0.0), got, params, mask)
    assert float(rosu_jax.tree_norm(moved)) > 0.0


def test_mask_projects_inside_the_masked_subspace():
    params, forget_loss, retain_loss = make_problem(5)
    mask = {"w": jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]), "b": jnp.ones(3)}
    tx = rosu_jax.rosu(optax.sgd(0.0), rho=1.0, amplification=1.0)
    got, _ = run_steps(tx, params, forget_loss, retain_loss, 1, mask=mask)
    step = jax.tree.map(jnp.subtract, got, params)
    masked_gr = jax.tree.map(jnp.multiply, jax.grad(retain_loss)(params), mask)
    assert abs(float(rosu_jax.tree_vdot(step, masked_gr))) < 1e-5
    np.testing.assert_allclose(rosu_jax.tree_norm(step), 1.0, rtol=1e-5)


def test_lagged_mode_uses_previous_surrogate_gradient():
    params, forget_loss, retain_loss = make_problem(6)
    tx = rosu_jax.rosu(optax.sgd(0.05), rho=0.3, amplification=0.1, lagged=True)
    state = tx.init(params)
    # first step: no lag yet -> the UAM direction
    updates, state = tx.update(jax.grad(forget_loss)(params), state, params, retain_grad_fn=jax.grad(retain_loss))
    delta_uam = rosu_jax.minmax_perturbation(jax.grad(forget_loss)(params), 0.3)
    g_tilde = jax.grad(retain_loss)(jax.tree.map(jnp.add, params, delta_uam))
    chex.assert_trees_all_close(state.lagged_retain_grads, g_tilde, atol=1e-6)
    params1 = optax.apply_updates(params, updates)
    # second step projects against the stored g̃
    _, state2 = tx.update(jax.grad(forget_loss)(params1), state, params1, retain_grad_fn=jax.grad(retain_loss))
    np.testing.assert_allclose(
        state2.diagnostics.coupling, rosu_jax.coupling(jax.grad(forget_loss)(params1), g_tilde), atol=1e-6
    )


def test_rho_and_amplification_schedules():
    params, forget_loss, retain_loss = make_problem(7)
    tx = rosu_jax.rosu(
        optax.sgd(0.01), rho=optax.linear_schedule(1.0, 0.0, 4), amplification=optax.constant_schedule(0.2)
    )
    _, state = run_steps(tx, params, forget_loss, retain_loss, 3)
    np.testing.assert_allclose(state.diagnostics.rho, 0.5)  # value used at count 2
    np.testing.assert_allclose(state.diagnostics.perturbation_norm, 0.5, rtol=1e-6)


def test_surrogate_increase_is_measured_on_request():
    params, forget_loss, retain_loss = make_problem(8)
    tx = rosu_jax.rosu(optax.sgd(0.01), rho=0.3)
    _, state = run_steps(tx, params, forget_loss, retain_loss, 1, retain_loss_fn=retain_loss)
    gf, gr = jax.grad(forget_loss)(params), jax.grad(retain_loss)(params)
    delta = rosu_jax.retain_orthogonal_perturbation(gf, gr, 0.3)
    expected = retain_loss(jax.tree.map(jnp.add, params, delta)) - retain_loss(params)
    np.testing.assert_allclose(state.diagnostics.surrogate_retain_increase, expected, rtol=1e-4)
    _, state_unmeasured = run_steps(tx, params, forget_loss, retain_loss, 1)
    assert np.isnan(state_unmeasured.diagnostics.surrogate_retain_increase)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rho": 0.0}, "rho"),
        ({"rho": -1.0}, "rho"),
        ({"rho": float("nan")}, "rho"),
        ({"amplification": -0.1}, "amplification"),
        ({"rho": "big"}, "rho"),
        ({"eps": -1.0}, "eps"),
    ],
)
def test_bad_hyperparameters_raise_at_build_time(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rosu_jax.rosu(optax.sgd(0.1), **kwargs)


def test_missing_extra_args_are_explained():
    params, forget_loss, retain_loss = make_problem(9)
    tx = rosu_jax.rosu(optax.sgd(0.1))
    state = tx.init(params)
    gf = jax.grad(forget_loss)(params)
    with pytest.raises(ValueError, match="retain_grad_fn"):
        tx.update(gf, state, params, retain_grads=gf)
    with pytest.raises(ValueError, match="retain_grads"):
        tx.update(gf, state, params, retain_grad_fn=jax.grad(retain_loss))
    with pytest.raises(ValueError, match="needs params"):
        tx.update(gf, state, None, retain_grads=gf, retain_grad_fn=jax.grad(retain_loss))
    with pytest.raises(ValueError, match="outer_optimizer"):
        rosu_jax.rosu(lambda g: g)
    with pytest.raises(ValueError, match="different tree structures"):
        tx.update(gf, state, params, retain_grads={"w": gf["w"]}, retain_grad_fn=jax.grad(retain_loss))
