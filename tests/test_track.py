"""Tracking a live run: the update against the truth and against a joint refit, the refit
itself, the alarm, and one-line errors on bad partial files and refit settings."""

import importlib

import numpy as np
import pandas as pd
import pytest

from bayescale.cli import main
from bayescale.diagnostics import ConvergenceWarning
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs
from bayescale.track import TrackWarning, joint_data, size_error_after, track

from .conftest import with_rho

N, B, T = 1e5, 1024.0, 3000
#: A refit's NUTS budget in the tests: enough for the medians and wide bands, never for the
#: convergence gate (200 draws, ESS < 400), so every refit on it warns.
TINY = {"chains": 2, "warmup": 100, "draws": 100}


def _live_run(shift: float, last_step: float, seed: int = 7) -> pd.DataFrame:
    """A new run of the ladder's law, ``shift`` times its curve, observed up to ``last_step``."""
    run = simulate_runs(EXAMPLE_CONSTANTS, [N], [B], final_step=T, points=40, seed=seed, run_sd=0.0)
    run["loss"] *= shift
    run["run"] = "live"
    return run[run["step"] <= last_step].reset_index(drop=True)


def test_a_shifted_run_raises_the_alarm_and_the_update_follows_it(small_posterior):
    truth = _live_run(1.04, T)["loss"].iloc[-1]  # the same run, trained to its end
    df = track(small_posterior, _live_run(1.04, 600), T, target_loss=truth / 1.02)
    final = df[df["step"] == T].iloc[0]
    assert df.attrs["alarm"] is not None and "above" in df.attrs["alarm"]
    assert not final["ladder_lower"] <= truth <= final["ladder_upper"]  # the ladder alone misses it
    assert final["lower"] <= truth <= final["upper"]
    assert df.attrs["p_target_before"] > 0.5 > df.attrs["p_target_after"]  # the update takes the hope away
    assert list(df.columns[:4]) == ["step", "median", "lower", "upper"] and df["step"].iloc[0] <= 600


def test_the_update_starts_at_the_last_checkpoint_and_its_noise_carries_on(small_posterior):
    """The forecast at the last checkpoint's own step is the loss logged there. A run on the
    law whose last three checkpoints drift 0.3% high stays high at the next step under the
    fit's correlated noise (rho about 0.6 per fitted spacing, 0.95 over the step to the
    next grid point), while with independent noise (rho 0) only the run's level (its
    offset) keeps a share of the drift."""
    live = simulate_runs(EXAMPLE_CONSTANTS, [N], [B], final_step=T, points=40, seed=7, noise=0.0, run_sd=0.0)
    live = live[live["step"] <= 600].assign(run="live").reset_index(drop=True)
    live.loc[live.index[-3:], "loss"] *= [1.0015, 1.0025, 1.003]
    last, after = live["loss"].iloc[-1], {}
    for name, posterior in (("fitted", small_posterior), ("independent", with_rho(small_posterior, 0.0))):
        df = track(posterior, live, T, method="reweight")
        first = df.iloc[0]
        assert first["step"] == live["step"].iloc[-1]
        assert first["median"] == pytest.approx(last, rel=1e-6) and first["upper"] - first["lower"] < 1e-5 * last
        after[name] = df["median"].iloc[1] / last
    assert after["fitted"] > after["independent"] + 0.001


def test_track_is_public():
    import bayescale

    assert bayescale.track is track and bayescale.Schedule.__name__ == "Schedule"


def test_a_run_on_its_forecast_keeps_quiet(small_posterior):
    df = track(small_posterior, _live_run(1.0, 600), T)
    final = df[df["step"] == T].iloc[0]
    assert df.attrs["alarm"] is None and df.attrs["effective_draws"] > 100
    truth = _live_run(1.0, T)["loss"].iloc[-1]
    assert final["lower"] <= truth <= final["upper"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bayescale.diagnostics.ConvergenceWarning")
def test_the_update_agrees_with_a_joint_refit(small_posterior):
    """Inside the fitted ranges the law's error is zero, so the new run differs from the
    ladder by its offset alone, which the refit samples and the reweighting integrates out."""
    partial = _live_run(1.01, 900)
    updated = track(small_posterior, partial, T, method="reweight").iloc[-1]
    refitted = track(small_posterior, partial, T, method="refit", sampler={"chains": 2, "warmup": 300, "draws": 700})
    final = refitted.iloc[-1]
    assert refitted.attrs["method"] == "refit" and "refitted" in refitted.attrs["refit"]
    assert np.log(updated["median"]) == pytest.approx(np.log(final["median"]), abs=0.004)
    width = updated["upper"] - updated["lower"]
    assert 0.75 * width <= final["upper"] - final["lower"] <= 1.33 * width


def test_the_joint_points_are_the_ladder_and_the_run_under_the_ladder_priors(small_posterior):
    live = _live_run(1.0, 600).assign(params=4e5)  # above the ladder's sizes
    data, run = joint_data(small_posterior, live, None, "all")
    meta = small_posterior.meta
    assert run == "live" and data.runs == sorted([*meta.runs, "live"])
    assert data.n_points == small_posterior.idata.observed_data["log_loss"].size + len(live)
    assert data.references == meta.references and data.group_by == meta.group_by
    assert data.ranges["params"] == [meta.ranges["params"][0], 4e5]
    assert data.ranges["step"][1] == meta.ranges["step"][1]
    again, name = joint_data(small_posterior, live.assign(run=meta.runs[0]), None, "all")
    assert name == f"{meta.runs[0]} (tracked)" and len(again.runs) == len(meta.runs) + 1


def test_a_refit_follows_a_run_beyond_the_ladder(small_posterior):
    """A run 4x above the largest fitted size and 3% above the law: the refit (tiny budget)
    moves its forecast up towards the run's realized end, with a band that holds it. (How the
    3% splits between the run's offset and the refitted law's constants, at a size no other
    run has, is the posterior's call and changes with the MCMC path, so the offset itself is
    not checked against 3%: one CPU gave an offset within 0.02 of it, another 0.009.) On the
    latter the refit erred by 1.4% at the end and the ladder alone by 3.2%."""
    live = simulate_runs(EXAMPLE_CONSTANTS, [1e6], [B], final_step=T, points=40, seed=7, run_sd=0.0)
    live = live.assign(loss=1.03 * live["loss"], run="live")
    with pytest.warns(ConvergenceWarning):
        df = track(small_posterior, live[live["step"] <= 600], T, method="refit", sampler=TINY, levels=(0.98,))
    final = df.iloc[-1]
    assert df.attrs["method"] == "refit" and "2 chains x 100 draws" in df.attrs["refit"]
    truth = live["loss"].iloc[-1]
    assert final["lower"] <= truth <= final["upper"]
    refit_error, ladder_error = final["median"] / truth - 1, final["ladder_median"] / truth - 1
    assert final["median"] > final["ladder_median"] and abs(refit_error) < 0.75 * abs(ladder_error)
    assert np.isfinite(df.attrs["offset"])


def test_a_refitted_run_keeps_its_size_error_beyond_its_last_checkpoint(small_posterior):
    """After a refit, a run beyond the ladder's sizes keeps the size's part of the law's error
    (kappa d_N) past its last checkpoint: near zero where its residuals were seen, near its
    prior scale two e-folds of steps later; a run of a fitted size keeps none."""
    post, rng = small_posterior, np.random.default_rng(0)
    log_steps = np.log(np.r_[np.geomspace(200, 600, 8), 600 * np.exp(2.0)])
    residuals = np.zeros((post.n_draws, 8))
    inside = size_error_after(post, post, post.meta.ranges["params"][1], log_steps, residuals, rng)
    assert np.all(inside == 0)
    params = 4 * post.meta.ranges["params"][1]
    prior_sd = post.meta.extrapolation_error * np.log(4)
    sd = size_error_after(post, post, params, log_steps, residuals, rng).std(axis=0)
    assert sd[:8].max() < 0.3 * prior_sd
    assert 0.8 * prior_sd < sd[-1] < 1.1 * prior_sd


def test_auto_refits_when_the_reweighting_rests_on_few_draws(small_posterior, monkeypatch):
    monkeypatch.setattr(importlib.import_module("bayescale.track"), "too_few_draws", lambda effective, draws: True)
    with pytest.warns(TrackWarning, match="method='refit'"):
        kept = track(small_posterior, _live_run(1.0, 600), T, method="reweight")
    assert kept.attrs["method"] == "reweight" and kept.attrs["refit"] is None
    with pytest.warns(ConvergenceWarning):
        df = track(small_posterior, _live_run(1.0, 600), T, sampler=TINY)
    assert df.attrs["method"] == "refit" and "effective draws of 1400, so the ladder's" in df.attrs["refit"]


def test_bad_refit_settings_fail_before_any_work(small_posterior):
    live = _live_run(1.0, 600)
    for kwargs, match in (({"method": "joint"}, "not one of auto, reweight, refit"),
                          ({"sampler": {"chains": 0}}, "chains=0 must be at least 1"),
                          ({"sampler": {"chain": 2}}, "unknown sampler setting"),
                          ({"method": "refit", "sampler": {"chain_method": "serial"}}, "chain_method='serial'")):
        with pytest.raises(ValueError, match=match):
            track(small_posterior, live, T, **kwargs)


def test_cli_track_writes_the_forecast(small_posterior, tmp_path, capsys):
    post = str(small_posterior.save(tmp_path / "p.nc"))
    _live_run(1.04, 600).to_csv(tmp_path / "live.csv", index=False)
    assert main(["track", "--posterior", post, "--partial", str(tmp_path / "live.csv"), "--total-steps", str(T),
                 "--target-loss", "1.5", "--level", "0.5", "--level", "0.9", "--out", str(tmp_path / "trk")]) == 0
    out = capsys.readouterr().out
    assert "ALARM" in out and "before the update" in out and "law error set a priori: kappa 0.01" in out
    forecast = pd.read_csv(tmp_path / "trk" / "forecast.csv")
    assert list(forecast.columns) == ["step", "median", "lower", "upper", "level"]
    assert (tmp_path / "trk" / "track.png").exists() and (tmp_path / "trk" / "ladder.csv").exists()


def test_cli_track_method_refit(small_posterior, tmp_path, capsys):
    """In the test process, after every fit before it, as in a notebook that has run many:
    the refit compiles a new model (bayescale.cores.release_compiled_code keeps the
    process below its memory-map limit)."""
    post = str(small_posterior.save(tmp_path / "p.nc"))
    _live_run(1.04, 600).to_csv(tmp_path / "live.csv", index=False)
    with pytest.warns(ConvergenceWarning):
        code = main(["track", "--posterior", post, "--partial", str(tmp_path / "live.csv"), "--total-steps", str(T),
                     "--method", "refit", "--chains", "1", "--warmup", "50", "--draws", "50", "--quiet", "--json",
                     "--out", str(tmp_path / "trk")])
    assert code == 0
    out = capsys.readouterr().out
    assert '"method": "refit"' in out and "1 chains x 50 draws" in out
    assert list(pd.read_csv(tmp_path / "trk" / "forecast.csv").columns) == ["step", "median", "lower", "upper"]
    assert list(pd.read_csv(tmp_path / "trk" / "ladder.csv").columns) == ["step", "median", "lower", "upper"]


def test_cli_track_bad_refit_settings_are_one_line(small_posterior, tmp_path, capsys):
    post = str(small_posterior.save(tmp_path / "p.nc"))
    _live_run(1.0, 600).to_csv(tmp_path / "live.csv", index=False)
    base = ["track", "--posterior", post, "--partial", str(tmp_path / "live.csv"), "--total-steps", str(T),
            "--out", str(tmp_path / "o")]
    for extra, match in ((["--chains", "0"], "chains=0 must be at least 1"),
                         (["--method", "refit", "--target-accept", "1.5"], "target_accept=1.5 must be in [0.5, 1)")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert match in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_cli_track_bad_partial_files_are_one_line(small_posterior, tmp_path, capsys):
    post = str(small_posterior.save(tmp_path / "p.nc"))
    live = _live_run(1.0, 600)
    two = pd.concat([live, live.assign(run="other")])
    late = live.iloc[[0, 2, 1]]
    (tmp_path / "s.csv").write_text("step,learning_rate\n1,1\n1000,1\n")
    cases = [(two, [], "holds 2 runs"), (live, ["--total-steps", "500"], "already reached step"),
             (late, [], "out of order"), (live, ["--schedule-file", str(tmp_path / "s.csv")], "ends at step 1000"),
             (live, ["--total-steps", "100000"], "before 10% of the planned 100000 steps")]
    for i, (table, extra, match) in enumerate(cases):
        table.to_csv(tmp_path / f"p{i}.csv", index=False)
        args = ["track", "--posterior", post, "--partial", str(tmp_path / f"p{i}.csv"), "--out", str(tmp_path / "o")]
        if "--total-steps" not in extra:
            args += ["--total-steps", str(T)]
        assert main(args + extra) == 2, match
        err = capsys.readouterr().err
        assert match in err and len(err.strip().splitlines()) == 1, err
