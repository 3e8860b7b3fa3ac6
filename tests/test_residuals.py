"""How the residuals along a curve are modelled: AR(1) (the default) or independent."""

from __future__ import annotations

import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density

from bayescale.cli import main
from bayescale.diagnostics import ConvergenceWarning
from bayescale.models.chinchilla import CHINCHILLA
from bayescale.models.kaplan import KAPLAN
from bayescale.models.priors import ChinchillaPriors, KaplanPriors
from bayescale.models.skeleton import curve_model
from bayescale.posterior import Posterior
from bayescale.predict import fitted_priors, loss_draws
from bayescale.residuals import describe_residuals, level_weight, shape_led_note
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs

from .conftest import as_long_curves, with_rho


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
    at_zero = {**params, "rho": np.float32(0.0)}
    expected, _ = log_density(curve_model, (data, KAPLAN, ar1, data.log_loss), {}, at_zero)
    without_rho = {k: v for k, v in params.items() if k != "rho"}
    got, sites = log_density(curve_model, (data, KAPLAN, independent, data.log_loss), {}, without_rho)
    assert sites["rho"]["type"] == "deterministic" and float(sites["rho"]["value"]) == 0.0
    assert float(got) == pytest.approx(float(expected), rel=1e-6)
    # and the correlation matters: at the sampled rho the AR(1) density differs
    at_rho, _ = log_density(curve_model, (data, KAPLAN, ar1, data.log_loss), {}, params)
    assert float(at_rho) != pytest.approx(float(expected), rel=1e-6)


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
