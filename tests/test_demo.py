"""The demo end to end on a reduced budget, on the bundled runs."""

import numpy as np
import pandas as pd
import pytest

from bayescale import Posterior
from bayescale.cli import main
from bayescale.demo import bundled_metadata, bundled_runs, demo_sampling, run_demo
from bayescale.diagnostics import ConvergenceWarning


def test_bundled_runs_meet_the_sweep_design():
    runs = bundled_runs()
    assert runs["params"].nunique() >= 6
    assert runs["params"].max() / runs["params"].min() >= 10**1.5
    batches_per_size = runs.groupby("params")["batch_tokens"].nunique()
    assert (batches_per_size >= 3).sum() >= 2
    assert set(runs["split"]) == {"in_domain", "out_of_domain"}
    assert runs.groupby("params")["run"].nunique().max() >= 3  # seeds at one size
    assert "fingerprint" in str(bundled_metadata()["corpus"])
    schedules = runs.groupby("run")["schedule"].first().value_counts()
    assert schedules.to_dict() == {"constant": 12, "cosine": 3, "wsd": 3}
    assert runs["learning_rate"].notna().all()  # every run says what rate each point was trained at


def test_demo_writes_its_outputs(tmp_path):
    res = run_demo(tmp_path, chains=2, warmup=60, draws=60, progress=False, warn=False)
    for name in ("summary.md", "posterior.nc", "held_out.csv", "forecasts.csv", "tracking.csv", "track.png",
                 "held_out.png", "held_out_schedule.png", "forecast.png", "trajectories.png", "min_loss.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    held = pd.read_csv(tmp_path / "held_out.csv")
    assert set(held["split"]) == {"in_domain", "out_of_domain"}
    assert held["coverage_90"].between(0, 1).all() and (held["coverage_90"] >= held["coverage_50"]).all()
    calibrated = held["calibrated_90"].str.split("-", expand=True).astype(float)  # "low-high"
    assert (calibrated[0] <= calibrated[1]).all() and calibrated.stack().between(0, 1).all()
    forecasts = pd.read_csv(tmp_path / "forecasts.csv")
    assert list(forecasts["params"]) == [10 * res.held_out["params"].iloc[0], 100 * res.held_out["params"].iloc[0]]
    summary = (tmp_path / "summary.md").read_text()
    assert "Held out: the largest size" in summary and "Diagnostics:" in summary
    assert "Tracking the held-out size" in summary
    tracking = pd.read_csv(tmp_path / "tracking.csv")
    assert list(tracking["forecast"]) == ["ladder alone", "updated at 20% of the steps"]
    assert tracking["abs_rel_error"].between(0, 0.2).all()
    runs = bundled_runs()
    fitted = set(res.fit.posterior.meta.runs)
    assert fitted == set(runs.query("schedule != 'wsd' and params < params.max()")["run"])
    assert set(held["held_out"]) == {"size", "wsd"} and res.fit.posterior.law.name == "kaplan_schedule"
    post = res.fit.posterior
    assert post.meta.settings["target_accept"] == demo_sampling("kaplan_schedule")[1]


def test_demo_irreducible_variant_forecasts_above_its_floor(tmp_path, capsys):
    """``bayescale demo --constant-only --irreducible``: the constant-rate runs only, under
    the law with a floor; every draw's minimum loss is its L_inf plus a positive size
    term, so the forecast floor's median lies above L_inf's median."""
    with pytest.warns(ConvergenceWarning):  # a tiny budget
        assert main(["demo", "--out", str(tmp_path), "--constant-only", "--irreducible", "--chains", "2",
                     "--warmup", "40", "--draws", "40", "--quiet"]) == 0
    post = Posterior.load(tmp_path / "posterior.nc")
    assert post.law.name == "kaplan_irreducible"
    assert post.meta.settings["target_accept"] == demo_sampling("kaplan_irreducible")[1]
    assert set(post.meta.runs) <= set(bundled_runs().query("schedule == 'constant'")["run"])
    assert not (tmp_path / "held_out_schedule.png").exists()
    L_inf = float(np.median(post.draws("L_inf")[:, post.group_index("in_domain")]))
    forecasts = pd.read_csv(tmp_path / "forecasts.csv")
    assert (forecasts["min_loss"] > L_inf).all()
    assert forecasts["min_loss"].is_monotonic_decreasing
    assert "with an irreducible loss" in (tmp_path / "summary.md").read_text()
    assert "Forecasts, target loss" in capsys.readouterr().out
