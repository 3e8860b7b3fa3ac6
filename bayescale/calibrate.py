r"""Calibration of forecasts against realized runs: were the intervals honest?

Every realized evaluation point ``y`` at ``(N, B, S)`` is compared with ``M`` draws
``x_1..x_M`` of the new-run predictive distribution at that point
(:func:`bayescale.predict.loss_draws`, ``mode="new_run"``, the group of the point):

* **coverage** of the central ``l`` interval ``[x_((1-l)/2), x_((1+l)/2)]`` for
  ``l`` in 50/80/90/95%: the fraction of points inside, to compare with ``l`` and with
  the **range a calibrated forecast would show** on these points: the 5-95% range of the
  same fraction over joint replicates of the realized points drawn under the forecast's
  own model (:mod:`bayescale.replicates`: one law error shared by every point, one
  offset per run, AR(1) noise along a run). Points are not independent, so this range
  is much wider than ``l +- 2 sqrt(l (1-l) / n)``: on one held-out size, where the law's
  error moves every point together, a calibrated 90% interval often covers all of them;
* the **probability integral transform** ``PIT = (1/M) sum_m 1{x_m <= y}``, uniform on
  (0, 1) for a calibrated forecast; a forecast that is too low piles PIT values near 1,
  one that is too narrow piles them at both ends (Gneiting, Balabdaoui & Raftery 2007);
* the **continuous ranked probability score** in its energy form,
  ``CRPS = E|X - y| - (1/2) E|X - X'|``, estimated from the sorted draws
  ``x_(1) <= ... <= x_(M)`` with ``E|X - X'| = (2 / M^2) sum_i (2i - M - 1) x_(i)``
  (Gneiting & Raftery 2007, eq. 21), in nats; lower is better;
* the **interval score** of the central ``(1 - a)`` interval ``[l, u]``,
  ``IS_a = (u - l) + (2/a)(l - y) 1{y < l} + (2/a)(y - u) 1{y > u}``
  (Gneiting & Raftery 2007, eq. 43), in nats; lower is better.

Each is reported overall and by extrapolation distance: the realized ``N`` over the
largest fitted ``N``, in bins ``<= 1`` (inside the fitted sizes), ``1-3x``, ``3-10x``,
``10-30x`` and ``> 30x``.

**Input checks** (each raises ``ValueError`` with the fix): groups must match (the
realized table needs the posterior's ``group_by`` column, with values among the
posterior's groups); the vocabulary, when both the posterior and the table know it,
must be the same (losses over other vocabularies are not comparable); ``params``, ``batch_tokens`` and ``step`` must lie within a factor
:data:`RANGE_FACTOR` of the fitted ranges (parameters in millions, or batches in
sequences instead of tokens, fail this); and the typical ratio of realized loss to
predictive median must lie within a factor :data:`SCALE_FACTOR` of 1 (losses in bits
instead of nats are off by ``1/ln 2 = 1.44``, per-byte against per-token losses by the
bytes per token). The early transient is dropped with the fit's own rule
(:func:`bayescale.curves.transient_mask` with the posterior's settings).

**Memory.** The predictive draws are made a piece of the table at a time, and the joint
replicates a batch of replicates at a time, each at most
:data:`~bayescale.defaults.MAX_DRAW_POINTS` draws x points, so a W&B export of many
thousands of logged steps is scored in bounded memory. Every per-point score reads one
point's marginal distribution, which pieces leave unchanged; each replicate still spans
every point.

Reference: Gneiting & Raftery (2007), "Strictly Proper Scoring Rules, Prediction, and
Estimation", JASA 102(477); Gneiting, Balabdaoui & Raftery (2007), "Probabilistic
forecasts, calibration and sharpness", JRSS B 69(2).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bayescale.curves import transient_mask
from bayescale.defaults import DEFAULT_LEVELS, RANGE_FACTOR, REPLICATES, SCALE_FACTOR
from bayescale.posterior import Posterior, loss_units
from bayescale.predict import level_percent, loss_draws, quantile_bands, row_chunks
from bayescale.replicates import fraction_range, format_range, replicate_batches, replicate_fractions, replicate_split
from bayescale.runs import vocab_size_of
from bayescale.schedules import table_features

#: Edges of the extrapolation bins in realized N over the largest fitted N.
DISTANCE_EDGES = (1.0, 3.0, 10.0, 30.0)


def crps_sample(draws: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample CRPS of draws ``(M, P)`` against observations ``(P,)``, energy form (nats)."""
    x = np.sort(np.asarray(draws, float), axis=0)
    m = x.shape[0]
    weights = (2.0 * np.arange(1, m + 1) - m - 1)[:, None]
    spread = 2.0 / m**2 * np.sum(weights * x, axis=0)
    return np.mean(np.abs(x - y[None, :]), axis=0) - 0.5 * spread


def interval_score(lower: np.ndarray, upper: np.ndarray, y: np.ndarray, level: float) -> np.ndarray:
    """Interval score of the central ``level`` interval (Gneiting & Raftery 2007, eq. 43)."""
    alpha = 1.0 - level
    return (upper - lower) + 2.0 / alpha * (np.maximum(lower - y, 0.0) + np.maximum(y - upper, 0.0))


def pit(draws: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Probability integral transform: the fraction of draws at or below each observation."""
    return np.mean(np.asarray(draws) <= y[None, :], axis=0)


def distance_bin(ratio: np.ndarray, edges: Sequence[float] = DISTANCE_EDGES) -> pd.Categorical:
    """Label realized-N / largest-fitted-N ratios with their extrapolation bin."""
    labels = [f"<= {edges[0]:g}x (fitted)"] + [f"{a:g}-{b:g}x" for a, b in zip(edges[:-1], edges[1:])]
    labels.append(f"> {edges[-1]:g}x")
    index = np.searchsorted(np.asarray(edges, float), ratio, side="left")
    return pd.Categorical.from_codes(index, categories=labels, ordered=True)


def match_groups(posterior: Posterior, runs: pd.DataFrame) -> np.ndarray:
    """The posterior group of every realized row, checked against the posterior's groups."""
    group_by = posterior.meta.group_by
    groups = posterior.groups
    if group_by is None:
        return np.full(len(runs), groups[0], dtype=object)
    if group_by not in runs.columns:
        raise ValueError(f"the realized runs have no '{group_by}' column, but the posterior has groups "
                         f"{', '.join(groups)} by '{group_by}'; add that column")
    values = runs[group_by].astype(str).to_numpy()
    unknown = sorted(set(values) - set(groups))
    if unknown:
        raise ValueError(f"the realized runs have {group_by} value(s) {', '.join(unknown)} that the posterior was "
                         f"not fitted on (its groups: {', '.join(groups)}); drop those rows or refit with them")
    return values


def check_vocabulary(posterior: Posterior, runs: pd.DataFrame) -> None:
    """Reject realized runs over another vocabulary than the fitted ones (when both are known)."""
    fitted, realized = posterior.meta.vocab_size, vocab_size_of(runs)
    if fitted is not None and realized is not None and fitted != realized:
        raise ValueError(f"the realized runs have vocab_size {realized}, the fitted ones {fitted}: losses over "
                         "different vocabularies are not comparable; calibrate against runs of the fitted tokenizer")


def check_ranges(posterior: Posterior, runs: pd.DataFrame) -> None:
    """Reject sizes, batches and steps more than :data:`RANGE_FACTOR` outside the fitted ranges."""
    units = {"params": "non-embedding parameters", "batch_tokens": "tokens per step", "step": "optimizer steps"}
    for column, key in (("params", "params"), ("batch_tokens", "batch_tokens"), ("step", "step")):
        lo, hi = posterior.meta.ranges[key]
        values = runs[column].to_numpy(float)
        bad = (values < lo / RANGE_FACTOR) | (values > hi * RANGE_FACTOR)
        if bad.any():
            value = values[np.flatnonzero(bad)[0]]
            raise ValueError(f"realized {column}={value:g} lies more than {RANGE_FACTOR:g}x outside the fitted "
                             f"{lo:g}..{hi:g}; give {column} in {units[column]} (not thousands or millions)")


def check_scale(realized: np.ndarray, median: np.ndarray, units: str) -> None:
    """Reject realized losses whose typical ratio to the forecast points to other units than
    the posterior's ``units`` (:func:`bayescale.posterior.loss_units`)."""
    ratio = float(np.exp(np.median(np.log(realized / median))))
    if 1.0 / SCALE_FACTOR <= ratio <= SCALE_FACTOR:
        return
    hint = ""
    if abs(np.log(ratio * np.log(2.0))) < 0.1:
        hint = "; they look like bits: multiply them by ln 2 = 0.693 to get nats"
    elif abs(np.log(ratio / np.log(2.0))) < 0.1:
        hint = "; the posterior looks fitted on bits, the realized runs on nats"
    raise ValueError(f"realized losses are {ratio:.3g}x the forecast median (typical ratio), beyond the "
                     f"{SCALE_FACTOR:g}x a forecast error could explain{hint}; check the units ({units}) "
                     "and that the runs match the posterior's data, tokenizer and split")


@dataclass(frozen=True)
class Calibration:
    """Per-point scores and their summaries (module docstring for the definitions).

    ``points``: one row per realized point with ``group, params, batch_tokens, step,
    loss, median, pit, crps, ratio`` (realized N / largest fitted N), ``bin``, and per
    level ``lower_<pct>, upper_<pct>, covered_<pct>, interval_score_<pct>``.
    ``coverage``: one row per bin (``all`` first) and level, with ``nominal``,
    ``coverage``, ``expected_low`` and ``expected_high`` (the range a calibrated forecast
    would show on these points, :func:`bayescale.replicates.coverage_range`) and ``n``.
    ``scores``: one row per bin with ``n``, mean ``crps``, mean interval scores and
    ``pit_mean``. ``dropped``: early-transient points left out.
    """

    points: pd.DataFrame
    coverage: pd.DataFrame
    scores: pd.DataFrame
    levels: tuple[float, ...]
    dropped: int

    def coverage_table(self) -> pd.DataFrame:
        """Coverage with one row per bin (``all`` first) and one column per nominal level."""
        return self._wide(self.coverage["coverage"])

    def expected_table(self) -> pd.DataFrame:
        """The range of coverage a calibrated forecast would show on these points
        (``low-high``), laid out as :meth:`coverage_table`."""
        return self._wide(pd.Series([format_range(lo, hi) for lo, hi in
                                     zip(self.coverage["expected_low"], self.coverage["expected_high"])],
                                    index=self.coverage.index))

    def verdicts(self, bin: str = "all") -> list[str]:
        """One sentence per level on ``bin``'s coverage against the range a calibrated
        forecast would show on the same points: inside it, or above (intervals wider than
        the realized errors) or below it (narrower)."""
        lines = []
        for _, row in self.coverage[self.coverage["bin"] == bin].iterrows():
            low, high, coverage = row["expected_low"], row["expected_high"], row["coverage"]
            where, meaning = (("inside", "") if low <= coverage <= high else
                              ("above", ": the intervals are wider than these runs' errors") if coverage > high else
                              ("below", ": the intervals are narrower than these runs' errors"))
            lines.append(f"{row['nominal']:.0%} intervals: coverage {coverage:.2f} lies {where} the range of a "
                         f"calibrated forecast ({format_range(low, high)}){meaning}")
        return lines

    def _wide(self, values: pd.Series) -> pd.DataFrame:
        wide = self.coverage.assign(value=values).pivot(index="bin", columns="nominal", values="value")
        wide = wide.loc[self.coverage["bin"].unique()].reset_index()
        wide.columns = ["N / largest fitted N", *(f"{level:.0%}" for level in wide.columns[1:])]
        return wide

    def pit_histogram(self, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Counts and edges of the PIT values in ``bins`` equal bins on [0, 1]."""
        return np.histogram(self.points["pit"].to_numpy(), bins=bins, range=(0.0, 1.0))


def _point_scores(draws: np.ndarray, y: np.ndarray, levels: Sequence[float]) -> dict[str, np.ndarray]:
    bands = quantile_bands(draws, levels)
    out = {"median": bands[levels[0]][0], "pit": pit(draws, y), "crps": crps_sample(draws, y)}
    for level, (_, lower, upper) in bands.items():
        p = level_percent(level)
        out[f"lower_{p}"], out[f"upper_{p}"] = lower, upper
        out[f"covered_{p}"] = (lower <= y) & (y <= upper)
        out[f"interval_score_{p}"] = interval_score(lower, upper, y, level)
    return out


def _summaries(points: pd.DataFrame, levels: Sequence[float],
               replicates: Iterable[np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts = [("all", points)] + [(str(b), part) for b, part in points.groupby("bin", observed=True)]
    intervals = {(name, level): (points.index.get_indexer(part.index), part[f"lower_{level_percent(level)}"].to_numpy(),
                                 part[f"upper_{level_percent(level)}"].to_numpy())
                 for name, part in parts for level in levels}
    fractions = replicate_fractions(replicates, intervals)
    coverage, scores = [], []
    for name, part in parts:
        n = len(part)
        for level in levels:
            low, high = fraction_range(fractions[name, level])
            coverage.append({"bin": name, "nominal": level,
                             "coverage": float(part[f"covered_{level_percent(level)}"].mean()),
                             "expected_low": float(low), "expected_high": float(high), "n": n})
        scores.append({"bin": name, "n": n, "crps": float(part["crps"].mean()),
                       **{f"interval_score_{level_percent(lv)}": float(part[f"interval_score_{level_percent(lv)}"].mean())
                          for lv in levels},
                       "pit_mean": float(part["pit"].mean())})
    return pd.DataFrame(coverage), pd.DataFrame(scores)


def _counted(batches: Iterable[np.ndarray], bar: tqdm) -> Iterator[np.ndarray]:
    """``batches`` as they come, advancing ``bar`` after each."""
    for batch in batches:
        yield batch
        bar.update()


def calibrate(
    posterior: Posterior,
    runs: pd.DataFrame,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    seed: int = 0,
    scale_check: bool = True,
    replicates: int = REPLICATES,
    progress: bool = False,
) -> Calibration:
    """Score the new-run predictive distribution against realized runs.

    ``runs`` is a validated run table (:func:`bayescale.runs.load_runs`); ``replicates``
    joint replicates of its points give the range of coverage to expect. ``progress``
    shows a bar over the pieces the table is scored in (module docstring, "Memory"). Raises
    ``ValueError`` on the input checks of the module docstring (``scale_check=False``
    turns off the loss-scale check, for forecasts known to be far off).
    """
    levels = tuple(sorted(levels))
    settings = posterior.meta.settings
    keep = transient_mask(runs, settings.get("min_step_fraction", 0.0), settings.get("min_step", 0.0))
    if not keep.any():
        raise ValueError("every realized point lies in the early transient the fit drops; give longer runs")
    # each realized point is predicted under its own run's schedule, read from the whole run
    features = table_features(runs).loc[keep].reset_index(drop=True) if posterior.law.covariates else None
    covariates = None if features is None else {k: features[k].to_numpy(float) for k in posterior.law.covariates}
    table = runs.loc[keep].reset_index(drop=True)
    groups = match_groups(posterior, table)
    check_vocabulary(posterior, table)
    check_ranges(posterior, table)
    y = table["loss"].to_numpy(float)
    # in pieces, so that memory stays flat as the table grows; each piece draws its own law
    # error and new-run offset, which leaves every point's marginal distribution as it is
    pieces = [(g, piece, rows) for g in pd.unique(groups)
              for piece, rows in enumerate(row_chunks(np.flatnonzero(groups == g), posterior.n_draws))]
    batches = len(replicate_split(posterior, replicates, len(table)))
    bar = tqdm(total=len(pieces) + batches, desc="calibrate", unit="piece", disable=not progress)
    columns: dict[str, np.ndarray] = {}
    for g, piece, rows in pieces:
        part = table.iloc[rows]
        draws = loss_draws(posterior, part["params"].to_numpy(float), part["batch_tokens"].to_numpy(float),
                           part["step"].to_numpy(float), mode="new_run", group=str(g), seed=seed + piece,
                           covariates=None if covariates is None else {k: v[rows] for k, v in covariates.items()})
        for name, values in _point_scores(draws, y[rows], levels).items():
            columns.setdefault(name, np.empty(len(table), dtype=values.dtype))[rows] = values
        bar.update()
    if scale_check:
        check_scale(y, columns["median"], loss_units(posterior.meta))
    ratio = table["params"].to_numpy(float) / posterior.meta.ranges["params"][1]
    points = pd.DataFrame({"run": table["run"], "group": groups, "params": table["params"],
                           "batch_tokens": table["batch_tokens"], "step": table["step"], "loss": y,
                           **columns, "ratio": ratio, "bin": distance_bin(ratio)})
    joint = replicate_batches(posterior, table, groups, covariates, replicates=replicates, seed=seed)
    coverage, scores = _summaries(points, levels, _counted(joint, bar))
    bar.close()
    return Calibration(points=points, coverage=coverage, scores=scores, levels=levels, dropped=int((~keep).sum()))
