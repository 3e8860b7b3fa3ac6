"""PSIS-LOO comparison of law forms on identical observations, and ``bayescale compare``."""

import copy
import json
import warnings

import numpy as np
import pytest

from bayescale import Posterior
from bayescale.cli import main
from bayescale.compare import (IncomparableError, ParetoKWarning, check_same_observations, compare_posteriors,
                               fit_models)
from bayescale.diagnostics import ConvergenceWarning
from bayescale.fit import fit


@pytest.fixture(scope="module")
def chinchilla_on_small_runs(small_runs):
    return fit(small_runs, law="chinchilla", chains=2, warmup=200, draws=200, seed=0, progress=False, warn=False)


def test_compare_ranks_the_models_on_the_same_points(small_runs, small_posterior, chinchilla_on_small_runs):
    posteriors = {"kaplan": small_posterior, "chinchilla": chinchilla_on_small_runs.posterior}
    with warnings.catch_warnings(record=True) as record:  # any other warning stays an error
        warnings.simplefilter("always", ParetoKWarning)
        comparison = compare_posteriors(posteriors)
    table = comparison.table
    assert set(table["model"]) == {"kaplan", "chinchilla"}
    assert list(table.columns) == ["model", "rank", "elpd_loo", "se", "p_loo", "elpd_diff", "dse", "weight",
                                   "pareto_k_bad"]
    assert table["weight"].sum() == pytest.approx(1.0)
    assert list(table["rank"]) == [0, 1] and table["elpd_diff"].iloc[0] == 0.0
    assert comparison.n_points == small_posterior.idata.observed_data["log_loss"].size
    # the data were drawn from the Kaplan laws at several batch sizes, which Chinchilla cannot express
    assert table["model"].iloc[0] == "kaplan"
    bad = int(table["pareto_k_bad"].sum())
    assert bad == sum(int(np.sum(elpd.pareto_k.values > 0.7)) for elpd in comparison.loo.values())
    assert bool(record) == (bad > 0)
    if bad:
        assert "Pareto k > 0.7" in str(record[0].message) and "K-fold" in str(record[0].message)


def test_refuses_different_observations(small_posterior):
    fewer = Posterior(idata=small_posterior.idata.isel(obs=slice(1, None)), meta=small_posterior.meta)
    with pytest.raises(IncomparableError, match=r"fitted to \d+ points and 'chinchilla' to \d+"):
        check_same_observations({"kaplan": small_posterior, "chinchilla": fewer})
    shifted = Posterior(idata=copy.deepcopy(small_posterior.idata), meta=small_posterior.meta)
    shifted.idata.constant_data["log_S"].values[0] += 0.1
    with pytest.raises(IncomparableError, match="differ in log_S"):
        check_same_observations({"kaplan": small_posterior, "chinchilla": shifted})
    with pytest.raises(ValueError, match="at least two models"):
        check_same_observations({"kaplan": small_posterior})


def test_model_names_are_checked(small_runs):
    with pytest.raises(ValueError, match="unknown model"):
        fit_models(small_runs, ["kaplan", "gpt"])
    with pytest.raises(ValueError, match="twice"):
        fit_models(small_runs, ["kaplan", "kaplan"])


def test_cli_compare_prints_the_table_and_writes_posteriors(small_runs, tmp_path, capsys):
    small_runs.to_csv(tmp_path / "runs.csv", index=False)
    with warnings.catch_warnings(record=True) as record:  # any other warning stays an error
        warnings.simplefilter("always", ParetoKWarning)
        warnings.simplefilter("always", ConvergenceWarning)
        code = main(["compare", "--runs", str(tmp_path / "runs.csv"), "--models", "kaplan_irreducible,chinchilla",
                     "--chains", "1", "--warmup", "30", "--draws", "30", "--out-dir", str(tmp_path / "post"),
                     "--json", "--quiet"])
    assert code == 0
    assert {w.category for w in record} <= {ConvergenceWarning, ParetoKWarning}
    assert any(w.category is ConvergenceWarning for w in record)  # 30 draws cannot pass the gate
    out = json.loads(capsys.readouterr().out)
    assert {row["model"] for row in out["table"]} == {"kaplan_irreducible", "chinchilla"}
    assert set(out["diagnostics_passed"]) == {"kaplan_irreducible", "chinchilla"}
    assert (tmp_path / "post" / "kaplan_irreducible.nc").exists() and (tmp_path / "post" / "chinchilla.nc").exists()


def test_cli_compare_rejects_a_single_or_unknown_model(capsys):
    for models in ("kaplan", "kaplan,gpt"):
        with pytest.raises(SystemExit) as exit_info:
            main(["compare", "--runs", "runs.csv", "--models", models])
        assert exit_info.value.code == 2
        assert "expected two or more of kaplan" in capsys.readouterr().err
