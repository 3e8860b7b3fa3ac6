r"""Joint replicates of realized runs under the forecast's own model: what coverage to expect.

The coverage of a central interval over many realized points is compared with its
nominal level, but those points are not independent draws. Under the fitted model
(:mod:`bayescale.models.skeleton`, :mod:`bayescale.predict`) one realized set of runs is,
per posterior draw ``d``, for point ``i`` of run ``r`` at step ``S_i``::

    log y_i = mu_d(N_i, B_i, S_i) + z_d kappa dist_i + offset_{d,r} + e_{d,i}
    z_d ~ Normal(0, 1)                        # the law's error: one per replicate, every point
    offset_{d,r} ~ Normal(0, tau_d)           # one per run
    e_{d,i} = a_i e_{d,prev(i)} + sqrt(1 - a_i^2) sigma_d t_i,   t_i ~ StudentT(nu)
    a_i = rho_d ^ ((log S_i - log S_prev(i)) / delta)

``e`` is the fit's AR(1) along each run (and group), read as a process in log-steps: the
fit's ``rho`` is the correlation of consecutive kept points, ``delta`` apart (the median
log-step spacing of the fitted curves), and realized points at another spacing get
``rho`` to the power of their spacing in units of ``delta``; a run's first point is drawn
from the stationary marginal ``sigma_d t``. A fit of final losses saw no curve, so its
replicates draw the noise independently (``rho = 0``). Each marginal of a replicate is the new-run
predictive distribution of its point (exactly at a run's first point; close to it after,
where Student-t innovations add up), which the intervals are quantiles of; jointly, the
points of one run share an offset and correlated noise, and every point shares the law's
error. The fraction of a replicate's points inside the intervals is therefore what a
calibrated forecast would show on these very points, and its spread over replicates
(:func:`coverage_range`) is what the observed coverage should be compared with: wide where
the law error dominates (one draw of it moves every point of a held-out size together),
close to the nominal level only where many independent runs are scored.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from bayescale.defaults import COVERAGE_RANGE, MAX_DRAW_POINTS, REPLICATES
from bayescale.deviation import ar1_step
from bayescale.posterior import Posterior
from bayescale.predict import clip_to_ceiling, fitted_priors, law_error_draws, loss_draws, row_chunks, scale_draws
from bayescale.residuals import fitted_spacing, residual_model


def ar1_noise(rho: np.ndarray, sigma: np.ndarray, nu: float, curve: np.ndarray, log_step: np.ndarray,
              spacing: float, rng: np.random.Generator) -> np.ndarray:
    """The noise ``e`` of the module docstring, ``(draws, points)``.

    ``rho``, ``sigma``: per draw; ``curve``: a label per point (points of one label form one
    curve); ``log_step``: per point; ``spacing``: ``delta``. Points may come in any order.
    """
    rho, sigma = np.clip(np.asarray(rho, float), 0.0, 1.0), np.asarray(sigma, float)
    n = len(log_step)
    order = np.lexsort((log_step, curve))
    codes = pd.factorize(np.asarray(curve)[order])[0]
    start = np.r_[True, codes[1:] != codes[:-1]]
    position = np.arange(n) - np.maximum.accumulate(np.where(start, np.arange(n), 0))
    gap = np.r_[0.0, np.diff(np.asarray(log_step, float)[order])] / spacing
    shocks = rng.standard_t(nu, size=(len(rho), n)) * sigma[:, None]
    e = np.empty((len(rho), n))
    for k in range(int(position.max()) + 1 if n else 0):
        at = np.flatnonzero(position == k)
        if k == 0:
            e[:, at] = shocks[:, at]
            continue
        e[:, at] = ar1_step(e[:, at - 1], rho[:, None], np.maximum(gap[at], 1e-12)[None, :], shocks[:, at])
    out = np.empty_like(e)
    out[:, order] = e
    return out


def replicate_split(posterior: Posterior, replicates: int, points: int,
                    limit: int = MAX_DRAW_POINTS) -> list[np.ndarray]:
    """The positions of the replicates of a table of ``points`` points (one posterior draw each,
    so at most the posterior's draws), in batches of at most ``limit`` replicates x points
    (at least one replicate): how :func:`replicate_batches` splits them."""
    if replicates < 1:
        raise ValueError(f"replicates={replicates} must be at least 1")
    return row_chunks(np.arange(min(replicates, posterior.n_draws)), points, limit)


def replicate_batches(posterior: Posterior, table: pd.DataFrame, groups: np.ndarray,
                      covariates: Mapping[str, np.ndarray] | None = None, *, replicates: int = REPLICATES,
                      seed: int = 0, limit: int = MAX_DRAW_POINTS) -> Iterator[np.ndarray]:
    """:func:`replicate_losses` a batch of replicates at a time, each of at most ``limit``
    replicates x points (at least one replicate), so that a long table is replicated in
    bounded memory. The batches together are :func:`replicate_losses`' rows, in order."""
    batches = replicate_split(posterior, replicates, len(table), limit)
    rng = np.random.default_rng(seed)
    pick = rng.choice(posterior.n_draws, size=sum(map(len, batches)), replace=False)
    N, B, S = (table[c].to_numpy(float) for c in ("params", "batch_tokens", "step"))
    groups = np.asarray(groups)
    # per replicate: the law error's z (times each point's distance), the runs' offsets, the AR(1)'s scales
    z = law_error_draws(posterior, 1.0, rng)[pick]
    distance = np.atleast_1d(posterior.law.distance(posterior.meta.ranges, N, B, S))
    runs = pd.factorize(table["run"].to_numpy())[0]
    offsets = rng.standard_normal((len(pick), runs.max() + 1)) * scale_draws(posterior, "run_offset_scale")[pick, None]
    curve = pd.factorize(pd.Series(runs).astype(str) + "/" + pd.Series(groups).astype(str))[0]
    # a fit of final losses (one point per run) never saw a correlation along a run
    rho = scale_draws(posterior, "rho")[pick] if residual_model(posterior) != "none" else np.zeros(len(pick))
    sigma, nu, spacing = scale_draws(posterior, "sigma")[pick], fitted_priors(posterior).nu, fitted_spacing(posterior)
    for batch in batches:
        draws = posterior.with_draws(pick[batch])
        log_L = np.empty((len(batch), len(table)))
        for g in pd.unique(groups):
            for rows in row_chunks(np.flatnonzero(groups == g), len(batch), limit):
                extra = None if covariates is None else {k: np.asarray(v, float)[rows] for k, v in covariates.items()}
                log_L[:, rows] = np.log(loss_draws(draws, N[rows], B[rows], S[rows], mode="mean", group=str(g),
                                                   covariates=extra))
        log_L += z[batch] * distance[None, :] + offsets[batch][:, runs]
        log_L += ar1_noise(rho[batch], sigma[batch], nu, curve, np.log(S), spacing, rng)
        yield clip_to_ceiling(posterior, np.exp(log_L))


def replicate_losses(posterior: Posterior, table: pd.DataFrame, groups: np.ndarray,
                     covariates: Mapping[str, np.ndarray] | None = None, *, replicates: int = REPLICATES,
                     seed: int = 0) -> np.ndarray:
    """Joint replicates of the losses of ``table`` (columns ``run, params, batch_tokens, step``)
    under the posterior's model (module docstring): ``(replicates, points)``, one posterior
    draw per replicate. ``groups`` gives each point's group; ``covariates`` the law's
    per-point covariates (:func:`bayescale.schedules.table_features`)."""
    return np.concatenate(list(replicate_batches(posterior, table, groups, covariates, replicates=replicates,
                                                 seed=seed, limit=max(MAX_DRAW_POINTS, replicates * len(table)))))


def replicate_fractions(batches: Iterable[np.ndarray],
                        intervals: Mapping[Hashable, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """:func:`replicate_coverage` of each interval ``key: (rows, lower, upper)`` over replicates
    that come in batches (:func:`replicate_batches`): ``key: (replicates,)``."""
    out: dict = {key: [] for key in intervals}
    for batch in batches:
        for key, (rows, lower, upper) in intervals.items():
            out[key].append(replicate_coverage(batch[:, rows], lower, upper))
    return {key: np.concatenate(parts) for key, parts in out.items()}


def replicate_coverage(replicates: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The fraction of each replicate's points inside ``[lower, upper]``: ``(replicates,)``."""
    return ((replicates >= lower[None, :]) & (replicates <= upper[None, :])).mean(axis=1)


def format_range(low: float, high: float) -> str:
    """A range of coverage as the tables print it: ``"0.13-1.00"``."""
    return f"{low:.2f}-{high:.2f}"


def coverage_range(replicates: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                   quantiles: tuple[float, float] = COVERAGE_RANGE) -> tuple[float, float]:
    """The ``quantiles`` (default 5% and 95%) of :func:`replicate_coverage`: the range of
    coverage a calibrated forecast shows on these points."""
    return fraction_range(replicate_coverage(replicates, lower, upper), quantiles)


def fraction_range(fractions: np.ndarray, quantiles: tuple[float, float] = COVERAGE_RANGE) -> tuple[float, float]:
    """The ``quantiles`` (default 5% and 95%) of per-replicate coverage fractions
    (:func:`replicate_coverage`, :func:`replicate_fractions`)."""
    lo, hi = np.quantile(fractions, quantiles)
    return float(lo), float(hi)
