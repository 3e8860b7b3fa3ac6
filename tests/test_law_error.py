"""The law's error measured on the ladder (bayescale.law_error, fit(law_error="ladder"))."""

from __future__ import annotations

import dataclasses
import importlib
import warnings

import numpy as np
import pandas as pd
import pytest

from bayescale.cli import main
from bayescale.curves import transient_mask
from bayescale.defaults import DEFAULT_ERROR_LENGTH, DEFAULT_EXTRAPOLATION_ERROR, PUBLIC_EXTRAPOLATION_ERROR
from bayescale.diagnostics import ConvergenceWarning
from bayescale.fit import fit
from bayescale.law_error import (KAPPAS, HeldOutCurve, describe_record, law_error_caveat, law_error_record,
                                 log_evidence, split_by_size)
from bayescale.posterior import Posterior
from bayescale.predict import law_error_share
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs
from bayescale.deviation import ar1_correlation, ar1_positions, law_error_covariance

#: Batches of each synthetic size (both sides of the critical batch, as in conftest.py).
BATCHES = (256.0, 1024.0, 4096.0)


def _table(sizes):
    return pd.DataFrame([{"run": f"r{i}", "params": N, "batch_tokens": 1024.0, "step": s, "loss": 3.0}
                         for i, N in enumerate(sizes) for s in (100.0, 200.0)])


def test_split_holds_out_the_top_third_of_the_log_size_span():
    fitted, held = split_by_size(_table([1e4, 2e4, 4e4, 8e4, 1e5, 1e6]))  # span 2 decades: cut at 2.15e5
    assert sorted(held["run"].unique()) == ["r5"]
    assert fitted["params"].nunique() == 5


@pytest.mark.parametrize("sizes", [[1e4, 2e4, 1e6], [1e4, 1e4, 1e4]])
def test_split_refuses_a_ladder_too_small_to_measure_on(sizes):
    with pytest.raises(ValueError, match="needs 3 sizes below the top 33%"):
        split_by_size(_table(sizes))


def _simulated_cases(kappa: float, length: float, seed: int = 0, runs: int = 8, n: int = 40,
                     tau: float = 0.003, sigma: float = 0.001, rho: float = 0.5, draws: int = 4):
    """Residual curves drawn from the tracking model with a known law error (the same for every
    draw), logged twice as densely as the fitted points' spacing the AR(1) is read in."""
    rng = np.random.default_rng(seed)
    log_steps = np.linspace(np.log(1e3), np.log(3e4), n)
    spacing = 2 * (log_steps[1] - log_steps[0])
    cases = []
    for j in range(runs):
        d_N = 1.0 + j / runs
        axes = np.column_stack([np.full(n, d_N), np.zeros(n)])
        C = (kappa**2 * law_error_covariance(axes, log_steps, length) + tau**2
             + sigma**2 * ar1_correlation(ar1_positions(log_steps, spacing), np.array([rho]))[0])
        r = np.linalg.cholesky(C + 1e-12 * np.eye(n)) @ rng.standard_normal(n)
        cases.append(HeldOutCurve(f"r{j}", np.repeat(r[None], draws, 0), axes, log_steps, d_N))
    scales = [np.full(draws, v) for v in (tau, sigma, rho)]
    return cases, [*scales, spacing]


@pytest.mark.parametrize("kappa, length", [(0.01, 2.0), (0.02, 1.0), (0.005, 4.0)])
def test_evidence_recovers_a_known_law_error(kappa, length):
    cases, scales = _simulated_cases(kappa, length)
    ev = log_evidence(cases, *scales)
    best = ev.loc[ev["log_evidence"].idxmax()]
    assert 1 / 2 <= best["kappa"] / kappa <= 2, best
    nearest = min(KAPPAS, key=lambda k: abs(np.log(k / kappa)))
    truth = ev.loc[np.isclose(ev["kappa"], nearest) & (ev["length"] == length), "log_evidence"].iloc[0]
    assert ev["log_evidence"].max() - truth < 5


def test_evidence_prefers_a_small_growth_without_a_law_error():
    cases, scales = _simulated_cases(0.0, 1.0)
    ev = log_evidence(cases, *scales)
    assert ev.loc[ev["log_evidence"].idxmax(), "kappa"] <= 0.003


def test_the_prior_record_describes_the_defaults(small_posterior):
    record = law_error_record(small_posterior.meta)
    assert record == {"source": "prior", "kappa": DEFAULT_EXTRAPOLATION_ERROR, "length": DEFAULT_ERROR_LENGTH}
    assert describe_record(record).startswith("law error set a priori: kappa 0.01 per e-fold")


def test_the_law_errors_share_of_a_forecast_grows_beyond_the_fitted_sizes(small_posterior):
    """small_posterior fitted N 1.5e4-2.5e5, B 256-4096, S up to 3000 (conftest.py)."""
    assert law_error_share(small_posterior, 1e5, 1024.0, 1000.0) == 0.0  # inside: no law error
    near, far = (law_error_share(small_posterior, N, 1024.0, 3000.0) for N in (5e5, 1e8))
    assert 0.0 < near < far <= 1.0
    assert law_error_share(small_posterior.with_law_error(0.0), 1e8, 1024.0, 3000.0) == 0.0
    text = law_error_caveat(small_posterior, far, "this forecast")
    assert text.startswith(f"{100 * far:.0f}% of the predictive variance of this forecast is the law's own error "
                           "(law error set a priori: kappa 0.01 per e-fold")
    assert text.endswith("needs 3 or more sizes below the top 33% of its log-size span, and these runs have 4 size(s) "
                         "in all; a ladder of real-scale language models can borrow the growth measured on public "
                         "ones: bayescale fit --law-error public")  # two below the top third
    measured = {"source": "ladder", "kappa": 0.003, "length": 1.0, "held_out": ["a"], "distances": [1.2],
                "largest_fitted": 1e5, "fitted_runs": 9, "check_passed": True}
    ladder = dataclasses.replace(small_posterior, meta=dataclasses.replace(
        small_posterior.meta, settings={**small_posterior.meta.settings, "law_error": measured}))
    assert law_error_caveat(ladder, 0.5, "x").endswith("larger runs held out at 1.20-1.20 e-folds beyond them)")
    public = {"source": "public", "kappa": PUBLIC_EXTRAPOLATION_ERROR, "length": 1.0}
    borrowed = dataclasses.replace(small_posterior, meta=dataclasses.replace(
        small_posterior.meta, settings={**small_posterior.meta.settings, "law_error": public}))
    text = law_error_caveat(borrowed, 0.5, "x")
    assert "(law error from public ladders: kappa 0.004 per e-fold (the top of the 95% interval measured on the " \
           "Gadre 2024 and Gemstones 2025 ladders" in text
    assert text.endswith("these runs have 4 size(s) in all")  # borrowed already: no advice to borrow it


@pytest.mark.slow
def test_fit_measures_the_law_error_on_a_ladder_that_follows_the_law(tmp_path, capsys):
    """``bayescale fit --law-error ladder`` end to end: five sizes drawn from the law itself,
    the 2.5e5 runs held out and the rest fitted; without a law error in the data the
    measured growth stays below the a-priori default, and the record travels with the saved
    posterior."""
    runs = simulate_runs(EXAMPLE_CONSTANTS, sizes=(1e4, 2e4, 4e4, 7e4, 2.5e5), batches=BATCHES, final_step=3000,
                         points=30, seed=1)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # whether 2 x 400 draws pass the gate depends on the path
        code = main(["fit", "--runs", str(tmp_path / "runs.csv"), "--chains", "2", "--warmup", "300", "--draws", "400",
                     "--law-error", "ladder", "--out", str(tmp_path / "p.nc"), "--quiet"])
    assert code == 0
    assert "law error measured on the ladder: kappa" in capsys.readouterr().err
    meta = Posterior.load(tmp_path / "p.nc").meta
    record = law_error_record(meta)
    assert record["source"] == "ladder" and sorted(record["held_out"]) == sorted(f"N2.5e+05-B{b:g}-s0" for b in BATCHES)
    assert (meta.extrapolation_error, meta.error_length) == (record["kappa"], record["length"])
    assert meta.extrapolation_error < DEFAULT_EXTRAPOLATION_ERROR, record
    assert record["largest_fitted"] == 7e4 and record["fitted_runs"] == 12
    assert record["distances"] == pytest.approx([np.log(2.5e5 / 7e4)] * 3)
    assert describe_record(record).startswith("law error measured on the ladder: kappa ")


def test_ladder_law_error_needs_the_run_table_and_enough_sizes(small_runs, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("sampling started although the input was bad")

    monkeypatch.setattr(importlib.import_module("bayescale.fit"), "sample", boom)
    with pytest.raises(ValueError, match="needs 3 sizes below"):  # 4 sizes: 2 below the top third
        fit(small_runs, law_error="ladder", progress=False)
    with pytest.raises(ValueError, match="law_error='guess' is not one of prior, ladder"):
        fit(small_runs, law_error="guess", progress=False)
    with pytest.raises(ValueError, match="error_length=0"):
        fit(small_runs, error_length=0.0, progress=False)
    with pytest.raises(ValueError, match="extrapolation_error=0.02 and law_error='public' both set the law error's"):
        fit(small_runs, law_error="public", extrapolation_error=0.02, progress=False)


def test_a_live_runs_transient_is_a_share_of_its_planned_steps():
    table = pd.DataFrame({"run": "live", "step": [100.0, 500.0, 1000.0, 2000.0], "loss": 3.0})
    assert transient_mask(table, 0.1).tolist() == [False, True, True, True]  # 10% of 2000 logged
    assert transient_mask(table, 0.1, final_step=10_000).tolist() == [False, False, True, True]
