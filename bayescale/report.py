"""A self-contained HTML report of a posterior: the decision first, then forecasts, constants, figures.

:func:`write_report` writes every figure of :mod:`bayescale.plots` as PNG into a
folder plus ``report.html``, one page with the images embedded as base64 PNG and no
external CSS or JavaScript, so it opens in any browser, offline, without Python.

The page opens with the decision: with a FLOP budget, the recommended size, batch,
steps and schedule (:func:`bayescale.budget.plan_budget`), its probability of reaching
the target and band of final loss, the point-estimate alternative, how far the run
lies beyond the fitted data, its hours on the stated hardware
(:mod:`bayescale.hardware`) and the convergence gate; a red banner above everything
when the gate fails. Below come the overview, the budgeting details, the forecasts,
a calibration section with realized runs (:mod:`bayescale.calibrate`) and the
constants; the pair plots and the convergence diagnostics with their rank plots are
collapsed.
"""

from __future__ import annotations

import base64
import dataclasses
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
from bayescale.budget import (DEFAULT_RISK, BudgetPlan, SearchSpace, compute_frontier, frontier_budgets,
                              plan_budget)
from bayescale.calibrate import calibrate
from bayescale.defaults import EXTRAPOLATION_WARN_FACTOR
from bayescale.diagnostics import ESS_MIN, RHAT_MAX, Diagnostics, diagnose
from bayescale.hardware import Hardware, Throughput, time_text
from bayescale.law_error import describe_record, law_error_caveat, law_error_record
from bayescale.posterior import Posterior, loss_units
from bayescale.predict import (critical_batch_share, extrapolation, law_error_share, level_percent,
                               predict_critical_batch, predict_min_loss, predict_trajectory, single_batch_caveat,
                               single_batch_ladder)
from bayescale.residuals import describe_residuals
from bayescale.schedules import Schedule

#: Forecast sizes, as multiples of the largest fitted size.
FORECAST_MULTIPLES = (1.0, 3.0, 10.0, 30.0, 100.0)
DPI = 110
TITLE = "bayescale report"
#: ``id`` of the first screen's decision block (the recommendation).
DECISION_ID = "decision"
#: ``id`` of the red banner shown when the convergence gate fails.
GATE_BANNER_ID = "gate-failed"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #446; padding-bottom: .2em; margin: .3em 0 .5em; font-size: 1.6em; }
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
.far { color: #b54708; font-weight: bold; }
.note { background: #f6f6fa; border-left: 4px solid #88a; padding: .5em 1em; }
#gate-failed { background: #b42318; color: #fff; padding: .7em 1.2em; border-radius: 4px; margin-bottom: .6em; }
#gate-failed ul { margin: .3em 0 0; padding-left: 1.4em; }
#decision { background: #f4f6fb; border: 2px solid #446; border-radius: 6px; padding: .2em 1.4em .6em; }
#decision h2 { margin-top: .5em; border: 0; }
#decision p.answer { font-size: 1.35em; margin: .3em 0 .2em; }
#decision p.odds { font-size: 1.1em; margin: 0 0 .6em; }
#decision table { font-size: 1em; background: #fff; }
#decision table.choices tbody tr:first-child { font-weight: bold; background: #e3f2e8; }
#decision table.facts th { text-align: left; width: 13em; }
#decision table.facts td { text-align: left; }
details { margin: 1.5em 0; border: 1px solid #ccd; border-radius: 4px; padding: .3em 1em; }
details > summary { font-size: 1.15em; font-weight: bold; cursor: pointer; }
"""


@dataclass(frozen=True)
class Section:
    """One part of the report: a heading, paragraphs (HTML), tables and figures.

    With ``collapsed`` (a one-line summary) the section is folded into a ``<details>``
    element whose ``<summary>`` reads ``title: collapsed``.
    """

    title: str
    paragraphs: Sequence[str] = ()  # HTML
    tables: Sequence[tuple[str, pd.DataFrame]] = ()
    figures: Sequence[tuple[str, str, Callable[[], Figure]]] = ()  # file stem, caption, figure maker
    collapsed: str | None = None


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


def _section_html(section: Section, out: Path, bar: tqdm) -> str:
    """One section as HTML; its figures are written to ``out`` as PNG and embedded."""
    body = [f'<div class="text">{p}</div>' for p in section.paragraphs]
    body += [f"<h3>{html.escape(caption)}</h3>{_table_html(table)}" for caption, table in section.tables]
    for stem, caption, make in section.figures:
        data = _png(make(), out / f"{stem}.png")
        body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        bar.update()
    if section.collapsed is None:
        return "\n".join([f"<h2>{html.escape(section.title)}</h2>", *body])
    return "\n".join([f"<details><summary>{html.escape(section.title)}: {html.escape(section.collapsed)}</summary>",
                      *body, "</details>"])


def _render(first_screen: str, sections: Sequence[Section], out: Path, progress: bool) -> str:
    """The page: ``first_screen`` (HTML), then ``sections``."""
    bar = tqdm(total=sum(len(s.figures) for s in sections), desc="report figures", unit="figure",
               disable=not progress)
    body = [first_screen, *(_section_html(section, out, bar) for section in sections)]
    bar.close()
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(TITLE)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _gate(posterior: Posterior) -> Diagnostics:
    """The convergence gate of ``bayescale fit``, on the same sites (the law's constants and
    the derived sites forecasts are made of, :meth:`~bayescale.models.law.Law.gated`), so
    the report and the fit agree on PASS or FAIL."""
    return diagnose(posterior.idata, posterior.law.gated(), posterior.meta.settings.get("left_out_chains"))


def _gate_line(gate: Diagnostics) -> str:
    """``PASS (R-hat max 1.004, ESS min 812, 0 divergences)``."""
    return (f"{'PASS' if gate.passed else 'FAIL'} (R-hat max {gate.max_rhat:.3f}, "
            f"ESS min {min(gate.min_ess_bulk, gate.min_ess_tail):.0f}, {gate.divergences} divergences)")


def _gate_banner(gate: Diagnostics) -> str:
    """The red banner that names each failing check and its fix; empty when the gate passes."""
    if gate.passed:
        return ""
    checks = "".join(f"<li>{html.escape(p)}</li>" for p in gate.problems())
    return (f'<div id="{GATE_BANNER_ID}" role="alert"><strong>Convergence gate FAILED</strong>: the sampler did not '
            "converge well enough to trust these intervals, so the recommendation and every band below may be "
            f"wrong. Refit before acting on them. Failing checks:<ul>{checks}</ul></div>")


def _count(value: float) -> str:
    """``316227.8`` -> ``316k``, ``4.4e9`` -> ``4.4B``: a size to 3 significant digits."""
    value = float(f"{value:.3g}")
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _constant_rate(schedule: Schedule | None) -> bool:
    """Whether ``schedule`` keeps the learning rate constant from the first step."""
    return schedule is None or schedule.kind == "constant" and not schedule.warmup_steps


def _schedule_text(schedule: Schedule | None) -> str:
    """How the run's learning rate moves, for the recommendation sentence."""
    if _constant_rate(schedule):
        return "at a constant learning rate"
    return f"with the learning-rate schedule {schedule.describe()}"


def _quantiles(row: pd.Series, level: float) -> tuple[float, float, float]:
    """Median and central ``level`` band of a candidate's final loss."""
    pct = level_percent(level)
    return row["median"], row[f"lower_{pct}"], row[f"upper_{pct}"]


def _band(row: pd.Series, level: float) -> str:
    """``0.949 [0.911, 0.988]``: the median and central band of a candidate's final loss."""
    median, lower, upper = _quantiles(row, level)
    return f"{median:.3g} [{lower:.3g}, {upper:.3g}]"


def _odds(plan: BudgetPlan, level: float, units: str) -> str:
    """The recommended run's chance of reaching the target (when given) and its final-loss band."""
    median, lower, upper = _quantiles(plan.choice, level)
    band = f"Final loss {median:.3g} {units}, {level_percent(level)}% band [{lower:.3g}, {upper:.3g}]."
    if plan.target_loss is None:
        return band
    return (f"Reaches the target of {plan.target_loss:g} {units} with probability {plan.choice['p_target']:.3g}. "
            f"{band}")


def _choices_table(plan: BudgetPlan, level: float) -> str:
    """The recommended and the point-estimate choice side by side, as an HTML table."""
    target = plan.target_loss is not None
    head = ["choice", "N (params)", "B (tokens/step)", "S (steps)",
            *([f"P(loss &le; {plan.target_loss:g})"] if target else []),
            f"final loss, median [{level_percent(level)}%]"]
    rows = []
    for name, row in (("recommended (risk-aware)", plan.choice), ("point estimate (ignores uncertainty)",
                                                                   plan.point_choice)):
        cells = [name, _count(row["params"]), f"{row['batch_tokens']:,.0f}", f"{row['steps']:,.0f}",
                 *([f"{row['p_target']:.3g}"] if target else []), _band(row, level)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<table class="choices"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _extrapolation_text(plan: BudgetPlan, schedule: Schedule | None) -> str:
    """Per axis, how many times beyond the fitted data the recommended run lies (HTML); the
    schedule when not constant."""
    parts = [f"{name} inside the fitted range" if f <= 1.0 else f'<span class="far">{name} x{f:.3g}</span>'
             if f > EXTRAPOLATION_WARN_FACTOR else f"{name} x{f:.3g}"
             for name, f in plan.extrapolation["risk-aware"].factors.items()]
    if not _constant_rate(schedule):
        parts.append(f"schedule {html.escape(schedule.describe())}")
    return "; ".join(parts) + f" (forecasts warn beyond x{EXTRAPOLATION_WARN_FACTOR:g})"


def _facts_table(rows: Sequence[tuple[str, str]]) -> str:
    return ('<table class="facts">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
            + "</table>")


def _decision(posterior: Posterior, plan: BudgetPlan | None, gate: Diagnostics, *, level: float,
              hardware: Hardware | Throughput | None, schedule: Schedule | None, group: str | None) -> str:
    """The first screen: the recommendation for the budget with its odds, band, hours,
    extrapolation and the convergence gate (HTML)."""
    verdict = f'<span class="{"pass" if gate.passed else "fail"}">{_gate_line(gate)}</span>'
    if plan is None:
        return (f'<section id="{DECISION_ID}"><h2>Recommendation</h2><p class="note">No compute budget given: '
                "<code>bayescale report --flops C</code> (with <code>--target-loss L</code>) puts the recommended "
                "model size, batch, steps and their hours here.</p>"
                + _facts_table([("convergence gate", verdict)]) + "</section>")
    choice = plan.choice
    where = f" (group {html.escape(group)})" if group else ""
    answer = (f"Train <b>N = {_count(choice['params'])}</b> parameters (shape <b>{choice['shape']}</b>, "
              f"<code>bayescale train --shape {choice['shape']}</code>) with <b>B = {choice['batch_tokens']:,.0f}</b> "
              f"tokens per step for <b>S = {choice['steps']:,.0f}</b> steps {html.escape(_schedule_text(schedule))}.")
    facts = [("time", html.escape(time_text(choice["flops"], hardware))),
             ("beyond the fitted data", _extrapolation_text(plan, schedule)),
             ("convergence gate", verdict),
             ("ranked by", f"{html.escape(plan.criterion)}: {len(plan.table)} candidates x {plan.n_draws} draws of "
                           "the new-run final loss (details under Compute budget)")]
    return (f'<section id="{DECISION_ID}"><h2>Recommendation for {plan.flops:.3g} FLOPs{where}</h2>'
            f'<p class="answer">{answer}</p><p class="odds">{_odds(plan, level, loss_units(posterior.meta))}</p>{_choices_table(plan, level)}'
            f"{_facts_table(facts)}</section>")


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
        ("residuals along a run", describe_residuals(posterior)),
        ("law error", describe_record(law_error_record(meta))
         + " (on log loss, per unit log-distance outside the fit)"),
        ("fitted with", f"bayescale {meta.settings.get('bayescale_version', '?')}; "
                        f"report by bayescale {__version__}"),
    ], columns=["item", "value"])
    return Section("Overview", paragraphs=[
        f"Bayesian fit of the {posterior.law.title} ({posterior.law.reference}). Losses in "
        f"{loss_units(posterior.meta)}, batch sizes in tokens per optimizer step. Bands are central "
        "credible intervals of the <em>new-run</em> predictive distribution unless stated: parameter uncertainty, "
        "seed and evaluation noise, and the law's own error, which grows with the distance from the fitted data."],
        tables=[("Fit", rows)])


def _diagnostics(posterior: Posterior, gate: Diagnostics) -> Section:
    """The gate's figures per quantity and the rank plots, collapsed under the verdict."""
    verdict = (f'<span class="{"pass" if gate.passed else "fail"}">{"PASS" if gate.passed else "FAIL"}</span>: '
               f"R-hat max {gate.max_rhat:.3f} (&le; {RHAT_MAX}), bulk ESS min {gate.min_ess_bulk:.0f}, tail ESS min "
               f"{gate.min_ess_tail:.0f} (&ge; {ESS_MIN}), {gate.divergences} divergences of {gate.n_draws} draws.")
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in gate.problems())
    table = gate.table.reset_index().rename(columns={"index": "quantity"})
    paragraphs = [verdict, *([f"What to try:<ul>{problems}</ul>"] if problems else []),
                  *([f"The fit {html.escape(gate.left_out)}."] if gate.left_out else [])]
    return Section("Diagnostics", paragraphs=paragraphs, tables=[("Per quantity", table)],
                   figures=[("rank", "Rank plots: flat histograms per chain mean the chains mix.",
                             lambda: plots.plot_rank(posterior))],
                   collapsed=f"{_gate_line(gate)}; per-quantity table and rank plots")


def _constants(posterior: Posterior, level: float) -> Section:
    figures = [("prior_predictive", "Prior predictive check: what the priors allow before seeing the runs.",
                lambda: plots.plot_predictive_check(posterior, kind="prior")),
               ("posterior_predictive", "Posterior predictive check: new-run draws at the fitted points.",
                lambda: plots.plot_predictive_check(posterior, kind="posterior"))]
    return Section("Constants", paragraphs=[
        f"Median and central {level:.0%} interval of each constant"
        + (f" ({posterior.law.units})." if posterior.law.units else ".")],
        tables=[("Constants", posterior.summary(level))], figures=figures)


def _pairs(posterior: Posterior) -> Section:
    """The posterior pair plots of the constants, one per group, collapsed."""
    figures = [(f"pair_{_slug(g)}", f"Posterior pairs of the constants ({g}).",
                lambda g=g: plots.plot_pair(posterior, group=g)) for g in posterior.groups]
    return Section("Pair plots", figures=figures,
                   collapsed=f"posterior pairs of the constants, one figure per group ({', '.join(posterior.groups)})")


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
        caveat = single_batch_caveat(posterior, share, f"the loss of N = {sizes[2]:.3g} at step {10 * last:g}")
        paragraphs.append(caveat[0].upper() + caveat[1:] + ".")
    law_share = max(law_error_share(posterior, sizes[2], batch, 10 * last, schedule=schedule, group=g, seed=seed)
                    for g in posterior.groups)
    if law_share > 0.0:
        paragraphs.append(law_error_caveat(posterior, law_share, f"the loss of N = {sizes[2]:.3g} at step {10 * last:g}")
                          + ".")
    return Section("Forecasts", paragraphs=paragraphs, tables=tables, figures=figures)


def _budget(posterior: Posterior, plan: BudgetPlan, group: str | None, seed: int, space: SearchSpace) -> Section:
    """The two choices of ``plan`` and the frontier around its budget (searched in ``space``), with its figure."""
    frontier = compute_frontier(posterior, frontier_budgets(plan.flops), risk=plan.risk,
                                target_loss=plan.target_loss, group=group, seed=seed, space=space)
    columns = ["params", "batch_tokens", "steps", "tokens", "flops", "median", "loss_q", "point_loss",
               *(["p_target"] if plan.target_loss is not None else [])]
    return Section("Compute budget", paragraphs=[
        f"Budget {plan.flops:.3g} FLOPs (C = 6 N B S); {len(plan.table)} candidates ranked by the {plan.criterion}; "
        f"loss_q is the {plan.risk:g}-quantile of the final loss, point_loss the point forecast."],
        tables=[("Risk-aware and point-estimate choices", plan.summary()[["choice", *columns]]),
                ("Frontier", frontier[["budget", *(c for c in columns if c in frontier)]])],
        figures=[("frontier", "Compute-efficient frontier with the two choices at the budget.",
                  lambda: plots.plot_frontier(frontier, plan=plan))])


def _calibration(posterior: Posterior, runs: pd.DataFrame, seed: int) -> Section:
    result = calibrate(posterior, runs, seed=seed)
    return Section("Calibration against realized runs", paragraphs=[
        f"{len(result.points)} realized points ({result.dropped} early-transient points left out) compared with the "
        "new-run predictive distribution; bins by realized N over the largest fitted N.",
        "All points: " + "; ".join(result.verdicts()) + "."],
        tables=[("Empirical coverage of central intervals", result.coverage_table()),
                ("Coverage a calibrated forecast would show on these points (5-95% of joint replicates)",
                 result.expected_table()),
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
    space: SearchSpace | None = None,
    hardware: Hardware | Throughput | None = None,
) -> Path:
    """Write the figures and ``report.html`` into ``out_dir``; return the HTML path.

    ``flops`` puts the recommended run for that budget on the first screen and adds a
    budgeting section (with ``target_loss``, ``risk`` and, for grouped posteriors,
    ``group``); ``hardware`` is what its hours assume (default: :class:`Hardware`'s
    planning defaults), or a measured :class:`~bayescale.hardware.Throughput`. ``runs`` (a
    validated realized run table) adds a calibration
    section. ``schedule`` is the learning-rate schedule of the forecast and budgeted runs
    (default: constant; other schedules need a schedule-aware law); ``space`` limits the
    recommendation's search as in :func:`bayescale.budget.plan_budget`, and its schedule,
    when set, takes the place of ``schedule``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level} must be in (0, 1), e.g. 0.9")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gate = _gate(posterior)
    if space is not None and space.schedule is not None:
        schedule = space.schedule
    space = dataclasses.replace(space or SearchSpace(), schedule=schedule)
    plan = None if flops is None else plan_budget(posterior, flops, target_loss=target_loss, risk=risk,
                                                  space=space, levels=(level,),
                                                  group=group, seed=seed)
    first_screen = "\n".join([_gate_banner(gate), f"<h1>{html.escape(TITLE)}</h1>",
                              _decision(posterior, plan, gate, level=level, hardware=hardware,
                                        schedule=schedule, group=group)])
    sections = [_overview(posterior), *([_budget(posterior, plan, group, seed, space)] if plan else []),
                _forecasts(posterior, level, seed, schedule),
                *([_calibration(posterior, runs, seed)] if runs is not None else []),
                _constants(posterior, level), _pairs(posterior), _diagnostics(posterior, gate)]
    path = out / "report.html"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_render(first_screen, sections, out, progress), encoding="utf-8")
    tmp.replace(path)
    return path
