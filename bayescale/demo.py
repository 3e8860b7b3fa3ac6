"""``bayescale demo``: the whole job on the runs that ship with bayescale.

1. Load the bundled sweep (:func:`bundled_runs`): byte-level GPTs trained by
   ``bayescale.trainer`` on the Python standard library, evaluated on an in-domain and
   an out-of-domain split.
2. Fit a law form (one group per split) on every size but the largest (sampler settings
   per law in :mod:`bayescale.defaults`, ``DEMO_*``): by default the schedule-aware law
   ``kaplan_schedule`` on the constant and cosine runs; with ``schedules=False``
   (``bayescale demo --constant-only``) the Kaplan/Su law on the constant-rate runs. The
   forecasts need a law with a critical batch.
3. Predict what was held out and compare with what it really did, per split: the
   largest size at each of its batch sizes and, unless ``schedules=False``, the runs of a
   schedule never fitted (WSD), each point under its own run's schedule. Reported: the median absolute
   relative error after the early transient and the fraction of points inside the 50%
   and 90% new-run bands.
4. Forecast models 10x and 100x larger than the largest trained: minimum loss, steps and
   tokens to reach a named target loss, B_crit at that loss and the trajectory at
   B = B_crit, all with bands.
5. Track the held-out size as if it were training: observe its first 20% of steps and
   update its forecast (:func:`bayescale.track.track`); compare the final loss with the
   ladder-only forecast.
6. Write figures (PNG), the posterior (netCDF) and ``summary.md`` to the output folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from bayescale import plots
from bayescale.curves import transient_mask
from bayescale.defaults import DEMO_CHAINS, DEMO_SAMPLING, DEMO_WARMUP
from bayescale.fit import FitResult, fit
from bayescale.models.law import Law
from bayescale.models.registry import irreducible_variant
from bayescale.posterior import loss_units
from bayescale.predict import (loss_draws, predict_critical_batch, predict_min_loss, predict_steps_to_loss,
                               predict_trajectory, quantile_bands)
from bayescale.replicates import coverage_range, format_range, replicate_losses
from bayescale.runs import validate_runs
from bayescale.schedules import Schedule, table_features
from bayescale.track import track

BUNDLED = "sweep_runs.csv"
FORECAST_FACTORS = (10, 100)
#: The schedule the demo holds out (fitted: constant and cosine runs).
HELD_OUT_SCHEDULE = "wsd"
#: Share of the held-out size's steps the tracking example observes.
TRACK_FRACTION = 0.2
#: Draws per chain and target_accept for a law :data:`~bayescale.defaults.DEMO_SAMPLING` does not list.
OTHER_LAW_SAMPLING = (2500, 0.99)


def demo_law(schedules: bool = True, irreducible: bool = False) -> str:
    """The law the demo fits: ``kaplan_schedule``, or ``kaplan`` without ``schedules``; with
    ``irreducible``, its variant with a floor."""
    law = "kaplan_schedule" if schedules else "kaplan"
    return irreducible_variant(law) if irreducible else law


def demo_sampling(law: str) -> tuple[int, float]:
    """The demo's draws per chain and ``target_accept`` for the law named ``law``."""
    return DEMO_SAMPLING.get(law, OTHER_LAW_SAMPLING)


def bundled_runs() -> pd.DataFrame:
    """The bundled CPU sweep as a validated run table (see ``bayescale/data/sweep_runs.json``)."""
    with resources.as_file(resources.files("bayescale.data") / BUNDLED) as path:
        return validate_runs(pd.read_csv(path), source=f"bayescale/data/{BUNDLED}")


def bundled_metadata() -> dict:
    """How the bundled sweep was made: grid, commands, corpus fingerprint, machine, wall time."""
    return json.loads((resources.files("bayescale.data") / "sweep_runs.json").read_text())


@dataclass
class DemoResult:
    """Everything the demo measured; ``held_out`` and ``forecasts`` are tables."""

    fit: FitResult
    held_out: pd.DataFrame
    forecasts: pd.DataFrame
    target_loss: float
    out_dir: Path
    tracking: pd.DataFrame | None = None


def _held_out_check(result: FitResult, held: pd.DataFrame, group_by: str, what: str) -> tuple[pd.DataFrame, list]:
    """Per split: median |relative error| and 50%/90% band coverage on held-out runs, each
    point predicted under its own run's schedule, and the range of 90% coverage a calibrated
    band would show on the same points (:mod:`bayescale.replicates`)."""
    post = result.posterior
    rows, curves = [], []
    kept = held.loc[transient_mask(held)]
    features = table_features(held).loc[kept.index] if post.law.covariates else None

    def covariates(rows: pd.Index) -> dict[str, np.ndarray] | None:
        return None if features is None else {k: features.loc[rows, k].to_numpy(float) for k in post.law.covariates}

    for split, part in kept.groupby(group_by):
        errors, in50, in90 = [], [], []
        lower90, upper90 = pd.Series(np.nan, index=part.index), pd.Series(np.nan, index=part.index)
        for run, curve in part.groupby("run"):
            N, B = float(curve["params"].iloc[0]), float(curve["batch_tokens"].iloc[0])
            draws = loss_draws(post, N, B, curve["step"].to_numpy(float), group=str(split),
                               covariates=covariates(curve.index))
            bands = quantile_bands(draws, (0.5, 0.9))
            loss = curve["loss"].to_numpy()
            (median, lo50, hi50), (_, lo90, hi90) = bands[0.5], bands[0.9]
            errors += list(np.abs(median / loss - 1))
            in50 += list((loss >= lo50) & (loss <= hi50))
            in90 += list((loss >= lo90) & (loss <= hi90))
            lower90[curve.index], upper90[curve.index] = lo90, hi90
            band = pd.DataFrame({"step": curve["step"].to_numpy(), "median": median, "lower": lo90, "upper": hi90})
            label = f"B = {B:g} tokens" if what == "size" else f"N = {N:.3g}, {curve['schedule'].iloc[0]}"
            curves.append((str(split), label, curve, band))
        rows.append({"held_out": what, "split": split, "params": float(part["params"].max()),
                     "runs": part["run"].nunique(), "points": len(errors),
                     "median_abs_rel_error": float(np.median(errors)), "coverage_50": float(np.mean(in50)),
                     "coverage_90": float(np.mean(in90)),
                     "calibrated_90": format_range(*coverage_range(
                         replicate_losses(post, part, np.full(len(part), str(split)), covariates(part.index)),
                         lower90.to_numpy(), upper90.to_numpy()))})
    return pd.DataFrame(rows), curves


def _tracking(result: FitResult, run: pd.DataFrame, group: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Track one held-out run from its first :data:`TRACK_FRACTION` of steps (its own
    split only): the final-loss forecast before and after, and the coverage of the rest."""
    run = run[run["split"] == group] if "split" in run.columns else run
    total = float(run["step"].max())
    partial = run[run["step"] <= TRACK_FRACTION * total]
    first = run.iloc[0]
    schedule = Schedule(str(first.get("schedule", "constant")), warmup_steps=int(first.get("warmup_steps", 0) or 0))
    df = track(result.posterior, partial, total, schedule=schedule, group=group, points=128)
    rest = run[run["step"] > partial["step"].max()]
    step, loss = rest["step"].to_numpy(float), rest["loss"].to_numpy(float)
    lo = np.interp(np.log(step), np.log(df["step"]), df["lower"])
    hi = np.interp(np.log(step), np.log(df["step"]), df["upper"])
    lad_lo = np.interp(np.log(step), np.log(df["step"]), df["ladder_lower"])
    lad_hi = np.interp(np.log(step), np.log(df["step"]), df["ladder_upper"])
    final, truth = df.iloc[-1], float(run["loss"].iloc[-1])
    table = pd.DataFrame([
        {"forecast": "ladder alone", "final_loss": final["ladder_median"], "lower_90": final["ladder_lower"],
         "upper_90": final["ladder_upper"], "abs_rel_error": abs(final["ladder_median"] / truth - 1),
         "coverage_90_rest": float(np.mean((loss >= lad_lo) & (loss <= lad_hi)))},
        {"forecast": f"updated at {TRACK_FRACTION:.0%} of the steps", "final_loss": final["median"],
         "lower_90": final["lower"], "upper_90": final["upper"], "abs_rel_error": abs(final["median"] / truth - 1),
         "coverage_90_rest": float(np.mean((loss >= lo) & (loss <= hi)))}])
    table.attrs.update(truth=truth, alarm=df.attrs["alarm"], effective_draws=df.attrs["effective_draws"],
                       refit=df.attrs["refit"])
    return table, df


def _forecast(result: FitResult, sizes: list[float], target: float, group: str) -> tuple[pd.DataFrame, list]:
    post = result.posterior
    rows, trajectories = [], []
    for N in sizes:
        floor = predict_min_loss(post, N, group=group).iloc[0]
        b_crit = predict_critical_batch(post, target, group=group).iloc[0]
        B = float(b_crit["median"])
        need = predict_steps_to_loss(post, N, B, target, group=group).set_index("quantity")
        row = {"params": N, "min_loss": floor["median"], "min_loss_lower": floor["lower"],
               "min_loss_upper": floor["upper"], "target_loss": target, "critical_batch": B,
               "critical_batch_lower": b_crit["lower"], "critical_batch_upper": b_crit["upper"],
               "p_reachable": float(need["p_reachable"].iloc[0])}
        for q in ("steps", "tokens"):
            row.update({q: need.loc[q, "median"], f"{q}_lower": need.loc[q, "lower"], f"{q}_upper": need.loc[q, "upper"]})
        rows.append(row)
        final = need.loc["steps", "median"] * 2 if np.isfinite(need.loc["steps", "median"]) else 1e5
        # from the first fitted step: the laws do not describe the early transient
        grid = np.geomspace(post.meta.ranges["step"][0], max(final, 2 * post.meta.ranges["step"][0]), 80)
        trajectories.append((N, B, predict_trajectory(post, N, B, grid, levels=(0.5, 0.9), group=group)))
    return pd.DataFrame(rows), trajectories


def _held_out_figure(curves: list, title: str, units: str) -> Figure:
    """Held-out runs against their 90% new-run bands, a panel per split, losses in ``units``."""
    splits = sorted({c[0] for c in curves})
    fig, axes = plots.figure(1, len(splits), width=5.2, height=4.2, sharey=True)
    for ax, split in zip(axes[0], splits):
        for i, (_, label, curve, band) in enumerate(c for c in curves if c[0] == split):
            ax.fill_between(band["step"], band["lower"], band["upper"], color=f"C{i}", alpha=0.25, linewidth=0)
            ax.plot(band["step"], band["median"], color=f"C{i}", linewidth=1)
            ax.scatter(curve["step"], curve["loss"], color=f"C{i}", s=10, zorder=3, label=label)
        ax.set(xscale="log", xlabel="optimizer steps S", title=f"{split}: {title}")
        plots.step_log(ax.xaxis)
        ax.grid(True, which="both", alpha=0.2)
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel(f"loss ({units})")
    fig.suptitle("Held-out runs: observed points and 90% new-run bands (never fitted)")
    return fig


def _forecast_figure(trajectories: list, target: float, group: str, units: str) -> Figure:
    """The forecast trajectories ``(N, B, bands)`` with their 50% and 90% bands and the target
    loss, losses in ``units`` on a log axis with plain decimal ticks, steps with plain counts."""
    fig, axes = plots.figure(width=6.4, height=4.4)
    ax = axes[0, 0]
    for i, (N, B, band) in enumerate(trajectories):
        for level, alpha in ((0.9, 0.18), (0.5, 0.35)):
            part = band[band["level"] == level]
            ax.fill_between(part["step"], part["lower"], part["upper"], color=f"C{i}", alpha=alpha, linewidth=0)
        ax.plot(part["step"], part["median"], color=f"C{i}", label=f"N = {N:.3g} at B_crit = {B:.3g} tokens")
    ax.axhline(target, color="k", linestyle=":", label=f"target loss {target:g}")
    ax.set(xscale="log", yscale="log", xlabel="optimizer steps S", ylabel=f"loss ({units})",
           title=f"Forecasts ({group}): 50% and 90% new-run bands")
    plots.plain_log(ax.yaxis)
    plots.step_log(ax.xaxis)
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=8)
    return fig


def _md_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table, numbers to 4 significant digits."""
    cells = [[f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def _markdown(res: DemoResult, held_n: float, sizes: list[float], group: str, meta: dict) -> str:
    d = res.fit.diagnostics
    lines = [
        "# bayescale demo", "",
        f"Bundled runs: {meta.get('description', 'CPU sweep of the bundled trainer').rstrip('.')}.", "",
        f"Fitted the {res.fit.posterior.law.title} on every size but the largest (held out: N = {held_n:.4g} non-embedding parameters), "
        f"{res.fit.posterior.meta.settings['chains']} chains x {res.fit.posterior.meta.settings['draws']} draws "
        f"in {res.fit.seconds:.1f} s.", "",
        f"Diagnostics: {d.format().splitlines()[0]}", "",
        "## Held out: the largest size, and a schedule never fitted (new-run bands)", "",
        _md_table(res.held_out), "",
        "`calibrated_90`: the 5-95% range of the 90% bands' coverage that a calibrated forecast shows on the same "
        "points (joint replicates under the fitted model; docs/model.md, section 7.5).", "",
        f"## Forecasts ({group}), target loss {res.target_loss:g} nats", "",
        f"Sizes {', '.join(f'{s:.3g}' for s in sizes)} ({' and '.join(f'{f}x' for f in FORECAST_FACTORS)} the "
        "largest trained), trained at the median critical batch of the target loss; 90% intervals.", "",
        _md_table(res.forecasts), "",
        *(_tracking_lines(res.tracking) if res.tracking is not None else []),
        "## Constants (90% intervals)", "", _md_table(res.fit.posterior.summary(0.9)), "",
        "Figures: `held_out.png`, `forecast.png`, `trajectories.png`, `min_loss.png`"
        f"{', `track.png`' if res.tracking is not None else ''}. "
        "Posterior: `posterior.nc` (open with `arviz.from_netcdf`).",
    ]
    return "\n".join(lines) + "\n"


def _tracking_lines(table: pd.DataFrame) -> list[str]:
    alarm = table.attrs["alarm"] or "no alarm: the first checkpoints lie inside the ladder's band"
    update = table.attrs["refit"] or f"the update rests on {table.attrs['effective_draws']:.0f} effective draws"
    return [f"## Tracking the held-out size from its first {TRACK_FRACTION:.0%} of steps", "",
            f"Realized final loss {table.attrs['truth']:.4g}; {alarm}; {update}.", "", _md_table(table), ""]


def run_demo(
    out_dir: str | Path = "demo-output",
    *,
    runs: pd.DataFrame | None = None,
    chains: int = DEMO_CHAINS,
    warmup: int = DEMO_WARMUP,
    draws: int | None = None,
    seed: int = 0,
    target_loss: float | None = None,
    law: str | Law | None = None,
    irreducible: bool = False,
    schedules: bool = True,
    progress: bool = True,
    warn: bool = True,
) -> DemoResult:
    """Run the demo (see the module docstring) and write its outputs to ``out_dir``.

    By default ``kaplan_schedule`` is fitted to the constant and cosine runs and also
    predicts the held-out WSD runs; ``schedules=False`` fits ``kaplan`` to the
    constant-rate runs (``law`` overrides either; ``irreducible`` picks the variant with a
    floor). ``draws`` defaults to the law's :func:`demo_sampling`, which also sets
    ``target_accept``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stages = tqdm(total=6, desc="demo", disable=not progress, unit="stage")
    stages.set_postfix_str("loading runs")
    bundled = runs is None
    runs = bundled_runs() if bundled else runs
    group_by = "split" if "split" in runs.columns else None
    held_n = float(runs["params"].max())
    kind = runs["schedule"].fillna("constant") if "schedule" in runs.columns else pd.Series("constant", index=runs.index)
    fitted_kinds = ("constant", "cosine") if schedules else ("constant",)
    train = runs[(runs["params"] < held_n) & kind.isin(fitted_kinds)]
    held = runs[(runs["params"] == held_n) & (kind == "constant")]
    held_sched = runs[(runs["params"] < held_n) & (kind == HELD_OUT_SCHEDULE)] if schedules else runs.iloc[:0]
    law = demo_law(schedules, irreducible) if law is None else law
    default_draws, target_accept = demo_sampling(law if isinstance(law, str) else law.name)
    stages.update()
    stages.set_postfix_str("fitting (NUTS)")
    result = fit(train, group_by=group_by or None, chains=chains, warmup=warmup,
                 draws=default_draws if draws is None else draws, seed=seed, law=law, target_accept=target_accept,
                 progress=False, warn=warn)
    stages.update()
    stages.set_postfix_str("checking what was held out")
    split_of = (lambda t: t) if group_by else (lambda t: t.assign(split="all"))
    held_table, curves = _held_out_check(result, split_of(held), "split", "size")
    units = loss_units(result.posterior.meta)
    figures = {"held_out.png": _held_out_figure(curves, f"held-out N = {held_n:.3g}", units)}
    if not held_sched.empty and result.posterior.law.covariates:
        sched_table, sched_curves = _held_out_check(result, split_of(held_sched), "split", HELD_OUT_SCHEDULE)
        held_table = pd.concat([held_table, sched_table], ignore_index=True)
        figures["held_out_schedule.png"] = _held_out_figure(sched_curves, f"held-out schedule {HELD_OUT_SCHEDULE}",
                                                            units)
    stages.update()
    stages.set_postfix_str("forecasting")
    group = "in_domain" if "in_domain" in result.posterior.groups else result.posterior.groups[0]
    if target_loss is None:
        # a 10% improvement on the best in-domain loss any bundled run reached
        best = runs.loc[runs["split"] == group, "loss"].min() if group_by else runs["loss"].min()
        target_loss = float(np.round(0.9 * best, 2))
    sizes = [held_n * f for f in FORECAST_FACTORS]
    forecasts, trajectories = _forecast(result, sizes, target_loss, group)
    stages.update()
    stages.set_postfix_str("tracking the held-out size")
    tracked = held[held["batch_tokens"] == held["batch_tokens"].max()]
    tracking, track_df = _tracking(result, tracked[tracked["run"] == tracked["run"].iloc[0]], group)
    stages.update()
    stages.set_postfix_str("writing figures and summary")
    result.posterior.save(out / "posterior.nc")
    figures.update({"forecast.png": _forecast_figure(trajectories, target_loss, group, units),
                    "trajectories.png": plots.plot_trajectories(result.posterior, group=group, forecast_params=sizes),
                    "min_loss.png": plots.plot_min_loss(result.posterior),
                    "track.png": plots.plot_track(track_df)})
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
    held_table.to_csv(out / "held_out.csv", index=False)
    forecasts.to_csv(out / "forecasts.csv", index=False)
    tracking.to_csv(out / "tracking.csv", index=False)
    res = DemoResult(fit=result, held_out=held_table, forecasts=forecasts, target_loss=target_loss, out_dir=out,
                     tracking=tracking)
    meta = bundled_metadata() if bundled else {}
    (out / "summary.md").write_text(_markdown(res, held_n, sizes, group, meta))
    stages.update()
    stages.close()
    return res
