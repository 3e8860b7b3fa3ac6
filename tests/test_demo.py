"""The demo end to end on a reduced budget, on the bundled runs."""

import pandas as pd

from bayescale.demo import bundled_metadata, bundled_runs, run_demo


def test_bundled_runs_meet_the_sweep_design():
    runs = bundled_runs()
    assert runs["params"].nunique() >= 6
    assert runs["params"].max() / runs["params"].min() >= 10**1.5
    batches_per_size = runs.groupby("params")["batch_tokens"].nunique()
    assert (batches_per_size >= 3).sum() >= 2
    assert set(runs["split"]) == {"in_domain", "out_of_domain"}
    assert runs.groupby("params")["run"].nunique().max() >= 3  # seeds at one size
    assert "fingerprint" in str(bundled_metadata()["corpus"])


def test_demo_writes_its_outputs(tmp_path):
    res = run_demo(tmp_path, chains=2, warmup=60, draws=60, progress=False, warn=False)
    for name in ("summary.md", "posterior.nc", "held_out.csv", "forecasts.csv", "held_out.png", "forecast.png",
                 "trajectories.png", "min_loss.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    held = pd.read_csv(tmp_path / "held_out.csv")
    assert set(held["split"]) == {"in_domain", "out_of_domain"}
    assert held["coverage_90"].between(0, 1).all() and (held["coverage_90"] >= held["coverage_50"]).all()
    forecasts = pd.read_csv(tmp_path / "forecasts.csv")
    assert list(forecasts["params"]) == [10 * res.held_out["params"].iloc[0], 100 * res.held_out["params"].iloc[0]]
    summary = (tmp_path / "summary.md").read_text()
    assert "Held-out largest size" in summary and "Diagnostics:" in summary
