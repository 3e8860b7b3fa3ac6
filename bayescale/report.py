"""A self-contained HTML report of a posterior: diagnostics, constants, forecasts, figures.

:func:`write_report` writes every figure of :mod:`bayescale.plots` as PNG into a
folder plus ``report.html``, one page with the images embedded as base64 PNG and no
external CSS or JavaScript, so it opens in any browser, offline, without Python. With
realized runs it adds a calibration section (:mod:`bayescale.calibrate`); with a FLOP
budget a budgeting section (:mod:`bayescale.budget`).
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from bayescale import __version__, plots
from bayescale.budget import DEFAULT_RISK, SearchSpace, compute_frontier, plan_budget
from bayescale.calibrate import calibrate
from bayescale.diagnostics import RHAT_MAX, ESS_MIN, diagnose
from bayescale.posterior import Posterior, loss_units
from bayescale.predict import (critical_batch_share, extrapolation, predict_critical_batch, predict_min_loss,
                               predict_trajectory, single_batch_ladder)
from bayescale.schedules import Schedule

#: Forecast sizes, as multiples of the largest fitted size.
FORECAST_MULTIPLES = (1.0, 3.0, 10.0, 30.0, 100.0)
DPI = 110

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #446; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccd; padding: .25em .6em; text-align: right; }
th { background: #eef; }
td:first-child, th:first-child, table.text td { text-align: left; }
figure { margin: 1.2em 0; }
div.text { margin: .8em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .9em; color: #444; }
.pass { color: #1a7f37; font-weight: bold; } .fail { color: #b42318; font-weight: bold; }
.note { background: #f6f6fa; border-left: 4px solid #88a; padding: .5em 1em; }
"""


@dataclass(frozen=True)
class Section:
    """One part of the report: a heading, paragraphs (HTML), tables and figures."""

    title: str
    paragraphs: Sequence[str] = ()  # HTML
    tables: Sequence[tuple[str, pd.DataFrame]] = ()
    figures: Sequence[tuple[str, str, Callable[[], Figure]]] = ()  # file stem, caption, figure maker


def _png(fig: Figure, path: Path) -> str:
    """Save ``fig`` to ``path`` and return its base64 PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    data = buffer.getvalue()
    path.write_bytes(data)
    return base64.b64encode(data).decode("ascii")


def _slug(name: str) -> str:
    """A file-name-safe form of a group name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _table_html(df: pd.DataFrame) -> str:
    numeric = df.select_dtypes("number").shape[1] > 0
    return df.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.4g}",
                      classes=None if numeric else "text")


def _render(title: str, sections: Sequence[Section], out: Path, progress: bool) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    figures = [f for s in sections for f in s.figures]
    bar = tqdm(total=len(figures), desc="report figures", unit="figure", disable=not progress)
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        body.extend(f'<div class="text">{p}</div>' for p in section.paragraphs)
        for caption, table in section.tables:
            body.append(f"<h3>{html.escape(caption)}</h3>{_table_html(table)}")
        for stem, caption, make in section.figures:
            data = _png(make(), out / f"{stem}.png")
            body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
            bar.update()
    bar.close()
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _overview(posterior: Posterior) -> Section:
    meta, post = posterior.meta, posterior.idata.posterior
    r = meta.ranges
    rows = pd.DataFrame([
        ("model", f"{posterior.law.name}: {posterior.law.title}"),
        ("groups", f"{', '.join(posterior.groups)} (by {meta.group_by or 'none'})"),
        ("fitted runs / points",
         f"{len(meta.runs)} / {posterior.idata.observed_data.sizes.get('obs', 0)}"),
        ("fitted sizes N", f"{r['params'][0]:.3g} .. {r['params'][1]:.3g} parameters"),
        ("fitted steps S", f"{r['step'][0]:.3g} .. {r['step'][1]:.3g}"),
        ("fitted batches B", f"{r['batch_tokens'][0]:g} .. {r['batch_tokens'][1]:g} tokens"),
        ("draws", f"{post.sizes['chain']} chains x {post.sizes['draw']} draws"),
        ("law error (kappa)",
         f"{meta.extrapolation_error:g} on log loss per unit log-distance outside the fit"),
        ("fitted with", f"bayescale {meta.settings.get('bayescale_version', '?')}; "
                        f"report by bayescale {__version__}"),
    ], columns=["item", "value"])
    return Section("Overview", paragraphs=[
        f"Bayesian fit of the {posterior.law.title} ({posterior.law.reference}). Losses in "
        f"{loss_units(posterior.meta)}, batch sizes in tokens per optimizer step. Bands are central "
        "credible intervals of the <em>new-run</em> predictive distribution unless stated: parameter uncertainty, "
        "seed and evaluation noise, and the law's own error, which grows with the distance from the fitted data."],
        tables=[("Fit", rows)])


def _diagnostics(posterior: Posterior) -> Section:
    noise = [v for v in ("sigma", "rho") if v in posterior.idata.posterior]
    diag = diagnose(posterior.idata, [*posterior.constant_names(), *noise])
    verdict = (f'<span class="{"pass" if diag.passed else "fail"}">{"PASS" if diag.passed else "FAIL"}</span>: '
               f"R-hat max {diag.max_rhat:.3f} (&le; {RHAT_MAX}), bulk ESS min {diag.min_ess_bulk:.0f}, tail ESS min "
               f"{diag.min_ess_tail:.0f} (&ge; {ESS_MIN}), {diag.divergences} divergences of {diag.n_draws} draws.")
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in diag.problems())
    table = diag.table.reset_index().rename(columns={"index": "quantity"})
    paragraphs = [verdict, *([f"What to try:<ul>{problems}</ul>"] if problems else [])]
    return Section("Convergence diagnostics", paragraphs=paragraphs, tables=[("Per quantity", table)],
                   figures=[("rank", "Rank plots: flat histograms per chain mean the chains mix.",
                             lambda: plots.plot_rank(posterior))])


def _constants(posterior: Posterior, level: float) -> Section:
    figures = [(f"pair_{_slug(g)}", f"Posterior pairs of the constants ({g}).",
                lambda g=g: plots.plot_pair(posterior, group=g)) for g in posterior.groups]
    figures += [("prior_predictive", "Prior predictive check: what the priors allow before seeing the runs.",
                 lambda: plots.plot_predictive_check(posterior, kind="prior")),
                ("posterior_predictive", "Posterior predictive check: new-run draws at the fitted points.",
                 lambda: plots.plot_predictive_check(posterior, kind="posterior"))]
    return Section("Constants", paragraphs=[
        f"Median and central {level:.0%} interval of each constant"
        + (f" ({posterior.law.units})." if posterior.law.units else ".")],
        tables=[("Constants", posterior.summary(level))], figures=figures)


def _per_group(posterior: Posterior, make: Callable[[str], pd.DataFrame]) -> pd.DataFrame:
    """``make(group)`` for every group, stacked, with a leading ``group`` column."""
    return pd.concat([make(g).assign(group=g).set_index("group").reset_index() for g in posterior.groups],
                     ignore_index=True)


def _forecasts(posterior: Posterior, level: float, seed: int, schedule: Schedule | None) -> Section:
    r = posterior.meta.ranges
    sizes = np.array(FORECAST_MULTIPLES) * r["params"][1]
    batch, last = r["batch_tokens"][1], r["step"][1]
    band = dict(levels=(level,), seed=seed)
    min_loss = _per_group(posterior, lambda g: predict_min_loss(posterior, sizes, group=g, **band).assign(
        extrapolation=[extrapolation(posterior, n).describe() for n in sizes]))
    trajectory = _per_group(posterior, lambda g: predict_trajectory(
        posterior, sizes[2], batch, np.array([last, 3 * last, 10 * last]), group=g, schedule=schedule, **band))
    units = loss_units(posterior.meta)
    tables = [(f"Minimum reachable loss L_N ({units})", min_loss),
              (f"Loss of N = {sizes[2]:.3g} at B = {batch:g} tokens, "
               f"{'constant rate' if schedule is None else schedule.describe()} to step {10 * last:g} ({units})",
               trajectory)]
    figures = [(f"trajectories_{_slug(g)}", f"Fitted points with {level:.0%} bands of their curves, and forecasts "
                f"for N = {sizes[1]:.3g} and {sizes[2]:.3g} ({g}).",
                lambda g=g: plots.plot_trajectories(posterior, group=g, level=level, forecast_params=sizes[1:3],
                                                    seed=seed))
               for g in posterior.groups]
    figures.append(("min_loss", "Minimum reachable loss L_N against model size.",
                    lambda: plots.plot_min_loss(posterior, seed=seed)))
    if posterior.law.critical_batch is not None:  # a quantity of laws with a batch size only
        fitted = np.exp(np.quantile(posterior.idata.observed_data["log_loss"].values, [0.0, 0.5, 1.0]))
        losses = np.concatenate([[0.8 * fitted[0]], fitted])
        tables.insert(1, ("Critical batch B_crit (tokens)", _per_group(
            posterior, lambda g: predict_critical_batch(posterior, losses, levels=(level,), group=g))))
        figures.append(("critical_batch", "Critical batch size against loss.",
                        lambda: plots.plot_critical_batch(posterior)))
    paragraphs = [
        f"Minimum reachable loss of sizes 1-100x the largest fitted size, the critical batch at losses from the fitted "
        f"range and below it, and the loss of a {sizes[2]:.3g}-parameter model at B = {batch:g} tokens "
        f"({level:.0%} intervals)."]
    if single_batch_ladder(posterior):
        share = max(critical_batch_share(posterior, sizes[2], batch, 10 * last, schedule=schedule, group=g,
                                         seed=seed) for g in posterior.groups)
        paragraphs.append(
            f"Every fitted size ran at one batch, so the data cannot identify the critical batch and its prior decides "
            f"it: {100 * share:.0f}% of the predictive variance of the loss of N = {sizes[2]:.3g} at step "
            f"{10 * last:g} moves with the critical batch. Runs at 3 or more batches at some size narrow it; so does the literature "
            "prior (bayescale fit --batch-prior literature) for losses in nats per BPE token.")
    return Section("Forecasts", paragraphs=paragraphs, tables=tables, figures=figures)


def _budget(posterior: Posterior, flops: float, target_loss: float | None, risk: float, group: str | None,
            seed: int, schedule: Schedule | None) -> Section:
    space = SearchSpace(schedule=schedule)
    plan = plan_budget(posterior, flops, target_loss=target_loss, risk=risk, group=group, seed=seed, space=space)
    frontier = compute_frontier(posterior, np.geomspace(flops / 100, flops * 100, 9), risk=risk,
                                target_loss=target_loss, group=group, seed=seed, space=space)
    columns = ["params", "batch_tokens", "steps", "tokens", "flops", "median", "loss_q", "point_loss",
               *(["p_target"] if target_loss is not None else [])]
    return Section("Compute budget", paragraphs=[
        f"Budget {flops:.3g} FLOPs (C = 6 N B S); {len(plan.table)} candidates ranked by the {plan.criterion}; "
        f"loss_q is the {risk:g}-quantile of the final loss, point_loss the point forecast."],
        tables=[("Risk-aware and point-estimate choices", plan.summary()[["choice", *columns]]),
                ("Frontier", frontier[["budget", *(c for c in columns if c in frontier)]])],
        figures=[("frontier", "Compute-efficient frontier with the two choices at the budget.",
                  lambda: plots.plot_frontier(frontier, plan=plan))])


def _calibration(posterior: Posterior, runs: pd.DataFrame, seed: int) -> Section:
    result = calibrate(posterior, runs, seed=seed)
    return Section("Calibration against realized runs", paragraphs=[
        f"{len(result.points)} realized points ({result.dropped} early-transient points left out) compared with the "
        "new-run predictive distribution; bins by realized N over the largest fitted N."],
        tables=[("Empirical coverage of central intervals", result.coverage_table()),
                ("Scores (nats; lower is better)", result.scores)],
        figures=[("calibration_coverage", "Coverage against nominal level.", lambda: plots.plot_coverage(result)),
                 ("calibration_pit", "PIT histogram: flat when calibrated.", lambda: plots.plot_pit(result))])


def write_report(
    posterior: Posterior,
    out_dir: str | Path,
    *,
    level: float = 0.9,
    runs: pd.DataFrame | None = None,
    flops: float | None = None,
    target_loss: float | None = None,
    risk: float = DEFAULT_RISK,
    group: str | None = None,
    seed: int = 0,
    progress: bool = False,
    schedule: Schedule | None = None,
) -> Path:
    """Write the figures and ``report.html`` into ``out_dir``; return the HTML path.

    ``runs`` (a validated realized run table) adds a calibration section, ``flops`` a
    budgeting section (with ``target_loss``, ``risk`` and, for grouped posteriors, ``group``).
    ``schedule`` is the learning-rate schedule of the forecast and budgeted runs (default:
    constant; other schedules need a schedule-aware law).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level} must be in (0, 1), e.g. 0.9")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = [_overview(posterior), _diagnostics(posterior), _constants(posterior, level),
                _forecasts(posterior, level, seed, schedule)]
    if flops is not None:
        sections.append(_budget(posterior, flops, target_loss, risk, group, seed, schedule))
    if runs is not None:
        sections.append(_calibration(posterior, runs, seed))
    path = out / "report.html"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_render("bayescale report", sections, out, progress), encoding="utf-8")
    tmp.replace(path)
    return path
