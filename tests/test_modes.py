"""Chains stuck in a minor mode: found on constructed draws, run again or left out by the fit, and said."""

import importlib

import arviz as az
import numpy as np

from bayescale.diagnostics import diagnose
from bayescale.modes import (best_chain, left_out_sentence, replace_chains, restarted_sentence, stuck_chains,
                             without_chains)


def _idata(shifts: list[float], draws: int = 400, points: int = 50, seed: int = 0) -> az.InferenceData:
    """Four-ish chains of one constant ``a``; chain ``k``'s pointwise log-likelihood sits
    ``shifts[k]`` nats (in total) below the others', with the usual draw-to-draw spread."""
    rng = np.random.default_rng(seed)
    chains = len(shifts)
    ll = rng.normal(-1.0, 0.05, (chains, draws, points)) - np.asarray(shifts)[:, None, None] / points
    a = rng.normal(0.0, 1.0, (chains, draws)) + 3.0 * (np.asarray(shifts) > 0)[:, None]
    return az.from_dict(posterior={"a": a}, log_likelihood={"log_loss": ll},
                        sample_stats={"diverging": np.zeros((chains, draws), bool)})


def test_a_chain_whose_every_draw_fits_worse_is_stuck():
    idata = _idata([0.0, 0.0, 40.0, 0.0])
    assert stuck_chains(idata) == (2,)
    kept = without_chains(idata, (2,))
    assert kept.posterior.sizes["chain"] == 3 and list(kept.posterior.chain.values) == [0, 1, 2]
    assert kept.log_likelihood.sizes["chain"] == 3 and kept.sample_stats.sizes["chain"] == 3
    assert np.allclose(kept.posterior["a"].mean(), 0.0, atol=0.1)  # the three chains in the main mode
    sentence = left_out_sentence(idata, (2,))
    assert sentence.startswith("left out 1 of 4 chains stuck in a minor mode") and "chain 2 by 40" in sentence


def test_chains_that_overlap_stay():
    """Chains of one mode, and a chain whose draws overlap the best's (a tail excursion), stay."""
    assert stuck_chains(_idata([0.0, 0.0, 0.0, 0.0])) == ()
    assert stuck_chains(_idata([0.0, 0.4])) == ()  # 0.4 nats: well inside the draws' spread
    assert stuck_chains(_idata([0.0])) == ()


def test_the_diagnostics_say_which_chains_were_left_out():
    idata = _idata([0.0, 0.0, 40.0, 0.0])
    note = left_out_sentence(idata, (2,))
    gate = diagnose(without_chains(idata, (2,)), ["a"], note)
    assert gate.left_out == note and note in gate.format() and gate.n_draws == 3 * 400


def test_replace_chains_puts_fresh_chains_in_the_stuck_ones_place():
    idata, fresh = _idata([0.0, 40.0, 0.0]), _idata([0.0], seed=1)
    merged = replace_chains(idata, (1,), fresh)
    assert list(merged.posterior.chain.values) == [0, 1, 2] and merged.log_likelihood.sizes["chain"] == 3
    assert merged.sample_stats.sizes["chain"] == 3 and stuck_chains(merged) == ()
    assert np.allclose(merged.posterior["a"].sel(chain=2), fresh.posterior["a"].sel(chain=0))
    assert best_chain(idata) in (0, 2)
    sentence = restarted_sentence(idata, (1,))
    assert sentence.startswith("ran again 1 of 3 chains stuck in a minor mode") and "chain 1 by 40" in sentence


def _fit_with_stuck(small_runs, monkeypatch, verdicts):
    """Fit with ``stuck_chains`` answering ``verdicts`` in turn (chain 1 stuck at first)."""
    fit_module = importlib.import_module("bayescale.fit")  # the module: bayescale.fit is also the function
    answers = iter(verdicts)
    monkeypatch.setattr(importlib.import_module("bayescale.modes"), "stuck_chains", lambda idata: next(answers))
    return fit_module.fit(small_runs, chains=2, warmup=30, draws=30, seed=0, progress=False, warn=False)


def test_the_fit_runs_a_stuck_chain_again_from_the_best_chains_last_draw(small_runs, monkeypatch):
    result = _fit_with_stuck(small_runs, monkeypatch, [(1,), ()])
    posterior = result.posterior
    assert posterior.idata.posterior.sizes["chain"] == 2 and posterior.n_draws == 60
    assert posterior.idata.sample_stats.sizes["chain"] == 2 and "prior" in posterior.idata.groups()
    assert result.diagnostics.left_out.startswith("ran again 1 of 2 chains stuck in a minor mode")
    assert posterior.meta.settings["left_out_chains"] == result.diagnostics.left_out
    assert 0 < posterior.meta.settings["rerun_seconds"] < result.seconds == posterior.meta.settings["sampling_seconds"]


def test_the_fit_leaves_chains_stuck_again_out_and_records_it(small_runs, monkeypatch):
    result = _fit_with_stuck(small_runs, monkeypatch, [(1,), (1,)])
    posterior = result.posterior
    assert posterior.idata.posterior.sizes["chain"] == 1 and posterior.n_draws == 30
    assert result.diagnostics.left_out.startswith("left out 1 of 2 chains stuck in a minor mode")
    assert "after running again from chain" in result.diagnostics.left_out
    assert not result.diagnostics.passed  # one chain left: R-hat is undefined
    assert posterior.meta.settings["left_out_chains"] == result.diagnostics.left_out
    assert result.diagnostics.left_out in result.diagnostics.format()
