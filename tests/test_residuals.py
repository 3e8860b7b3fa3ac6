"""How the residuals along a curve are modelled: AR(1) (the default) or independent."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density
from scipy.stats import multivariate_normal, norm

from bayescale.cli import main
from bayescale.diagnostics import ConvergenceWarning
from bayescale.models.chinchilla import CHINCHILLA
from bayescale.models.kaplan import KAPLAN
from bayescale.models.priors import ChinchillaPriors, KaplanPriors
from bayescale.models.skeleton import CorrelationAtSpacing, curve_model
from bayescale.posterior import Posterior
from bayescale.predict import fitted_priors, loss_draws
from bayescale.residuals import describe_residuals, level_weight, shape_led_note
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs

from .conftest import as_long_curves, with_rho


def observed_log_density(data, priors, params: dict) -> tuple[float, dict]:
    """The log density of the observed losses alone (no prior terms) at ``params``, and the sites."""
    _, sites = log_density(curve_model, (data, KAPLAN, priors, data.log_loss), {}, params)
    return float(sites["log_loss"]["fn"].log_prob(sites["log_loss"]["value"]).sum()), sites


@pytest.fixture(scope="module")
def curves():
    return simulate_runs(EXAMPLE_CONSTANTS, [1.5e4, 4e4, 1e5], [512.0, 2048.0], final_step=3000, points=12, seed=3)


def test_independent_residuals_are_the_ar1_likelihood_at_rho_zero(curves):
    data = KAPLAN.prepare(curves, group_by=None, min_step_fraction=0.1, min_step=0.0)
    assert np.asarray(data.has_prev).any()
    ar1, independent = KaplanPriors(), KaplanPriors(residual_correlation="independent")
    trace = handlers.trace(handlers.seed(curve_model, 0)).get_trace(data, KAPLAN, ar1, data.log_loss)
    params = {name: site["value"] for name, site in trace.items()
              if site["type"] == "sample" and not site["is_observed"]}
    assert "rho" in params
    at_zero = {**params, "rho": np.float32(1e-30)}  # rho^(gap / delta) underflows to 0
    expected, _ = observed_log_density(data, ar1, at_zero)
    without_rho = {k: v for k, v in params.items() if k != "rho"}
    got, sites = observed_log_density(data, independent, without_rho)
    assert sites["rho"]["type"] == "deterministic" and float(sites["rho"]["value"]) == 0.0
    assert got == pytest.approx(expected, rel=1e-6)
    # and the correlation matters: at the sampled rho the AR(1) density differs
    assert observed_log_density(data, ar1, params)[0] != pytest.approx(expected, rel=1e-6)


def test_the_ar1_likelihood_is_a_gaussian_process_in_log_steps_on_uneven_checkpoints(curves):
    """With nearly Gaussian innovations (``nu`` 1000), the AR(1) likelihood of a curve is the multivariate
    normal of covariance ``sigma^2 exp(-|log S_i - log S_j| / ell)`` at its kept steps, however
    unevenly they are spaced, where the ``rho`` site is the correlation ``exp(-delta / ell)`` at the
    median gap ``delta``."""
    keep = curves.groupby("run").cumcount().isin([0, 2, 3, 7, 8, 11])  # uneven gaps in log-steps
    data = KAPLAN.prepare(curves[keep], group_by=None, min_step_fraction=0.0, min_step=0.0)
    priors, length = KaplanPriors(nu=1e3), 0.7  # nearly Gaussian, and lgamma(nu / 2) exact in float32
    trace = handlers.trace(handlers.seed(curve_model, 1)).get_trace(data, KAPLAN, priors, data.log_loss)
    params = {name: site["value"] for name, site in trace.items()
              if site["type"] == "sample" and not site["is_observed"]}
    gaps = np.concatenate([np.diff(np.asarray(data.log_S, float)[np.asarray(data.run_idx) == run])
                           for run in np.unique(data.run_idx)])
    assert gaps.max() > 3 * gaps.min()  # the checkpoints really are uneven
    params["rho"] = np.float32(np.exp(-np.median(gaps) / length))
    unobserved = handlers.trace(handlers.seed(handlers.substitute(curve_model, params), 0)).get_trace(
        data, KAPLAN, priors, None)
    mu, sigma = np.asarray(unobserved["log_loss"]["fn"].loc, float), float(params["sigma"])
    # losses within a few sigma of the mean, where Student-t with nu 1000 is a normal
    y = mu + sigma * np.random.default_rng(0).standard_normal(data.n_points)
    data = dataclasses.replace(data, log_loss=y.astype(np.float32))
    got, sites = observed_log_density(data, priors, params)
    log_S = np.asarray(data.log_S, float)
    curve_points = [np.flatnonzero(np.asarray(data.run_idx) == run) for run in np.unique(data.run_idx)]
    expected = 0.0
    for at in curve_points:
        cov = sigma**2 * np.exp(-np.abs(log_S[at, None] - log_S[None, at]) / length)
        expected += multivariate_normal(mu[at], cov).logpdf(np.asarray(data.log_loss, float)[at])
    assert got == pytest.approx(expected, rel=1e-4)
    assert float(sites["correlation_length"]["value"]) == pytest.approx(length, rel=1e-5)


def test_the_correlation_prior_is_a_half_normal_correlation_length():
    """``CorrelationAtSpacing``: its draws and its density both give ``P(ell <= x) = 2 Phi(x / scale)
    - 1`` for ``ell = -delta / log rho``."""
    prior = CorrelationAtSpacing(0.15, 1.0)
    smallest = 0.05  # ell from 0.05 to 3 e-folds: rho from exp(-3) to exp(-0.05)
    rho = np.linspace(np.exp(-0.15 / smallest), np.exp(-0.15 / 3.0), 200_001)
    density = np.exp(np.asarray(prior.log_prob(jnp.asarray(rho)), float))
    draws = np.asarray(prior.sample(jax.random.PRNGKey(0), (20_000,)), float)
    with np.errstate(divide="ignore"):  # a draw of ell below 0.002 underflows to rho = 0 in float32
        lengths = -0.15 / np.log(draws)
    for x in (0.3, 1.0, 2.0, 3.0):
        expected = 2 * norm.cdf(x) - 1
        assert np.mean(lengths <= x) == pytest.approx(expected, abs=0.015)
        below = rho <= np.exp(-0.15 / x)
        mass = np.trapezoid(density[below], rho[below])
        assert mass == pytest.approx(expected - (2 * norm.cdf(smallest) - 1), abs=2e-3)


@pytest.mark.parametrize("priors", [KaplanPriors, ChinchillaPriors])
def test_an_unknown_residual_model_is_refused(priors):
    with pytest.raises(ValueError, match="residual_correlation='ar2' is not one of ar1, independent"):
        priors(residual_correlation="ar2")
    assert priors().residual_correlation == "ar1"
    assert CHINCHILLA.default_priors().residual_correlation == "ar1"


def test_cli_fit_with_independent_residuals_records_it_and_forecasts(curves, tmp_path, capsys):
    path = tmp_path / "runs.csv"
    curves.to_csv(path, index=False)
    args = ["fit", "--runs", str(path), "--chains", "1", "--warmup", "30", "--draws", "30", "--quiet"]
    with pytest.warns(ConvergenceWarning):  # 30 draws do not pass the gate
        code = main([*args, "--residuals", "independent", "--out", str(tmp_path / "p.nc")])
    assert code == 0
    post = Posterior.load(tmp_path / "p.nc")
    assert fitted_priors(post).residual_correlation == "independent"
    assert np.all(post.draws("rho") == 0.0) and np.all(post.draws("sigma") > 0.0)
    draws = loss_draws(post, 2.5e5, 1024.0, np.array([1000.0, 3000.0]))
    assert draws.shape == (30, 2) and np.all(np.isfinite(draws))
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([*args, "--residuals", "iid", "--out", str(tmp_path / "q.nc")])
    assert stop.value.code == 2
    assert "argument --residuals: invalid choice: 'iid'" in capsys.readouterr().err
    assert not (tmp_path / "q.nc").exists()


def test_the_default_fit_keeps_sampling_rho(small_posterior):
    assert fitted_priors(small_posterior).residual_correlation == "ar1"
    assert 0.0 < float(np.median(small_posterior.draws("rho"))) < 1.0


def test_the_report_names_the_residual_model(small_posterior):
    assert describe_residuals(small_posterior).startswith("AR(1), posterior median rho 0.")
    assert describe_residuals(with_rho(small_posterior, 0.0, "independent")).startswith("independent (rho = 0")
    final_losses = as_long_curves(small_posterior, runs=small_posterior.idata.constant_data["run_idx"].size)
    assert describe_residuals(final_losses) == "one point per run: no correlation along a run"
    assert shape_led_note(with_rho(final_losses, 0.98)) is None


def test_level_weight_runs_from_every_point_to_one():
    assert level_weight(0.0, 32) == 32
    assert level_weight(0.979, 32) == pytest.approx(1.33, abs=0.01)
    assert level_weight(1.0, 32) == 1


def test_fit_says_when_the_curves_weigh_their_levels_little(small_posterior):
    long = as_long_curves(small_posterior)  # 54 points per curve
    note = shape_led_note(with_rho(long, 0.98))
    assert note.startswith("the residuals along each run are strongly correlated (rho 0.98): a curve of 54 points "
                           "weighs its level as 1.5 independent points")
    assert "--residuals independent" in note
    assert shape_led_note(with_rho(long, 0.5)) is None
    assert shape_led_note(with_rho(long, 0.98, "independent")) is None
    assert shape_led_note(with_rho(small_posterior, 0.98)) is None  # 9 points: the level is a ninth of them
