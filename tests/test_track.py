"""Tracking a live run: the update against the truth and against a joint refit, the alarm,
and one-line errors on bad partial files."""

import numpy as np
import pandas as pd
import pytest

from bayescale.cli import main
from bayescale.fit import fit
from bayescale.models.kaplan import KAPLAN
from bayescale.models.skeleton import centre_within_sizes
from bayescale.predict import loss_draws
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs
from bayescale.track import track

N, B, T = 1e5, 1024.0, 3000


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
def test_the_update_agrees_with_a_joint_refit(small_runs, small_posterior):
    """Inside the fitted ranges the law's error is zero, so the new run differs from the
    ladder by its offset alone, which the refit samples and the update integrates out."""
    partial = _live_run(1.01, 900)
    refit = fit(pd.concat([small_runs, partial], ignore_index=True), chains=2, warmup=300, draws=700, seed=0,
                progress=False, warn=False).posterior
    data = KAPLAN.prepare(pd.concat([small_runs, partial], ignore_index=True), group_by=None,
                          min_step_fraction=refit.meta.settings["min_step_fraction"], min_step=0.0)
    offset = np.asarray(centre_within_sizes(refit.draws("run_offset"), data))[:, refit.meta.runs.index("live")]
    later = np.log(loss_draws(refit, N, B, np.array([T]), mode="mean"))[:, 0] + offset
    df = track(small_posterior, partial, T)
    final = df[df["step"] == T].iloc[0]
    assert np.log(final["median"]) == pytest.approx(np.median(later), abs=0.004)
    # the update's band adds evaluation noise to the same parameter uncertainty
    assert final["upper"] - final["lower"] >= 0.8 * (np.exp(np.quantile(later, 0.95)) - np.exp(np.quantile(later, 0.05)))


def test_cli_track_writes_the_forecast(small_posterior, tmp_path, capsys):
    post = str(small_posterior.save(tmp_path / "p.nc"))
    _live_run(1.04, 600).to_csv(tmp_path / "live.csv", index=False)
    assert main(["track", "--posterior", post, "--partial", str(tmp_path / "live.csv"), "--total-steps", str(T),
                 "--target-loss", "1.5", "--level", "0.5", "--level", "0.9", "--out", str(tmp_path / "trk")]) == 0
    out = capsys.readouterr().out
    assert "ALARM" in out and "before the update" in out
    forecast = pd.read_csv(tmp_path / "trk" / "forecast.csv")
    assert list(forecast.columns) == ["step", "median", "lower", "upper", "level"]
    assert (tmp_path / "trk" / "track.png").exists() and (tmp_path / "trk" / "ladder.csv").exists()


def test_cli_track_bad_partial_files_are_one_line(small_posterior, tmp_path, capsys):
    post = str(small_posterior.save(tmp_path / "p.nc"))
    live = _live_run(1.0, 600)
    two = pd.concat([live, live.assign(run="other")])
    late = live.iloc[[0, 2, 1]]
    (tmp_path / "s.csv").write_text("step,learning_rate\n1,1\n1000,1\n")
    cases = [(two, [], "holds 2 runs"), (live, ["--total-steps", "500"], "already reached step"),
             (late, [], "out of order"), (live, ["--schedule-file", str(tmp_path / "s.csv")], "ends at step 1000")]
    for i, (table, extra, match) in enumerate(cases):
        table.to_csv(tmp_path / f"p{i}.csv", index=False)
        args = ["track", "--posterior", post, "--partial", str(tmp_path / f"p{i}.csv"), "--out", str(tmp_path / "o")]
        if "--total-steps" not in extra:
            args += ["--total-steps", str(T)]
        assert main(args + extra) == 2, match
        err = capsys.readouterr().err
        assert match in err and len(err.strip().splitlines()) == 1, err
