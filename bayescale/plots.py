"""Figures of forecasts, budgets, calibration and posterior diagnostics (matplotlib).

Every function takes its data first and keyword options after, draws on a new
:class:`matplotlib.figure.Figure` (never through ``pyplot``, so nothing opens a window
and no global figure state is touched; saving uses the Agg renderer) and returns it.
Power laws get log axes; axes are labelled with units (tokens, steps, FLOPs, and the
losses' own: nats per byte for byte-level runs, :func:`bayescale.posterior.loss_units`).
Log axes of losses, which rarely span a decade, get plain decimal ticks
(:func:`plain_log`), and log axes of steps plain counts (``500``, ``2k``, ``10k``,
``1M``; :func:`step_log`). Bands are central credible intervals from posterior draws
(:mod:`bayescale.predict`).
"""

from __future__ import annotations

from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, Locator, LogLocator, MaxNLocator, NullFormatter

from bayescale.budget import BudgetPlan
from bayescale.calibrate import Calibration
from bayescale.posterior import Posterior, fitted_points, loss_units
from bayescale.predict import (level_percent, loss_draws, predict_critical_batch, predict_min_loss,
                               predict_trajectory, quantile_bands)

STEPS_LABEL = "optimizer steps S"
PARAMS_LABEL = "non-embedding parameters N"
#: Fewest labelled ticks on a log axis of losses (:func:`plain_log`).
MIN_LOG_TICKS = 4
#: Mantissas tried in turn for the ticks of a log axis: decades, then 1-2-5, then 1-2-3-5.
LOG_TICK_SUBS = ((1.0,), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0))
#: How the fitted range is shaded behind bands: hatched, so that it does not read as a band.
FITTED_RANGE = {"facecolor": "none", "edgecolor": "0.87", "hatch": "//", "linewidth": 0}
#: Font sizes of the small multiples of :func:`plot_rank`: ticks and axis labels below the titles.
RANK_TICK_SIZE, RANK_LABEL_SIZE, RANK_TITLE_SIZE = 7.0, 8.0, 9.0


def figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.0, height: float = 4.2, **kwargs):
    """A new :class:`~matplotlib.figure.Figure` (not through pyplot) and its grid of axes."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


class PlainLogLocator(Locator):
    """Major ticks of a log axis that keep at least :data:`MIN_LOG_TICKS` in view.

    The first of decades, 1-2-5 and 1-2-3-5 mantissas (:data:`LOG_TICK_SUBS`) that puts
    that many ticks inside the view; a span too short for any (a loss axis from 1.2 to
    2.6) gets evenly spaced round values instead (1.2, 1.4, ..., 2.6).
    """

    def __call__(self) -> np.ndarray:
        return self.tick_values(*self.axis.get_view_interval())

    def tick_values(self, vmin: float, vmax: float) -> np.ndarray:
        lo, hi = sorted((vmin, vmax))
        for subs in LOG_TICK_SUBS:
            ticks = LogLocator(subs=subs).tick_values(lo, hi)
            if np.count_nonzero((ticks >= lo) & (ticks <= hi)) >= MIN_LOG_TICKS:
                return ticks
        ticks = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        return ticks[ticks > 0]


def plain_log(axis: Axis, label=lambda v: f"{v:g}") -> None:
    """Plain decimal tick labels (``0.8``, ``1.5``, ``2``; not ``8x10^-1``) on a log axis, at
    least :data:`MIN_LOG_TICKS` of them (:class:`PlainLogLocator`); minor ticks stay
    unlabelled. For the loss axes, which rarely span a decade; ``label`` writes a tick's
    value (:func:`step_log` passes :func:`count_label`)."""
    axis.set_major_locator(PlainLogLocator())
    axis.set_major_formatter(FuncFormatter(lambda v, _: label(v)))
    axis.set_minor_formatter(NullFormatter())


def count_label(value: float) -> str:
    """A count as a tick label: ``400``, thousands as ``2k``, ``2.5k``, ``10k``, millions as ``1M``."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def step_log(axis: Axis) -> None:
    """Readable ticks on a log axis of optimizer steps (``500``, ``1k``, ``2k``, ``10k``, ``1M``;
    not ``4x10^2``): the ticks of :func:`plain_log`, labelled by :func:`count_label`."""
    plain_log(axis, label=count_label)


def _table_units(table: pd.DataFrame) -> str:
    """The loss units a forecast table carries (``attrs["loss_units"]``), or plain nats."""
    return table.attrs.get("loss_units", "nats")


def _bands_legend(fig: Figure, groups: Sequence[str], levels: Sequence[float], extra: Sequence[Artist] = ()) -> None:
    """One legend beside the axes, an entry per kind rather than per drawn item: a colour per
    group, then (in grey) the bands of each level, the median and ``extra`` handles."""
    alpha = _band_alpha(levels)
    handles = [Patch(color=f"C{i}", label=g) for i, g in enumerate(groups)]
    handles += [Patch(color="0.4", alpha=alpha[lv], linewidth=0, label=f"{level_percent(lv)}% band")
                for lv in sorted(levels, reverse=True)]
    handles += [Line2D([], [], color="0.3", label="median"), *extra]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)


def _band_alpha(levels: Sequence[float]) -> dict[float, float]:
    """Lighter fills for wider intervals."""
    return {lv: 0.15 + 0.25 * i / max(1, len(levels) - 1) for i, lv in enumerate(sorted(levels, reverse=True))}


def _groups(posterior: Posterior, group: str | None) -> list[str]:
    return posterior.groups if group is None else [posterior.groups[posterior.group_index(group)]]


def plot_trajectories(
    posterior: Posterior,
    *,
    group: str | None = None,
    level: float = 0.9,
    mode: str = "new_run",
    forecast_params: Sequence[float] = (),
    forecast_steps: float | None = None,
    points: int = 40,
    seed: int = 0,
) -> Figure:
    """Fitted points with predictive bands of their curves, one panel per batch size.

    Colours follow the model size; one legend beside the panels names every size drawn
    in any of them. ``forecast_params`` adds bands (dashed medians) for sizes that were
    not trained, up to ``forecast_steps`` (default: 3x the last fitted step), at every
    panel's batch.
    """
    g = posterior.groups[posterior.group_index(group)]
    data = fitted_points(posterior)
    data = data[data["group"] == g]
    batches = sorted(data["batch_tokens"].round(6).unique())
    sizes = sorted(data["params"].unique())
    all_sizes = np.array(sorted({*sizes, *forecast_params}))
    cmap = colormaps["viridis"]
    colour = {N: cmap(0.9 * (np.log(N) - np.log(all_sizes[0])) / max(1e-9, np.ptp(np.log(all_sizes))))
              for N in all_sizes}
    last = float(data["step"].max())
    fig, axes = figure(1, len(batches), width=4.6, sharey=True)
    for ax, B in zip(axes[0], batches):
        at_b = data[np.isclose(data["batch_tokens"], B)]
        for _, pts in at_b.sort_values("step").groupby("run"):  # each run under its own schedule
            N = float(pts["params"].iloc[0])
            covariates = {name: pts[name].to_numpy() for name in posterior.law.covariates}
            draws = loss_draws(posterior, N, B, pts["step"].to_numpy(), mode=mode, group=g, seed=seed,
                               covariates=covariates or None)
            median, lower, upper = quantile_bands(draws, (level,))[level]
            ax.fill_between(pts["step"], lower, upper, color=colour[N], alpha=0.3, linewidth=0)
            ax.plot(pts["step"], median, color=colour[N], linewidth=1)
            ax.scatter(pts["step"], pts["loss"], color=colour[N], s=9, zorder=3)
        for N in forecast_params:
            grid = np.geomspace(data["step"].min(), forecast_steps or 3 * last, points)
            band = predict_trajectory(posterior, N, B, grid, levels=(level,), mode=mode, group=group, seed=seed)
            ax.fill_between(band["step"], band["lower"], band["upper"], color=colour[N], alpha=0.2, linewidth=0,
                            hatch="//")
            ax.plot(band["step"], band["median"], color=colour[N], linestyle="--")
        ax.set(xscale="log", yscale="log", xlabel=STEPS_LABEL, title=f"B = {B:g} tokens/step")
        step_log(ax.xaxis)
        ax.grid(True, which="both", alpha=0.2)
    axes[0, 0].set_ylabel(f"loss ({loss_units(posterior.meta)})")
    plain_log(axes[0, 0].yaxis)
    handles = [Line2D([], [], color=colour[N], marker="o", markersize=4, linewidth=1, label=f"N={N:.3g}")
               for N in sizes]
    handles += [Line2D([], [], color=colour[N], linestyle="--", label=f"N={N:.3g} (forecast)")
                for N in forecast_params]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, title="model size")
    fig.suptitle(f"Loss curves: fitted points and {level_percent(level)}% {mode.replace('_', '-')} bands ({g})")
    return fig


def plot_min_loss(
    posterior: Posterior,
    *,
    params: Sequence[float] | None = None,
    levels: Sequence[float] = (0.5, 0.9),
    mode: str = "new_run",
    group: str | None = None,
    seed: int = 0,
) -> Figure:
    """Minimum reachable loss ``L_N`` against model size with bands, per group.

    ``params`` defaults to a log grid from a third of the smallest fitted size to 100x
    the largest; the fitted sizes are shaded and each fitted run's lowest loss (an upper
    bound on ``L_N``) is marked. The legend, beside the axes, has one entry per kind.
    """
    lo, hi = posterior.meta.ranges["params"]
    grid = np.geomspace(lo / 3, hi * 100, 60) if params is None else np.asarray(params, float)
    fig, axes = figure(width=7.6)
    ax = axes[0, 0]
    ax.axvspan(lo, hi, **FITTED_RANGE)
    data = fitted_points(posterior)
    alpha = _band_alpha(levels)
    groups = _groups(posterior, group)
    for i, g in enumerate(groups):
        c = f"C{i}"
        table = predict_min_loss(posterior, grid, levels=levels, mode=mode, group=g, seed=seed)
        for level in sorted(levels, reverse=True):
            part = table[table["level"] == level] if "level" in table else table
            ax.fill_between(part["params"], part["lower"], part["upper"], color=c, alpha=alpha[level], linewidth=0)
        ax.plot(part["params"], part["median"], color=c)
        best = data[data["group"] == g].groupby("run").agg(params=("params", "first"), loss=("loss", "min"))
        ax.scatter(best["params"], best["loss"], color=c, marker="x", s=20)
    ax.set(xscale="log", yscale="log", xlabel=PARAMS_LABEL,
           ylabel=f"minimum loss L_N ({loss_units(posterior.meta)})", title="Minimum reachable loss against model size")
    plain_log(ax.yaxis)
    ax.grid(True, which="both", alpha=0.2)
    _bands_legend(fig, groups, levels, [
        Line2D([], [], color="0.3", marker="x", linestyle="none", label="lowest loss\nof each run"),
        Patch(**FITTED_RANGE, label="fitted sizes")])
    return fig


def plot_critical_batch(
    posterior: Posterior,
    *,
    losses: Sequence[float] | None = None,
    levels: Sequence[float] = (0.5, 0.9),
    group: str | None = None,
) -> Figure:
    """Critical batch ``B_crit(L) = B_* / L^(1/alpha_B)`` against the loss, with bands.

    ``losses`` defaults to 0.7x the lowest to 1.3x the highest fitted loss; the fitted
    batch sizes are shaded. Both axes increase the usual way (the loss to the right, the
    batch upwards): training moves a run leftwards, towards lower losses, where the
    critical batch is larger.
    """
    data = fitted_points(posterior)
    grid = (np.geomspace(0.7 * data["loss"].min(), 1.3 * data["loss"].max(), 50) if losses is None
            else np.asarray(losses, float))
    fig, axes = figure(width=7.6)
    ax = axes[0, 0]
    ax.axhspan(*posterior.meta.ranges["batch_tokens"], **FITTED_RANGE)
    alpha = _band_alpha(levels)
    groups = _groups(posterior, group)
    for i, g in enumerate(groups):
        c = f"C{i}"
        table = predict_critical_batch(posterior, grid, levels=levels, group=g)
        for level in sorted(levels, reverse=True):
            part = table[table["level"] == level] if "level" in table else table
            ax.fill_between(part["loss"], part["lower"], part["upper"], color=c, alpha=alpha[level], linewidth=0)
        ax.plot(part["loss"], part["median"], color=c)
    ax.set(xscale="log", yscale="log", xlabel=f"loss L ({loss_units(posterior.meta)})",
           ylabel="critical batch B_crit (tokens/step)",
           title="Critical batch size B_crit against the loss L\n(training lowers L: runs move leftwards)")
    plain_log(ax.xaxis)
    ax.grid(True, which="both", alpha=0.2)
    _bands_legend(fig, groups, levels, [Patch(**FITTED_RANGE, label="fitted batches")])
    return fig


def _band_levels(table: pd.DataFrame) -> list[float]:
    """Levels of the ``lower_<pct>`` columns of a budget table, widest first."""
    return sorted((float(c.removeprefix("lower_")) / 100 for c in table.columns if c.startswith("lower_")),
                  reverse=True)


def plot_frontier(
    frontier: pd.DataFrame,
    *,
    plan: BudgetPlan | None = None,
    target_loss: float | None = None,
) -> Figure:
    """Final loss of the risk-aware choice against compute, with its bands.

    ``frontier`` is :func:`bayescale.budget.compute_frontier`'s table (its
    ``attrs["loss_units"]`` label the loss axis). With ``plan`` the risk-aware and
    point-estimate choices at its budget are marked, with ``target_loss`` a horizontal line.
    """
    levels = _band_levels(frontier)
    fig, axes = figure()
    ax = axes[0, 0]
    alpha = _band_alpha(levels)
    for level in levels:
        ax.fill_between(frontier["budget"], frontier[f"lower_{level_percent(level)}"], frontier[f"upper_{level_percent(level)}"],
                        color="C0", alpha=alpha[level], linewidth=0, label=f"{level_percent(level)}% band")
    ax.plot(frontier["budget"], frontier["median"], color="C0", marker=".", label="median (risk-aware choice)")
    if plan is not None:
        # the point-estimate marker sits a little to the right so that both stay visible
        for row, marker, name, shift in ((plan.choice, "o", "risk-aware", 1.0),
                                         (plan.point_choice, "s", "point estimate", 1.2)):
            widest = level_percent(_band_levels(plan.table)[0])
            yerr = [[row["median"] - row[f"lower_{widest}"]], [row[f"upper_{widest}"] - row["median"]]]
            ax.errorbar([plan.flops * shift], [row["median"]], yerr=yerr, fmt=marker, capsize=3,
                        label=f"{name}: N={row['params']:.3g}, B={row['batch_tokens']:g}, S={row['steps']:.3g} "
                              f"({widest}% band)")
    target = target_loss if target_loss is not None else (plan.target_loss if plan is not None else None)
    if target is not None:
        ax.axhline(target, color="C3", linestyle=":", label=f"target {target:g} nats")
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)",
           ylabel=f"final loss ({_table_units(frontier)})", title="Compute-efficient frontier")
    plain_log(ax.yaxis)
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7)
    return fig


def plot_coverage(calibration: Calibration) -> Figure:
    """Empirical coverage of the central intervals against their nominal level.

    Overall with the 5-95% range a calibrated forecast would show on these points (joint
    replicates, :mod:`bayescale.replicates`), and per extrapolation bin.
    """
    cov = calibration.coverage
    fig, axes = figure(width=5.0, height=4.6)
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", label="calibrated")
    overall = cov[cov["bin"] == "all"]
    ax.fill_between(overall["nominal"], overall["expected_low"], overall["expected_high"],
                    color="0.8", alpha=0.6, label="what a calibrated forecast shows here (5-95%)")
    ax.plot(overall["nominal"], overall["coverage"], color="k", marker="o", label=f"all (n={overall['n'].iloc[0]})")
    for i, (name, part) in enumerate((b, p) for b, p in cov.groupby("bin", sort=False) if b != "all"):
        ax.plot(part["nominal"], part["coverage"], color=f"C{i}", marker=".", alpha=0.8,
                label=f"N {name} (n={part['n'].iloc[0]})")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="nominal coverage of the central interval",
           ylabel="empirical coverage (fraction of realized points)", title="Interval coverage")
    ax.grid(True, alpha=0.2)
    ax.legend(fontsize=7, loc="best")
    return fig


def plot_pit(calibration: Calibration, *, bins: int = 10) -> Figure:
    """Histogram of the PIT values, stacked by extrapolation bin, with the uniform expectation.

    The grey band is the uniform count +-2 binomial standard deviations; colours match
    :func:`plot_coverage`.
    """
    points = calibration.points
    edges = np.linspace(0.0, 1.0, bins + 1)
    n = len(points)
    expected = n / bins
    sd = np.sqrt(n * (1 / bins) * (1 - 1 / bins))
    fig, axes = figure(width=5.0, height=4.0)
    ax = axes[0, 0]
    ax.fill_between([0, 1], expected - 2 * sd, expected + 2 * sd, color="0.8", alpha=0.6, label="uniform +-2 sd")
    bottom = np.zeros(bins)
    for i, (name, part) in enumerate(points.groupby("bin", observed=True)):
        counts = np.histogram(part["pit"], bins=edges)[0]
        ax.bar(edges[:-1], counts, width=np.diff(edges), bottom=bottom, align="edge", color=f"C{i}",
               edgecolor="white", label=f"N {name} (n={len(part)})")
        bottom += counts
    ax.axhline(expected, color="0.3", linestyle="--", label="uniform (calibrated)")
    ax.set(xlim=(0, 1), xlabel="PIT = predictive CDF at the realized loss", ylabel="number of realized points",
           title="Probability integral transform")
    ax.legend(fontsize=7)
    return fig


def plot_rank(posterior: Posterior) -> Figure:
    """Rank plots of the paper constants: near-uniform histograms per chain mean mixed chains.

    Rank plots replace trace plots for convergence checks (Vehtari et al. 2021, Bayesian
    Analysis 16(2)): a chain stuck in one region shows as a sloped or spiked histogram.
    """
    names = posterior.constant_names()
    n = len(names) * len(posterior.groups)
    fig, axes = figure(int(np.ceil(n / 3)), 3, width=3.6, height=2.6)
    az.plot_rank(posterior.idata, var_names=names, ax=axes.ravel()[:n])
    for ax in axes.ravel()[:n]:  # ArviZ sizes its text for larger panels
        ax.tick_params(labelsize=RANK_TICK_SIZE)
        ax.xaxis.label.set_size(RANK_LABEL_SIZE)
        ax.yaxis.label.set_size(RANK_LABEL_SIZE)
        ax.title.set_size(RANK_TITLE_SIZE)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.suptitle(f"Rank plots of the constants ({posterior.idata.posterior.sizes['chain']} chains)")
    return fig


def plot_pair(posterior: Posterior, *, group: str | None = None, max_points: int = 1000) -> Figure:
    """Pair plot of the paper constants of one group: histograms on the diagonal, draws below.

    ``N_c``, ``S_c`` and ``B_*`` are shown as log10 (they span decades); at most
    ``max_points`` evenly thinned draws are scattered.
    """
    g = posterior.group_index(group)
    step = max(1, posterior.n_draws // max_points)
    values = {}
    scales = posterior.law.scale_constants  # shown as log10: they span decades
    for name in posterior.constant_names():
        draws = posterior.draws(name).reshape(posterior.n_draws, -1)[:, g]
        values[f"log10 {name}" if name in scales else name] = np.log10(draws) if name in scales else draws
    names = list(values)
    k = len(names)
    fig, axes = figure(k, k, width=1.9, height=1.9)
    for i, row in enumerate(names):
        for j, col in enumerate(names):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            ax.tick_params(labelsize=6)
            ax.xaxis.set_major_locator(MaxNLocator(3))
            if i == j:
                ax.hist(values[col], bins=30, color="C0", alpha=0.7)
                ax.set_yticks([])
            else:
                ax.scatter(values[col][::step], values[row][::step], s=2, alpha=0.3, color="C0", linewidths=0)
                ax.yaxis.set_major_locator(MaxNLocator(4))
            if i == k - 1:
                ax.set_xlabel(col, fontsize=8)
            if j == 0 and i > 0:
                ax.set_ylabel(row, fontsize=8)
    units = f"; {posterior.law.units}" if posterior.law.units else ""
    fig.suptitle(f"Posterior of the constants ({posterior.groups[g]}{units})")
    return fig


def _posterior_predictive(posterior: Posterior, seed: int) -> np.ndarray:
    """New-run draws of log loss at every fitted point, ``(draws, points)``."""
    data = fitted_points(posterior)
    out = np.empty((posterior.n_draws, len(data)))
    for g in posterior.groups:
        rows = np.flatnonzero(data["group"].to_numpy() == g)
        part = data.iloc[rows]
        covariates = {name: part[name].to_numpy() for name in posterior.law.covariates}
        out[:, rows] = np.log(loss_draws(posterior, part["params"].to_numpy(), part["batch_tokens"].to_numpy(),
                                         part["step"].to_numpy(), mode="new_run", group=g, seed=seed,
                                         covariates=covariates or None))
    return out


def plot_predictive_check(posterior: Posterior, *, kind: str = "posterior", num_pp_samples: int = 50,
                          seed: int = 0) -> Figure:
    """Prior or posterior predictive check of the log losses of the fitted points.

    ``kind="prior"`` uses the prior predictive draws stored with the fit;
    ``"posterior"`` draws new-run losses at the fitted points
    (:func:`bayescale.predict.loss_draws`). The histogram density of the observed
    ``log L`` is drawn over those of ``num_pp_samples`` predictive replicates, as in
    ArviZ's ``plot_ppc``.
    """
    obs = posterior.idata.observed_data["log_loss"].values.astype(float).ravel()
    if kind == "prior":
        predictive = posterior.idata.prior_predictive["log_loss"].values.astype(float)
        predictive = predictive.reshape(-1, predictive.shape[-1])
    elif kind == "posterior":
        predictive = _posterior_predictive(posterior, seed)
    else:
        raise ValueError(f"kind='{kind}' must be 'prior' or 'posterior'")
    rng = np.random.default_rng(seed)
    replicates = predictive[rng.choice(len(predictive), min(num_pp_samples, len(predictive)), replace=False)]
    lo, hi = np.quantile(np.concatenate([replicates.ravel(), obs]), [0.005, 0.995])
    edges = np.linspace(min(lo, obs.min()), max(hi, obs.max()), int(np.clip(2 * np.sqrt(len(obs)), 10, 40)))
    fig, axes = figure(width=6.0, height=4.0)
    ax = axes[0, 0]
    for i, rep in enumerate(replicates):
        ax.stairs(np.histogram(rep, edges, density=True)[0], edges, color="C0", alpha=0.15,
                  label=f"{kind} predictive ({len(replicates)} replicates)" if i == 0 else None)
    ax.stairs(np.histogram(predictive.ravel(), edges, density=True)[0], edges, color="C1", linestyle="--",
              label=f"{kind} predictive, all draws")
    ax.stairs(np.histogram(obs, edges, density=True)[0], edges, color="k", linewidth=2, label="observed")
    ax.set(xlabel=f"log loss (log {loss_units(posterior.meta)})", ylabel="density",
           title=f"{kind.capitalize()} predictive check of the {len(obs)} fitted points")
    ax.legend(fontsize=7)
    return fig


def plot_track(forecast: pd.DataFrame) -> Figure:
    """A tracked run (:func:`bayescale.track.track`): its observed checkpoints, the ladder-only
    band (from the ladder's posterior alone) and the band updated by the run's own curve,
    in the losses' units (``forecast.attrs["loss_units"]``)."""
    observed = forecast.attrs["observed"]
    level_rows = forecast if "level" not in forecast else forecast[forecast["level"] == forecast["level"].max()]
    fig, axes = figure(1, 1, width=6.4)
    ax = axes[0, 0]
    ax.fill_between(observed["step"], observed["ladder_lower"], observed["ladder_upper"], color="0.6", alpha=0.3,
                    linewidth=0)
    ax.fill_between(level_rows["step"], level_rows["ladder_lower"], level_rows["ladder_upper"], color="0.6",
                    alpha=0.3, linewidth=0, label="ladder alone")
    ax.plot(level_rows["step"], level_rows["ladder_median"], color="0.4", linestyle="--", linewidth=1)
    ax.fill_between(level_rows["step"], level_rows["lower"], level_rows["upper"], color="C0", alpha=0.35,
                    linewidth=0, label=f"updated by the run ({forecast.attrs['method']})")
    ax.plot(level_rows["step"], level_rows["median"], color="C0", linewidth=1.2)
    ax.scatter(observed["step"], observed["loss"], color="k", s=10, zorder=3, label="observed checkpoints")
    ax.set(xscale="log", yscale="log", xlabel=STEPS_LABEL, ylabel=f"loss ({_table_units(forecast)})",
           title=f"Tracking N = {forecast.attrs['params']:.3g}, B = {forecast.attrs['batch_tokens']:g} "
                 f"to step {forecast.attrs['total_steps']:g}")
    plain_log(ax.yaxis)
    step_log(ax.xaxis)
    ax.grid(True, which="both", alpha=0.2)
    if forecast.attrs["alarm"]:
        ax.text(0.02, 0.03, "ALARM: left the ladder's band", transform=ax.transAxes, color="C3", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    return fig
