"""The critical batch on single-batch ladders: the literature prior, and how much of a
forecast moves with the critical batch."""

import copy
import dataclasses
import math

import numpy as np
import pytest

from bayescale.cli import main
from bayescale.curves import IdentifiabilityWarning
from bayescale.diagnostics import ConvergenceWarning
from bayescale.fit import fit
from bayescale.models.kaplan import KAPLAN
from bayescale.models.priors import LITERATURE_ALPHA_B, LITERATURE_B_STAR, KaplanPriors
from bayescale.predict import (STEEPEST_PUBLISHED_ALPHA_B, critical_batch_share, shape_set_critical_batch,
                               single_batch_caveat, single_batch_ladder)
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs


def test_literature_prior_centres_on_the_published_constants():
    data = KAPLAN.prepare(simulate_runs(EXAMPLE_CONSTANTS, [1e4, 4e4, 1e5], [512.0, 2048.0], points=10), group_by=None,
                          min_step_fraction=0.1, min_step=0.0)
    wide = KAPLAN.prior_centres(data, KaplanPriors())
    published = KAPLAN.prior_centres(data, KaplanPriors(critical_batch="literature"))
    L_ref = math.exp(data.references["log_L_ref"])
    assert published["log_B_ref"][0] == pytest.approx(math.log(LITERATURE_B_STAR / L_ref ** (1 / LITERATURE_ALPHA_B)))
    assert published["log_inv_alpha_B"] == (pytest.approx(math.log(1 / LITERATURE_ALPHA_B)), 0.25)
    assert published["log_B_ref"][1] < wide["log_B_ref"][1]
    assert {k: v for k, v in published.items() if "B" not in k} == {k: v for k, v in wide.items() if "B" not in k}
    with pytest.raises(ValueError, match="critical_batch"):
        KaplanPriors(critical_batch="paper")


@pytest.fixture(scope="module")
def one_batch(tmp_path_factory):
    runs = simulate_runs(EXAMPLE_CONSTANTS, [1.5e4, 4e4, 1e5, 2.5e5], [1024.0], final_step=3000, points=20, seed=2)
    path = tmp_path_factory.mktemp("runs") / "one_batch.csv"
    runs.to_csv(path, index=False)
    return runs, path


@pytest.fixture(scope="module")
def one_batch_posterior(one_batch):
    runs, _ = one_batch
    with pytest.warns(IdentifiabilityWarning, match="single batch size"):
        return fit(runs, chains=1, warmup=100, draws=200, progress=False, warn=False).posterior


def test_single_batch_ladders_say_how_much_moves_with_the_critical_batch(one_batch_posterior, small_posterior):
    post = one_batch_posterior
    assert single_batch_ladder(post) and not single_batch_ladder(small_posterior)
    shares = [critical_batch_share(post, 2.5e6, B, 30000) for B in (1024.0, 65536.0)]
    assert all(0.0 <= s <= 1.0 for s in shares)
    assert shares[1] > shares[0]  # far from the batch trained, the critical batch matters more
    assert critical_batch_share(small_posterior, 2.5e5, 1024.0, 3000) < 1.0


def test_cli_fit_says_it_on_single_batch_ladders_and_takes_the_literature_prior(one_batch, tmp_path, capsys):
    _, path = one_batch
    with pytest.warns((IdentifiabilityWarning, ConvergenceWarning)):
        code = main(["fit", "--runs", str(path), "--chains", "1", "--warmup", "30", "--draws", "30", "--quiet",
                     "--batch-prior", "literature", "--out", str(tmp_path / "p.nc")])
    assert code == 0
    assert "decided by its prior" in capsys.readouterr().err
    code = main(["fit", "--runs", str(path), "--model", "chinchilla", "--batch-prior", "literature",
                 "--out", str(tmp_path / "c.nc")])
    assert code == 2 and "has none" in capsys.readouterr().err


def _with_alpha_B(posterior, alpha_B: float):
    """``posterior`` with every draw of the critical-batch exponent set to ``alpha_B``."""
    idata = copy.deepcopy(posterior.idata)
    idata.posterior["log_inv_alpha_B"] = idata.posterior["log_inv_alpha_B"] * 0 + math.log(1 / alpha_B)
    return dataclasses.replace(posterior, idata=idata)


def test_a_critical_batch_set_by_the_curves_shape_is_called_out(one_batch_posterior, small_posterior):
    assert 0.10 < STEEPEST_PUBLISHED_ALPHA_B < 0.12  # the literature prior's 99% range starts at 0.11
    steep = _with_alpha_B(one_batch_posterior, 0.05)
    assert shape_set_critical_batch(steep) == pytest.approx(0.05)
    text = single_batch_caveat(steep, 0.25, "the forecast")
    assert "alpha_B = 0.05" in text and "L^-20" in text and "curves' shape" in text
    assert "25% of the predictive variance of the forecast" in text and "--batch-prior literature" in text
    published = _with_alpha_B(one_batch_posterior, 0.21)
    assert shape_set_critical_batch(published) is None
    assert "decided by its prior" in single_batch_caveat(published, 0.25, "the forecast")
    # with several batches at some size the data measure the critical batch: nothing to call out
    assert shape_set_critical_batch(_with_alpha_B(small_posterior, 0.05)) is None
    # a fit that already used the published prior is not sent back to it
    meta = dataclasses.replace(steep.meta, settings={**steep.meta.settings, "priors": {"critical_batch": "literature"}})
    assert "--batch-prior" not in single_batch_caveat(dataclasses.replace(steep, meta=meta), 0.25, "the forecast")


def test_predict_and_the_report_carry_the_caveat(one_batch_posterior, tmp_path, capsys):
    from bayescale.report import _forecasts

    steep = _with_alpha_B(one_batch_posterior, 0.05)
    path = steep.save(tmp_path / "steep.nc")
    code = main(["predict", "--posterior", str(path), "--params", "2.5e6", "--batch-tokens", "1024",
                 "--steps", "30000", "--points", "4"])
    assert code == 0
    assert "the curves' shape set it" in capsys.readouterr().err
    section = _forecasts(steep, 0.9, 0, None)
    assert any("alpha_B = 0.05" in p for p in section.paragraphs)
