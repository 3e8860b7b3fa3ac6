"""A run's Gaussian deviation from the law's curve: the AR(1) noise is read in log-steps, so
how densely a run logs its checkpoints does not change how much they say, and it continues
past the last checkpoint from where the run's noise left off."""

import numpy as np

import pytest

from bayescale.deviation import ar1_correlation, ar1_positions, continue_noise, observed_covariance


def test_correlation_falls_with_the_log_step_distance_in_fitted_spacings():
    positions = ar1_positions(np.log([100.0, 200.0, 800.0]), spacing=np.log(2.0))
    R = ar1_correlation(positions, np.array([0.8]))[0]
    np.testing.assert_allclose(R, [[1, 0.8, 0.8**3], [0.8, 1, 0.8**2], [0.8**3, 0.8**2, 1]])


def test_without_fitted_curves_each_checkpoint_is_one_lag():
    np.testing.assert_array_equal(ar1_positions(np.log([10.0, 11.0, 500.0]), np.inf), [0.0, 1.0, 2.0])


def _level_information(log_steps: np.ndarray, spacing: float, rho: float) -> float:
    """``1' C^-1 1`` times the noise variance: how many independent points the checkpoints
    are worth for the run's level, under AR(1) noise alone."""
    n = len(log_steps)
    C = observed_covariance(np.zeros((n, n)), np.zeros(1), np.ones(1), np.array([rho]),
                            ar1_positions(log_steps, spacing))[0]
    return float(np.ones(n) @ np.linalg.solve(C, np.ones(n)))


def test_denser_checkpoints_add_little_about_the_level():
    """16 and 256 checkpoints over the same e-fold of steps carry about the same information
    (the AR(1) over a fixed log-step range has a finite limit), where reading the fit's rho
    per checkpoint would count the dense curve as many more independent points."""
    spacing, rho = 0.3, 0.8
    sparse = _level_information(np.linspace(0.0, 1.0, 16), spacing, rho)
    dense = _level_information(np.linspace(0.0, 1.0, 256), spacing, rho)
    assert 1.0 <= sparse <= dense <= 1.15 * sparse
    limit = 1 + (-np.log(rho)) * (1.0 / spacing) / 2  # the continuous-time (OU) limit
    assert abs(dense - limit) < 0.05 * limit
    per_checkpoint = _level_information(np.arange(256.0), 1.0, rho)
    assert per_checkpoint > 10 * dense


def test_noise_continues_from_the_last_checkpoint_and_forgets_it_in_fitted_spacings():
    """At the last checkpoint's own step the noise is the observed one; one and three fitted
    spacings later its regression on the last noise is rho and rho^3 (Student-t innovations
    leave the linear AR(1) as it is); with no fitted curve the further points are independent."""
    rng, D, spacing, rho, sigma = np.random.default_rng(0), 40_000, 0.25, 0.8, 0.02
    last = rng.standard_normal(D) * sigma
    log_steps = np.log(1000.0) + np.array([0.0, spacing, 3 * spacing, 40 * spacing])
    e = continue_noise(last, np.log(1000.0), log_steps, np.full(D, rho), np.full(D, sigma), 30.0, spacing, rng)
    np.testing.assert_array_equal(e[:, 0], last)
    slopes = [np.polyfit(last, e[:, j], 1)[0] for j in (1, 2, 3)]
    assert slopes == pytest.approx([rho, rho**3, 0.0], abs=0.02)
    assert e[:, 3].std() == pytest.approx(sigma * np.sqrt(30 / 28), rel=0.03)  # stationary Student-t spread
    apart = continue_noise(last, np.log(1000.0), log_steps, np.full(D, rho), np.full(D, sigma), 30.0, np.inf, rng)
    assert abs(np.corrcoef(last, apart[:, 0])[0, 1]) < 0.02
