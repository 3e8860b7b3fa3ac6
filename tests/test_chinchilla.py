"""The Chinchilla model: recovery of known constants, the predictor's Chinchilla branches, the command."""

import json
import warnings

import numpy as np
import pytest

from bayescale import Posterior
from bayescale.budget import least_compute, plan_budget
from bayescale.fit import fit
from bayescale.models import CHINCHILLA
from bayescale.synthetic import simulate_chinchilla_runs
from bayescale.cli import main
from bayescale.curves import IdentifiabilityWarning
from bayescale.diagnostics import ConvergenceWarning
from bayescale.models.chinchilla import EPOCH_2024, ChinchillaConstants, chinchilla_log_loss
from bayescale.predict import (extrapolation, loss_draws, predict_critical_batch, predict_min_loss,
                               predict_steps_to_loss, predict_trajectory)

from .conftest import assert_sampler_sane

SIZES = np.geomspace(1e7, 4e8, 5)
RATIOS = (2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
TRUTH = {"E": 1.82, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def _law(c: ChinchillaConstants, N, D) -> np.ndarray:
    return np.exp(np.asarray(chinchilla_log_loss(c, np.log(N), np.log(D)), float))


def _width(draws: np.ndarray) -> np.ndarray:
    return np.quantile(draws, 0.95, axis=0) - np.quantile(draws, 0.05, axis=0)


@pytest.fixture(scope="module")
def recovery():
    runs = simulate_chinchilla_runs(EPOCH_2024, SIZES, RATIOS, noise=0.005, seed=0)
    return runs, fit(runs, law="chinchilla", chains=2, warmup=500, draws=500, seed=0, progress=False, warn=False)


def test_recovers_known_constants(recovery):
    """One seed: each constant inside its 99% interval (five at 90% all hold only ~59% of
    the time for a perfect model), from chains that agree."""
    _, result = recovery
    assert_sampler_sane(result.diagnostics)
    summary = result.posterior.summary(0.99).set_index("constant")
    inside = {name: bool(summary.loc[name, "lower"] <= value <= summary.loc[name, "upper"])
              for name, value in TRUTH.items()}
    assert all(inside.values()), (inside, summary)
    assert result.posterior.constant_names() == ["E", "A", "B", "alpha", "beta"]
    assert "run_offset" not in result.posterior.idata.posterior  # final losses: sigma is the run noise


@pytest.mark.slow
def test_interval_coverage_rate_over_seeds():
    """Across seeds, the fraction of constants inside their 90% intervals is near 0.9."""
    hits = []
    for seed in (1, 2, 3):
        runs = simulate_chinchilla_runs(EPOCH_2024, SIZES, RATIOS, noise=0.005, seed=seed)
        result = fit(runs, law="chinchilla", chains=2, warmup=500, draws=1000, seed=seed, progress=False, warn=False)
        assert_sampler_sane(result.diagnostics)
        summary = result.posterior.summary(0.9).set_index("constant")
        hits += [summary.loc[n, "lower"] <= v <= summary.loc[n, "upper"] for n, v in TRUTH.items()]
    assert 0.7 <= np.mean(hits) <= 1.0, hits


def test_loss_draws_use_tokens_and_widen_outside_the_data(recovery):
    _, result = recovery
    post = result.posterior
    N, B, S = np.array([1e8, 4e9]), 2.0**19, np.array([4e9, 8e10]) / 2.0**19
    mean = loss_draws(post, N, B, S, mode="mean")
    np.testing.assert_allclose(np.median(mean, axis=0), _law(EPOCH_2024, N, B * S), rtol=0.02)
    new = loss_draws(post, N, B, S, mode="new_run", seed=1)
    assert np.all(_width(new) > _width(mean))
    # the 10x-larger size is a log-distance log(10) outside the sizes: the law error adds kappa * 2.3
    assert _width(new)[1] / np.median(new[:, 1]) > 2 * 1.645 * 0.01 * np.log(10)
    ext = extrapolation(post, 4e9, B, S[1])
    assert set(ext.axes) == {"size", "tokens"} and ext.axes["size"] == pytest.approx(np.log(10))
    assert "size x10" in ext.describe()


def test_budget_finds_the_compute_optimal_size_at_c_equals_6nd(recovery):
    """With C = 6 N D the Epoch constants put the optimum of 1e21 FLOPs at N = 2.8e9; the
    budgeter searches one batch (the law has no batch term) and its band holds the truth."""
    _, fitted = recovery
    flops = 1e21
    N = np.geomspace(1e8, 1e11, 4001)
    true_best = N[np.argmin(_law(EPOCH_2024, N, flops / (6 * N)))]
    plan = plan_budget(fitted.posterior, flops)
    assert plan.table["batch_tokens"].nunique() == 1
    for choice in (plan.choice, plan.point_choice):
        assert true_best / 2 < choice["params"] < true_best * 2
        np.testing.assert_allclose(choice["tokens"] * choice["params"] * 6, flops, rtol=1e-9)
    truth = _law(EPOCH_2024, plan.choice["params"], plan.choice["tokens"])
    assert plan.choice["lower_90"] <= truth <= plan.choice["upper_90"]
    cheapest = least_compute(fitted.posterior, target_loss=2.4, probability=0.9)
    assert cheapest["p_target"] >= 0.9 and cheapest["budget"] < flops


def test_min_loss_steps_and_refusals(recovery):
    _, result = recovery
    post = result.posterior
    floor = predict_min_loss(post, [1e8], mode="mean")
    assert floor["median"].iloc[0] == pytest.approx(1.82 + 482.01 / 1e8**0.3478, rel=0.02)
    steps = predict_steps_to_loss(post, 1e8, 2.0**19, 3.0, mode="mean").set_index("quantity")
    assert list(steps.index) == ["steps", "tokens"]
    tokens = steps.loc["tokens", "median"]
    assert _law(EPOCH_2024, 1e8, tokens) == pytest.approx(3.0, rel=0.01)
    assert steps.loc["steps", "median"] == pytest.approx(tokens / 2.0**19)
    assert steps["p_reachable"].iloc[0] == 1.0
    with pytest.raises(ValueError, match="no critical batch"):
        predict_critical_batch(post, 3.0)
    assert isinstance(post.constants(), ChinchillaConstants)
    bands = predict_trajectory(post, 1e8, 2.0**19, 1e4, points=8)
    assert len(bands) == 8 and np.all(np.diff(bands["median"]) < 0)


def test_posterior_file_round_trip(recovery, tmp_path):
    _, result = recovery
    loaded = Posterior.load(result.posterior.save(tmp_path / "p.nc"))
    assert loaded.law is CHINCHILLA and loaded.meta == result.posterior.meta
    np.testing.assert_allclose(loaded.constants().alpha, result.posterior.constants().alpha)


def prepare(runs):
    return CHINCHILLA.prepare(runs, group_by="auto", min_step_fraction=0.1, min_step=0.0)


def test_identifiability_warnings_name_the_chinchilla_constants():
    runs = simulate_chinchilla_runs(EPOCH_2024, SIZES[:2], RATIOS, seed=0)
    with pytest.warns(IdentifiabilityWarning, match="2 model size.*alpha and A") as record:
        prepare(runs)
    assert not any("critical batch" in str(w.message) for w in record)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = prepare(simulate_chinchilla_runs(EPOCH_2024, SIZES, RATIOS, seed=0))
    assert data.ranges["tokens"] == [pytest.approx(2 * SIZES[0]), pytest.approx(100 * SIZES[-1])]


def test_cli_fit_groups_of_curves(small_runs, tmp_path, capsys):
    """Curves (run offsets and AR(1) residuals) in two groups, through ``bayescale fit``."""
    runs = small_runs.assign(group=np.where(small_runs["params"] < 5e4, "small", "large"))
    runs.to_csv(tmp_path / "curves.csv", index=False)
    with pytest.warns(ConvergenceWarning, match="did not pass its convergence checks"):
        code = main(["fit", "--runs", str(tmp_path / "curves.csv"), "--model", "chinchilla", "--chains", "1",
                     "--warmup", "30", "--draws", "30", "--out", str(tmp_path / "p.nc"), "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert {row["constant"] for row in summary} == set(TRUTH)
    assert sorted({row["group"] for row in summary}) == ["large", "small"]
    post = Posterior.load(tmp_path / "p.nc")
    assert post.groups == ["large", "small"] and "rho" in post.idata.posterior
    assert post.idata.posterior["run_offset"].sizes["run"] == small_runs["run"].nunique()
