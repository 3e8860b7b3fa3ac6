"""Predictive bands: calibration on a held-out larger size, modes, shapes, the loss ceiling
and errors (calibration averaged over datasets: test_coverage_over_datasets.py)."""

import numpy as np
import pytest

from bayescale import predict as P
from bayescale.models.law import LossCeilingWarning
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs

from .conftest import SIZES


def _held_out_coverage(posterior, seed, levels=(0.9,)):
    """Coverage of new-run bands at each of ``levels`` and median relative error on fresh
    runs at 4x the largest fitted size (three batches, ten seeds each, points after the
    transient). Ten seeds per batch: every run has its own offset, so with two the
    coverage of one dataset is decided by six offsets and swings by +-0.05."""
    N = 4 * SIZES[-1]
    held_out = simulate_runs(EXAMPLE_CONSTANTS, sizes=[N], batches=[256.0, 1024.0, 4096.0], final_step=3000,
                             points=40, seeds=10, seed=seed)
    held_out = held_out[held_out["step"] >= 300]
    inside, rel = {level: [] for level in levels}, []
    for B, runs in held_out.groupby("batch_tokens"):
        steps = np.sort(runs["step"].unique())
        bands = P.predict_trajectory(posterior, N, B, steps, levels=levels)
        loss = runs["loss"].to_numpy()
        for level in levels:
            band = (bands[bands["level"] == level] if "level" in bands else bands).set_index("step").loc[runs["step"]]
            inside[level] += list((loss >= band["lower"].to_numpy()) & (loss <= band["upper"].to_numpy()))
            if level == levels[0]:
                rel += list(np.abs(band["median"].to_numpy() / loss - 1))
    return {level: float(np.mean(v)) for level, v in inside.items()}, float(np.median(rel))


def test_new_run_bands_hold_a_held_out_size_four_times_larger(small_posterior):
    """With the default law-error term the bands do not under-cover, and medians are close."""
    coverage, rel = _held_out_coverage(small_posterior, seed=123)
    coverage = coverage[0.9]
    assert coverage >= 0.80, f"coverage {coverage:.2f}"
    assert rel < 0.01


def test_law_error_widens_bands_with_extrapolation_distance(small_posterior):
    steps = np.geomspace(*small_posterior.meta.ranges["step"], 3)
    near = P.predict_trajectory(small_posterior, SIZES[-1], 1024.0, steps)
    far = P.predict_trajectory(small_posterior, 100 * SIZES[-1], 1024.0, steps)
    width = lambda df: float(np.log(df["upper"].iloc[-1] / df["lower"].iloc[-1]))  # noqa: E731
    assert width(far) > 2 * width(near)
    assert "size x100" in far.attrs["extrapolation"]
    assert near.attrs["extrapolation"] == "inside the fitted ranges"


def test_mean_mode_is_narrower_than_new_run(small_posterior):
    kw = dict(levels=(0.9,), points=8)
    mean = P.predict_trajectory(small_posterior, 1e6, 1024.0, 3000, mode="mean", **kw)
    new = P.predict_trajectory(small_posterior, 1e6, 1024.0, 3000, mode="new_run", **kw)
    assert np.all(new["upper"] - new["lower"] > mean["upper"] - mean["lower"])


def test_trajectory_grid_ends_exactly_at_the_requested_step(small_posterior):
    df = P.predict_trajectory(small_posterior, 1e6, 2048.0, 12345, points=17, levels=(0.5, 0.9))
    assert list(df.columns) == ["step", "median", "lower", "upper", "level"]
    assert len(df) == 34 and df["step"].iloc[16] == 12345.0
    five, ninety = df[df["level"] == 0.5], df[df["level"] == 0.9]
    assert np.all(ninety["lower"].to_numpy() <= five["lower"].to_numpy())


def test_steps_to_loss_and_minimum_loss(small_posterior):
    c = EXAMPLE_CONSTANTS
    floor = P.predict_min_loss(small_posterior, [1e5, 1e6], levels=(0.98,))
    true_floor = np.exp(c.alpha_N * (c.log_N_c - np.log([1e5, 1e6])))
    assert np.all((floor["lower"] <= true_floor) & (true_floor <= floor["upper"]))
    target = 1.05 * true_floor[1]
    df = P.predict_steps_to_loss(small_posterior, 1e6, 1024.0, target, levels=(0.9,)).set_index("quantity")
    assert set(df.index) == {"steps", "tokens", "min_steps", "min_tokens", "critical_batch"}
    np.testing.assert_allclose(df.loc["tokens", "median"], 1024.0 * df.loc["steps", "median"], rtol=1e-6)
    assert df.loc["min_steps", "median"] < df.loc["steps", "median"]
    unreachable = P.predict_steps_to_loss(small_posterior, 1e6, 1024.0, 0.5 * true_floor[1])
    assert unreachable["p_reachable"].iloc[0] == 0.0 and np.isinf(unreachable["median"].iloc[0])


def test_critical_batch_bands_contain_truth(small_posterior):
    df = P.predict_critical_batch(small_posterior, [1.5, 2.0], levels=(0.98,))
    truth = np.exp(EXAMPLE_CONSTANTS.log_B_star - np.log([1.5, 2.0]) / EXAMPLE_CONSTANTS.alpha_B)
    assert np.all((df["lower"] <= truth) & (truth <= df["upper"]))


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(params=-1.0), "params=-1.0 must be positive"),
    (dict(mode="best"), "mode='best' is not one of"),
    (dict(levels=(1.5,)), "level=1.5 must be in"),
    (dict(group="other"), "group 'other' is not in the posterior"),
])
def test_bad_requests_raise_clear_errors(small_posterior, kwargs, pattern):
    args = dict(params=1e6, batch_tokens=1024.0, steps=3000)
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        P.predict_trajectory(small_posterior, args.pop("params"), args.pop("batch_tokens"), args.pop("steps"), **args)


def test_default_trajectory_grid_starts_at_the_first_fitted_step(small_posterior):
    """The laws do not describe the early transient, so a grid given by its final step
    starts where the fitted data start (and at step 1 only for a shorter request)."""
    first = small_posterior.meta.ranges["step"][0]
    bands = P.predict_trajectory(small_posterior, 1e5, 1024, 20 * first, points=5)
    assert bands["step"].iloc[0] == pytest.approx(first) and bands["step"].iloc[-1] == 20 * first
    short = P.predict_trajectory(small_posterior, 1e5, 1024, first / 2, points=5)
    assert short["step"].iloc[0] == 1.0


def test_new_run_draws_are_the_fitted_models_own(small_posterior):
    """The NumPy new-run noise is the distribution the model itself draws for a new run
    (``curve_model`` through ``Predictive``): same quantiles within Monte Carlo error."""
    steps = np.geomspace(*small_posterior.meta.ranges["step"], 4)
    fast = np.log(P.loss_draws(small_posterior, SIZES[-1], 1024.0, steps, seed=1))
    model = np.log(P.loss_draws(small_posterior, SIZES[-1], 1024.0, steps, seed=2, through_model=True))
    assert model.shape == fast.shape
    q = [0.05, 0.25, 0.5, 0.75, 0.95]
    spread = np.quantile(fast, 0.95, axis=0) - np.quantile(fast, 0.05, axis=0)
    np.testing.assert_allclose(np.quantile(model, q, axis=0), np.quantile(fast, q, axis=0), atol=0.1 * spread.max())
    assert np.std(model, axis=0) == pytest.approx(np.std(fast, axis=0), rel=0.15)


def test_forecasts_state_their_extrapolation_and_warn_far_beyond_the_data(small_posterior):
    """Every forecast records its factor per axis; beyond 10x on an axis it also warns."""
    import warnings

    from bayescale.models.law import ExtrapolationWarning

    largest = max(small_posterior.meta.sizes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        near = P.predict_trajectory(small_posterior, 2 * largest, 1024, 3000, points=4)
    assert near.attrs["extrapolation_factors"]["size"] == pytest.approx(2, rel=1e-3)
    with pytest.warns(ExtrapolationWarning, match=r"size x100 beyond the fitted data"):
        far = P.predict_min_loss(small_posterior, 100 * largest)
    assert far.attrs["extrapolation_factors"]["size"] == pytest.approx(100, rel=1e-3)
    with pytest.warns(ExtrapolationWarning, match="size x"):
        P.predict_steps_to_loss(small_posterior, 100 * largest, 1024, 1.0)


def test_no_forecast_exceeds_the_loss_of_a_model_that_has_learned_nothing(small_posterior, byte_posterior):
    """A byte-level model that has learned nothing scores ln 256 = 5.545 nats/byte; the power
    law climbs past it at step 1 and at tiny sizes, and the forecasts stop there, say so
    in ``df.attrs["ceiling"]`` and warn once each."""
    steps = np.array([1.0, 2.0, 5.0, 3000.0])
    unclipped = P.predict_trajectory(small_posterior, 1e3, 1024, steps)  # an unknown vocabulary: no ceiling
    assert unclipped["upper"].max() > np.log(256) and unclipped.attrs["ceiling"] is None
    with pytest.warns(LossCeilingWarning) as caught:
        curve = P.predict_trajectory(byte_posterior, 1e3, 1024, steps)
        floor = P.predict_min_loss(byte_posterior, [1.0, 10.0, 1e5])
    assert sum(w.category is LossCeilingWarning for w in caught) == 2
    for table in (curve, floor):
        assert table[["median", "lower", "upper"]].to_numpy().max() <= np.log(256)
        assert "were clipped to ln 256 = 5.545 nats/byte" in table.attrs["ceiling"]
    assert curve.attrs["ceiling"].startswith("at 3 of 4 points, ")
    draws = P.loss_draws(byte_posterior, 10.0, 1024, steps, mode="mean")
    assert draws.max() == pytest.approx(np.log(256)) and P.loss_draws(small_posterior, 10.0, 1024, steps).max() > 6
    inside = P.predict_trajectory(byte_posterior, 1e5, 1024, 3000, points=4)  # no draw near the ceiling: no warning
    assert inside.attrs["ceiling"].startswith("no draw above ln 256")


def test_a_rare_clipped_draw_is_recorded_without_a_warning(byte_posterior):
    """One heavy-tailed draw of 10,000 clipped leaves the bands below the ceiling: the table
    says so, and only bands that reach the ceiling warn."""
    import warnings

    draws = np.full((10_000, 2), 2.0)
    draws[0, 1] = np.log(256)
    bands = P.band_frame(draws, (0.9,), {"step": np.array([10.0, 20.0])})
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossCeilingWarning)
        P.state_ceiling(bands, byte_posterior, draws, "N=1")
    assert bands.attrs["ceiling"].startswith("at 1 of 2 points, 1 of 20000 draws in all were clipped to ln 256")
    draws[:, 1] = np.log(256)
    with pytest.warns(LossCeilingWarning, match=r"^N=1: the bands reach the ceiling: at 1 of 2 points, 10000 of"):
        P.state_ceiling(P.band_frame(draws, (0.9,), {"step": np.array([10.0, 20.0])}), byte_posterior, draws, "N=1")
