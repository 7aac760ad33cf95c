"""Properties of the closed-form perturbations (spec: 'Properties that tests must check')."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rosu_jax
from rosu_jax.core.tree_math import tree_sq_norm


def flat(tree):
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)])


def random_tree(key, shapes, dtype=jnp.float32):
    keys = jax.random.split(key, len(shapes))
    return {f"leaf{i}": jax.random.normal(k, s, dtype) for i, (k, s) in enumerate(zip(keys, shapes, strict=True))}


SHAPES = [(3, 4), (5,), (2, 2, 3), ()]


def test_orthogonal_and_on_the_sphere():
    gf = random_tree(jax.random.key(0), SHAPES)
    gr = random_tree(jax.random.key(1), SHAPES)
    rho = 0.7
    delta = rosu_jax.retain_orthogonal_perturbation(gf, gr, rho)
    chex.assert_trees_all_equal_shapes_and_dtypes(delta, gf)
    d, r = flat(delta), flat(gr)
    assert abs(d @ r) <= 1e-5 * rho * np.linalg.norm(r)
    np.testing.assert_allclose(np.linalg.norm(d), rho, rtol=1e-5)


def test_matches_float64_reference():
    gf = random_tree(jax.random.key(2), SHAPES)
    gr = random_tree(jax.random.key(3), SHAPES)
    f, r = flat(gf), flat(gr)
    d = f - (f @ r) / (r @ r) * r
    expected = 0.3 * d / np.linalg.norm(d)
    np.testing.assert_allclose(flat(rosu_jax.retain_orthogonal_perturbation(gf, gr, 0.3)), expected, atol=1e-6)
    np.testing.assert_allclose(flat(rosu_jax.minmax_perturbation(gf, 0.3)), 0.3 * f / np.linalg.norm(f), atol=1e-6)
    expected_kappa = (f @ r) / np.linalg.norm(f) / np.linalg.norm(r)
    np.testing.assert_allclose(rosu_jax.coupling(gf, gr), expected_kappa, atol=1e-6)


def test_optimality_against_random_feasible_directions():
    """Among δ' ⊥ g_r with ‖δ'‖ ≤ ρ, ⟨g_f, δ'⟩ ≤ ⟨g_f, δ⟩ = ρ‖g_f‖√(1−κ²)."""
    gf = random_tree(jax.random.key(4), SHAPES)
    gr = jax.tree.map(lambda a, b: a + 0.8 * b, random_tree(jax.random.key(5), SHAPES), gf)  # κ > 0
    rho = 1.3
    f, r = flat(gf), flat(gr)
    kappa = float(rosu_jax.coupling(gf, gr))
    best = flat(gf) @ flat(rosu_jax.retain_orthogonal_perturbation(gf, gr, rho))
    np.testing.assert_allclose(best, rho * np.linalg.norm(f) * np.sqrt(1 - kappa**2), rtol=1e-5)
    rng = np.random.default_rng(0)
    for _ in range(500):
        v = rng.normal(size=f.shape)
        v -= (v @ r) / (r @ r) * r
        v *= rho * rng.uniform() / np.linalg.norm(v)
        assert f @ v <= best + 1e-6


def test_coupling_of_the_forget_gain():
    """⟨g_f, δ_ROSU⟩/⟨g_f, δ_UAM⟩ = √(1−κ²) and ‖d‖/‖g_f‖ is reported as neutral_fraction."""
    gf = random_tree(jax.random.key(6), SHAPES)
    gr = random_tree(jax.random.key(7), SHAPES)
    _, diag = rosu_jax.perturbation_with_diagnostics(gf, gr, 1.0)
    kappa = float(diag.coupling)
    np.testing.assert_allclose(diag.neutral_fraction, np.sqrt(1 - kappa**2), rtol=1e-5)
    np.testing.assert_allclose(diag.predicted_retain_change, 0.0)
    np.testing.assert_allclose(diag.predicted_retain_change_minmax, float(diag.retain_norm) * kappa, rtol=1e-5)
    _, uam_diag = rosu_jax.perturbation_with_diagnostics(gf, gr, 1.0, project=False)
    uam_change = flat(rosu_jax.minmax_perturbation(gf, 1.0)) @ flat(gr)
    np.testing.assert_allclose(uam_diag.predicted_retain_change, uam_change, rtol=1e-5)


# ----- degenerate inputs -------------------------------------------------------------------------------


def test_zero_retain_gradient_gives_minmax_direction():
    gf = random_tree(jax.random.key(8), SHAPES)
    zeros = jax.tree.map(jnp.zeros_like, gf)
    chex.assert_trees_all_close(
        rosu_jax.retain_orthogonal_perturbation(gf, zeros, 0.5),
        rosu_jax.minmax_perturbation(gf, 0.5),
        atol=1e-7,
    )
    assert float(rosu_jax.coupling(gf, zeros)) == 0.0


def test_zero_forget_gradient_gives_zero():
    gr = random_tree(jax.random.key(9), SHAPES)
    zeros = jax.tree.map(jnp.zeros_like, gr)
    for delta in (
        rosu_jax.retain_orthogonal_perturbation(zeros, gr, 0.5),
        rosu_jax.minmax_perturbation(zeros, 0.5),
    ):
        assert np.all(flat(delta) == 0.0)
    assert np.all(flat(rosu_jax.retain_orthogonal_perturbation(zeros, zeros, 0.5)) == 0.0)


@pytest.mark.parametrize("factor", [2.0, -0.5, 4.0, -1.0])
def test_parallel_gradients_give_zero(factor):
    gf = random_tree(jax.random.key(10), SHAPES)
    gr = jax.tree.map(lambda x: factor * x, gf)
    delta = rosu_jax.retain_orthogonal_perturbation(gf, gr, 0.5)
    assert np.all(np.isfinite(flat(delta)))
    np.testing.assert_allclose(flat(delta), 0.0, atol=1e-6)
    _, diag = rosu_jax.perturbation_with_diagnostics(gf, gr, 0.5)
    assert float(diag.perturbation_norm) == 0.0


def test_nearly_parallel_never_nan():
    gf = random_tree(jax.random.key(11), SHAPES)
    gr = jax.tree.map(lambda x: 3.0 * x, gf)  # not exactly representable: rounding noise only
    delta = rosu_jax.retain_orthogonal_perturbation(gf, gr, 0.5)
    assert np.all(np.isfinite(flat(delta)))
    assert np.linalg.norm(flat(delta)) <= 0.5 + 1e-6


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_propagate_as_nan(bad):
    """Documented policy: a non-finite leaf makes δ (and the diagnostics) NaN, never silently finite."""
    gf = random_tree(jax.random.key(12), SHAPES)
    gr = random_tree(jax.random.key(13), SHAPES)
    bad_gr = dict(gr, leaf1=gr["leaf1"].at[2].set(bad))
    delta, diag = rosu_jax.perturbation_with_diagnostics(gf, bad_gr, 0.5)
    assert not np.all(np.isfinite(flat(delta)))
    assert np.isnan(float(diag.coupling))
    assert not bool(rosu_jax.core.tree_all_finite(delta))


def test_finite_inputs_never_give_nan_even_when_tiny():
    gf = jax.tree.map(lambda x: 1e-30 * x, random_tree(jax.random.key(14), SHAPES))
    gr = jax.tree.map(lambda x: 1e-30 * x, random_tree(jax.random.key(15), SHAPES))
    for delta in (
        rosu_jax.retain_orthogonal_perturbation(gf, gr, 0.5),
        rosu_jax.minmax_perturbation(gf, 0.5),
    ):
        assert np.all(np.isfinite(flat(delta)))
    assert np.isfinite(float(rosu_jax.coupling(gf, gr)))


def test_mismatched_structures_name_the_path():
    gf = {"a": jnp.ones(3), "b": {"c": jnp.ones(2)}}
    with pytest.raises(ValueError, match=r"\['b'\]\['c'\]"):
        rosu_jax.retain_orthogonal_perturbation(gf, {"a": jnp.ones(3), "b": {"d": jnp.ones(2)}}, 1.0)
    with pytest.raises(ValueError, match=r"shape at leaf \['b'\]\['c'\]"):
        rosu_jax.retain_orthogonal_perturbation(gf, {"a": jnp.ones(3), "b": {"c": jnp.ones(3)}}, 1.0)
    with pytest.raises(ValueError, match="different tree structures"):
        rosu_jax.coupling(gf, {"a": jnp.ones(3)})
    with pytest.raises(ValueError, match="eps"):
        rosu_jax.retain_orthogonal_perturbation(gf, gf, 1.0, eps=-1.0)


# ----- dtypes, jit, invariance ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtypes_are_preserved_and_accurate(dtype):
    gf32 = random_tree(jax.random.key(16), [(64, 32), (128,)])
    gr32 = random_tree(jax.random.key(17), [(64, 32), (128,)])
    gf = jax.tree.map(lambda x: x.astype(dtype), gf32)
    gr = jax.tree.map(lambda x: x.astype(dtype), gr32)
    delta = rosu_jax.retain_orthogonal_perturbation(gf, gr, 1.0)
    chex.assert_trees_all_equal_dtypes(delta, gf)
    d, r = flat(delta), flat(gr)
    tol = 1e-5 if dtype == jnp.float32 else 1e-2
    assert abs(d @ r) <= tol * np.linalg.norm(r)
    np.testing.assert_allclose(np.linalg.norm(d), 1.0, rtol=tol)


def test_mixed_leaf_dtypes():
    gf = {"w": jnp.ones((4, 4), jnp.bfloat16), "b": jnp.arange(4.0)}
    gr = {"w": jnp.eye(4, dtype=jnp.bfloat16), "b": jnp.ones(4)}
    delta = rosu_jax.retain_orthogonal_perturbation(gf, gr, 2.0)
    assert delta["w"].dtype == jnp.bfloat16 and delta["b"].dtype == jnp.float32


def test_jit_matches_eager_and_does_not_recompile():
    gf = random_tree(jax.random.key(18), SHAPES)
    gr = random_tree(jax.random.key(19), SHAPES)
    eager = rosu_jax.retain_orthogonal_perturbation(gf, gr, 0.5)
    traces = []

    @jax.jit
    def project(a, b, rho):
        traces.append(1)
        return rosu_jax.retain_orthogonal_perturbation(a, b, rho)

    chex.assert_trees_all_close(project(gf, gr, 0.5), eager, atol=1e-6)
    gf2 = jax.tree.map(lambda x: x + 1.0, gf)
    project(gf2, gr, 0.25)
    assert len(traces) == 1


def test_leaf_layout_invariance():
    """Same vector split into different leaves (pytree vs one flat array) gives the same δ."""
    gf = random_tree(jax.random.key(20), SHAPES)
    gr = random_tree(jax.random.key(21), SHAPES)
    flat_f = jnp.concatenate([x.ravel() for x in jax.tree.leaves(gf)])
    flat_r = jnp.concatenate([x.ravel() for x in jax.tree.leaves(gr)])
    tree_delta = rosu_jax.retain_orthogonal_perturbation(gf, gr, 0.9)
    flat_delta = rosu_jax.retain_orthogonal_perturbation(flat_f, flat_r, 0.9)
    np.testing.assert_allclose(flat(tree_delta), np.asarray(flat_delta), atol=1e-6)


# ----- hypothesis: random pytrees and shapes --------------------------------------------------------------

finite = st.floats(-100, 100, allow_nan=False, width=32)
leaf_shapes = st.lists(hnp.array_shapes(min_dims=0, max_dims=3, max_side=5), min_size=1, max_size=4)


@st.composite
def gradient_pairs(draw):
    shapes = draw(leaf_shapes)
    gf = {f"p{i}": jnp.asarray(draw(hnp.arrays(np.float32, s, elements=finite))) for i, s in enumerate(shapes)}
    gr = {f"p{i}": jnp.asarray(draw(hnp.arrays(np.float32, s, elements=finite))) for i, s in enumerate(shapes)}
    rho = draw(st.floats(1e-3, 10.0))
    return gf, gr, rho


@settings(max_examples=60, deadline=None)
@given(gradient_pairs())
def test_property_orthogonality_norm_and_finiteness(pair):
    gf, gr, rho = pair
    delta = rosu_jax.retain_orthogonal_perturbation(gf, gr, rho)
    d, f, r = flat(delta), flat(gf), flat(gr)
    assert np.all(np.isfinite(d))
    assert np.linalg.norm(d) <= rho * (1 + 1e-4)
    nf, nr = np.linalg.norm(f), np.linalg.norm(r)
    assume(nf > 1e-3 and nr > 1e-3)
    kappa = (f @ r) / (nf * nr)
    assume(1 - kappa**2 > 1e-3)  # away from float32 cancellation (documented policy)
    assert abs(d @ r) <= 1e-3 * rho * nr
    np.testing.assert_allclose(np.linalg.norm(d), rho, rtol=1e-3)
    # the forget gain is the constrained optimum ρ‖g_f‖√(1−κ²)
    np.testing.assert_allclose(d @ f, rho * nf * np.sqrt(1 - kappa**2), rtol=2e-3, atol=1e-4 * rho * nf)


@settings(max_examples=40, deadline=None)
@given(gradient_pairs())
def test_property_claim_iii_distance_to_uam(pair):
    """‖δ_ROSU − δ_UAM‖ = ρ·√(2 − 2√(1−κ²)) (claim iii)."""
    gf, gr, rho = pair
    f, r = flat(gf), flat(gr)
    assume(np.linalg.norm(f) > 1e-3 and np.linalg.norm(r) > 1e-3)
    kappa = float(rosu_jax.coupling(gf, gr))
    assume(1 - kappa**2 > 1e-3)
    dist = np.linalg.norm(
        flat(rosu_jax.retain_orthogonal_perturbation(gf, gr, rho)) - flat(rosu_jax.minmax_perturbation(gf, rho))
    )
    np.testing.assert_allclose(dist, rho * np.sqrt(2 - 2 * np.sqrt(1 - kappa**2)), rtol=1e-3, atol=1e-4 * rho)


def test_squared_norm_accumulates_bf16_in_float32():
    x = {"a": jnp.full((4096,), 1.0, jnp.bfloat16)}  # bf16 accumulation would stall at 256
    assert float(tree_sq_norm(x)) == 4096.0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_reductions_over_small_and_large_leaves_match_float64(dtype):
    """Small leaves are reduced together, large ones alone: both paths give the float64 answer."""
    from rosu_jax.core.tree_math import SMALL_LEAF_SIZE, tree_gram, tree_sq_norm, tree_vdot

    shapes = [(200, 100), (3,), (), (7, 5), (SMALL_LEAF_SIZE,), (SMALL_LEAF_SIZE - 1,)]
    a = jax.tree.map(lambda x: x.astype(dtype), random_tree(jax.random.key(30), shapes))
    b = jax.tree.map(lambda x: x.astype(dtype), random_tree(jax.random.key(31), shapes))
    fa, fb = flat(a), flat(b)
    sq_a, sq_b, dot = tree_gram(a, b)
    np.testing.assert_allclose([sq_a, sq_b, dot], [fa @ fa, fb @ fb, fa @ fb], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(tree_vdot(a, b), fa @ fb, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(tree_sq_norm(a), fa @ fa, rtol=1e-5)


def test_nearly_parallel_gradients_keep_the_norm_and_orthogonality():
    """Within ~0.1° of parallel the closed-form ‖d‖ would lose digits; the measured one keeps ‖δ‖ = ρ."""
    gf = random_tree(jax.random.key(32), [(300,), (40, 5)])
    noise = random_tree(jax.random.key(33), [(300,), (40, 5)])
    gr = jax.tree.map(lambda f, n: 3.0 * f + 2e-3 * n, gf, noise)
    delta = rosu_jax.retain_orthogonal_perturbation(gf, gr, 0.7)
    d, r = flat(delta), flat(gr)
    np.testing.assert_allclose(np.linalg.norm(d), 0.7, rtol=1e-5)
    assert abs(d @ r) <= 1e-3 * 0.7 * np.linalg.norm(r)
