"""Synthetic runs drawn from known constants, for tests, benchmarks and checks.

:func:`simulate_runs` draws Kaplan/Su curves, :func:`simulate_chinchilla_runs` final
losses of the Chinchilla law. Each curve follows
:func:`bayescale.models.kaplan.trajectory` with multiplicative noise on the
loss: a per-run offset ``Normal(0, run_sd)`` (seed noise) and AR(1) residuals along
the curve with lag-1 correlation ``rho`` and marginal standard deviation ``noise``,
all on log loss, which mimics how real evaluation curves wander around a fitted law.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayescale.cores import expose_cpu_cores
from bayescale.models.chinchilla import ChinchillaConstants, chinchilla_log_loss
from bayescale.models.kaplan import KaplanConstants, trajectory


#: Constants that give byte-level-like curves (losses of about 1-3 nats) for 1e4-1e6
#: parameters, 1e2-1e4 steps and batches of 2^8-2^13 tokens; the critical batch at the
#: losses reached spans the batches.
EXAMPLE_CONSTANTS = KaplanConstants.from_paper(
    N_c=1.0e6, alpha_N=0.2, S_c=180.0, alpha_S=0.7, B_star=1.4e4, alpha_B=0.3
)


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
) -> pd.DataFrame:
    """A run table with one run per (size, batch, seed) in the schema of :mod:`bayescale.runs`.

    Where this is the process's first JAX computation, it first exposes the CPU cores
    (:func:`bayescale.cores.expose_cpu_cores`), so that a fit of the table that follows
    can still run its chains in parallel.
    """
    expose_cpu_cores()
    rng = np.random.default_rng(seed)
    steps = log_spaced_steps(final_step, points)
    rows = []
    for N in sizes:
        for B in batches:
            for s in range(seeds):
                mean = np.asarray(trajectory(constants, float(N), float(B), steps.astype(np.float32)),
                                  dtype=float)
                eps = np.empty(len(steps))
                eps[0] = rng.normal(0.0, noise)
                innovation = noise * np.sqrt(1.0 - rho**2)
                for i in range(1, len(steps)):
                    eps[i] = rho * eps[i - 1] + rng.normal(0.0, innovation)
                loss = mean * np.exp(eps + rng.normal(0.0, run_sd))
                run = f"N{N:.3g}-B{B:g}-s{s}" + (f"-{split}" if split else "")
                rows.append(pd.DataFrame({
                    "run": run, "params": float(N), "batch_tokens": float(B), "step": steps.astype(float),
                    "loss": loss, "tokens": float(B) * steps, "seed": s,
                    **({"split": split} if split else {}),
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
