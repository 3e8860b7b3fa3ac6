"""Figures: written, labelled in the losses' units, with bands, log axes for the power laws
with plain decimal ticks, legends that name everything drawn and stay off the data, no
pyplot state."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from bayescale import plots
from bayescale.budget import SearchSpace, compute_frontier, plan_budget
from bayescale.calibrate import calibrate
from bayescale.demo import _forecast_figure
from bayescale.predict import predict_trajectory
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs
from bayescale.track import track

SPACE = SearchSpace(batch_tokens=(256.0, 1024.0))


def check(fig: Figure, path, *, bands: bool = True, logx: bool = False, logy: bool = False, axes: int = 0) -> None:
    """Written as a non-trivial PNG, the given axes labelled, bands drawn, log axes as asked."""
    assert isinstance(fig, Figure)
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 5_000
    ax = fig.axes[axes]
    assert ax.get_xlabel() and ax.get_ylabel()
    if bands:
        assert any(isinstance(c, PolyCollection) for a in fig.axes for c in a.collections)
    assert (ax.get_xscale() == "log") == logx and (ax.get_yscale() == "log") == logy


def tick_labels(ax: Axes, axis: str = "y") -> list[str]:
    """The labels of the major ticks inside the view of one axis of ``ax``, as drawn."""
    ax.figure.draw_without_rendering()
    ticks = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    locs = [v for v in ticks.get_majorticklocs() if lo <= v <= hi]
    return [label for label in ticks.get_major_formatter().format_ticks(locs) if label]


def check_loss_ticks(ax: Axes, axis: str = "y") -> None:
    """A log axis of losses reads: at least four labelled ticks, plain decimals (not 9x10^-1)."""
    labels = tick_labels(ax, axis)
    assert len(labels) >= plots.MIN_LOG_TICKS, labels
    assert all(re.fullmatch(r"\d+(\.\d+)?", label) for label in labels), labels


def check_step_ticks(ax: Axes) -> None:
    """A log axis of steps reads: at least four distinct labelled ticks, plain counts with
    thousands as k and millions as M (500, 2k, 10k, 1M; not 4x10^2)."""
    labels = tick_labels(ax, "x")
    assert len(labels) >= plots.MIN_LOG_TICKS and len(set(labels)) == len(labels), labels
    assert all(re.fullmatch(r"\d+(\.\d+)?[kM]?", label) for label in labels), labels


def test_counts_are_labelled_in_thousands_and_millions():
    labels = [plots.count_label(v) for v in (20, 400, 1e3, 2.5e3, 1e4, 2.5e5, 1e6, 1.5e6)]
    assert labels == ["20", "400", "1k", "2.5k", "10k", "250k", "1M", "1.5M"]


def legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_trajectories(small_posterior, tmp_path):
    fig = plots.plot_trajectories(small_posterior, forecast_params=(1e6,), points=12)
    check(fig, tmp_path / "traj.png", logx=True, logy=True)
    assert len(fig.axes) == 3  # one panel per fitted batch size
    assert fig.axes[0].get_xlabel() == "optimizer steps S" and fig.axes[0].get_ylabel() == "loss (nats/token)"
    check_loss_ticks(fig.axes[0])
    for ax in fig.axes:
        check_step_ticks(ax)
    # every size drawn in any panel is in the one legend, not only those of the last panel
    sizes = plots.fitted_points(small_posterior)["params"].unique()
    assert legend_texts(fig) == [*(f"N={N:.3g}" for N in sorted(sizes)), "N=1e+06 (forecast)"]


@pytest.mark.parametrize("make", [plots.plot_min_loss, plots.plot_critical_batch])
def test_band_legends_have_one_entry_per_kind_beside_the_data(small_posterior, make):
    fig = make(small_posterior)
    ax = fig.axes[0]
    fig.draw_without_rendering()
    (legend,) = fig.legends
    assert not legend.get_window_extent().overlaps(ax.get_window_extent())
    # the group's colour, the two bands, the median, then the fitted range (and the runs' lowest losses)
    texts = legend_texts(fig)
    assert texts[:4] == [*small_posterior.groups, "90% band", "50% band", "median"] and len(texts) <= 6


def test_min_loss_and_critical_batch(small_posterior, tmp_path):
    fig = plots.plot_min_loss(small_posterior)
    check(fig, tmp_path / "min_loss.png", logx=True, logy=True)
    assert "parameters" in fig.axes[0].get_xlabel()
    check_loss_ticks(fig.axes[0])
    fig = plots.plot_critical_batch(small_posterior)
    check(fig, tmp_path / "bcrit.png", logx=True, logy=True)
    ax = fig.axes[0]
    # the loss increases to the right and the batch upwards, each axis naming its quantity
    assert not ax.xaxis_inverted() and not ax.yaxis_inverted()
    assert ax.get_xlim()[0] < ax.get_xlim()[1] and ax.get_ylim()[0] < ax.get_ylim()[1]
    assert ax.get_xlabel() == "loss L (nats/token)" and ax.get_ylabel() == "critical batch B_crit (tokens/step)"
    check_loss_ticks(ax, "x")


def test_byte_level_losses_are_labelled_per_byte(byte_posterior):
    figures = [plots.plot_trajectories(byte_posterior, points=12), plots.plot_min_loss(byte_posterior),
               plots.plot_critical_batch(byte_posterior), plots.plot_predictive_check(byte_posterior, num_pp_samples=5)]
    labels = [label for fig in figures for label in (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel())]
    assert sum("nats/byte" in label for label in labels) == 4 and not any("token)" in label for label in labels)


def test_track_and_forecast_figures_read_in_plain_decimals(byte_posterior):
    run = simulate_runs(EXAMPLE_CONSTANTS, [1e5], [1024.0], final_step=3000, points=40, seed=7, run_sd=0.0)
    forecast = track(byte_posterior, run[run["step"] <= 600], 3000)
    fig = plots.plot_track(forecast)
    assert fig.axes[0].get_ylabel() == "loss (nats/byte)"
    check_loss_ticks(fig.axes[0])
    check_step_ticks(fig.axes[0])
    bands = predict_trajectory(byte_posterior, 1e6, 1024, 3000, levels=(0.5, 0.9), points=8)
    fig = _forecast_figure([(1e6, 1024.0, bands)], 1.5, "all", "nats/byte")
    assert fig.axes[0].get_ylabel() == "loss (nats/byte)"
    check_loss_ticks(fig.axes[0])
    check_step_ticks(fig.axes[0])


def test_frontier(small_posterior, tmp_path):
    frontier = compute_frontier(small_posterior, np.geomspace(1e10, 1e13, 4), space=SPACE)
    plan = plan_budget(small_posterior, 1e12, target_loss=1.95, space=SPACE)
    fig = plots.plot_frontier(frontier, plan=plan)
    check(fig, tmp_path / "frontier.png", logx=True, logy=True)
    ax = fig.axes[0]
    assert "FLOPs" in ax.get_xlabel() and ax.get_ylabel() == "final loss (nats/token)"
    check_loss_ticks(ax)
    labels = ax.get_legend_handles_labels()[1]
    assert any(label.startswith("risk-aware") for label in labels) and "target 1.95 nats" in labels


def test_calibration_figures(small_posterior, tmp_path):
    runs = simulate_runs(EXAMPLE_CONSTANTS, sizes=(5e5, 2e6), batches=(1024.0,), final_step=3000, points=20, seed=3)
    result = calibrate(small_posterior, runs, levels=(0.5, 0.9))
    fig = plots.plot_coverage(result)
    check(fig, tmp_path / "coverage.png")
    assert fig.axes[0].get_xlim() == (0.0, 1.0)
    fig = plots.plot_pit(result, bins=5)
    check(fig, tmp_path / "pit.png")
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert sum(heights) == len(result.points)


def test_arviz_views(small_posterior, tmp_path):
    fig = plots.plot_rank(small_posterior)
    check(fig, tmp_path / "rank.png", bands=False)
    assert sum(ax.get_visible() for ax in fig.axes) == len(small_posterior.constant_names())
    for ax in (a for a in fig.axes if a.get_visible()):  # the text of each panel is smaller than its title
        sizes = [t.get_fontsize() for t in (*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label,
                                            ax.yaxis.label)]
        assert max(sizes) < ax.title.get_fontsize()
    k = len(small_posterior.constant_names())
    fig = plots.plot_pair(small_posterior)
    check(fig, tmp_path / "pair.png", bands=False, axes=k * (k - 1))  # bottom left: log10 N_c against alpha_B
    assert sum(ax.get_visible() for ax in fig.axes) == k * (k + 1) // 2
    assert fig.axes[-1].get_xlabel() == "alpha_B" and fig.axes[k * (k - 1)].get_xlabel() == "log10 N_c"
    for kind in ("prior", "posterior"):
        fig = plots.plot_predictive_check(small_posterior, kind=kind, num_pp_samples=20)
        check(fig, tmp_path / f"{kind}.png", bands=False)
        assert fig.axes[0].get_legend_handles_labels()[1][-1] == "observed"
    with pytest.raises(ValueError, match="kind='both' must be 'prior' or 'posterior'"):
        plots.plot_predictive_check(small_posterior, kind="both")


def test_no_pyplot_figures_are_left_open():
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []
