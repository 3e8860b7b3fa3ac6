"""Calibration scores: known values, runs drawn from the model itself, shifted runs, bad input, CLI."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from bayescale.calibrate import Calibration, calibrate, crps_sample, distance_bin, interval_score, pit
from bayescale.cli import main
from bayescale.posterior import Posterior
from bayescale.predict import loss_draws, row_chunks
from bayescale.runs import validate_runs

LEVELS = (0.5, 0.8, 0.9, 0.95)


def test_crps_matches_the_normal_closed_form():
    """CRPS(N(0,1), y) = y(2 Phi(y) - 1) + 2 phi(y) - 1/sqrt(pi) (Gneiting & Raftery 2007, eq. 5)."""
    draws = np.random.default_rng(0).standard_normal((40_000, 1))
    for y in (0.0, 0.5, -2.0):
        exact = y * (2 * norm.cdf(y) - 1) + 2 * norm.pdf(y) - 1 / np.sqrt(np.pi)
        assert crps_sample(draws, np.array([y]))[0] == pytest.approx(exact, rel=0.01)


def test_interval_score_pit_and_bins():
    lower, upper = np.array([1.0, 1.0, 1.0]), np.array([2.0, 2.0, 2.0])
    y = np.array([1.5, 0.5, 2.5])
    assert interval_score(lower, upper, y, 0.9) == pytest.approx([1.0, 1.0 + 20 * 0.5, 1.0 + 20 * 0.5])
    assert pit(np.arange(10.0)[:, None], np.array([4.5]))[0] == 0.5
    labels = distance_bin(np.array([0.5, 1.0, 2.0, 5.0, 20.0, 100.0]))
    assert list(labels) == ["<= 1x (fitted)", "<= 1x (fitted)", "1-3x", "3-10x", "10-30x", "> 30x"]


def from_predictive(posterior: Posterior, seed: int) -> pd.DataFrame:
    """Realized runs drawn from the posterior's own new-run predictive distribution.

    Each point takes its value from an independently chosen posterior draw, so points are
    independent draws of their marginal predictive distributions (none in the early transient).
    """
    steps = np.geomspace(700, 6000, 12)
    table = pd.concat([pd.DataFrame({"run": f"N{N:g}-B{B:g}", "params": N, "batch_tokens": B, "step": steps})
                       for N in (1e5, 2.5e5, 6e5, 2e6, 4e6, 3e7) for B in (512.0, 2048.0, 8192.0)],
                      ignore_index=True)
    draws = loss_draws(posterior, table["params"].to_numpy(), table["batch_tokens"].to_numpy(),
                       table["step"].to_numpy(), seed=seed + 1000)
    pick = np.random.default_rng(seed).integers(0, draws.shape[0], len(table))
    table["loss"] = draws[pick, np.arange(len(table))]
    return validate_runs(table)


@pytest.fixture(scope="module")
def realized(small_posterior) -> pd.DataFrame:
    return from_predictive(small_posterior, seed=1)


@pytest.fixture(scope="module")
def honest(small_posterior, realized) -> Calibration:
    return calibrate(small_posterior, realized, levels=LEVELS)


def test_coverage_matches_nominal_for_runs_drawn_from_the_model(honest):
    overall = honest.coverage[honest.coverage["bin"] == "all"]
    assert list(overall["nominal"]) == list(LEVELS) and (overall["n"] == 216).all()
    # these points are independent draws: binomial spread around the nominal level
    se = np.sqrt(overall["nominal"] * (1 - overall["nominal"]) / overall["n"])
    assert np.all(np.abs(overall["coverage"] - overall["nominal"]) <= 4 * se)
    # joint replicates (shared law error, offsets, correlated noise) spread wider still
    assert np.all((overall["expected_low"] <= overall["coverage"]) & (overall["coverage"] <= overall["expected_high"]))
    assert np.all(overall["expected_high"] - overall["expected_low"] > 2 * se)
    n = len(honest.points)
    assert honest.points["pit"].mean() == pytest.approx(0.5, abs=4 * np.sqrt(1 / 12 / n))
    counts, _ = honest.pit_histogram(5)
    assert counts.min() > 0.5 * n / 5 and counts.max() < 1.5 * n / 5
    assert set(honest.scores["bin"]) == {"all", "<= 1x (fitted)", "1-3x", "3-10x", "10-30x", "> 30x"}
    assert (honest.scores["crps"] > 0).all()
    # sharper inside the fitted sizes than far outside them (the law's error grows)
    by_bin = honest.scores.set_index("bin")
    assert by_bin.loc["<= 1x (fitted)", "interval_score_90"] < by_bin.loc["> 30x", "interval_score_90"]


def test_shifted_runs_lose_coverage_and_pile_pit_at_one(small_posterior, realized, honest):
    shifted = realized.assign(loss=realized["loss"] * 1.05)
    result = calibrate(small_posterior, shifted, levels=LEVELS)
    cov = result.coverage.set_index(["bin", "nominal"])["coverage"]
    honest_cov = honest.coverage.set_index(["bin", "nominal"])["coverage"]
    assert cov["all", 0.9] < honest_cov["all", 0.9] - 0.4
    assert result.points["pit"].mean() > 0.85
    counts, _ = result.pit_histogram(10)
    assert counts[-1] > 0.5 * counts.sum()
    assert result.scores["crps"].iloc[0] > 2 * honest.scores["crps"].iloc[0]
    assert "90% intervals: coverage" in result.verdicts()[2] and "lies below the range" in result.verdicts()[2]


def test_row_chunks_cover_every_row_once_within_the_limit():
    rows = np.arange(10, 33)
    pieces = row_chunks(rows, width=100, limit=700)
    assert [len(p) for p in pieces] == [7, 7, 7, 2]
    assert np.array_equal(np.concatenate(pieces), rows)
    assert [len(p) for p in row_chunks(rows, width=10_000, limit=700)] == [1] * len(rows)


def test_scores_in_pieces_match_one_piece(small_posterior, realized, honest, monkeypatch):
    """Scoring a table a few points at a time (as long tables are) changes only the Monte Carlo
    noise of each point's scores, and with them the bands the replicates are counted in."""
    few = functools.partial(row_chunks, limit=7 * small_posterior.n_draws)
    # the module, not the package's function of the same name
    monkeypatch.setattr(importlib.import_module("bayescale.calibrate"), "row_chunks", few)
    pieces = calibrate(small_posterior, realized, levels=LEVELS)
    assert np.abs(pieces.points["pit"] - honest.points["pit"]).max() < 0.1
    assert np.allclose(pieces.points["median"], honest.points["median"], rtol=0.01)
    overall = [c[c["bin"] == "all"][["coverage", "expected_low", "expected_high"]].to_numpy()
               for c in (pieces.coverage, honest.coverage)]
    assert np.allclose(overall[0][:, 0], overall[1][:, 0], atol=0.05)
    # the 5% point of a replicate's coverage moves most with the bands (one law error moves every point)
    assert np.allclose(overall[0][:, 1:], overall[1][:, 1:], atol=0.15)


def test_verdicts_place_coverage_against_the_calibrated_range():
    coverage = pd.DataFrame({"bin": "all", "nominal": [0.5, 0.8, 0.9], "coverage": [0.5, 0.99, 0.4],
                             "expected_low": [0.3, 0.6, 0.7], "expected_high": [0.7, 0.95, 0.99], "n": 10})
    lines = Calibration(points=pd.DataFrame(), coverage=coverage, scores=pd.DataFrame(), levels=(0.5, 0.8, 0.9),
                        dropped=0).verdicts()
    assert lines == [
        "50% intervals: coverage 0.50 lies inside the range of a calibrated forecast (0.30-0.70)",
        "80% intervals: coverage 0.99 lies above the range of a calibrated forecast (0.60-0.95): the intervals are "
        "wider than these runs' errors",
        "90% intervals: coverage 0.40 lies below the range of a calibrated forecast (0.70-0.99): the intervals are "
        "narrower than these runs' errors"]


def test_early_transient_points_are_left_out(small_posterior, realized):
    """The fit's rule (the first tenth of each run) drops one added early point per run."""
    long_run = pd.concat([realized, realized.groupby("run").head(1).assign(step=10.0)], ignore_index=True)
    result = calibrate(small_posterior, validate_runs(long_run), levels=(0.9,))
    assert result.dropped == realized["run"].nunique()


@pytest.mark.parametrize("change, message", [
    (lambda t: t.assign(loss=t["loss"] / np.log(2)), "look like bits: multiply them by ln 2"),
    (lambda t: t.assign(loss=t["loss"] * 3), "3x the forecast median"),
    (lambda t: t.assign(params=t["params"] / 1e6), "give params in non-embedding parameters"),
    (lambda t: t.assign(batch_tokens=t["batch_tokens"] * 1e5), "realized batch_tokens="),
])
def test_mismatched_units_are_rejected(small_posterior, realized, change, message):
    with pytest.raises(ValueError, match=message):
        calibrate(small_posterior, change(realized))


def test_scale_check_can_be_turned_off(small_posterior, realized):
    bits = realized.assign(loss=realized["loss"] / np.log(2))
    result = calibrate(small_posterior, bits, levels=(0.9,), scale_check=False)
    assert result.coverage["coverage"].iloc[0] < 0.1


def test_groups_must_match(small_posterior, realized):
    grouped = Posterior(idata=small_posterior.idata, meta=dataclasses.replace(small_posterior.meta, group_by="split"))
    with pytest.raises(ValueError, match="no 'split' column"):
        calibrate(grouped, realized)
    with pytest.raises(ValueError, match="split value\\(s\\) ood that the posterior was not fitted on"):
        calibrate(grouped, realized.assign(split="ood"))
    assert len(calibrate(grouped, realized.assign(split="all"), levels=(0.9,)).points) == len(realized)


@pytest.fixture(scope="module")
def files(small_posterior, realized, tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibrate")
    realized.to_csv(folder / "realized.csv", index=False)
    realized.assign(loss=realized["loss"] / np.log(2)).to_csv(folder / "bits.csv", index=False)
    return str(small_posterior.save(folder / "p.nc")), folder


def test_calibrate_command_end_to_end(files, tmp_path, capsys):
    posterior, folder = files
    out = tmp_path / "cal"
    assert main(["calibrate", "--posterior", posterior, "--runs", str(folder / "realized.csv"), "--out", str(out)]) == 0
    printed, progress = capsys.readouterr()
    assert "calibrate: 100%" in progress  # the bar over the pieces, on stderr
    assert "coverage of central intervals (216 realized points" in printed and "> 30x" in printed
    assert "range a calibrated forecast would show on these points" in printed
    assert "all points: 50% intervals: coverage" in printed
    assert {p.name for p in out.iterdir()} == {"points.csv", "coverage.csv", "scores.csv", "coverage.png", "pit.png"}
    assert main(["calibrate", "--posterior", posterior, "--runs", str(folder / "realized.csv"), "--json",
                 "--level", "0.9", "--quiet"]) == 0
    printed, progress = capsys.readouterr()
    assert "calibrate:" not in progress
    result = json.loads(printed)
    assert result["points"] == 216 and sum(result["pit_histogram"]["counts"]) == 216
    assert {row["nominal"] for row in result["coverage"]} == {0.9}
    assert all(0 <= row["expected_low"] <= row["expected_high"] <= 1 for row in result["coverage"])


def test_calibrate_command_bad_input(files, capsys):
    posterior, folder = files
    assert main(["calibrate", "--posterior", posterior, "--runs", str(folder / "bits.csv")]) == 2
    assert "look like bits" in capsys.readouterr().err
    assert main(["calibrate", "--posterior", posterior, "--runs", str(folder / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_another_vocabulary_is_rejected(small_posterior, realized):
    byte_level = dataclasses.replace(small_posterior, meta=dataclasses.replace(small_posterior.meta, vocab_size=256))
    with pytest.raises(ValueError, match="vocab_size 50304, the fitted ones 256"):
        calibrate(byte_level, realized.assign(vocab_size=50304))
    assert calibrate(byte_level, realized.assign(vocab_size=256), levels=(0.9,)).coverage["coverage"].notna().all()
