r"""Risk-aware compute budgeting: which model size, batch and steps for a FLOP budget.

**Compute.** A run of ``N`` non-embedding parameters trained for ``S`` steps of ``B``
tokens costs

.. math::  C = (6N + a)\, B\, S \quad \text{FLOPs}

with ``a`` the attention FLOPs per token (0 by default; Kaplan et
al. 2020, Table 1, count ``2 n_layer n_ctx d_attn`` per token forward, so ``a = 6
n_layer n_ctx d_attn`` for training).

**Candidates.** Sizes on a log lattice (``params_per_decade`` per decade) from
``min_params`` (default: the smallest fitted size) up to ``max_params`` (default: the
largest size that still trains ``min_steps`` at the smallest batch), times the batch
choices (default: powers of two from a quarter of the smallest fitted batch to 16
times the largest, since the critical batch grows as the loss falls; a Chinchilla
posterior, whose law ``L(N, D)`` has no batch term, gets one batch: the geometric mean
of the fitted ones, so that its steps read as tokens / batch). Each candidate
spends the budget, ``S = C / ((6N + a) B)``, unless a limit stops it first:
``S <= max_steps``, ``B S <= max_tokens`` (a data limit: the dataset's tokens) or
``(6N + a) B S <= max_run_flops`` (a wall-clock limit: the FLOP rate the run achieves
times the seconds allowed; at one FLOP rate a run's time is its compute, whatever its
size, so a throughput of ``R`` tokens/s measured on a model of ``N_0`` parameters
allows ``R (6 N_0 + a)`` FLOP/s to every size). Candidates with ``S < min_steps`` are
dropped.

**Shapes and extrapolation.** Every candidate size comes with a GPT shape under the
trainer's conventions (``shape`` = ``WIDTHxDEPTH`` at an aspect ratio near 64, which
``bayescale train --shape`` takes; :func:`bayescale.trainer.sizing.shape_for_params`) and
says how far it lies beyond the fitted data (``extrapolation``: the factor on its
farthest axis). The plan states both choices' factors per axis and warns
(:class:`~bayescale.models.law.ExtrapolationWarning`) when the risk-aware one lies more
than ``EXTRAPOLATION_WARN_FACTOR`` beyond the fitted data.

**Risk.** Every candidate gets draws ``L_1..L_M`` of the final loss of a run you train
(the ``new_run`` predictive of :func:`bayescale.predict.loss_draws`: parameter
uncertainty, seed and evaluation noise, and the law's own error that grows with the
extrapolation). Candidates are ranked

* by the probability of reaching a target loss ``L*``,
  ``p = P(L <= L*) ~ (1/M) sum_m 1{L_m <= L*}``, highest first, ties broken by the
  ``q``-quantile; or
* without a target, by the ``q``-quantile of the final loss (the loss you beat with
  probability ``q``; ``q = 0.5`` is the median), lowest first.

The **point-estimate choice** is what a single fitted curve would pick: the candidate
with the lowest point forecast, the median over posterior draws of the law's mean
curve (parameter uncertainty only, no noise, no law error). Its probability of
reaching the target is computed from the same draws, so the two choices can be
compared on equal terms.

The **compute-efficient frontier** is the risk-aware choice at each of a range of
budgets with its loss bands; :func:`least_compute` answers the inverse question: the
least compute with which some candidate reaches ``L*`` with probability at least
``p`` (a scan over decades of compute, then bisection in ``log C``).

References: Kaplan et al. 2020, arXiv:2001.08361 (eqs. 1.4-1.6, 5.1-5.6, Table 1);
Hoffmann et al. 2022, arXiv:2203.15556 (compute-optimal frontiers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bayescale.defaults import DEFAULT_RISK
from bayescale.models.law import Extrapolation
from bayescale.posterior import Posterior, loss_units
from bayescale.predict import (check_schedule, extrapolation, level_percent, loss_draws, quantile_bands,
                               warn_extrapolation)
from bayescale.schedules import Schedule, final_features

#: Largest budget the search accepts, in FLOPs. Far beyond any training run; above it the
#: candidates' sizes and step counts leave the range the float32 law can evaluate.
MAX_FLOPS = 1e35
#: Bisection steps of :func:`least_compute` after the decade scan (a factor 10**(1/2**12)).
BISECTION_STEPS = 12
#: Candidate counts are padded to a multiple of this, so that the JIT-compiled trajectory
#: solver is compiled for a few shapes instead of one per budget.
_PAD = 256


class UnreachableTarget(ValueError):
    """No candidate reaches the target loss with the probability asked for."""


@dataclass(frozen=True)
class SearchSpace:
    """Limits and grids of the candidate search (module docstring); ``None`` means the default."""

    min_params: float | None = None
    max_params: float | None = None
    batch_tokens: tuple[float, ...] | None = None
    min_steps: float = 100.0
    max_steps: float | None = None
    max_tokens: float | None = None
    #: most FLOPs one run may spend: a wall-clock limit times the FLOP rate (module docstring)
    max_run_flops: float | None = None
    attention_flops_per_token: float = 0.0
    params_per_decade: int = 8
    #: learning-rate schedule of every candidate, stretched to its steps (default: constant)
    schedule: Schedule | None = None

    def __post_init__(self) -> None:
        for name in ("min_params", "max_params", "max_steps", "max_tokens", "max_run_flops"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value} must be positive and finite")
        if not (np.isfinite(self.min_steps) and self.min_steps > 0):
            raise ValueError(f"min_steps={self.min_steps} must be positive")
        if self.attention_flops_per_token < 0:
            raise ValueError(f"attention_flops_per_token={self.attention_flops_per_token} must be >= 0")
        if self.params_per_decade < 1:
            raise ValueError(f"params_per_decade={self.params_per_decade} must be at least 1")
        if self.batch_tokens is not None and (len(self.batch_tokens) == 0 or min(self.batch_tokens) <= 0):
            raise ValueError(f"batch_tokens={self.batch_tokens} must be one or more positive batch sizes in tokens")
        if self.min_params and self.max_params and self.min_params > self.max_params:
            raise ValueError(f"min_params={self.min_params:g} exceeds max_params={self.max_params:g}")
        if self.max_steps is not None and self.max_steps < self.min_steps:
            raise ValueError(f"max_steps={self.max_steps:g} is below min_steps={self.min_steps:g}")

    def batches(self, ranges: dict) -> np.ndarray:
        """The batch choices in tokens: given, or powers of two around the fitted batches."""
        if self.batch_tokens is not None:
            return np.unique(np.asarray(self.batch_tokens, float))
        lo, hi = ranges["batch_tokens"]
        return 2.0 ** np.arange(np.floor(np.log2(lo / 4)), np.ceil(np.log2(hi * 16)) + 1)

    def flops_per_token(self, params: np.ndarray) -> np.ndarray:
        """Training FLOPs per token, ``6 N + a``."""
        return 6.0 * np.asarray(params, float) + self.attention_flops_per_token

    def params_grid(self, ranges: dict, flops: float) -> np.ndarray:
        """Sizes on the log lattice between ``min_params`` and the largest useful size."""
        lo = self.min_params or min(ranges["params"][0], self.max_params or np.inf)
        smallest_batch = float(self.batches(ranges)[0])
        largest = (flops / (smallest_batch * self.min_steps) - self.attention_flops_per_token) / 6
        hi = self.max_params or max(lo, largest)
        k = np.arange(np.ceil(np.log10(lo) * self.params_per_decade),
                      np.floor(np.log10(hi) * self.params_per_decade) + 1)
        return np.unique(np.concatenate([[lo], 10.0 ** (k / self.params_per_decade),
                                         [hi] if self.max_params else []]))


def _with_law_batches(posterior: Posterior, space: SearchSpace) -> SearchSpace:
    """``space`` with the default batch choices of the posterior's law (module docstring)."""
    if posterior.law.uses_batch or space.batch_tokens is not None:
        return space
    lo, hi = posterior.meta.ranges["batch_tokens"]
    return dataclasses.replace(space, batch_tokens=(float(np.sqrt(lo * hi)),))


def _candidate_table(posterior: Posterior, flops: float, space: SearchSpace) -> pd.DataFrame:
    """Candidates for one budget; empty when the budget fits none."""
    space = _with_law_batches(posterior, space)
    ranges = posterior.meta.ranges
    N, B = (a.ravel() for a in np.meshgrid(space.params_grid(ranges, flops), space.batches(ranges), indexing="ij"))
    per_token = space.flops_per_token(N)
    limits = {"budget": flops / (per_token * B),
              "max_steps": np.full(N.shape, space.max_steps or np.inf),
              "max_tokens": (space.max_tokens or np.inf) / B,
              "max_hours": (space.max_run_flops or np.inf) / (per_token * B)}
    table = np.stack(list(limits.values()))
    steps = table.min(axis=0)
    keep = steps >= space.min_steps
    limit = np.array(list(limits))[table.argmin(axis=0)]
    table = pd.DataFrame({"params": N[keep], "batch_tokens": B[keep], "steps": steps[keep],
                          "tokens": B[keep] * steps[keep], "flops": per_token[keep] * B[keep] * steps[keep],
                          "limit": limit[keep]})
    far = posterior.law.axis_distances(posterior.meta.ranges, *(table[c].to_numpy()
                                                                for c in ("params", "batch_tokens", "steps")))
    table["extrapolation"] = np.exp(np.max(np.broadcast_arrays(*far.values()), axis=0))
    return table.join(model_shapes(table["params"]))


def model_shapes(params: pd.Series) -> pd.DataFrame:
    """A GPT shape per size under the trainer's conventions
    (:func:`bayescale.trainer.sizing.shape_for_params`): columns ``shape`` (``WIDTHxDEPTH``,
    what ``bayescale train --shape`` takes), ``heads`` (the trainer's default for that width)
    and ``shape_params`` (the shape's own non-embedding count, within a few percent of N)."""
    from bayescale.trainer.sizing import analytic_param_counts, shape_for_params

    shapes = {n: shape_for_params(n) for n in params.unique()}
    return pd.DataFrame({"shape": [f"{shapes[n].width}x{shapes[n].depth}" for n in params],
                         "heads": [shapes[n].heads for n in params],
                         "shape_params": [analytic_param_counts(shapes[n]).non_embedding for n in params]},
                        index=params.index)


def check_flops(name: str, flops: float) -> None:
    """Raise ``ValueError`` for a budget above :data:`MAX_FLOPS` (``name`` is the argument's name)."""
    if flops > MAX_FLOPS:
        raise ValueError(f"{name}={flops:.3g} is above {MAX_FLOPS:.3g} FLOPs, beyond what the law can say (the search "
                         "would try sizes and step counts the float32 law cannot evaluate); "
                         f"give at most {MAX_FLOPS:.3g}")


def candidates(posterior: Posterior, flops: float, space: SearchSpace = SearchSpace()) -> pd.DataFrame:
    """Every (N, B, S) the search considers for a budget of ``flops``.

    Columns: ``params, batch_tokens, steps, tokens, flops`` (spent, at most the budget),
    ``limit`` (``budget``, ``max_steps``, ``max_tokens`` or ``max_hours``: what set the steps),
    ``extrapolation`` (how many times beyond the fitted data the candidate lies on its
    farthest axis, 1 inside; :func:`bayescale.predict.extrapolation`) and the model shape
    (:func:`model_shapes`).
    Raises ``ValueError`` when the budget is too small for every candidate.
    """
    if not (np.isfinite(flops) and flops > 0):
        raise ValueError(f"flops={flops} must be a positive FLOP budget, e.g. 1e18")
    check_flops("flops", flops)
    table = _candidate_table(posterior, flops, space)
    if table.empty:
        space = _with_law_batches(posterior, space)
        ranges = posterior.meta.ranges
        n0, b0 = space.min_params or ranges["params"][0], float(space.batches(ranges)[0])
        need = float(space.flops_per_token(n0) * b0 * space.min_steps)
        cap = (f" (and max_tokens={space.max_tokens:.3g} allows only {space.max_tokens / b0:.3g} steps)"
               if space.max_tokens and space.max_tokens / b0 < space.min_steps else
               f" (and the wall-clock limit allows only {space.max_run_flops:.3g} FLOPs per run)"
               if space.max_run_flops and space.max_run_flops < need else "")
        raise ValueError(f"flops={flops:.3g} is too small for any candidate: the smallest (N={n0:.3g} params, "
                         f"B={b0:g} tokens, {space.min_steps:g} steps) needs {need:.3g} FLOPs{cap}; raise the budget "
                         "or lower min_params, min_steps or the batch choices")
    return table


def final_loss_draws(posterior: Posterior, table: pd.DataFrame, *, mode: str = "new_run",
                     group: str | None = None, seed: int = 0, schedule: Schedule | None = None) -> np.ndarray:
    """Draws ``(draws, len(table))`` of the final loss of each candidate row, each trained
    with ``schedule`` stretched to its steps (default: constant after warm-up).

    The one place the budgeter asks the predictor for losses
    (:func:`bayescale.predict.loss_draws`); rows are padded to a multiple of 256 so the
    compiled solver is reused across budgets.
    """
    check_schedule(posterior.law, schedule)
    n = len(table)
    padded = int(np.ceil(n / _PAD) * _PAD)
    cols = [np.resize(table[c].to_numpy(float), padded) for c in ("params", "batch_tokens", "steps")]
    return loss_draws(posterior, *cols, mode=mode, group=group, seed=seed,
                      covariates=_final_covariates(posterior, schedule, cols[2]))[:, :n]


def _final_covariates(posterior: Posterior, schedule: Schedule | None, steps: np.ndarray) -> dict | None:
    """The law's schedule covariates at the last step of runs of ``steps`` steps, each
    trained with ``schedule`` stretched to its length; ``None`` for a law without any."""
    if not posterior.law.covariates:
        return None
    return {k: v for k, v in final_features(schedule or Schedule(), steps).items() if k in posterior.law.covariates}


def score(posterior: Posterior, table: pd.DataFrame, *, target_loss: float | None = None, risk: float = DEFAULT_RISK,
          levels: Sequence[float] = (0.9,), group: str | None = None, seed: int = 0,
          schedule: Schedule | None = None) -> pd.DataFrame:
    """Add forecast columns to a candidate table and sort it best first.

    Added: ``median``, ``lower_<pct>``/``upper_<pct>`` per level (central intervals of the
    new-run final loss, nats), ``loss_q`` (its ``risk``-quantile) and, with a target,
    ``p_target`` (the probability of reaching it). Candidates train with ``schedule``.
    """
    _check_risk(risk)
    draws = final_loss_draws(posterior, table, group=group, seed=seed, schedule=schedule)
    out = table.copy()
    bands = quantile_bands(draws, levels)
    out["median"] = bands[levels[0]][0]
    for level, (_, lower, upper) in bands.items():
        out[f"lower_{level_percent(level)}"] = lower
        out[f"upper_{level_percent(level)}"] = upper
    out["loss_q"] = np.quantile(draws, risk, axis=0)
    keys, ascending = ["loss_q"], [True]
    if target_loss is not None:
        out["p_target"] = np.mean(draws <= target_loss, axis=0)
        keys, ascending = ["p_target", "loss_q"], [False, True]
    return out.sort_values(keys, ascending=ascending, kind="stable").reset_index(drop=True)


def _wall_clock_note(space: SearchSpace, flops: float) -> str:
    """Words for a wall-clock limit that keeps every run below ``flops`` (empty when none does)."""
    cap = space.max_run_flops
    return f" (of which the wall-clock limit lets a run spend only {cap:.3g})" if cap and cap < flops else ""


def _check_risk(risk: float) -> None:
    if not 0.0 < risk < 1.0:
        raise ValueError(f"risk={risk} must be in (0, 1): the quantile of the final loss to minimise, e.g. 0.9")


def _check_target(target_loss: float | None) -> None:
    if target_loss is not None and not (np.isfinite(target_loss) and target_loss > 0):
        raise ValueError(f"target_loss={target_loss} must be a positive loss in nats")


@dataclass(frozen=True)
class BudgetPlan:
    """Ranked candidates for one budget, the risk-aware choice and the point-estimate choice.

    ``table`` has the columns of :func:`score` plus ``point_loss`` (the point forecast);
    ``extrapolation`` says how far each choice (``risk-aware``, ``point estimate``) lies
    beyond the fitted data, per axis.
    """

    table: pd.DataFrame
    flops: float
    target_loss: float | None
    risk: float
    n_draws: int
    extrapolation: dict[str, Extrapolation]

    @property
    def choice(self) -> pd.Series:
        """The risk-aware choice: the first row of the ranked table."""
        return self.table.iloc[0]

    @property
    def point_choice(self) -> pd.Series:
        """The candidate a point estimate picks: the lowest point forecast."""
        return self.table.loc[self.table["point_loss"].idxmin()]

    @property
    def criterion(self) -> str:
        if self.target_loss is None:
            return f"lowest {level_percent(self.risk)}% quantile of the final loss"
        return f"highest probability of a final loss <= {self.target_loss:g} nats"

    def summary(self) -> pd.DataFrame:
        """The two choices side by side (rows ``risk-aware`` and ``point estimate``)."""
        rows = pd.DataFrame([self.choice, self.point_choice])
        rows.insert(0, "choice", ["risk-aware", "point estimate"])
        return rows.reset_index(drop=True)


def plan_budget(
    posterior: Posterior,
    flops: float,
    *,
    target_loss: float | None = None,
    risk: float = DEFAULT_RISK,
    space: SearchSpace = SearchSpace(),
    levels: Sequence[float] = (0.9,),
    group: str | None = None,
    seed: int = 0,
) -> BudgetPlan:
    """Search model size, batch and steps for a FLOP budget and rank them by risk.

    Raises :class:`UnreachableTarget` when no candidate reaches ``target_loss`` in any
    posterior draw (the target lies below every loss this budget can reach).
    """
    _check_target(target_loss)
    table = score(posterior, candidates(posterior, flops, space), target_loss=target_loss, risk=risk,
                  levels=levels, group=group, seed=seed, schedule=space.schedule)
    table["point_loss"] = np.median(final_loss_draws(posterior, table, mode="mean", group=group, seed=seed,
                                                     schedule=space.schedule), axis=0)
    if target_loss is not None and table["p_target"].iloc[0] == 0.0:
        best = table.loc[table["median"].idxmin()]
        raise UnreachableTarget(
            f"target_loss={target_loss:g} nats is out of reach with {flops:.3g} FLOPs{_wall_clock_note(space, flops)}: "
            f"no candidate reaches it in any of {posterior.n_draws} draws (lowest median final loss "
            f"{best['median']:.4g} nats at N={best['params']:.3g}); raise the budget or the target loss")
    plan = BudgetPlan(table=table, flops=float(flops), target_loss=target_loss, risk=risk, n_draws=posterior.n_draws,
                      extrapolation={})
    for name, row in zip(("risk-aware", "point estimate"), (plan.choice, plan.point_choice)):
        plan.extrapolation[name] = extrapolation(posterior, row["params"], row["batch_tokens"], row["steps"],
                                                 _final_covariates(posterior, space.schedule, [row["steps"]]))
    warn_extrapolation(plan.extrapolation["risk-aware"], f"budget {flops:.3g} FLOPs, risk-aware choice "
                       f"N={plan.choice['params']:.3g}, B={plan.choice['batch_tokens']:g}, S={plan.choice['steps']:.4g}")
    return plan


def _best_at(posterior: Posterior, flops: float, *, target_loss: float | None, risk: float, space: SearchSpace,
             levels: Sequence[float], group: str | None, seed: int) -> pd.Series | None:
    """The best-ranked candidate at one budget, or ``None`` when the budget fits no candidate."""
    table = _candidate_table(posterior, flops, space)
    if table.empty:
        return None
    best = score(posterior, table, target_loss=target_loss, risk=risk, levels=levels, group=group, seed=seed,
                 schedule=space.schedule).iloc[0]
    return pd.concat([pd.Series({"budget": float(flops)}), best])


def frontier_budgets(flops: float, points: int = 9) -> np.ndarray:
    """``points`` budgets log-spaced from ``flops / 100`` to ``100 flops`` (at most :data:`MAX_FLOPS`):
    the frontier drawn around one budget."""
    return np.geomspace(flops / 100, min(flops * 100, MAX_FLOPS), points)


def compute_frontier(
    posterior: Posterior,
    flops: Sequence[float],
    *,
    risk: float = DEFAULT_RISK,
    target_loss: float | None = None,
    space: SearchSpace = SearchSpace(),
    levels: Sequence[float] = (0.5, 0.9),
    group: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """The risk-aware choice and its final-loss bands at each budget in ``flops``.

    One row per budget that fits at least one candidate, with the columns of
    :func:`score` plus ``budget``. Loss against compute is the compute-efficient frontier.
    ``df.attrs["loss_units"]`` names the losses' units (:func:`bayescale.posterior.loss_units`).
    """
    _check_target(target_loss)
    for c in flops:
        if not (np.isfinite(c) and c > 0):
            raise ValueError(f"flops={c} must be a positive FLOP budget")
        check_flops("flops", c)
    rows = [_best_at(posterior, float(c), target_loss=target_loss, risk=risk, space=space, levels=levels,
                     group=group, seed=seed)
            for c in tqdm(sorted(flops), desc="frontier", unit="budget", disable=not progress)]
    rows = [r for r in rows if r is not None]
    if not rows:
        candidates(posterior, max(flops), space)  # raises with the smallest compute that fits
    frontier = pd.DataFrame(rows).reset_index(drop=True)
    frontier.attrs["loss_units"] = loss_units(posterior.meta)
    return frontier


def least_compute(
    posterior: Posterior,
    target_loss: float,
    probability: float = 0.9,
    *,
    space: SearchSpace = SearchSpace(),
    max_flops: float = 1e30,
    group: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> pd.Series:
    """The least compute with which a candidate reaches ``target_loss`` with ``probability``.

    Scans budgets a decade apart from the smallest that fits a candidate up to
    ``max_flops``, then bisects ``log C`` (:data:`BISECTION_STEPS` times) between the last
    budget that fails and the first that succeeds. Candidates are ranked by
    ``P(L <= target)``, so at the returned budget the best one just reaches
    ``probability``. Returns that candidate (``budget``, ``params``, ``batch_tokens``,
    ``steps``, ``p_target``, ...). Raises :class:`UnreachableTarget` when no budget up
    to ``max_flops`` suffices.
    """
    _check_target(target_loss)
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability={probability} must be in (0, 1), e.g. 0.9")
    space = _with_law_batches(posterior, space)
    ranges = posterior.meta.ranges
    lo_params = space.min_params or ranges["params"][0]
    start = float(space.flops_per_token(lo_params) * space.batches(ranges)[0] * space.min_steps) * (1 + 1e-9)
    candidates(posterior, start, space)  # raises when no budget fits a candidate (a too small max_tokens)
    check_flops("max_flops", max_flops)
    if max_flops < start:
        raise ValueError(f"max_flops={max_flops:.3g} is below {start:.3g}, the least compute that fits any candidate")

    def best(c: float) -> pd.Series:
        return _best_at(posterior, c, target_loss=target_loss, risk=probability, space=space, levels=(0.9,),
                        group=group, seed=seed)

    scan = np.unique(np.minimum(start * 10.0 ** np.arange(0, np.ceil(np.log10(max_flops / start)) + 1), max_flops))
    failed, found, closest = None, None, None
    for c in tqdm(scan, desc="least compute", unit="decade", disable=not progress):
        row = best(float(c))
        if row["p_target"] >= probability:
            found = row
            break
        failed, closest = float(c), row
    if found is None:
        raise UnreachableTarget(
            f"target_loss={target_loss:g} nats is not reached with probability {probability:g} by any candidate up "
            f"to {scan[-1]:.3g} FLOPs{_wall_clock_note(space, scan[-1])} (best probability "
            f"{closest['p_target']:.3g}, median loss {closest['median']:.4g} nats at N={closest['params']:.3g}); "
            "it may lie below the minimum reachable loss: raise the target, "
            "or allow larger models or more compute")
    if failed is not None:
        lo, hi = np.log(failed), np.log(found["budget"])
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            row = best(float(np.exp(mid)))
            if row["p_target"] >= probability:
                hi, found = mid, row
            else:
                lo = mid
    return found


def compare_schedules(posterior: Posterior, params: float, batch_tokens: float, steps: float,
                      schedules: dict[str, Schedule], *, target_loss: float | None = None,
                      levels: Sequence[float] = (0.9,), group: str | None = None, seed: int = 0) -> pd.DataFrame:
    """One run (``params``, ``batch_tokens``, ``steps``: one compute budget) under each of
    ``schedules``: the new-run final-loss bands, with a target the probability of
    reaching it, and how far it extrapolates (``extrapolation``, with the schedule-aware
    laws' ``schedule`` axis). One row per schedule, in the given order; every schedule gets the same
    posterior draws and law errors (``seed``), so differences are the schedules'.
    """
    _check_target(target_loss)
    table = pd.DataFrame({"params": [float(params)], "batch_tokens": [float(batch_tokens)], "steps": [float(steps)]})
    rows = []
    for name, schedule in schedules.items():
        draws = final_loss_draws(posterior, table, group=group, seed=seed, schedule=schedule)[:, 0]
        bands = quantile_bands(draws[:, None], levels)
        row = {"schedule": name, "description": schedule.describe(), "median": float(bands[levels[0]][0][0])}
        for level, (_, lower, upper) in bands.items():
            row[f"lower_{level_percent(level)}"] = float(lower[0])
            row[f"upper_{level_percent(level)}"] = float(upper[0])
        if target_loss is not None:
            row["p_target"] = float(np.mean(draws <= target_loss))
        row["extrapolation"] = extrapolation(posterior, params, batch_tokens, steps,
                                             _final_covariates(posterior, schedule, [float(steps)])).describe()
        rows.append(row)
    return pd.DataFrame(rows)
