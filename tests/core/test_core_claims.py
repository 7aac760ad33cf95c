"""The abstract's three claims, checked on quadratic retain losses with known Hessians."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import rosu_jax


def quadratic(seed, dim=12, lam_min=0.5, lam_max=4.0):
    """L_r(θ) = ½ θᵀHθ + bᵀθ with eigenvalues of H spread over [lam_min, lam_max]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    eig = np.linspace(lam_min, lam_max, dim)
    hessian = (q * eig) @ q.T
    b = rng.normal(size=dim)
    theta = rng.normal(size=dim)

    def loss(t):
        return 0.5 * t @ hessian @ t + b @ t

    return hessian, eig, theta, loss, hessian @ theta + b


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.01, 3.0))
def test_claim_i_second_order_bound(seed, rho):
    """L_r(θ+δ) − L_r(θ) = ½ δᵀHδ ≤ ½ ρ² λ_max(H) for ROSU's δ (no first-order term)."""
    hessian, eig, theta, loss, g_r = quadratic(seed)
    g_f = np.random.default_rng(seed + 1).normal(size=theta.shape)
    delta = np.asarray(
        rosu_jax.retain_orthogonal_perturbation(jnp.asarray(g_f, jnp.float32), jnp.asarray(g_r, jnp.float32), rho),
        np.float64,
    )
    increase = loss(theta + delta) - loss(theta)
    scale = rho * np.linalg.norm(g_r) + rho**2 * eig.max()
    np.testing.assert_allclose(increase, 0.5 * delta @ hessian @ delta, atol=1e-5 * scale)
    assert increase <= 0.5 * rho**2 * eig.max() + 1e-5 * scale


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 0.95))
def test_claim_ii_rosu_beats_uam_when_coupling_positive(seed, radius_fraction):
    """κ > 0 and ρ < 2‖g_r‖κ/(λ_max − λ_min) ⇒ L_r(θ + δ_ROSU) < L_r(θ + δ_UAM)."""
    hessian, eig, theta, loss, g_r = quadratic(seed)
    noise = np.random.default_rng(seed + 2).normal(size=theta.shape)
    g_f = noise / np.linalg.norm(noise) + g_r / np.linalg.norm(g_r)  # κ ≈ 0.7 > 0
    kappa = float(rosu_jax.coupling(jnp.asarray(g_f, jnp.float32), jnp.asarray(g_r, jnp.float32)))
    assume(kappa > 0.05)
    rho = radius_fraction * 2 * np.linalg.norm(g_r) * kappa / (eig.max() - eig.min())
    gf32, gr32 = jnp.asarray(g_f, jnp.float32), jnp.asarray(g_r, jnp.float32)
    delta_rosu = np.asarray(rosu_jax.retain_orthogonal_perturbation(gf32, gr32, rho), np.float64)
    delta_uam = np.asarray(rosu_jax.minmax_perturbation(gf32, rho), np.float64)
    assert loss(theta + delta_rosu) < loss(theta + delta_uam)
    # and UAM pays ρ‖g_r‖κ at first order, ROSU nothing
    np.testing.assert_allclose(g_r @ delta_uam, rho * np.linalg.norm(g_r) * kappa, rtol=1e-4)
    assert abs(g_r @ delta_rosu) <= 1e-5 * rho * np.linalg.norm(g_r)


def test_claim_ii_can_fail_with_negative_coupling():
    """With κ < 0 UAM's perturbation lowers the retain loss at first order: the claim's premise matters."""
    hessian, eig, theta, loss, g_r = quadratic(7)
    g_f = -g_r + 0.3 * np.linalg.norm(g_r) * np.random.default_rng(3).normal(size=theta.shape) / np.sqrt(12)
    gf32, gr32 = jnp.asarray(g_f, jnp.float32), jnp.asarray(g_r, jnp.float32)
    assert float(rosu_jax.coupling(gf32, gr32)) < 0
    rho = 0.1
    delta_rosu = np.asarray(rosu_jax.retain_orthogonal_perturbation(gf32, gr32, rho), np.float64)
    delta_uam = np.asarray(rosu_jax.minmax_perturbation(gf32, rho), np.float64)
    assert loss(theta + delta_uam) < loss(theta + delta_rosu)


@settings(max_examples=30, deadline=None)
@given(st.floats(-0.999, 0.999), st.floats(0.01, 5.0))
def test_claim_iii_exact_distance_for_a_chosen_coupling(kappa, rho):
    """Build g_f with cos(g_f, g_r) = κ exactly; ‖δ_ROSU − δ_UAM‖ = ρ√(2 − 2√(1−κ²)) → 0 as κ → 0."""
    e1, e2 = np.eye(8)[0], np.eye(8)[1]
    g_r = 3.0 * e1
    g_f = 2.0 * (kappa * e1 + np.sqrt(1 - kappa**2) * e2)
    tree_f = {"a": jnp.asarray(g_f[:5], jnp.float32), "b": jnp.asarray(g_f[5:], jnp.float32)}
    tree_r = {"a": jnp.asarray(g_r[:5], jnp.float32), "b": jnp.asarray(g_r[5:], jnp.float32)}
    np.testing.assert_allclose(rosu_jax.coupling(tree_f, tree_r), kappa, atol=1e-6)
    diff = jax.tree.map(
        lambda x, y: x - y,
        rosu_jax.retain_orthogonal_perturbation(tree_f, tree_r, rho),
        rosu_jax.minmax_perturbation(tree_f, rho),
    )
    dist = float(rosu_jax.tree_norm(diff))
    np.testing.assert_allclose(dist, rho * np.sqrt(2 - 2 * np.sqrt(1 - kappa**2)), atol=2e-6 * rho + 1e-6)
    # ρ|κ| ≤ distance ≤ √2·ρ|κ|: the two perturbations coincide as κ → 0
    assert rho * abs(kappa) * (1 - 1e-4) - 1e-6 <= dist <= np.sqrt(2) * rho * abs(kappa) * (1 + 1e-4) + 1e-6
