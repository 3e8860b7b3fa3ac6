r"""Learning-rate schedules and the two numbers a schedule-aware law reads from them.

A schedule is the learning rate of every optimizer step, ``eta_t`` for ``t = 1..T``
(the rate in effect while step ``t`` is taken, as trainers and W&B log it). Two
per-step features summarise what the schedule did to the loss (docs/model.md):

* **LR area** ``A(t) = sum_{tau <= t} r_tau`` in units of peak-rate steps, with
  ``r = eta / eta_peak`` after the peak and ``r = 1`` before it (warm-up steps count as
  full steps, as Kaplan's step count does). A constant schedule gives ``A(t) = t``, so
  the law reduces exactly to the constant-LR one; a decaying schedule makes less
  progress per step.
* **Annealing** ``Phi(t)``: the decreases of ``r``, passed through a momentum with memory
  ``lambda`` (Tissue et al. 2024, arXiv:2408.11029, eq. 4),

  .. math::

      m_t = \lambda m_{t-1} + (r_{t-1} - r_t), \qquad
      \Phi(t) = (1 - \lambda) \sum_{\tau \le t} m_\tau .

  A drop ``Delta`` at step ``k`` contributes ``Delta (1 - lambda^(t-k+1))`` to
  ``Phi(t)``: its benefit arrives over about ``1/(1-lambda)`` steps and saturates at
  ``Delta``; a schedule that never decays has ``Phi = 0``, one that decays to zero ends
  near 1.

Both are prefix sums over the steps, computed once per run with NumPy (and
``scipy.signal.lfilter`` for the momentum), never in a Python loop per point, so the
likelihood stays linear in the points.

Schedules come from a run table's ``learning_rate`` column (the rate at each logged
step, interpolated linearly between rows), from a specification
(:class:`Schedule`: ``constant``, ``cosine``, ``wsd`` or ``linear`` with warm-up,
final-rate fraction and decay fraction, the same formulas as the trainer), or from a
file of ``step,learning_rate`` rows (:meth:`Schedule.from_file`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from bayescale.defaults import SCHEDULE_KINDS as KINDS
#: Memory ``lambda`` of the annealing momentum, per step (Tissue et al. 2024 use 0.999).
ANNEAL_MEMORY = 0.999
#: Defaults of a specification, as the trainer uses them.
DEFAULT_FINAL_LR_FRACTION = 0.1
DEFAULT_DECAY_FRACTION = 0.2
#: Names of the features, as the schedule-aware laws declare them (``Law.covariates``).
FEATURES = ("log_lr_area", "lr_anneal")
#: Longest schedule expanded step by step (float64 arrays of this length per run); longer
#: ones are sampled with a stride (:func:`features_at`).
MAX_SAMPLES = 2_000_000


class ScheduleWarning(UserWarning):
    """A run's schedule was assumed (constant after warm-up) because the table did not give it."""


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: a shape stretched to a run's planned length, or explicit rates.

    ``kind`` is one of :data:`KINDS` or ``"file"``. With peak rate 1, warm-up ``W``,
    planned steps ``T``, final fraction ``f`` and (0-based) step ``s``:

    * warm-up (every shape): ``(s + 1) / W`` for ``s < W``;
    * ``constant``: 1;
    * ``cosine``: ``f + (1 - f)(1 + cos(pi p))/2``, ``p = (s - W)/(T - 1 - W)``;
    * ``linear``: ``1 - (1 - f) p``;
    * ``wsd``: 1 until ``D = T - round(decay_fraction T)``, then
      ``1 - (1 - f)(s - D + 1)/(T - D)`` (warm-up, stable, linear decay).

    ``steps``/``rates`` hold an explicit schedule (:meth:`from_file`, a run table's
    ``learning_rate``), interpolated linearly between the given steps.
    """

    kind: str = "constant"
    warmup_steps: int = 0
    final_lr_fraction: float = DEFAULT_FINAL_LR_FRACTION
    decay_fraction: float = DEFAULT_DECAY_FRACTION
    steps: np.ndarray | None = field(default=None, repr=False, compare=False)
    rates: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in (*KINDS, "file"):
            raise ValueError(f"unknown schedule '{self.kind}'; choose one of {', '.join(KINDS)}")
        if not (isinstance(self.warmup_steps, (int, np.integer)) and self.warmup_steps >= 0):
            raise ValueError(f"warmup_steps={self.warmup_steps} must be a whole number >= 0")
        if not 0.0 <= self.final_lr_fraction <= 1.0:
            raise ValueError(f"final_lr_fraction={self.final_lr_fraction} must be in [0, 1] (final rate / peak rate)")
        if not 0.0 < self.decay_fraction <= 1.0:
            raise ValueError(f"decay_fraction={self.decay_fraction} must be in (0, 1] (share of the steps in the "
                             "WSD decay)")
        if self.kind == "file":
            steps, rates = np.asarray(self.steps, float), np.asarray(self.rates, float)
            if steps.ndim != 1 or steps.shape != rates.shape or len(steps) == 0:
                raise ValueError("an explicit schedule needs one learning rate per step")
            if np.any(np.diff(steps) <= 0):
                raise ValueError("the schedule's steps must increase strictly")
            if steps[0] < 1 or not np.all(np.isfinite(rates)) or np.any(rates < 0) or rates.max() <= 0:
                raise ValueError("the schedule needs steps >= 1 and finite learning rates >= 0, not all zero")

    @classmethod
    def from_rates(cls, steps, rates) -> "Schedule":
        """An explicit schedule: ``rates[i]`` in effect at step ``steps[i]`` (any units)."""
        return cls(kind="file", steps=np.asarray(steps, float), rates=np.asarray(rates, float))

    @classmethod
    def from_file(cls, path: str | Path) -> "Schedule":
        """Read a CSV of ``step,learning_rate`` rows (a ``lr`` column is accepted too)."""
        try:
            table = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise ValueError(f"cannot read the schedule file {path}: {err}") from None
        rate = "learning_rate" if "learning_rate" in table.columns else "lr" if "lr" in table.columns else None
        if "step" not in table.columns or rate is None:
            raise ValueError(f"{path}: a schedule file needs the columns step,learning_rate "
                             f"(it has {', '.join(map(str, table.columns))})")
        try:
            return cls.from_rates(table["step"].to_numpy(float), table[rate].to_numpy(float))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    @property
    def last_step(self) -> float | None:
        """The last step an explicit schedule gives (``None`` for a shape, which stretches to any length)."""
        return None if self.steps is None else float(self.steps[-1])

    def relative_rates(self, total_steps: int, stride: int = 1) -> np.ndarray:
        """Rates as a fraction of the peak of steps ``stride, 2 stride, ...`` up to ``total_steps``
        (every step by default), for a run planned to end at ``total_steps``."""
        total = int(total_steps)
        if total < 1:
            raise ValueError(f"total_steps={total_steps} must be at least 1")
        s = np.arange(stride, total + 1, stride, dtype=float) - 1.0  # 0-based optimizer steps
        if self.kind == "file":
            if total > self.last_step:
                raise ValueError(f"the schedule ends at step {self.last_step:g}, before step {total}; give the "
                                 "learning rate up to the last step forecast")
            return np.interp(s + 1.0, self.steps, self.rates) / self.rates.max()
        W, f = self.warmup_steps, self.final_lr_fraction
        if self.kind == "constant":
            r = np.ones_like(s)
        elif self.kind in ("cosine", "linear"):
            span = total - 1 - W
            p = np.ones_like(s) if span <= 0 else np.clip((s - W) / span, 0.0, 1.0)
            r = f + (1 - f) * 0.5 * (1 + np.cos(math.pi * p)) if self.kind == "cosine" else 1 - (1 - f) * p
        else:  # wsd
            start = max(W, total - round(self.decay_fraction * total))
            r = np.where(s < start, 1.0, 1 - (1 - f) * np.clip((s - start + 1) / max(total - start, 1), 0.0, 1.0))
        if W > 0:
            r = np.where(s < W, (s + 1) / W, r)
        return r

    def describe(self) -> str:
        """One line, for forecasts and reports."""
        if self.kind == "file":
            return f"explicit schedule to step {self.last_step:g}"
        parts = [self.kind]
        if self.warmup_steps:
            parts.append(f"warm-up {self.warmup_steps}")
        if self.kind != "constant":
            parts.append(f"final lr {self.final_lr_fraction:g} x peak")
        if self.kind == "wsd":
            parts.append(f"decay over the last {self.decay_fraction:g}")
        return ", ".join(parts)


CONSTANT = Schedule()


def lr_features(relative_rates: np.ndarray, memory: float = ANNEAL_MEMORY,
                stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """LR area ``A(t)`` and annealing ``Phi(t)`` after each step ``t = 1..T`` (module docstring).

    ``relative_rates[t-1]`` is the rate of step ``t`` (any positive scale; divided by its
    peak here). With ``stride = k > 1`` the rates are those of every ``k``-th step and
    each stands for its ``k`` steps: the area sums ``k r``, and the momentum decays by
    ``lambda^k`` per sample, so that ``Phi`` gains ``(1 - lambda^k) m`` per sample (the
    exact sum when the rate changes only at the samples).
    """
    r = np.asarray(relative_rates, float)
    r = r / r.max()
    peak = int(np.argmax(r))
    r[:peak] = 1.0  # warm-up steps count as full steps
    area = stride * np.cumsum(r)
    drops = np.concatenate([[0.0], r[:-1] - r[1:]])
    decay = memory**stride
    momentum = lfilter([1.0], [1.0, -decay], drops)
    anneal = (1.0 - decay) * np.cumsum(momentum)
    return area, anneal


def features_at(schedule: Schedule, steps, total_steps: float | None = None,
                max_samples: int = MAX_SAMPLES) -> dict[str, np.ndarray]:
    """The features (:data:`FEATURES`) at ``steps`` of a run that follows ``schedule``, planned
    to end at ``total_steps`` (default: the largest of ``steps``).

    The schedule is expanded step by step up to ``max_samples`` steps; a longer run is
    sampled every ``ceil(T / max_samples)`` steps (:func:`lr_features`' ``stride``), and a
    step reads the sample that ends its stride. Non-integer steps are rounded.
    """
    steps = np.asarray(steps, float)
    total = float(np.max(steps)) if total_steps is None else float(total_steps)
    if np.max(steps) > total:
        raise ValueError(f"step {np.max(steps):g} lies beyond the schedule's planned last step {total:g}")
    T = int(math.ceil(total))
    stride = max(1, math.ceil(T / max_samples))
    area, anneal = lr_features(schedule.relative_rates(T, stride), stride=stride)
    idx = np.clip(np.ceil(np.rint(steps) / stride).astype(np.int64), 1, len(area)) - 1
    return {"log_lr_area": np.log(area[idx]), "lr_anneal": anneal[idx]}


def final_features(schedule: Schedule, total_steps, max_samples: int = 20_000) -> dict[str, np.ndarray]:
    """The features at the last step of runs planned to end at each of ``total_steps``
    (a shape stretched to each length; budgets compare runs of many lengths)."""
    totals = np.atleast_1d(np.asarray(total_steps, float))
    out = {name: np.empty(totals.shape) for name in FEATURES}
    for i, T in enumerate(totals):
        one = features_at(schedule, [T], T, max_samples)
        for name in FEATURES:
            out[name][i] = one[name][0]
    return out


def _spec_of(first: pd.Series, final_step: float) -> tuple[Schedule, float] | None:
    """The schedule a run table's specification columns give for one run, with its planned last step."""
    kind = first.get("schedule")
    if not isinstance(kind, str) or kind not in KINDS:
        return None
    def number(name: str, default: float) -> float:
        value = first.get(name, np.nan)
        return default if pd.isna(value) else float(value)

    schedule = Schedule(kind, warmup_steps=int(number("warmup_steps", 0)),
                        final_lr_fraction=float(number("final_lr_fraction", DEFAULT_FINAL_LR_FRACTION)),
                        decay_fraction=float(number("decay_fraction", DEFAULT_DECAY_FRACTION)))
    return schedule, max(final_step, float(number("total_steps", final_step)))


def table_features(table: pd.DataFrame) -> pd.DataFrame:
    """Per-row features (:data:`FEATURES`) of a run table, from each run's own schedule.

    In order of preference, per run: its ``learning_rate`` column (the rate at each
    logged step, linear between rows, held before the first); its specification
    (``schedule`` with ``warmup_steps``, ``final_lr_fraction``, ``decay_fraction`` and
    ``total_steps``, the planned last step, defaulting to the run's last row); else
    constant after warm-up, with a :class:`ScheduleWarning` naming the runs. Returns a
    frame with the table's index and one column per feature.
    """
    out = pd.DataFrame(index=table.index, columns=list(FEATURES), dtype=float)
    assumed = []
    has_rates = "learning_rate" in table.columns
    for run, rows in table.groupby("run", sort=False):
        steps = rows["step"].to_numpy(float)
        final = float(steps.max())
        if has_rates and rows["learning_rate"].notna().all():
            # several rows per step (one per evaluation split) carry the same rate
            per_step = rows.groupby("step")["learning_rate"].first()
            schedule, total = Schedule.from_rates(per_step.index.to_numpy(float), per_step.to_numpy(float)), final
        else:
            spec = _spec_of(rows.iloc[0], final)
            if spec is None:
                assumed.append(str(run))
                spec = (Schedule("constant"), final)
            schedule, total = spec
        feats = features_at(schedule, steps, total)
        for name in FEATURES:
            out.loc[rows.index, name] = feats[name]
    if assumed:
        shown = ", ".join(assumed[:3]) + (f" and {len(assumed) - 3} more" if len(assumed) > 3 else "")
        warnings.warn(f"{len(assumed)} run(s) have neither a learning_rate column nor a schedule "
                      f"(constant|cosine|wsd|linear): {shown}; assumed constant after warm-up", ScheduleWarning,
                      stacklevel=2)
    return out
