"""Learning-rate schedules: shapes, LR area and annealing, the schedule-aware law, its
recovery from synthetic curves, and the schedule options of the command line."""

import numpy as np
import pandas as pd
import pytest

from bayescale.cli import main
from bayescale.fit import fit
from bayescale.models.kaplan import KAPLAN
from bayescale.models.law import Covariates
from bayescale.models.schedule import KAPLAN_SCHEDULE
from bayescale.predict import predict_steps_to_loss, predict_trajectory, steps_under_schedule
from bayescale.schedules import (ANNEAL_MEMORY, Schedule, ScheduleWarning, features_at, final_features, lr_features,
                                 table_features)
from bayescale.synthetic import EXAMPLE_SCHEDULE_CONSTANTS, simulate_runs
from tests.conftest import assert_sampler_sane

SCHEDULES = {"constant": Schedule("constant", 50), "cosine": Schedule("cosine", 50, 0.1),
             "wsd": Schedule("wsd", 50, 0.0, 0.2)}


def test_shapes_follow_their_formulas():
    T = 1000
    cosine = Schedule("cosine", warmup_steps=100, final_lr_fraction=0.1).relative_rates(T)
    assert cosine[0] == pytest.approx(0.01) and cosine[99] == pytest.approx(1.0)  # (s + 1) / W
    assert cosine[100] == pytest.approx(1.0) and cosine[-1] == pytest.approx(0.1)
    assert np.all(np.diff(cosine[100:]) <= 0)
    wsd = Schedule("wsd", warmup_steps=0, final_lr_fraction=0.0, decay_fraction=0.2).relative_rates(T)
    assert np.all(wsd[:800] == 1.0) and wsd[-1] == pytest.approx(0.0) and wsd[899] == pytest.approx(0.5)
    linear = Schedule("linear", final_lr_fraction=0.5).relative_rates(T)
    assert linear[0] == 1.0 and linear[-1] == pytest.approx(0.5) and np.allclose(np.diff(np.diff(linear)), 0)
    explicit = Schedule.from_rates([1, 11], [2.0, 1.0]).relative_rates(11)
    assert explicit[5] == pytest.approx(0.75)  # linear between rows, divided by the peak


def test_constant_schedule_area_is_the_step_and_no_annealing():
    feats = features_at(Schedule("constant", warmup_steps=30), np.array([1, 10, 500, 1000]))
    assert np.allclose(np.exp(feats["log_lr_area"]), [1, 10, 500, 1000])  # warm-up steps count in full
    assert np.all(feats["lr_anneal"] == 0.0)


def test_a_drop_anneals_with_the_momentum_memory():
    rates = np.r_[np.ones(100), np.full(900, 0.4)]
    area, anneal = lr_features(rates)
    assert area[-1] == pytest.approx(100 + 0.4 * 900)
    n = np.arange(1, 901)
    assert np.allclose(anneal[100:], 0.6 * (1 - ANNEAL_MEMORY**n))  # Delta (1 - lambda^(t-k+1))


def test_strided_features_match_step_by_step_ones():
    cosine = Schedule("cosine", warmup_steps=200, final_lr_fraction=0.1)
    steps = np.array([1000, 50_000, 100_000])
    exact = features_at(cosine, steps, 100_000)
    strided = features_at(cosine, steps, 100_000, max_samples=5_000)
    assert np.allclose(strided["log_lr_area"], exact["log_lr_area"], atol=1e-3)
    assert np.allclose(strided["lr_anneal"], exact["lr_anneal"], atol=5e-3)
    assert final_features(cosine, [100_000])["lr_anneal"][0] == pytest.approx(exact["lr_anneal"][-1], abs=5e-3)


def test_schedule_errors_are_one_clear_line(tmp_path):
    for kwargs, match in [({"kind": "step"}, "unknown schedule"), ({"final_lr_fraction": 1.5}, "final_lr_fraction"),
                          ({"decay_fraction": 0.0}, "decay_fraction"), ({"warmup_steps": -1}, "warmup_steps")]:
        with pytest.raises(ValueError, match=match):
            Schedule(**kwargs)
    with pytest.raises(ValueError, match="increase strictly"):
        Schedule.from_rates([5, 3], [1.0, 1.0])
    with pytest.raises(ValueError, match="ends at step 10"):
        Schedule.from_rates([1, 10], [1.0, 0.5]).relative_rates(20)
    (tmp_path / "s.csv").write_text("step,rate\n1,1\n")
    with pytest.raises(ValueError, match="step,learning_rate"):
        Schedule.from_file(tmp_path / "s.csv")


def test_table_features_read_learning_rate_then_spec_then_warn():
    spec = Schedule("cosine", warmup_steps=10, final_lr_fraction=0.1)
    steps = np.arange(20.0, 401.0, 20.0)
    rates = 3e-3 * spec.relative_rates(400)[steps.astype(int) - 1]
    logged = pd.DataFrame({"run": "a", "step": steps, "learning_rate": rates})
    described = pd.DataFrame({"run": "b", "step": steps, "schedule": "cosine", "warmup_steps": 10.0,
                              "final_lr_fraction": 0.1})
    table = pd.concat([logged, described], ignore_index=True)
    n = len(steps)
    table.loc[n:, "learning_rate"] = np.nan
    feats = table_features(table)
    exact = features_at(spec, steps, 400)
    assert np.allclose(feats["lr_anneal"].to_numpy()[n:], exact["lr_anneal"])
    # from logged rows the rate is interpolated between evaluations: close, not exact
    assert np.allclose(feats["log_lr_area"].to_numpy()[:n], exact["log_lr_area"], atol=0.01)
    assert np.allclose(feats["lr_anneal"].to_numpy()[:n], exact["lr_anneal"], atol=0.02)
    with pytest.warns(ScheduleWarning, match="assumed constant"):
        blind = table_features(pd.DataFrame({"run": "c", "step": steps}))
    assert np.allclose(np.exp(blind["log_lr_area"]), steps)


def test_constant_schedule_gives_kaplans_numbers():
    c = EXAMPLE_SCHEDULE_CONSTANTS
    steps = np.array([10, 30, 100, 300, 1000, 3000], np.float32)
    feats = features_at(Schedule("constant", warmup_steps=50), steps)
    x = Covariates(np.log(np.float32(1e5)), np.log(np.float32(2048.0)), np.log(steps),
                   {k: v.astype(np.float32) for k, v in feats.items()})
    assert np.allclose(KAPLAN_SCHEDULE.mean_log_loss(c, x), KAPLAN.mean_log_loss(c, x), rtol=0, atol=1e-6)


def test_schedule_axis_states_annealing_beyond_the_fitted_runs():
    ranges = {"params": [1e4, 1e5], "step": [10.0, 1000.0], "batch_tokens": [512.0, 2048.0], "lr_anneal": [0.0, 0.5]}
    within = KAPLAN_SCHEDULE.extrapolation(ranges, 5e4, 1024, 500, {"lr_anneal": np.array([0.0, 0.4])})
    beyond = KAPLAN_SCHEDULE.extrapolation(ranges, 5e4, 1024, 500, {"lr_anneal": np.array([0.2, 0.8])})
    assert within.factors == {"size": 1.0, "steps": 1.0, "batch": 1.0, "schedule": 1.0}
    assert beyond.factors["schedule"] == pytest.approx(1.6) and "schedule x1.6" in beyond.describe()
    never = KAPLAN_SCHEDULE.extrapolation({**ranges, "lr_anneal": [0.0, 0.0]}, 5e4, 1024, 500, {"lr_anneal": [0.3]})
    assert "schedule (nothing like it fitted)" in never.describe()
    assert "schedule" not in KAPLAN_SCHEDULE.extrapolation(ranges, 5e4, 1024, 500).axes  # schedule not given


@pytest.fixture(scope="module")
def schedule_fit():
    runs = simulate_runs(EXAMPLE_SCHEDULE_CONSTANTS, sizes=(1.5e4, 6e4, 2.5e5), batches=(512.0, 4096.0),
                         final_step=3000, points=25, schedules=SCHEDULES, seed=1)
    return fit(runs, law="kaplan_schedule", chains=2, warmup=400, draws=600, seed=0, progress=False, warn=False)


@pytest.mark.slow
def test_schedule_law_recovers_known_constants(schedule_fit):
    assert_sampler_sane(schedule_fit.diagnostics)
    post = schedule_fit.posterior
    c = EXAMPLE_SCHEDULE_CONSTANTS
    N_ref = np.exp(post.meta.references["log_N_ref"])
    truth = {"N_c": np.exp(c.log_N_c), "alpha_N": c.alpha_N, "S_c": np.exp(c.log_S_c), "alpha_S": c.alpha_S,
             "B_star": np.exp(c.log_B_star), "alpha_B": c.alpha_B, "anneal_exponent": c.gamma_D,
             "anneal_gain": np.exp(c.log_D_ref) * (N_ref / np.exp(c.log_N_ref)) ** -c.gamma_D}
    for name, value in truth.items():
        lo, hi = np.quantile(post.draws(name), [0.005, 0.995])
        assert lo <= value <= hi, (name, value, lo, hi)


@pytest.mark.slow
def test_forecasts_answer_for_any_schedule(schedule_fit):
    post = schedule_fit.posterior
    ends = {k: predict_trajectory(post, 1e5, 2048, 3000, schedule=s)["median"].iloc[-1] for k, s in SCHEDULES.items()}
    truth = {k: simulate_runs(EXAMPLE_SCHEDULE_CONSTANTS, [1e5], [2048], 3000, points=5, noise=1e-9, run_sd=0,
                              schedules={k: s})["loss"].iloc[-1] for k, s in SCHEDULES.items()}
    for k in SCHEDULES:
        assert ends[k] == pytest.approx(truth[k], rel=0.02), k
    assert ends["wsd"] < ends["constant"]  # the decay's gain outweighs its smaller LR area
    # the schedule axis: WSD to zero anneals beyond the fitted runs only if they anneal less
    fitted_anneal = post.meta.ranges["lr_anneal"][1]
    wsd = predict_trajectory(post, 1e5, 2048, 3000, schedule=SCHEDULES["wsd"]).attrs["extrapolation_factors"]
    assert wsd["schedule"] >= 1.0 and fitted_anneal > 0.5
    # steps to a loss: the search along planned lengths agrees with Kaplan's inverse for a constant rate
    target = np.full(post.n_draws, 1.8)
    searched = steps_under_schedule(post, 1e5, 2048, target, Schedule("constant"))["steps"]
    exact = KAPLAN_SCHEDULE.steps_to_loss(post.constants(), 1e5, 2048, target)["steps"]
    assert np.allclose(searched, exact, rtol=0.01)
    cosine = predict_steps_to_loss(post, 1e5, 2048, 1.8, schedule=SCHEDULES["cosine"]).set_index("quantity")
    assert set(cosine.index) == {"steps", "tokens", "critical_batch"} and np.isfinite(cosine.loc["steps", "median"])


def test_a_constant_law_refuses_other_schedules(small_posterior):
    with pytest.raises(ValueError, match="kaplan_schedule"):
        predict_trajectory(small_posterior, 1e5, 1024, 3000, schedule=SCHEDULES["cosine"])
    band = predict_trajectory(small_posterior, 1e5, 1024, 3000, schedule=SCHEDULES["constant"])
    assert np.allclose(band["median"], predict_trajectory(small_posterior, 1e5, 1024, 3000)["median"])


@pytest.fixture(scope="module")
def schedule_posterior_file(schedule_fit, tmp_path_factory):
    return str(schedule_fit.posterior.save(tmp_path_factory.mktemp("post") / "s.nc"))


@pytest.mark.slow
def test_cli_schedule_options(schedule_posterior_file, tmp_path, capsys):
    common = ["--posterior", schedule_posterior_file, "--params", "1e5", "--batch-tokens", "2048"]
    assert main(["predict", *common, "--steps", "3000", "--points", "5", "--schedule", "wsd", "--warmup-steps",
                 "50", "--decay-fraction", "0.2", "--final-lr-fraction", "0", "--json"]) == 0
    assert "wsd" in capsys.readouterr().out
    (tmp_path / "sched.csv").write_text("step,learning_rate\n1,0.003\n2000,0.003\n3000,0.0003\n")
    assert main(["predict", *common, "--until-loss", "1.8", "--schedule-file", str(tmp_path / "sched.csv")]) == 0
    assert "steps" in capsys.readouterr().out
    assert main(["budget", "--posterior", schedule_posterior_file, "--flops", "1e13", "--params-per-decade", "2",
                 "--schedule", "cosine", "--compare-schedules", "constant,wsd", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "schedules at the risk-aware choice" in out and "wsd" in out
    bad = [(["--steps", "100", "--final-lr-fraction", "0.1"], "give --schedule too"),
           (["--steps", "5000", "--schedule-file", str(tmp_path / "sched.csv")], "ends at step 3000"),
           (["--steps", "100", "--schedule", "cosine", "--schedule-file", str(tmp_path / "sched.csv")],
            "leave out --schedule"),
           (["--steps", "100", "--schedule-file", str(tmp_path / "missing.csv")], "cannot read")]
    for args, match in bad:
        assert main(["predict", *common, *args]) == 2
        err = capsys.readouterr().err
        assert match in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("args", [["--final-lr-fraction", "1.5"], ["--warmup-steps", "-3"], ["--schedule", "step"],
                                  ["--decay-fraction", "x"]])
def test_cli_rejects_bad_schedule_values(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--posterior", "p.nc", "--params", "1e5", "--batch-tokens", "1024", "--steps", "100", *args])
    assert exit_info.value.code == 2
    assert args[0] in capsys.readouterr().err


def test_cli_constant_law_with_a_schedule_is_one_line(small_posterior, tmp_path, capsys):
    path = str(small_posterior.save(tmp_path / "k.nc"))
    assert main(["predict", "--posterior", path, "--params", "1e5", "--batch-tokens", "1024", "--steps", "100",
                 "--schedule", "cosine"]) == 2
    err = capsys.readouterr().err
    assert "kaplan_schedule" in err and len(err.strip().splitlines()) == 1
