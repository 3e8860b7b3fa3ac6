"""The Huber / L-BFGS / bootstrap baseline recovers known constants and resamples whole runs."""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

from bayescale.baselines.bootstrap import HUBER_DELTA, fit_bootstrap, huber, objective, predict_log_loss, start_grid
from bayescale.synthetic import simulate_chinchilla_runs
from bayescale.models.chinchilla import EPOCH_2024, chinchilla_log_loss

SIZES = np.geomspace(1e7, 4e8, 5)
RATIOS = (2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
TRUE_THETA = np.array([float(EPOCH_2024.log_A), float(EPOCH_2024.log_B), float(EPOCH_2024.log_E),
                       EPOCH_2024.alpha, EPOCH_2024.beta])


@pytest.fixture(scope="module")
def quiet_fit():
    runs = simulate_chinchilla_runs(EPOCH_2024, SIZES, RATIOS, noise=2e-4, seed=0)
    return runs, fit_bootstrap(runs, n_boot=10, starts=5, boot_starts=1, seed=0)


def test_grid_is_hoffmann_et_al():
    grid = start_grid()
    assert grid.shape == (4500, 5)
    for k, values in enumerate(([0, 5, 10, 15, 20, 25], [0, 5, 10, 15, 20, 25], [-1, -0.5, 0, 0.5, 1],
                                [0, 0.5, 1, 1.5, 2], [0, 0.5, 1, 1.5, 2])):
        np.testing.assert_allclose(np.unique(grid[:, k]), values)


def test_huber_and_gradient():
    r = np.array([-1.0, -HUBER_DELTA / 2, 0.0, HUBER_DELTA / 2, 0.1])
    np.testing.assert_allclose(huber(r), [HUBER_DELTA * (1 - HUBER_DELTA / 2), HUBER_DELTA**2 / 8, 0.0,
                                          HUBER_DELTA**2 / 8, HUBER_DELTA * (0.1 - HUBER_DELTA / 2)])
    rng = np.random.default_rng(1)
    log_N, log_D = rng.uniform(15, 20, 12), rng.uniform(18, 24, 12)
    log_L = rng.uniform(0.8, 1.5, 12)
    weights = rng.integers(0, 3, 12).astype(float)
    for theta in (TRUE_THETA, np.array([3.0, 9.0, -0.5, 0.2, 0.6])):
        # delta = 1 keeps every residual on the quadratic branch, where the gradient is smooth
        err = check_grad(lambda t: objective(t, log_N, log_D, log_L, 1.0, weights)[0],
                         lambda t: objective(t, log_N, log_D, log_L, 1.0, weights)[1], theta)
        assert err < 1e-4 * (1 + np.linalg.norm(objective(theta, log_N, log_D, log_L, 1.0, weights)[1]))


def test_law_matches_the_model_law():
    log_N, log_D = np.log([1e7, 1e9]), np.log([1e9, 1e11])
    np.testing.assert_allclose(predict_log_loss(TRUE_THETA, log_N, log_D),
                               np.asarray(chinchilla_log_loss(EPOCH_2024, log_N, log_D)), rtol=1e-6)


def test_recovers_known_constants(quiet_fit):
    runs, fit = quiet_fit
    assert fit.n_points == fit.n_runs == len(runs)
    c = fit.constants()
    assert c["E"] == pytest.approx(1.82, rel=0.02)
    assert np.log(c["A"]) == pytest.approx(TRUE_THETA[0], abs=0.1)
    assert np.log(c["B"]) == pytest.approx(TRUE_THETA[1], abs=0.1)
    assert c["alpha"] == pytest.approx(EPOCH_2024.alpha, abs=0.01)
    assert c["beta"] == pytest.approx(EPOCH_2024.beta, abs=0.01)


def test_bands_bracket_the_truth_inside_the_data(quiet_fit):
    _, fit = quiet_fit
    N, D = np.array([5e7, 2e8]), np.array([2e9, 4e9])
    bands = fit.bands(N, D, levels=(0.5, 0.9))
    truth = np.exp(np.asarray(chinchilla_log_loss(EPOCH_2024, np.log(N), np.log(D))))
    assert list(bands.columns) == ["median", "lower_0.5", "upper_0.5", "lower_0.9", "upper_0.9"]
    assert np.all(bands["lower_0.9"] <= bands["lower_0.5"]) and np.all(bands["upper_0.5"] <= bands["upper_0.9"])
    np.testing.assert_allclose(bands["median"], truth, rtol=2e-3)


def test_curves_resample_whole_runs():
    runs = simulate_chinchilla_runs(EPOCH_2024, SIZES[:3], (5.0, 20.0), noise=1e-3, seed=2)
    curves = pd.concat([runs.assign(step=runs["step"] * f, tokens=runs["tokens"] * f,
                                    loss=runs["loss"] * (1 + 0.2 * (1 - f))) for f in (0.5, 0.75, 1.0)])
    fit = fit_bootstrap(curves.reset_index(drop=True), n_boot=3, starts=2, boot_starts=0, min_step_fraction=0.0)
    assert fit.n_runs == len(runs) and fit.n_points == 3 * len(runs)
    assert fit.samples.shape == (3, 5) and np.all(np.isfinite(fit.samples))


def test_bad_settings():
    runs = simulate_chinchilla_runs(EPOCH_2024, SIZES, RATIOS, seed=0)
    with pytest.raises(ValueError, match="n_boot"):
        fit_bootstrap(runs, n_boot=1)
    with pytest.raises(ValueError, match="level"):
        fit_bootstrap(runs, n_boot=2, starts=1, boot_starts=0).bands(1e8, 1e9, levels=(90,))
