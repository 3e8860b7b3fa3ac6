"""Figures: written, labelled, with bands, log axes for the power laws, no pyplot state."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from bayescale import plots
from bayescale.budget import SearchSpace, compute_frontier, plan_budget
from bayescale.calibrate import calibrate
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs

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


def test_trajectories(small_posterior, tmp_path):
    fig = plots.plot_trajectories(small_posterior, forecast_params=(1e6,), points=12)
    check(fig, tmp_path / "traj.png", logx=True, logy=True)
    assert len(fig.axes) == 3  # one panel per fitted batch size
    assert fig.axes[0].get_xlabel() == "optimizer steps S" and "nats" in fig.axes[0].get_ylabel()
    labels = fig.axes[-1].get_legend_handles_labels()[1]
    assert "N=1e+06 (forecast)" in labels


def test_min_loss_and_critical_batch(small_posterior, tmp_path):
    fig = plots.plot_min_loss(small_posterior)
    check(fig, tmp_path / "min_loss.png", logx=True, logy=True)
    assert "parameters" in fig.axes[0].get_xlabel()
    fig = plots.plot_critical_batch(small_posterior)
    check(fig, tmp_path / "bcrit.png", logx=True, logy=True)
    ax = fig.axes[0]
    assert "tokens" in ax.get_ylabel() and ax.xaxis_inverted()


def test_frontier(small_posterior, tmp_path):
    frontier = compute_frontier(small_posterior, np.geomspace(1e10, 1e13, 4), space=SPACE)
    plan = plan_budget(small_posterior, 1e12, target_loss=1.95, space=SPACE)
    fig = plots.plot_frontier(frontier, plan=plan)
    check(fig, tmp_path / "frontier.png", logx=True, logy=True)
    ax = fig.axes[0]
    assert "FLOPs" in ax.get_xlabel()
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
