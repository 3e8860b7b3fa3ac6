r"""The common practice for Chinchilla fits: Huber loss, L-BFGS from a grid, bootstrap intervals.

This is the baseline bayescale is benchmarked against, as done by
Hoffmann et al. (2022, section D.2) and Besiroglu et al. (2024):

.. math::

    \min_{a, b, e, \alpha, \beta} \sum_i \mathrm{Huber}_\delta\big(
        \mathrm{LSE}(a - \alpha \log N_i,\; b - \beta \log D_i,\; e) - \log L_i\big),
    \qquad \delta = 10^{-3},

so ``A = exp(a)``, ``B = exp(b)``, ``E = exp(e)``. Starts: the grid of Hoffmann et al.,
``alpha, beta in {0, 0.5, ..., 2}``, ``e in {-1, -0.5, ..., 1}``, ``a, b in {0, 5, ...,
25}`` (4,500 points). Running L-BFGS from every start is what the papers describe; here
the objective is evaluated on the whole grid at once (vectorised) and L-BFGS-B
(``scipy.optimize.minimize``, analytic gradient) runs from the ``starts`` best grid
points, which finds the same optimum at a fraction of the cost.

Intervals: resample whole runs with replacement (every kept point of a drawn run goes
in; for final losses a run is one point), refit each resample from the full-data
optimum and its own ``boot_starts`` best grid points, and take percentiles of the
refitted laws' predictions. These intervals carry parameter uncertainty only; that is
the practice being measured, not a choice of this module.

Points are selected with the early-transient rule of :func:`bayescale.curves.transient_mask`,
so the baseline and bayescale see the same observations.

Speed: the objective and its gradient are a few vectorised NumPy lines (about 20 us for
30 points); on a CPU shared with other processes, L-BFGS-B's small LAPACK calls can
spend 50 times longer waking OpenBLAS threads than computing, so run with
``OPENBLAS_NUM_THREADS=1`` (benchmarks/public_data.py does).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from bayescale.curves import DEFAULT_MIN_STEP_FRACTION, transient_mask

#: Huber threshold on log loss (Hoffmann et al. 2022).
HUBER_DELTA = 1e-3
#: Parameter order of every ``theta`` array.
PARAMETERS = ("a", "b", "e", "alpha", "beta")


def start_grid() -> np.ndarray:
    """The 4,500 starts of Hoffmann et al. (2022) as rows of ``(a, b, e, alpha, beta)``."""
    a = b = np.arange(0.0, 25.0 + 1e-9, 5.0)
    e = np.arange(-1.0, 1.0 + 1e-9, 0.5)
    exponents = np.arange(0.0, 2.0 + 1e-9, 0.5)
    mesh = np.meshgrid(a, b, e, exponents, exponents, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _log_terms(theta: np.ndarray, log_N: np.ndarray, log_D: np.ndarray) -> tuple[np.ndarray, ...]:
    """Size, data and floor log terms and their log-sum-exp; rows of ``theta`` broadcast against points."""
    a, b, e, alpha, beta = (theta[..., k, None] for k in range(5))
    size = a - alpha * log_N
    data = b - beta * log_D
    return size, data, e, np.logaddexp(np.logaddexp(size, data), e)


def predict_log_loss(theta: np.ndarray, log_N: np.ndarray, log_D: np.ndarray) -> np.ndarray:
    """``LSE(a - alpha log N, b - beta log D, e)`` for every row of ``theta`` and every point."""
    return _log_terms(np.asarray(theta, float), np.asarray(log_N, float), np.asarray(log_D, float))[-1]


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """Huber loss: ``r^2 / 2`` for ``|r| <= delta``, ``delta (|r| - delta / 2)`` beyond."""
    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r**2, delta * (ar - 0.5 * delta))


def objective(theta: np.ndarray, log_N: np.ndarray, log_D: np.ndarray, log_L: np.ndarray,
              delta: float = HUBER_DELTA, weights: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Weighted Huber objective of one ``theta`` divided by ``delta^2``, and its gradient.

    The division changes no minimiser; it keeps the objective of order one per point, so
    that L-BFGS-B's relative stopping rule (``ftol``) is not met while the fit is still
    moving. ``weights`` counts how often each point was drawn (bootstrap); default ones.
    """
    size, data, e, lse = _log_terms(theta, log_N, log_D)
    r = lse - log_L
    w = np.ones_like(r) if weights is None else weights
    psi = w * np.clip(r, -delta, delta) / delta**2
    s_size, s_data, s_floor = np.exp(size - lse), np.exp(data - lse), np.exp(e - lse)
    grad = np.array([
        np.dot(psi, s_size), np.dot(psi, s_data), np.dot(psi, s_floor),
        -np.dot(psi, s_size * log_N), -np.dot(psi, s_data * log_D),
    ])
    return float(np.dot(w, huber(r, delta))) / delta**2, grad


def _best_starts(grid: np.ndarray, log_N, log_D, log_L, weights, delta: float, count: int) -> np.ndarray:
    """The ``count`` grid rows with the smallest objective (evaluated for all rows at once)."""
    r = predict_log_loss(grid, log_N, log_D) - log_L
    values = np.sum(weights * huber(r, delta), axis=-1)
    return grid[np.argsort(values)[:count]]


def _minimise(starts: np.ndarray, log_N, log_D, log_L, weights, delta: float) -> tuple[np.ndarray, float]:
    best, best_value = starts[0], np.inf
    for x0 in starts:
        res = minimize(objective, x0, args=(log_N, log_D, log_L, delta, weights), jac=True, method="L-BFGS-B",
                       options={"maxiter": 1000, "ftol": 1e-12, "gtol": 1e-8})
        if res.fun < best_value:
            best, best_value = res.x, float(res.fun)
    return best, best_value


@dataclass(frozen=True)
class BootstrapFit:
    """Point estimate and bootstrap replicates of ``(a, b, e, alpha, beta)``."""

    theta: np.ndarray
    samples: np.ndarray
    objective: float
    n_points: int
    n_runs: int
    seconds: float

    def constants(self) -> dict[str, float]:
        """The point estimate as the paper prints it: E, A, B, alpha, beta."""
        a, b, e, alpha, beta = self.theta
        return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)),
                "alpha": float(alpha), "beta": float(beta)}

    def loss_draws(self, params: float | np.ndarray, tokens: float | np.ndarray) -> np.ndarray:
        """Loss predicted by every bootstrap replicate at ``(params, tokens)``: shape (replicates, points)."""
        N, D = np.broadcast_arrays(np.atleast_1d(np.asarray(params, float)), np.atleast_1d(np.asarray(tokens, float)))
        return np.exp(predict_log_loss(self.samples, np.log(N), np.log(D)))

    def bands(self, params: float | np.ndarray, tokens: float | np.ndarray,
              levels: Sequence[float] = (0.5, 0.9)) -> pd.DataFrame:
        """Median and central percentile intervals per point: columns ``median``, ``lower_<p>``, ``upper_<p>``."""
        draws = self.loss_draws(params, tokens)
        out = {"median": np.median(draws, axis=0)}
        for level in levels:
            if not 0.0 < level < 1.0:
                raise ValueError(f"level={level} must be in (0, 1), e.g. 0.9 for a central 90% interval")
            out[f"lower_{level:g}"] = np.quantile(draws, (1 - level) / 2, axis=0)
            out[f"upper_{level:g}"] = np.quantile(draws, (1 + level) / 2, axis=0)
        return pd.DataFrame(out)


def fit_bootstrap(
    runs: pd.DataFrame,
    *,
    n_boot: int = 200,
    seed: int = 0,
    starts: int = 20,
    boot_starts: int = 3,
    delta: float = HUBER_DELTA,
    min_step_fraction: float = DEFAULT_MIN_STEP_FRACTION,
    min_step: float = 0.0,
) -> BootstrapFit:
    """Huber/L-BFGS fit of the Chinchilla law with run-bootstrap replicates (module docstring).

    ``runs`` is a validated run table (``D = batch_tokens * step``); ``starts`` L-BFGS
    runs for the full data, ``boot_starts`` plus the full-data optimum per replicate.
    """
    if n_boot < 2:
        raise ValueError(f"n_boot={n_boot} must be at least 2 for bootstrap intervals")
    if starts < 1 or boot_starts < 0:
        raise ValueError(f"starts={starts} must be >= 1 and boot_starts={boot_starts} >= 0")
    t0 = time.perf_counter()
    table = runs.loc[transient_mask(runs, min_step_fraction, min_step)]
    log_N = np.log(table["params"].to_numpy(float))
    log_D = np.log(table["batch_tokens"].to_numpy(float) * table["step"].to_numpy(float))
    log_L = np.log(table["loss"].to_numpy(float))
    run_codes, run_names = pd.factorize(table["run"])
    grid = start_grid()
    ones = np.ones_like(log_L)
    theta, value = _minimise(_best_starts(grid, log_N, log_D, log_L, ones, delta, starts),
                             log_N, log_D, log_L, ones, delta)
    rng = np.random.default_rng(seed)
    samples = np.empty((n_boot, len(PARAMETERS)))
    for k in range(n_boot):
        run_counts = np.bincount(rng.integers(0, len(run_names), len(run_names)), minlength=len(run_names))
        weights = run_counts[run_codes].astype(float)
        candidates = np.vstack([theta, _best_starts(grid, log_N, log_D, log_L, weights, delta, boot_starts)])
        samples[k] = _minimise(candidates, log_N, log_D, log_L, weights, delta)[0]
    return BootstrapFit(theta=theta, samples=samples, objective=value, n_points=len(log_L),
                        n_runs=len(run_names), seconds=time.perf_counter() - t0)
