"""Sharded inputs and per-device loops on 8 fake CPU devices give the single-device result."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import rosu_jax


def test_eight_fake_devices_are_present():
    assert jax.device_count() == 8


def tree_pair():
    k = jax.random.split(jax.random.key(0), 4)
    gf = {"w": jax.random.normal(k[0], (64, 16)), "b": jax.random.normal(k[1], (16,))}
    gr = {"w": jax.random.normal(k[2], (64, 16)), "b": jax.random.normal(k[3], (16,))}
    return gf, gr


@pytest.mark.parametrize("axis_type", [jax.sharding.AxisType.Auto, jax.sharding.AxisType.Explicit])
def test_projection_on_sharded_params_matches_single_device(axis_type):
    gf, gr = tree_pair()
    single = rosu_jax.retain_orthogonal_perturbation(gf, gr, 0.5)
    single_kappa = rosu_jax.coupling(gf, gr)
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(axis_type, axis_type))
    specs = {"w": P("data", "model"), "b": P("model")}
    place = lambda t: jax.tree.map(lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), t, specs)
    with jax.set_mesh(mesh):
        sharded_f, sharded_r = place(gf), place(gr)
        delta = jax.jit(rosu_jax.retain_orthogonal_perturbation)(sharded_f, sharded_r, 0.5)
        kappa = jax.jit(rosu_jax.coupling)(sharded_f, sharded_r)
    chex.assert_trees_all_close(delta, single, atol=1e-6)
    np.testing.assert_allclose(kappa, single_kappa, atol=1e-6)
    assert delta["w"].sharding.spec == P("data", "model")


def per_example_problem():
    k = jax.random.split(jax.random.key(1), 5)
    params = {"w": jax.random.normal(k[0], (4, 3)) * 0.5, "b": jnp.zeros(3)}
    xf, xr = jax.random.normal(k[1], (16, 4)), jax.random.normal(k[2], (32, 4))
    yf, yr = jax.random.normal(k[3], (16, 3)), jax.random.normal(k[4], (32, 3))

    def loss(p, x, y):
        return jnp.mean(jnp.sum((x @ p["w"] + p["b"] - y) ** 2, axis=-1))

    return params, (xf, yf), (xr, yr), loss


def one_step(tx, params, forget, retain, loss):
    gf = jax.grad(loss)(params, *forget)
    gr = jax.grad(loss)(params, *retain)
    updates, state = tx.update(
        gf, tx.init(params), params, retain_grads=gr, retain_grad_fn=lambda p: jax.grad(loss)(p, *retain)
    )
    return optax.apply_updates(params, updates), state.diagnostics


@pytest.mark.parametrize("global_loss", [False, True])
def test_axis_name_inside_shard_map_matches_full_batch(global_loss):
    """Per-device gradients (check_vma=False, like pmap) are averaged by axis_name; with vma checking and a
    loss that is already pmean-ed, gradients arrive replicated and the average leaves them unchanged."""
    params, forget, retain, loss = per_example_problem()
    expected, expected_diag = one_step(rosu_jax.rosu(optax.sgd(0.1), 0.3, 0.2), params, forget, retain, loss)
    mesh = jax.make_mesh((8,), ("data",))
    tx = rosu_jax.rosu(optax.sgd(0.1), 0.3, 0.2, axis_name="data")
    device_loss = (lambda p, x, y: jax.lax.pmean(loss(p, x, y), "data")) if global_loss else loss

    @jax.jit
    @jax.shard_map(mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=(P(), P()), check_vma=global_loss)
    def sharded_step(params, forget, retain):
        new_params, diag = one_step(tx, params, forget, retain, device_loss)
        return new_params, diag.coupling

    shard = lambda t: jax.device_put(t, NamedSharding(mesh, P("data")))
    got, kappa = sharded_step(jax.device_put(params, NamedSharding(mesh, P())), shard(forget), shard(retain))
    chex.assert_trees_all_close(got, expected, atol=1e-5)
    np.testing.assert_allclose(kappa, expected_diag.coupling, atol=1e-5)


def test_projecting_per_replica_then_averaging_is_a_different_vector():
    """The pitfall the axis_name guards against: mean of per-replica δ ≠ δ of mean gradients."""
    params, forget, retain, loss = per_example_problem()
    mesh = jax.make_mesh((8,), ("data",))

    @jax.jit
    @jax.shard_map(mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=P(), check_vma=False)
    def per_replica_delta(params, forget, retain):
        gf = jax.grad(loss)(params, *forget)
        gr = jax.grad(loss)(params, *retain)
        return jax.lax.pmean(rosu_jax.retain_orthogonal_perturbation(gf, gr, 0.3), "data")

    correct = rosu_jax.retain_orthogonal_perturbation(
        jax.grad(loss)(params, *forget), jax.grad(loss)(params, *retain), 0.3
    )
    shard = lambda t: jax.device_put(t, NamedSharding(mesh, P("data")))
    wrong = per_replica_delta(jax.device_put(params, NamedSharding(mesh, P())), shard(forget), shard(retain))
    diff = rosu_jax.tree_norm(jax.tree.map(jnp.subtract, wrong, correct))
    assert float(diff) > 1e-2


def test_axis_name_inside_pmap_matches_full_batch():
    params, forget, retain, loss = per_example_problem()
    expected, _ = one_step(rosu_jax.rosu(optax.sgd(0.1), 0.3, 0.2), params, forget, retain, loss)
    tx = rosu_jax.rosu(optax.sgd(0.1), 0.3, 0.2, axis_name="batch")
    split = lambda t: jax.tree.map(lambda x: x.reshape(8, -1, *x.shape[1:]), t)
    replicated = jax.tree.map(lambda x: jnp.broadcast_to(x, (8, *x.shape)), params)
    got, _ = jax.pmap(lambda p, f, r: one_step(tx, p, f, r, loss), axis_name="batch")(
        replicated, split(forget), split(retain)
    )
    for i in (0, 7):
        chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], got), expected, atol=1e-5)
