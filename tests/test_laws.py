"""The laws and the trajectory solver, checked against a bracketing root finder."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

from bayescale.models import KAPLAN
from bayescale.models import kaplan as laws


def _wide_grid(n: int, seed: int):
    """The wide grid of constants the laws must handle: alpha_S 0.3-1.5, alpha_B 0.05-1, L_N 0.1-5, S 1-1e7, B 2^6-2^26."""
    rng = np.random.default_rng(seed)
    return dict(
        alpha_S=rng.uniform(0.3, 1.5, n), alpha_B=rng.uniform(0.05, 1.0, n), L_N=rng.uniform(0.1, 5.0, n),
        log_S=rng.uniform(0.0, np.log(1e7), n), log_B=rng.uniform(6 * np.log(2), 26 * np.log(2), n),
        log_S_c=rng.uniform(np.log(10.0), np.log(1e5), n), log_B_star=rng.uniform(np.log(1e3), np.log(1e12), n),
    )


def _reference_root(g, i):
    """Root of L - L_N - (S_c (1 + B_crit(L)/B) / S)^alpha_S by Brent's method in float64."""
    a, k, L_N = g["alpha_S"][i], 1.0 / g["alpha_B"][i], g["L_N"][i]

    def f(L):
        return L - L_N - np.exp(a * (g["log_S_c"][i] - g["log_S"][i]
                                     + np.log1p(np.exp(g["log_B_star"][i] - k * np.log(L) - g["log_B"][i]))))

    hi = L_N + np.exp(a * (g["log_S_c"][i] - g["log_S"][i]
                           + np.log1p(np.exp(g["log_B_star"][i] - k * np.log(L_N) - g["log_B"][i])))) * 1.01
    return brentq(f, L_N * (1 + 1e-12), hi, xtol=1e-300, rtol=1e-13, maxiter=500)


def _constants(g, N=1e6, alpha_N=0.1):
    log_N_c = np.log(N) + np.log(g["L_N"]) / alpha_N
    return laws.KaplanConstants(log_N_c, alpha_N, g["log_S_c"], g["alpha_S"], g["log_B_star"], g["alpha_B"])


def test_trajectory_matches_brent_over_wide_grid():
    g = _wide_grid(2000, seed=0)
    truth = np.array([_reference_root(g, i) for i in range(2000)])
    L = np.asarray(laws.trajectory(_constants(g), 1e6, np.exp(g["log_B"]), np.exp(g["log_S"])), float)
    rel = np.abs(L - truth) / truth
    assert np.all(np.isfinite(L))
    assert rel.max() < 1e-5, f"worst relative error {rel.max():.2e}"


@pytest.mark.parametrize("batch_over_bcrit", [1e-4, 1.0, 1e4])
def test_trajectory_far_below_and_above_critical_batch(batch_over_bcrit):
    c = laws.KaplanConstants.from_paper(N_c=1e6, alpha_N=0.2, S_c=180.0, alpha_S=0.7, B_star=1.4e4, alpha_B=0.3)
    steps = np.geomspace(10, 1e6, 50)
    L0 = np.asarray(laws.trajectory(c, 1e5, 1e3, steps))
    B = np.asarray(laws.critical_batch(c, L0)) * batch_over_bcrit
    L = np.asarray(laws.trajectory(c, 1e5, B, steps), float)
    # the explicit inverse must give back the steps: S(L; B) = S_min(L) (1 + B_crit(L)/B)
    back = KAPLAN.steps_to_loss(c, 1e5, B, L)["steps"]
    np.testing.assert_allclose(back, steps, rtol=2e-4)


def test_trajectory_is_monotone_and_above_floor():
    c = laws.KaplanConstants.from_paper(N_c=1e6, alpha_N=0.2, S_c=180.0, alpha_S=0.7, B_star=1.4e4, alpha_B=0.3)
    L = np.asarray(laws.trajectory(c, 1e5, 1024.0, np.geomspace(1, 1e7, 200)))
    assert np.all(np.diff(L) < 0)
    assert np.all(L > float(laws.loss_floor(c, 1e5)))


def test_gradients_through_root_match_finite_differences():
    jax.config.update("jax_enable_x64", True)
    try:
        theta = jnp.array([np.log(1e6), 0.2, np.log(180.0), 0.7, np.log(1.4e4), 0.3])

        def loss(t):
            return laws.trajectory(laws.KaplanConstants(*t), 1e5, 1024.0, jnp.array([300.0, 3000.0])).sum()

        grad = np.asarray(jax.grad(loss)(theta))
        eps = 1e-6
        numeric = np.array([(loss(theta.at[i].add(eps)) - loss(theta.at[i].add(-eps))) / (2 * eps) for i in range(6)])
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-9)
    finally:
        jax.config.update("jax_enable_x64", False)


def test_explicit_inverse_identities():
    c = laws.KAPLAN_2020
    L, N = 3.0, 1e9
    b_crit = float(laws.critical_batch(c, L))
    at_b_crit = KAPLAN.steps_to_loss(c, N, b_crit, L)
    s_min, e_min = float(at_b_crit["min_steps"]), float(at_b_crit["min_tokens"])
    np.testing.assert_allclose(e_min, b_crit * s_min, rtol=1e-5)
    np.testing.assert_allclose(float(at_b_crit["critical_batch"]), b_crit, rtol=1e-6)
    # training at B = B_crit costs twice the minimum steps and twice the minimum tokens
    np.testing.assert_allclose(float(at_b_crit["steps"]), 2 * s_min, rtol=1e-5)
    np.testing.assert_allclose(float(at_b_crit["tokens"]), 2 * e_min, rtol=1e-5)
    assert float(laws.min_steps(c, N, 0.5 * float(laws.loss_floor(c, N)))) == np.inf


def test_log_A_ref_is_the_step_term_at_the_fitted_batch():
    """With the ``log_B_step_term`` reference, ``exp(log_A_ref)`` is the step term of a run at
    that batch: ``(S_c (1 + B_crit(L_ref)/B) / S_ref)^alpha_S``; without it (posteriors saved
    before the reference existed) the step term at an unlimited batch."""
    refs = {"log_N_ref": np.log(1e6), "log_S_ref": np.log(1e3), "log_L_ref": np.log(2.0)}
    latents = {"log_L_ref": 0.3, "log_alpha_N": np.log(0.1), "log_A_ref": np.log(0.4), "log_alpha_S": np.log(0.7),
               "log_B_ref": np.log(3000.0), "log_inv_alpha_B": np.log(1 / 0.2)}
    B = 1000.0
    c = laws.constants_from_latents(latents, {**refs, laws.STEP_TERM_BATCH: np.log(B)})
    b_crit = float(laws.critical_batch(c, 2.0))
    np.testing.assert_allclose(b_crit, 3000.0, rtol=1e-5)
    step_term = (np.exp(float(c.log_S_c)) * (1 + b_crit / B) / 1e3) ** 0.7
    np.testing.assert_allclose(step_term, 0.4, rtol=1e-5)
    old = laws.constants_from_latents(latents, refs)
    np.testing.assert_allclose((np.exp(float(old.log_S_c)) / 1e3) ** 0.7, 0.4, rtol=1e-5)


def test_a_fit_records_the_batch_its_step_term_is_measured_at(small_posterior):
    refs = small_posterior.meta.references
    assert refs[laws.STEP_TERM_BATCH] == refs["log_B_mean"]
