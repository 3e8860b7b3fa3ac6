r"""Credible bands for forecasts, from every posterior draw pushed through the laws.

Two predictive modes (DESIGN.md section 4):

* ``"mean"`` -- the law's mean curve; parameter uncertainty only.
* ``"new_run"`` -- what a run you train will show: the mean curve times
  ``exp(run_offset + noise + law_error)`` per draw, with ``run_offset ~ Normal(0, tau_run)``
  (seed-to-seed), ``noise ~ StudentT(nu, 0, sigma)`` (evaluation noise, pointwise) and
  the law's own error ``law_error ~ Normal(0, kappa * d)``.

The law's own error grows with the distance ``d`` of the request from the fitted data,
measured in natural-log units: ``d = sqrt(d_N^2 + d_S^2 + d_B^2)`` where ``d_N`` is how
far ``log N`` lies outside ``[log N_min, log N_max]`` of the fitted sizes (0 inside), and
likewise for steps and batch sizes. ``kappa`` (``extrapolation_error``, per unit of
log-distance on log loss) is stored with the posterior; its default was set on public
runs that bayescale does not ship (see benchmarks/RESULTS.md), never on the bundled
runs it is checked on. A posterior that carries parameter uncertainty alone is badly
over-confident in extrapolation: real curves fit the laws so well that the fitted
noise is tiny, while the law itself drifts from the truth as sizes grow.

A Chinchilla posterior (``L(N, D) = E + A/N^alpha + B/D^beta``, :mod:`bayescale.chinchilla`)
evaluates a request at ``(N, B, S)`` at ``D = B S`` tokens, with ``d = sqrt(d_N^2 + d_D^2)``
and ``d_D`` measured from the fitted token range; the critical batch has no Chinchilla
meaning and asking for it raises ``ValueError``.

Targets in loss are treated consistently: a law error ``eta`` on log loss means the
true curve reaches ``L`` when the law's curve reaches ``L exp(-eta)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale import laws
from bayescale.defaults import MODES
from bayescale.models import chinchilla_log_floor, chinchilla_log_loss, chinchilla_log_tokens
from bayescale.posterior import Posterior
from bayescale.runs import MAX_SCALE


@dataclass(frozen=True)
class Extrapolation:
    """How far a request lies outside the fitted data, in natural-log units."""

    params: float
    steps: float
    batch_tokens: float
    tokens: float = 0.0

    @property
    def distance(self) -> float:
        return float(np.sqrt(self.params**2 + self.steps**2 + self.batch_tokens**2 + self.tokens**2))

    @property
    def extrapolates(self) -> bool:
        return self.distance > 0

    def describe(self) -> str:
        if not self.extrapolates:
            return "inside the fitted ranges"
        parts = [f"{name} x{np.exp(v):.3g}" for name, v in
                 (("size", self.params), ("steps", self.steps), ("batch", self.batch_tokens),
                  ("tokens", self.tokens)) if v > 0]
        return "extrapolates beyond the fitted data: " + ", ".join(parts) + f" (log-distance {self.distance:.2f})"


def _outside(value: np.ndarray, lo: float, hi: float) -> np.ndarray:
    logv = np.log(value)
    return np.maximum(0.0, np.maximum(logv - np.log(hi), np.log(lo) - logv))


def extrapolation(posterior: Posterior, params: float, batch_tokens: float | None = None,
                  steps: float | np.ndarray | None = None) -> Extrapolation:
    """Distance of a request from the fitted sizes, steps and batches (largest over ``steps``).

    For a Chinchilla posterior: from the fitted sizes and token counts ``B S``.
    """
    r = posterior.meta["ranges"]
    if posterior.model == "chinchilla":
        d_tokens = 0.0 if batch_tokens is None or steps is None else float(
            np.max(_outside(np.asarray(batch_tokens, float) * np.asarray(steps, float), *r["tokens"])))
        return Extrapolation(float(_outside(np.asarray(params, float), *r["params"])), 0.0, 0.0, d_tokens)
    d_steps = 0.0 if steps is None else float(np.max(_outside(np.asarray(steps, float), *r["step"])))
    d_batch = 0.0 if batch_tokens is None else float(_outside(np.asarray(batch_tokens, float), *r["batch_tokens"]))
    return Extrapolation(float(_outside(np.asarray(params, float), *r["params"])), d_steps, d_batch)


def quantile_bands(draws: np.ndarray, levels: Sequence[float]) -> dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Median and central interval per level over the first axis; infinite draws stay infinite."""
    for level in levels:
        if not 0.0 < level < 1.0:
            raise ValueError(f"level={level} must be in (0, 1), e.g. 0.9 for a central 90% interval")
    draws = np.sort(np.asarray(draws, float), axis=0)
    n = draws.shape[0]

    def q(p: float) -> np.ndarray:  # order statistic: no inf - inf interpolation
        return draws[min(n - 1, max(0, int(np.floor(p * n))))]

    median = q(0.5)
    return {level: (median, q((1 - level) / 2), q((1 + level) / 2)) for level in levels}


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode='{mode}' is not one of {', '.join(MODES)}")


def _positive(name: str, value) -> np.ndarray:
    arr = np.asarray(value, float)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name}={value} must be positive and finite")
    return arr


def _request(name: str, value) -> np.ndarray:
    """A requested size, batch or step count: positive, finite and at most :data:`MAX_SCALE`."""
    arr = _positive(name, value)
    if np.any(arr > MAX_SCALE):
        raise ValueError(f"{name}={np.max(arr):g} is above {MAX_SCALE:g}, far beyond any training run and the range "
                         f"the float32 law is evaluated in; give {name} up to {MAX_SCALE:g} (check the units)")
    return arr


#: Largest number the law's float32 arithmetic holds.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_law(log_L: np.ndarray, N: np.ndarray, B: np.ndarray, S: np.ndarray) -> None:
    """Raise ``ValueError`` where the law gives no finite loss (float32 overflow), naming the point."""
    bad = ~np.isfinite(log_L)
    if bad.any():
        j = int(np.flatnonzero(bad.reshape(-1, bad.shape[-1]).any(axis=0))[0])
        raise ValueError(f"the law gives no finite loss at params={N[j]:g}, batch_tokens={B[j]:g}, steps={S[j]:g} "
                         f"(float32 overflow); keep params, batch sizes and steps up to {MAX_SCALE:g}")


@jax.jit
def _trajectory_draws(c: laws.KaplanConstants, N, B, steps):
    return laws.trajectory(laws.expand(c), N[None, :], B[None, :], steps[None, :])


class _Draws:
    """Per-draw noise terms of the new-run mode, drawn once per request."""

    def __init__(self, posterior: Posterior, group: str | None, seed: int):
        g = posterior.group_index(group)
        self.rng = np.random.default_rng(seed)
        self.n = posterior.n_draws
        self.sigma = posterior.draws("sigma").reshape(self.n, -1)[:, 0]
        # Chinchilla fits of final losses have no run offsets: sigma is the run-to-run noise.
        self.tau = (posterior.draws("run_offset_scale").reshape(self.n, -1)[:, 0]
                    if "run_offset_scale" in posterior.idata.posterior else np.zeros(self.n))
        self.nu = float(posterior.meta["settings"]["priors"]["nu"])
        self.kappa = float(posterior.meta["extrapolation_error"])
        self.group = g

    def law_error(self, distance: np.ndarray | float) -> np.ndarray:
        """``Normal(0, kappa d)`` per draw, shared along a curve: shape (draws, len(d))."""
        z = self.rng.standard_normal((self.n, 1))
        return z * self.kappa * np.atleast_1d(np.asarray(distance, float))[None, :]

    def run_and_noise(self, points: int) -> np.ndarray:
        run = self.rng.standard_normal((self.n, 1)) * self.tau[:, None]
        noise = self.rng.standard_t(self.nu, size=(self.n, points)) * self.sigma[:, None]
        return run + noise


def _frame(x: np.ndarray, levels: Sequence[float], index: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for level, (median, lower, upper) in quantile_bands(x, levels).items():
        part = pd.DataFrame({**index, "median": median, "lower": lower, "upper": upper})
        if len(levels) > 1:
            part["level"] = level
        rows.append(part)
    return pd.concat(rows, ignore_index=True)


def step_grid(final_step: float, points: int = 64, first_step: float = 1.0) -> np.ndarray:
    """``points`` log-spaced steps from ``first_step`` that end exactly at ``final_step``."""
    if points < 2:
        raise ValueError(f"points={points} must be at least 2")
    final_step = float(_positive("steps", final_step))
    if final_step <= first_step:
        raise ValueError(f"steps={final_step:g} must exceed the first grid step {first_step:g}")
    grid = np.geomspace(first_step, final_step, points)
    grid[-1] = final_step
    return grid


def loss_draws(
    posterior: Posterior,
    params: float | np.ndarray,
    batch_tokens: float | np.ndarray,
    steps: float | np.ndarray,
    *,
    mode: str = "new_run",
    group: str | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Predictive draws of the loss at points ``(params, batch_tokens, steps)``.

    The three arguments broadcast to one 1-D shape of ``P`` points; the result has
    shape ``(draws, P)``. In ``new_run`` mode the law error of a draw is shared by all
    points (it is smooth along a curve) and the evaluation noise is drawn per point, so
    each column is the marginal predictive distribution of its point.
    """
    _check_mode(mode)
    N, B, S = (np.atleast_1d(_positive(name, v)) for name, v in
               (("params", params), ("batch_tokens", batch_tokens), ("steps", steps)))
    N, B, S = np.broadcast_arrays(N, B, S)
    for name, v in (("params", N), ("batch_tokens", B), ("steps", S)):
        if np.max(v) > _FLOAT32_MAX:  # before the float32 cast, which would overflow with a warning
            raise ValueError(f"{name}={np.max(v):g} is beyond float32 (largest {_FLOAT32_MAX:.3g}), in which the law "
                             f"is evaluated; keep params, batch sizes and steps up to {MAX_SCALE:g}")
    r = posterior.meta["ranges"]
    if posterior.model == "chinchilla":
        c = posterior.chinchilla_constants(group).expand()
        log_L = np.asarray(chinchilla_log_loss(c, np.log(N)[None, :], np.log(B * S)[None, :]), float)
        d = np.sqrt(_outside(N, *r["params"]) ** 2 + _outside(B * S, *r["tokens"]) ** 2)
    else:
        c = posterior.constants(group)
        log_L = np.log(np.asarray(_trajectory_draws(c, *(jnp.asarray(v, jnp.float32) for v in (N, B, S))), float))
        d = np.sqrt(_outside(N, *r["params"]) ** 2 + _outside(S, *r["step"]) ** 2
                    + _outside(B, *r["batch_tokens"]) ** 2)
    _check_law(log_L, N, B, S)
    if mode == "new_run":
        extra = _Draws(posterior, group, seed)
        log_L = log_L + extra.law_error(d) + extra.run_and_noise(len(S))
    return np.exp(log_L)


def predict_trajectory(
    posterior: Posterior,
    params: float,
    batch_tokens: float,
    steps: float | Sequence[float] | np.ndarray,
    *,
    levels: Sequence[float] = (0.9,),
    mode: str = "new_run",
    group: str | None = None,
    points: int = 64,
    seed: int = 0,
) -> pd.DataFrame:
    """Loss trajectory bands of a model of ``params`` at ``batch_tokens`` per step.

    ``steps`` is either the final step (a log-spaced grid of ``points`` steps from the
    first fitted step, since the laws do not describe the early transient before it, to
    exactly ``steps``; from step 1 when ``steps`` comes before it) or an explicit array
    of steps. Columns: ``step, median, lower,
    upper`` (and ``level`` when several levels are asked). ``df.attrs["extrapolation"]``
    describes how far the request extrapolates.
    """
    N = float(_request("params", params))
    B = float(_request("batch_tokens", batch_tokens))
    if np.ndim(steps) == 0:
        final, first_fitted = float(_request("steps", steps)), float(posterior.meta["ranges"]["step"][0])
        grid = step_grid(final, points, first_step=first_fitted if first_fitted < final else 1.0)
    else:
        grid = _request("steps", steps)
    draws = loss_draws(posterior, N, B, grid, mode=mode, group=group, seed=seed)
    df = _frame(draws, levels, {"step": grid})
    df.attrs["extrapolation"] = extrapolation(posterior, N, B, grid).describe()
    return df


def _law_shift(posterior: Posterior, group: str | None, mode: str, N: float, seed: int) -> np.ndarray:
    """Per-draw law error on log loss (0 in mean mode), for size-only quantities."""
    if mode == "mean":
        return np.zeros((posterior.n_draws, 1))
    return _Draws(posterior, group, seed).law_error(_outside(np.array(N), *posterior.meta["ranges"]["params"]))


def predict_min_loss(
    posterior: Posterior,
    params: float | Sequence[float],
    *,
    levels: Sequence[float] = (0.9,),
    mode: str = "new_run",
    group: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Bands for the minimum reachable loss ``L_N`` of one or more model sizes.

    For a Chinchilla posterior this is the unlimited-data loss ``E + A/N^alpha``.
    """
    _check_mode(mode)
    sizes = np.atleast_1d(_request("params", params))
    if posterior.model == "chinchilla":
        c = posterior.chinchilla_constants(group).expand()
        law = np.exp(np.asarray(chinchilla_log_floor(c, np.log(sizes)[None, :]), float))
    else:
        c = posterior.constants(group)
        law = np.stack([np.asarray(laws.loss_floor(c, N), float) for N in sizes], axis=1)
    shift = np.concatenate([_law_shift(posterior, group, mode, N, seed) for N in sizes], axis=1)
    floors = law * np.exp(shift)
    return _frame(floors, levels, {"params": sizes})


def predict_critical_batch(
    posterior: Posterior,
    loss: float | Sequence[float],
    *,
    levels: Sequence[float] = (0.9,),
    group: str | None = None,
) -> pd.DataFrame:
    """Bands for the critical batch size in tokens at one or more loss values (Kaplan posteriors)."""
    if posterior.model == "chinchilla":
        raise ValueError("the Chinchilla law L(N, D) has no batch size, so no critical batch; "
                         "fit the Kaplan model to curves at several batch sizes (bayescale fit --model kaplan)")
    losses = np.atleast_1d(_positive("loss", loss))
    c = posterior.constants(group)
    values = np.stack([np.asarray(laws.critical_batch(c, L), float) for L in losses], axis=1)
    return _frame(values, levels, {"loss": losses})


def predict_steps_to_loss(
    posterior: Posterior,
    params: float,
    batch_tokens: float,
    target_loss: float,
    *,
    levels: Sequence[float] = (0.9,),
    mode: str = "new_run",
    group: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Steps and tokens to reach ``target_loss`` at ``batch_tokens``, and their minima.

    Rows: ``steps``, ``tokens`` (at this batch), ``min_steps`` (infinite batch),
    ``min_tokens`` (small-batch limit), ``critical_batch`` at the target. Draws for
    which the target lies below the size's minimum loss give infinite steps; the
    column ``p_reachable`` is the posterior probability that the target is reachable.
    A Chinchilla posterior gives the rows ``steps`` and ``tokens`` only, from
    ``D = (B / (L - E - A/N^alpha))^(1/beta)``: the law has no batch dependence.
    """
    _check_mode(mode)
    N = float(_request("params", params))
    B = float(_request("batch_tokens", batch_tokens))
    L = float(_positive("target_loss", target_loss))
    L_law = L * np.exp(-_law_shift(posterior, group, mode, N, seed)[:, 0])
    if posterior.model == "chinchilla":
        tokens = np.exp(np.asarray(chinchilla_log_tokens(posterior.chinchilla_constants(group), np.log(N), L_law),
                                   float))
        quantities = {"steps": tokens / B, "tokens": tokens}
        reachable = np.isfinite(tokens)
    else:
        c = posterior.constants(group)
        s_min = np.asarray(laws.min_steps(c, N, L_law), float)
        b_crit = np.asarray(laws.critical_batch(c, L_law), float)
        steps = s_min * (1.0 + b_crit / B)
        quantities = {"steps": steps, "tokens": B * steps, "min_steps": s_min,
                      "min_tokens": b_crit * s_min, "critical_batch": b_crit}
        reachable = np.isfinite(s_min)
    values = np.stack(list(quantities.values()), axis=1)
    df = _frame(values, levels, {"quantity": np.array(list(quantities))})
    df["p_reachable"] = float(np.mean(reachable))
    df.attrs["extrapolation"] = extrapolation(posterior, N, B).describe()
    return df
