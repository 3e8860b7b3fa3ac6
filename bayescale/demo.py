"""``bayescale demo``: the whole job on the runs that ship with bayescale.

1. Load the bundled sweep (:func:`bundled_runs`): byte-level GPTs trained by
   ``bayescale.trainer`` on the Python standard library, evaluated on an in-domain and
   an out-of-domain split; the demo keeps its twelve runs at a constant learning rate.
2. Fit a law form (one group per split; by default the Kaplan/Su law, or its variant
   with a floor ``L_inf`` per split) on every size but the largest (sampler settings
   in :mod:`bayescale.defaults`, ``DEMO_*``). The forecasts need a law with a critical
   batch.
3. Predict the held-out largest size at each of its batch sizes and compare with what it
   really did: per split, the median absolute relative error after the early transient
   and the fraction of its points inside the 50% and 90% new-run bands.
4. Forecast models 10x and 100x larger than the largest trained: minimum loss, steps and
   tokens to reach a named target loss, B_crit at that loss and the trajectory at
   B = B_crit, all with bands.
5. Write figures (PNG), the posterior (netCDF) and ``summary.md`` to the output folder.
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
from bayescale.defaults import DEMO_CHAINS, DEMO_DRAWS, DEMO_TARGET_ACCEPT, DEMO_WARMUP
from bayescale.fit import FitResult, fit
from bayescale.models.law import Law
from bayescale.predict import (predict_critical_batch, predict_min_loss, predict_steps_to_loss,
                               predict_trajectory)
from bayescale.runs import validate_runs

BUNDLED = "sweep_runs.csv"
FORECAST_FACTORS = (10, 100)


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


def _held_out_check(result: FitResult, held: pd.DataFrame, group_by: str) -> tuple[pd.DataFrame, list]:
    """Per split: median |relative error| and 50%/90% band coverage on the held-out runs."""
    rows, curves = [], []
    kept = held.loc[transient_mask(held)]
    for split, part in kept.groupby(group_by):
        errors, in50, in90 = [], [], []
        for run, curve in part.groupby("run"):
            N, B = float(curve["params"].iloc[0]), float(curve["batch_tokens"].iloc[0])
            bands = predict_trajectory(result.posterior, N, B, curve["step"].to_numpy(), levels=(0.5, 0.9),
                                       group=str(split))
            loss = curve["loss"].to_numpy()
            b50, b90 = bands[bands["level"] == 0.5], bands[bands["level"] == 0.9]
            errors += list(np.abs(b90["median"].to_numpy() / loss - 1))
            in50 += list((loss >= b50["lower"].to_numpy()) & (loss <= b50["upper"].to_numpy()))
            in90 += list((loss >= b90["lower"].to_numpy()) & (loss <= b90["upper"].to_numpy()))
            curves.append((str(split), B, curve, b90))
        rows.append({"split": split, "params": float(part["params"].iloc[0]), "points": len(errors),
                     "median_abs_rel_error": float(np.median(errors)), "coverage_50": float(np.mean(in50)),
                     "coverage_90": float(np.mean(in90))})
    return pd.DataFrame(rows), curves


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


def _held_out_figure(curves: list, held_n: float) -> Figure:
    splits = sorted({c[0] for c in curves})
    fig, axes = plots.figure(1, len(splits), width=5.2, height=4.2, sharey=True)
    for ax, split in zip(axes[0], splits):
        for i, (_, B, curve, band) in enumerate(c for c in curves if c[0] == split):
            ax.fill_between(band["step"], band["lower"], band["upper"], color=f"C{i}", alpha=0.25, linewidth=0)
            ax.plot(band["step"], band["median"], color=f"C{i}", linewidth=1)
            ax.scatter(curve["step"], curve["loss"], color=f"C{i}", s=10, zorder=3, label=f"B = {B:g} tokens")
        ax.set(xscale="log", xlabel="optimizer steps S", title=f"{split}: held-out N = {held_n:.3g}")
        ax.grid(True, which="both", alpha=0.2)
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("loss (nats/token)")
    fig.suptitle("Held-out largest size: observed points and 90% new-run bands (never fitted)")
    return fig


def _forecast_figure(trajectories: list, target: float, group: str) -> Figure:
    fig, axes = plots.figure(width=6.4, height=4.4)
    ax = axes[0, 0]
    for i, (N, B, band) in enumerate(trajectories):
        for level, alpha in ((0.9, 0.18), (0.5, 0.35)):
            part = band[band["level"] == level]
            ax.fill_between(part["step"], part["lower"], part["upper"], color=f"C{i}", alpha=alpha, linewidth=0)
        ax.plot(part["step"], part["median"], color=f"C{i}", label=f"N = {N:.3g} at B_crit = {B:.3g} tokens")
    ax.axhline(target, color="k", linestyle=":", label=f"target loss {target:g}")
    ax.set(xscale="log", yscale="log", xlabel="optimizer steps S", ylabel="loss (nats/token)",
           title=f"Forecasts ({group}): 50% and 90% new-run bands")
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
        "## Held-out largest size (new-run bands)", "", _md_table(res.held_out), "",
        f"## Forecasts ({group}), target loss {res.target_loss:g} nats", "",
        f"Sizes {', '.join(f'{s:.3g}' for s in sizes)} ({' and '.join(f'{f}x' for f in FORECAST_FACTORS)} the "
        "largest trained), trained at the median critical batch of the target loss; 90% intervals.", "",
        _md_table(res.forecasts), "",
        "## Constants (90% intervals)", "", _md_table(res.fit.posterior.summary(0.9)), "",
        "Figures: `held_out.png`, `forecast.png`, `trajectories.png`, `min_loss.png`. "
        "Posterior: `posterior.nc` (open with `arviz.from_netcdf`).",
    ]
    return "\n".join(lines) + "\n"


def run_demo(
    out_dir: str | Path = "demo-output",
    *,
    runs: pd.DataFrame | None = None,
    chains: int = DEMO_CHAINS,
    warmup: int = DEMO_WARMUP,
    draws: int = DEMO_DRAWS,
    seed: int = 0,
    target_loss: float | None = None,
    law: str | Law = "kaplan",
    progress: bool = True,
    warn: bool = True,
) -> DemoResult:
    """Run the demo (see the module docstring) and write its outputs to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stages = tqdm(total=5, desc="demo", disable=not progress, unit="stage")
    stages.set_postfix_str("loading runs")
    bundled = runs is None
    if bundled:
        runs = bundled_runs()
        runs = runs[runs["schedule"] == "constant"]  # the demo's laws assume a constant rate; not the cosine/WSD runs
    group_by = "split" if "split" in runs.columns else None
    held_n = float(runs["params"].max())
    train, held = runs[runs["params"] < held_n], runs[runs["params"] == held_n]
    stages.update()
    stages.set_postfix_str("fitting (NUTS)")
    result = fit(train, group_by=group_by or None, chains=chains, warmup=warmup, draws=draws, seed=seed,
                 law=law, target_accept=DEMO_TARGET_ACCEPT,
                 progress=False, warn=warn)
    stages.update()
    stages.set_postfix_str("checking the held-out size")
    held_table, curves = _held_out_check(result, held if group_by else held.assign(split="all"), "split")
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
    stages.set_postfix_str("writing figures and summary")
    result.posterior.save(out / "posterior.nc")
    figures = {"held_out.png": _held_out_figure(curves, held_n),
               "forecast.png": _forecast_figure(trajectories, target_loss, group),
               "trajectories.png": plots.plot_trajectories(result.posterior, group=group, forecast_params=sizes),
               "min_loss.png": plots.plot_min_loss(result.posterior)}
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
    held_table.to_csv(out / "held_out.csv", index=False)
    forecasts.to_csv(out / "forecasts.csv", index=False)
    res = DemoResult(fit=result, held_out=held_table, forecasts=forecasts, target_loss=target_loss, out_dir=out)
    meta = bundled_metadata() if bundled else {}
    (out / "summary.md").write_text(_markdown(res, held_n, sizes, group, meta))
    stages.update()
    stages.close()
    return res
