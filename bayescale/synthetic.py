"""Synthetic runs drawn from known constants, for tests, benchmarks and checks.

:func:`simulate_runs` draws Kaplan/Su curves, :func:`simulate_chinchilla_runs` final
losses of the Chinchilla law. Each curve follows
:func:`bayescale.models.kaplan.trajectory` with multiplicative noise on the
loss: a per-run offset ``Normal(0, run_sd)`` (seed noise) and AR(1) residuals along
the curve with lag-1 correlation ``rho`` and marginal standard deviation ``noise``,
all on log loss, which mimics how real evaluation curves wander around a fitted law.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayescale.cores import expose_cpu_cores
from bayescale.models.chinchilla import ChinchillaConstants, chinchilla_log_loss
from bayescale.models.kaplan import KaplanConstants, trajectory
from bayescale.models.law import Covariates
from bayescale.models.schedule import KAPLAN_SCHEDULE, ScheduleConstants
from bayescale.schedules import Schedule, features_at


#: Constants that give byte-level-like curves (losses of about 1-3 nats) for 1e4-1e6
#: parameters, 1e2-1e4 steps and batches of 2^8-2^13 tokens; the critical batch at the
#: losses reached spans the batches.
EXAMPLE_CONSTANTS = KaplanConstants.from_paper(
    N_c=1.0e6, alpha_N=0.2, S_c=180.0, alpha_S=0.7, B_star=1.4e4, alpha_B=0.3
)
#: :data:`EXAMPLE_CONSTANTS` with an annealing gain of 0.15 on log loss at 1e5 parameters,
#: falling as N^(-0.1), for the schedule-aware law (a cosine decay to a tenth then ends
#: a few percent below a constant rate, as on real curves).
EXAMPLE_SCHEDULE_CONSTANTS = ScheduleConstants(*EXAMPLE_CONSTANTS, log_D_ref=float(np.log(0.15)), gamma_D=0.1,
                                               log_N_ref=float(np.log(1e5)))


def mean_curve(constants: KaplanConstants | ScheduleConstants, N: float, B: float, steps: np.ndarray,
               schedule: Schedule | None = None) -> np.ndarray:
    """The law's loss at ``steps`` of one run; a schedule other than constant needs
    :class:`~bayescale.models.schedule.ScheduleConstants`."""
    steps32 = steps.astype(np.float32)
    if isinstance(constants, ScheduleConstants):
        feats = features_at(schedule or Schedule(), steps)
        x = Covariates(np.log(np.float32(N)), np.log(np.float32(B)), np.log(steps32),
                       {k: v.astype(np.float32) for k, v in feats.items()})
        return np.exp(np.asarray(KAPLAN_SCHEDULE.mean_log_loss(constants, x), float))
    if schedule is not None and schedule.kind != "constant":
        raise ValueError("Kaplan constants describe a constant learning rate; give ScheduleConstants for "
                         f"a {schedule.kind} schedule")
    return np.asarray(trajectory(constants, float(N), float(B), steps32), dtype=float)


def log_spaced_steps(final_step: int, points: int, first: int = 1) -> np.ndarray:
    """About ``points`` distinct integer steps from ``first`` to ``final_step``, log-spaced."""
    steps = np.unique(np.round(np.geomspace(first, final_step, points)).astype(int))
    return steps[steps > 0]


def simulate_runs(
    constants: KaplanConstants,
    sizes: Sequence[float],
    batches: Sequence[float],
    final_step: int = 3000,
    points: int = 40,
    noise: float = 0.003,
    rho: float = 0.5,
    run_sd: float = 0.002,
    seeds: int = 1,
    seed: int = 0,
    split: str | None = None,
    schedules: Mapping[str, Schedule] | None = None,
    peak_lr: float = 3e-3,
) -> pd.DataFrame:
    """A run table with one run per (size, batch, schedule, seed) in the schema of :mod:`bayescale.runs`.

    ``schedules`` (name -> :class:`~bayescale.schedules.Schedule`, each planned to end at
    ``final_step``) adds the columns ``schedule`` and ``learning_rate`` (``peak_lr``
    times the schedule's relative rate at each step); without it every run is constant.

    Where this is the process's first JAX computation, it first exposes the CPU cores
    (:func:`bayescale.cores.expose_cpu_cores`), so that a fit of the table that follows
    can still run its chains in parallel.
    """
    expose_cpu_cores()
    rng = np.random.default_rng(seed)
    steps = log_spaced_steps(final_step, points)
    rows = []
    named = dict(schedules) if schedules else {None: None}
    for N in sizes:
        for B in batches:
            for name, schedule in named.items():
                mean = mean_curve(constants, float(N), float(B), steps, schedule)
                for s in range(seeds):
                    eps = np.empty(len(steps))
                    eps[0] = rng.normal(0.0, noise)
                    innovation = noise * np.sqrt(1.0 - rho**2)
                    for i in range(1, len(steps)):
                        eps[i] = rho * eps[i - 1] + rng.normal(0.0, innovation)
                    loss = mean * np.exp(eps + rng.normal(0.0, run_sd))
                    run = f"N{N:.3g}-B{B:g}" + (f"-{name}" if name else "") + f"-s{s}" + (f"-{split}" if split else "")
                    extra = {} if schedule is None else {
                        "schedule": schedule.kind,
                        "learning_rate": peak_lr * schedule.relative_rates(final_step)[steps - 1]}
                    rows.append(pd.DataFrame({
                        "run": run, "params": float(N), "batch_tokens": float(B), "step": steps.astype(float),
                        "loss": loss, "tokens": float(B) * steps, "seed": s,
                        **({"split": split} if split else {}), **extra,
                    }))
    return pd.concat(rows, ignore_index=True)


def simulate_chinchilla_runs(
    constants: ChinchillaConstants,
    sizes: Sequence[float],
    tokens_per_param: Sequence[float],
    batch_tokens: float = 2.0**19,
    noise: float = 0.005,
    seed: int = 0,
    group: str | None = None,
) -> pd.DataFrame:
    """Final losses from known constants: one run per (size, tokens-per-parameter ratio).

    ``loss = L(N, D) exp(eps)`` with ``eps ~ Normal(0, noise)`` and ``D = ratio * N``;
    ``step = D / batch_tokens`` (fractional, as in published tables). With ``group`` the
    table gets a ``group`` column and the run ids carry the group's name. Like
    :func:`simulate_runs`, it first exposes the CPU cores where this
    is the process's first JAX computation.
    """
    expose_cpu_cores()
    rng = np.random.default_rng(seed)
    N, ratio = (a.ravel() for a in np.meshgrid(np.asarray(sizes, float), np.asarray(tokens_per_param, float)))
    D = N * ratio
    mean = np.exp(np.asarray(chinchilla_log_loss(constants, np.log(N), np.log(D)), float))
    prefix = f"{group}-" if group else ""
    table = pd.DataFrame({
        "run": [f"{prefix}N{n:.3g}-D{d:.3g}" for n, d in zip(N, D)],
        "params": N, "batch_tokens": batch_tokens, "step": D / batch_tokens, "tokens": D,
        "loss": mean * np.exp(rng.normal(0.0, noise, N.shape)),
    })
    if group:
        table["group"] = group
    return table
