"""The sharded unlearning step (data parallel and FSDP, 8 fake CPU devices) follows the single-device
trajectory, keeps its shardings, and takes the ROSU/UAM inner products over the global gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

import rosu_jax
from rosu_jax.parallel import batch_sharding, make_mesh, shard_batch, shard_state, sharded_step

METHODS = ("ROSU", "UAM", "NegGrad+")
MESHES = ("data=8", "data=2,fsdp=4")
GEOMETRY = ("coupling", "forget_norm", "retain_norm", "perturbation_norm", "predicted_retain_change")


def assert_trees_close(a, b, atol=1e-5, rtol=1e-5):
    """Leaf-wise allclose on host copies (no eager device ops, which would compile per shape and sharding)."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol)


def max_abs_diff(a, b):
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in pairs)


@pytest.mark.parametrize("spec", MESHES)
@pytest.mark.parametrize("method", METHODS)
def test_sharded_trajectory_matches_single_device(trajectories, method, spec):
    ref_states, ref_metrics = trajectories.reference(method)
    states, metrics, expected = trajectories.sharded(method, spec)

    for i, (got, want) in enumerate(zip(states, ref_states, strict=True)):
        print(f"{method} {spec} step {i + 1}: max |Δparams| = {max_abs_diff(got.params, want.params):.2e}")
        assert_trees_close(got.params, want.params)
        assert_trees_close(got.model_state, want.model_state)
        assert_trees_close(got.opt_state, want.opt_state)
        assert int(got.step) == i + 1
    for got, want in zip(metrics, ref_metrics, strict=True):
        assert got.keys() == want.keys()
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    # the weights did move, so the agreement is not that of unchanged parameters
    assert max_abs_diff(states[-1].params, trajectories.params) > 1e-3

    # every leaf of the output state keeps the layout it came in with; metrics are replicated
    final = states[-1]
    for leaf, sharding in zip(jax.tree.leaves(final), jax.tree.leaves(expected), strict=True):
        assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim), (leaf.shape, leaf.sharding, sharding)
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(metrics[-1]))
    if "fsdp=4" in spec:
        assert final.params["conv1"]["kernel"].sharding.spec == P(None, None, None, "fsdp")
        assert final.params["fc1"]["kernel"].sharding.spec == P(None, "fsdp")
        assert final.params["fc2"]["kernel"].sharding.spec == P("fsdp")
        assert {s.data.shape for s in final.params["fc1"]["kernel"].addressable_shards} == {(16, 8)}
        momentum = jax.tree.leaves(final.opt_state, is_leaf=lambda x: isinstance(x, optax.TraceState))
        traces = [t.trace for t in momentum if isinstance(t, optax.TraceState)]
        assert traces and traces[0]["fc1"]["kernel"].sharding.spec == P(None, "fsdp")
    else:
        assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(final.params))


@pytest.mark.parametrize("spec", MESHES)
@pytest.mark.parametrize("method", ("ROSU", "UAM+λ"))
def test_global_inner_products_are_exact_under_sharding(trajectories, method, spec):
    """κ, ‖g_f‖, ‖g_r‖, ‖δ‖ and the predicted retain change of the sharded step are those of the global
    gradients (as on one device) at every step, to float32 reassociation (UAM+λ: the unprojected δ with g_r
    at θ, whose κ is exact from the first step)."""
    _, ref_metrics = trajectories.reference(method)
    _, metrics, _ = trajectories.sharded(method, spec)
    for got, want in zip(metrics, ref_metrics, strict=True):
        for name in GEOMETRY:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-7, err_msg=name)
    worst = max(abs(float(g["coupling"]) - float(w["coupling"])) for g, w in zip(metrics, ref_metrics, strict=True))
    print(f"{method} {spec}: coupling {[round(float(m['coupling']), 6) for m in metrics]}, max |Δκ| {worst:.1e}")
    assert all(abs(float(m["coupling"])) > 1e-3 for m in metrics)


def test_sharded_step_rejects_bad_batches(trajectories):
    forget, retain = trajectories.batches[0]
    mesh = make_mesh("data=8")
    stepper = trajectories.stepper("NegGrad+")
    state = shard_state(stepper.init(trajectories.params, trajectories.model_state), mesh)
    step = sharded_step(stepper, mesh, state)
    assert shard_batch(forget, mesh)["image"].sharding == batch_sharding(mesh)
    odd = jax.tree.map(lambda x: x[:28], retain)
    with pytest.raises(ValueError, match="not divisible by the 8 data shards"):
        step(state, forget, odd, jax.random.key(0))
    with pytest.raises(ValueError, match="not divisible by the 8 data shards"):
        shard_batch(odd, mesh)
    with pytest.raises(ValueError, match="different leading"):
        shard_batch({"image": forget["image"], "label": retain["label"][:16]}, mesh)


def per_replica_gradients(num, dim, seed):
    rng = np.random.default_rng(seed)
    common_f, common_r = rng.normal(size=dim), rng.normal(size=dim)
    gf = common_f + 2.0 * rng.normal(size=(num, dim))
    gr = common_r + 2.0 * rng.normal(size=(num, dim))
    return jnp.asarray(gf, jnp.float32), jnp.asarray(gr, jnp.float32)


def test_projecting_per_replica_then_averaging_is_not_the_global_projection():
    """pmean of per-replica ROSU directions != ROSU direction of the pmean-ed gradients (which is what the
    sharded step and ``rosu(axis_name=...)`` compute)."""
    mesh = make_mesh("data=8")
    gf, gr = per_replica_gradients(8, 32, seed=0)
    rho = 0.5

    def both(gf, gr):
        gf, gr = {"w": gf[0]}, {"w": gr[0]}
        averaged_directions = jax.lax.pmean(rosu_jax.retain_orthogonal_perturbation(gf, gr, rho), "data")
        global_direction = rosu_jax.retain_orthogonal_perturbation(
            jax.lax.pmean(gf, "data"), jax.lax.pmean(gr, "data"), rho
        )
        return averaged_directions, global_direction

    fn = jax.jit(jax.shard_map(both, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=(P(), P())))
    averaged, global_ = fn(gf, gr)

    f, r = np.asarray(gf, np.float64).mean(0), np.asarray(gr, np.float64).mean(0)
    d = f - (f @ r) / (r @ r) * r
    expected = rho * d / np.linalg.norm(d)
    averaged, global_ = np.asarray(averaged["w"], np.float64), np.asarray(global_["w"], np.float64)
    np.testing.assert_allclose(global_, expected, atol=1e-5)
    # the global direction is orthogonal to the global retain gradient and has norm ρ ...
    assert abs(global_ @ r) < 1e-4
    np.testing.assert_allclose(np.linalg.norm(global_), rho, rtol=1e-5)
    # ... the average of the per-replica directions is neither, and points elsewhere
    assert abs(averaged @ r) > 1e-2
    assert np.linalg.norm(averaged) < 0.9 * rho
    assert np.linalg.norm(averaged - global_) > 0.1 * rho


def test_rosu_axis_name_in_shard_map_matches_the_global_step():
    """``rosu(axis_name='data')`` inside shard_map, fed per-device gradients, reproduces the global update."""
    mesh = make_mesh("data=8")
    rng = np.random.default_rng(1)
    arr = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)
    params, xf, yf, xr, yr = {"w": arr(4, 3)}, arr(16, 4), arr(16, 3), arr(32, 4), arr(32, 3)
    single_tx = rosu_jax.rosu(optax.sgd(0.1), 0.5, 0.05)
    mapped_tx = rosu_jax.rosu(optax.sgd(0.1), 0.5, 0.05, axis_name="data")

    def loss(p, x, y):
        return jnp.mean(jnp.sum((x @ p["w"] - y) ** 2, axis=-1))

    def update(tx, params, xf, yf, xr, yr):
        updates, state = tx.update(
            jax.grad(loss)(params, xf, yf),
            tx.init(params),
            params,
            retain_grads=jax.grad(loss)(params, xr, yr),
            retain_grad_fn=lambda p: jax.grad(loss)(p, xr, yr),
        )
        return updates, state.diagnostics.coupling

    want, want_kappa = jax.jit(lambda *args: update(single_tx, *args))(params, xf, yf, xr, yr)
    # check_vma=False: gradients of the replicated params stay per-device (no automatic psum), so the only
    # averaging is rosu's own pmean over axis_name.
    fn = jax.jit(
        jax.shard_map(
            lambda *args: update(mapped_tx, *args),
            mesh=mesh,
            in_specs=(P(), P("data"), P("data"), P("data"), P("data")),
            out_specs=(P(), P()),
            check_vma=False,
        )
    )
    got, kappa = fn(params, xf, yf, xr, yr)
    assert_trees_close(got, want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(kappa, want_kappa, atol=1e-6)
