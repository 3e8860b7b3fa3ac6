"""Joint replicates of realized points: the AR(1) noise along a run, and the coverage range."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest

from bayescale.predict import loss_draws
from bayescale.replicates import (ar1_noise, coverage_range, replicate_batches, replicate_fractions,
                                  replicate_losses)

from .conftest import as_long_curves, with_rho


def test_ar1_noise_correlates_points_of_one_curve_by_their_spacing():
    """rho 0.8 per unit spacing: 0.8 one unit apart, 0.64 two units apart, 0 across curves;
    the marginal standard deviation is sigma; points may come in any order."""
    draws = 20_000
    log_step = np.array([0.0, 0.5, 1.5, 0.0, 0.5])
    curve = np.array(["a", "a", "a", "b", "b"])
    shuffle = np.array([2, 4, 0, 3, 1])
    e = ar1_noise(np.full(draws, 0.8), np.full(draws, 0.1), 1e6, curve[shuffle], log_step[shuffle], 0.5,
                  np.random.default_rng(0))
    e = e[:, np.argsort(shuffle)]
    corr = np.corrcoef(e.T)
    assert corr[0, 1] == pytest.approx(0.8, abs=0.03) and corr[1, 2] == pytest.approx(0.64, abs=0.03)
    assert corr[3, 4] == pytest.approx(0.8, abs=0.03) and abs(corr[0, 3]) < 0.03
    assert e.std(axis=0) == pytest.approx(np.full(5, 0.1), rel=0.05)
    independent = ar1_noise(np.zeros(draws), np.full(draws, 0.1), 1e6, curve, log_step, 0.5, np.random.default_rng(1))
    assert abs(np.corrcoef(independent.T)[0, 1]) < 0.03


def _runs(params: float) -> pd.DataFrame:
    steps = np.geomspace(700, 6000, 40)
    return pd.concat([pd.DataFrame({"run": f"r{b:g}", "params": params, "batch_tokens": b, "step": steps})
                      for b in (512.0, 2048.0)], ignore_index=True)


@pytest.mark.parametrize("params", [1e5, 3e7])
def test_replicates_cover_the_predictive_intervals_at_their_level_on_average(small_posterior, params):
    """Each replicate's marginals are the new-run predictive distribution, so the 90% intervals
    hold 90% of a replicate's points on average; how far single replicates stray depends on
    what the points share: inside the fitted sizes (1e5) two runs' offsets and noise, 120x
    beyond them (3e7) one law error that moves every point together."""
    table = _runs(params)
    groups = np.full(len(table), "all")
    joint = replicate_losses(small_posterior, table, groups, replicates=400, seed=0)
    assert joint.shape == (400, len(table))
    lower, upper = np.quantile(loss_draws(small_posterior, table["params"].to_numpy(), table["batch_tokens"].to_numpy(),
                                          table["step"].to_numpy(), seed=3), [0.05, 0.95], axis=0)
    inside = ((joint >= lower) & (joint <= upper)).mean(axis=1)
    assert inside.mean() == pytest.approx(0.9, abs=0.06)
    low, high = coverage_range(joint, lower, upper)
    assert high == 1.0
    assert low > 0.4 if params < 1e6 else low < 0.2


def test_batches_of_replicates_are_its_rows_in_bounded_memory(small_posterior):
    """At most ``limit`` replicates x points per batch; without noise along the runs (sigma 0)
    the batches are replicate_losses' rows (the law error, the offsets and the mean curves of
    the same draws), and their coverage fractions are those of the whole."""
    idata = copy.deepcopy(small_posterior.idata)
    idata.posterior["sigma"] = idata.posterior["sigma"] * 0
    quiet = dataclasses.replace(small_posterior, idata=idata)
    table = _runs(3e5)
    groups = np.full(len(table), "all")
    whole = replicate_losses(quiet, table, groups, replicates=50, seed=4)
    batches = list(replicate_batches(quiet, table, groups, replicates=50, seed=4, limit=8 * len(table)))
    assert [len(b) for b in batches] == [8] * 6 + [2]
    assert np.allclose(np.concatenate(batches), whole, rtol=1e-5, atol=0)
    rows = np.arange(0, len(table), 2)
    lower, upper = np.quantile(whole[:, rows], [0.2, 0.8], axis=0)
    fractions = replicate_fractions(iter(batches), {"even": (rows, lower, upper)})["even"]
    assert np.allclose(fractions, ((whole[:, rows] >= lower) & (whole[:, rows] <= upper)).mean(axis=1))


def test_replicates_must_be_positive(small_posterior):
    table = _runs(1e5)
    with pytest.raises(ValueError, match="replicates=0 must be at least 1"):
        replicate_losses(small_posterior, table, np.full(len(table), "all"), replicates=0)


def test_noise_follows_a_run_only_where_the_fit_saw_curves(small_posterior):
    """With rho 0.95 the replicates' residuals at neighbouring checkpoints of one run move
    together; a fit of final losses (one point per run) never saw a correlation along a
    run, so only the run's offset links them there."""
    table = pd.DataFrame({"run": "r", "params": 1e5, "batch_tokens": 1024.0, "step": np.geomspace(1000, 3000, 6)})
    final_losses = as_long_curves(small_posterior, runs=small_posterior.idata.constant_data["run_idx"].size)
    neighbours = {}
    for name, posterior in (("curves", with_rho(small_posterior, 0.95)), ("final", with_rho(final_losses, 0.95))):
        log_joint = np.log(replicate_losses(posterior, table, np.full(len(table), "all"), replicates=1000, seed=0))
        neighbours[name] = np.corrcoef((log_joint - log_joint.mean(axis=0)).T)[0, 1]
    assert neighbours["curves"] > 0.8 and neighbours["final"] < 0.5
