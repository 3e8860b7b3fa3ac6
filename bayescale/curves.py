"""Turn a validated run table into the arrays the NumPyro models observe.

Two choices live here because they decide what the likelihood sees:

* **Early transient.** The power law in steps does not hold during warmup and the
  first steps after it. A point is kept when ``step >= max(2 * warmup_steps,
  min_step_fraction * final_step_of_its_run, min_step)``; the default fraction 0.1
  drops the first tenth of every curve. A run's only point (a published final loss,
  taken after the whole schedule) is always kept. Dropped points are counted and
  reported.
* **Correlated checkpoints.** Consecutive evaluations of one run share the same weights
  history, so their residuals are correlated (lag-1 correlation about 0.9 on real
  curves). Every point records the index of the previous kept point of the same run and
  group, which the models use for AR(1) residuals. The lag is counted in checkpoints,
  so checkpoints should be evenly spaced in log-steps, the law's own axis, as
  bayescale's trainer logs them. Curves logged every k steps (most trainers and W&B
  exports) put nearly all their points at the end of the run in log-steps; there the
  fitted AR(1) correlation went to 1, which lets a run's level float: fitted jointly,
  three sizes of public curves (187 points per run, one every 128 steps) were then
  predicted 1.25% off on unseen schedules, against 0.33% with 32 log-spaced points per
  run (benchmarks/RESULTS.md, schedules, "same sizes, one fit"). So a curve with more
  than ``max_points`` kept points (default :data:`~bayescale.defaults.DEFAULT_MAX_POINTS`)
  keeps those nearest to ``max_points`` steps evenly spaced in log-steps between its
  first and last kept step (:func:`thin_curves`); the thinned points are counted and
  reported with the early transient.

Reference values used to re-centre the parameters (docs/model.md) are computed
here from the kept points: ``N_ref`` the geometric mean of the distinct sizes,
``S_ref`` the geometric mean of the kept steps and ``L_ref`` the median kept loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayescale.defaults import DEFAULT_MAX_POINTS, DEFAULT_MIN_STEP_FRACTION


class IdentifiabilityWarning(UserWarning):
    """The data cannot pin down a constant, so its prior decides it."""


@dataclass(frozen=True)
class CurveData:
    """Arrays of kept evaluation points plus the names and references behind them."""

    log_N: np.ndarray
    log_B: np.ndarray
    log_S: np.ndarray
    log_loss: np.ndarray
    run_idx: np.ndarray
    group_idx: np.ndarray
    size_idx: np.ndarray
    prev_idx: np.ndarray
    has_prev: np.ndarray
    runs: list[str]
    groups: list[str]
    sizes: list[float]
    group_by: str | None
    references: dict[str, float]
    ranges: dict[str, list[float]]
    dropped: dict[str, int] = field(default_factory=dict)
    #: per-point covariates besides N, B and S that a law declares (``Law.covariates``), by name
    covariates: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        return int(self.log_loss.shape[0])

    @property
    def n_groups(self) -> int:
        return len(self.groups)


def default_group_column(table: pd.DataFrame) -> str | None:
    """``split`` when the table has several splits, else ``group`` when present, else none."""
    for col in ("split", "group"):
        if col in table.columns and table[col].nunique() > 1:
            return col
    return None


def transient_mask(
    table: pd.DataFrame, min_step_fraction: float = DEFAULT_MIN_STEP_FRACTION, min_step: float = 0.0,
    final_step: float | None = None,
) -> np.ndarray:
    """True for points past the early transient, and for the only point of a run (see the
    module docstring). ``final_step`` is the runs' planned last step where they are still
    training (a live run's: the transient is a share of the whole run, not of the part
    logged so far); by default each run's last logged step."""
    if not 0.0 <= min_step_fraction < 1.0:
        raise ValueError(f"min_step_fraction={min_step_fraction} must be in [0, 1)")
    by_run = table.groupby("run")["step"]
    final = by_run.transform("max").to_numpy() if final_step is None else np.full(len(table), float(final_step))
    threshold = np.maximum(min_step_fraction * final, min_step)
    if "warmup_steps" in table.columns:
        threshold = np.maximum(threshold, 2.0 * table["warmup_steps"].fillna(0.0).to_numpy())
    return (table["step"].to_numpy() >= threshold) | (by_run.transform("size").to_numpy() == 1)


def check_max_points(max_points: int | None) -> None:
    """``ValueError`` unless ``max_points`` is ``None`` (keep every point) or an integer >= 2."""
    if max_points is not None and (isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer))
                                   or max_points < 2):
        raise ValueError(f"max_points={max_points!r} must be an integer >= 2 (points per curve), or None to fit "
                         "every point (--max-points 0)")


def thin_curves(steps: np.ndarray, curve: np.ndarray, max_points: int | None) -> np.ndarray:
    """True for the points to keep: in every curve (points sharing a ``curve`` label, sorted
    by step within it) with more than ``max_points`` points, the points nearest (in
    log-steps) to ``max_points`` steps evenly spaced in log-steps from its first to its last
    point, which are always kept; every point of shorter curves (module docstring)."""
    keep = np.ones(len(steps), bool)
    if max_points is None:
        return keep
    log_s = np.log(np.asarray(steps, float))
    for idx in pd.Series(np.arange(len(steps))).groupby(np.asarray(curve)).indices.values():
        if len(idx) <= max_points:
            continue
        u = log_s[idx]
        grid = np.linspace(u[0], u[-1], max_points)
        nearest = np.clip(np.searchsorted(u, grid), 1, len(u) - 1)
        nearest -= (grid - u[nearest - 1]) < (u[nearest] - grid)
        keep[idx] = False
        keep[idx[np.unique(nearest)]] = True
    return keep


def prepare_curves(
    table: pd.DataFrame,
    group_by: str | None = "auto",
    min_step_fraction: float = DEFAULT_MIN_STEP_FRACTION,
    min_step: float = 0.0,
    covariate_columns: tuple[str, ...] = (),
    max_points: int | None = DEFAULT_MAX_POINTS,
) -> CurveData:
    """Select the points to fit and build index arrays for runs, groups, sizes and AR(1).

    ``group_by="auto"`` uses :func:`default_group_column`; ``None`` fits one group.
    ``covariate_columns`` are columns of ``table`` carried to ``CurveData.covariates``
    (a law's per-point covariates, computed on the whole table before the cut).
    ``max_points`` thins longer curves (:func:`thin_curves`; ``None`` keeps every point).
    """
    check_max_points(max_points)
    if group_by == "auto":
        group_by = default_group_column(table)
    if group_by is not None and group_by not in table.columns:
        raise ValueError(f"--group-by column '{group_by}' is not in the run table (columns: {', '.join(table.columns)})")
    if group_by is not None and table[group_by].isna().any():
        first = table.loc[table[group_by].isna()].iloc[0]
        raise ValueError(f"--group-by column '{group_by}' is blank in {int(table[group_by].isna().sum())} row(s) "
                         f"(first: run '{first['run']}', step {first['step']:g}); fill them in or remove those rows")
    keep = transient_mask(table, min_step_fraction, min_step)
    df = table.loc[keep].copy()
    dropped = {"early_transient": int((~keep).sum())}
    if df.empty:
        raise ValueError("no points are left after the early-transient cut; lower min_step_fraction or min_step")
    group_col = df[group_by].astype(str) if group_by else pd.Series("all", index=df.index)
    df["_group"] = group_col
    df = df.sort_values(["run", "_group", "step"]).reset_index(drop=True)
    thinned = thin_curves(df["step"].to_numpy(float), df.groupby(["run", "_group"]).ngroup().to_numpy(), max_points)
    if not thinned.all():
        dropped["thinned_to_max_points"] = int((~thinned).sum())
        df = df.loc[thinned].reset_index(drop=True)

    groups = sorted(df["_group"].unique())
    runs = sorted(df["run"].unique())
    sizes = sorted(df["params"].unique())
    same_curve = (df["run"].to_numpy()[1:] == df["run"].to_numpy()[:-1]) & (
        df["_group"].to_numpy()[1:] == df["_group"].to_numpy()[:-1]
    )
    has_prev = np.concatenate([[False], same_curve])
    prev_idx = np.where(has_prev, np.arange(len(df)) - 1, 0)

    log_N = np.log(df["params"].to_numpy(float))
    log_S = np.log(df["step"].to_numpy(float))
    log_B = np.log(df["batch_tokens"].to_numpy(float))
    loss = df["loss"].to_numpy(float)
    references = {
        "log_N_ref": float(np.mean(np.log(sizes))),
        "log_S_ref": float(np.mean(log_S)),
        "log_L_ref": float(np.log(np.median(loss))),
        "log_B_mean": float(np.mean(np.log(sorted(df["batch_tokens"].unique())))),
        "log_L_min": float(np.log(loss.min())),
    }
    ranges = {
        "params": [float(min(sizes)), float(max(sizes))],
        "step": [float(df["step"].min()), float(df["step"].max())],
        "batch_tokens": [float(df["batch_tokens"].min()), float(df["batch_tokens"].max())],
    }
    data = CurveData(
        log_N=log_N.astype(np.float32),
        log_B=log_B.astype(np.float32),
        log_S=log_S.astype(np.float32),
        log_loss=np.log(loss).astype(np.float32),
        run_idx=pd.Categorical(df["run"], categories=runs).codes.astype(np.int32),
        group_idx=pd.Categorical(df["_group"], categories=groups).codes.astype(np.int32),
        size_idx=pd.Categorical(df["params"], categories=sizes).codes.astype(np.int32),
        prev_idx=prev_idx.astype(np.int32),
        has_prev=has_prev,
        runs=list(runs),
        groups=list(groups),
        sizes=[float(s) for s in sizes],
        group_by=group_by,
        references=references,
        ranges=ranges,
        dropped=dropped,
        covariates={name: df[name].to_numpy(np.float32) for name in covariate_columns},
    )
    return data

