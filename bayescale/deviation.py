r"""A run's deviation from the law's curve, as a Gaussian: its covariance, its likelihood, its conditional draws.

Per posterior draw, a run's log loss departs from the law's mean curve ``mu`` by

.. math::

    \log y_t - \mu(t) = o + \delta(t) + \varepsilon_t,

an offset ``o ~ N(0, s^2)`` shared by the run, the law's own error ``delta`` (a Gaussian
process over the run's points with covariance ``K``, :func:`law_error_covariance`: the
size's part a smooth function of log step, the steps' and batch's parts levels) and
evaluation noise ``epsilon``, AR(1) along the run with scale ``sigma`` and correlation
``rho``. The fit's ``rho`` is the correlation of two consecutive fitted points, one fitted
spacing apart in log-steps (:func:`bayescale.residuals.fitted_spacing`), so the noise is
read as a process in log-steps: two checkpoints correlate as
``rho^(|log t - log t'| / spacing)`` (:func:`ar1_positions`), however densely the run logs
them. Read per checkpoint instead, a curve logged every few steps would count as many
nearly independent facts as it has checkpoints, and its update would be over-confident.
All three are Gaussian, so the residuals' marginal likelihood
(:func:`marginal_log_likelihood`) and the deviation's distribution at further points
given them (:func:`condition`, by Matheron's rule) are exact. A conditional draw of the
deviation ``o + delta`` at the observed points leaves the noise ``r - o - delta`` at each,
exactly; the noise at further points continues the AR(1) from the last of them
(:func:`continue_noise`), so the next checkpoints start where the run's noise left off
and forget it as they move away in log-steps. :mod:`bayescale.track`
updates a live run's forecast with them, and :mod:`bayescale.law_error` measures the
law's error on a ladder with the same likelihood.
"""

from __future__ import annotations

import numpy as np

#: Most checkpoints an update conditions on (spread evenly; consecutive checkpoints
#: are strongly correlated, so more add little and cost cubically).
MAX_UPDATE_POINTS = 64
#: Largest AR(1) correlation used per fitted spacing: at 1 the noise would never forget a
#: checkpoint, and its covariance would be singular.
MAX_RHO = 0.999


def ar1_positions(log_steps: np.ndarray, spacing: float) -> np.ndarray:
    """Positions ``(n,)`` of checkpoints along the AR(1): log step over the fit's
    ``spacing`` (module docstring). Where the fit saw no curve (``spacing`` infinite: final
    losses only, and ``rho`` from its prior) one unit per checkpoint."""
    log_steps = np.asarray(log_steps, float)
    return log_steps / spacing if np.isfinite(spacing) else np.arange(len(log_steps), dtype=float)


def ar1_correlation(positions: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Unit-variance AR(1) correlation ``rho^|u_i - u_j|`` of checkpoints at ``positions``
    ``u`` (:func:`ar1_positions`), per draw: ``(D, n, n)``."""
    lag = np.abs(np.subtract.outer(positions, positions))
    return np.clip(rho, 0.0, MAX_RHO)[:, None, None] ** lag[None]


def ar1_step(previous: np.ndarray, rho: np.ndarray, gap: np.ndarray, shock: np.ndarray) -> np.ndarray:
    """One step of the AR(1) in log-steps: ``a previous + sqrt(1 - a^2) shock`` with
    ``a = rho^gap`` (``gap`` in AR(1) positions, :func:`ar1_positions`; ``shock`` at the
    stationary scale). Arrays broadcast: ``rho`` per draw ``(D, 1)``, ``gap`` per point."""
    a = rho**gap
    return a * previous + np.sqrt(1.0 - a**2) * shock


def continue_noise(last: np.ndarray, last_log_step: float, log_steps: np.ndarray, rho: np.ndarray,
                   sigma: np.ndarray, nu: float, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """AR(1) noise ``(D, F)`` at further points of a run, at ascending ``log_steps`` ``(F,)``,
    whose noise at its last observed point (at ``last_log_step``) is ``last`` ``(D,)``. The
    innovations are Student-t (``nu``) at scale ``sigma`` (per draw), as in the fit; far
    from the last observed point, in units of the fit's ``spacing``, the noise is the
    stationary ``sigma t`` again. Where the fit saw no curve (``spacing`` infinite) the
    further points are independent of the observed ones."""
    rho, sigma = np.clip(rho, 0.0, MAX_RHO)[:, None], np.asarray(sigma, float)[:, None]
    log_steps = np.asarray(log_steps, float)
    gaps = (np.diff(np.r_[last_log_step, log_steps]) / spacing if np.isfinite(spacing)
            else np.full(len(log_steps), np.inf))
    shocks = rng.standard_t(nu, size=(len(last), len(log_steps))) * sigma
    out, previous = np.empty_like(shocks), np.asarray(last, float)[:, None]
    for j, gap in enumerate(gaps):
        previous = ar1_step(previous, rho, gap, shocks[:, j:j + 1])
        out[:, j:j + 1] = previous
    return out


def law_error_covariance(axes: np.ndarray, log_steps: np.ndarray, length: float) -> np.ndarray:
    """Prior covariance of the law's error at points with per-axis scales ``axes`` ``(P, A)``
    (``kappa d_a``; the size first) and ``log_steps`` ``(P,)``: the size's error is a smooth
    function of log step (squared-exponential, length ``length``), the others are shared
    along the run (module docstring)."""
    u = np.subtract.outer(log_steps, log_steps)
    size = np.outer(axes[:, 0], axes[:, 0]) * np.exp(-0.5 * (u / length) ** 2)
    return size + sum(np.outer(axes[:, a], axes[:, a]) for a in range(1, axes.shape[1]))


def thin_checkpoints(n: int, most: int = MAX_UPDATE_POINTS) -> np.ndarray:
    """Indices of at most ``most`` of ``n`` checkpoints, spread evenly in index, always with the last."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.r_[np.round(np.linspace(0, n - 1, most)).astype(int), n - 1])


def prior_deviation(K: np.ndarray, offset_sd: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Prior draws ``(D, P)`` of a new run's deviation from the law's curve: the law's error
    (covariance ``K``) plus an offset ``Normal(0, offset_sd[d]^2)`` per draw."""
    D, P = len(offset_sd), K.shape[0]
    return (rng.standard_normal((D, P)) @ np.linalg.cholesky(K + 1e-12 * np.eye(P)).T
            + offset_sd[:, None] * rng.standard_normal((D, 1)))


def observed_covariance(K: np.ndarray, offset_sd: np.ndarray, sigma: np.ndarray, rho: np.ndarray,
                         positions: np.ndarray) -> np.ndarray:
    """Per draw, the covariance ``(D, n, n)`` of the deviation at the ``n`` observed points (the
    first ``n`` of ``K``, at AR(1) ``positions``): the law's error, the offset and AR(1)
    evaluation noise."""
    n = len(positions)
    return ((offset_sd**2)[:, None, None] + K[None, :n, :n]
            + (sigma**2)[:, None, None] * ar1_correlation(positions, rho))


def marginal_log_likelihood(residuals: np.ndarray, K: np.ndarray, offset_sd: np.ndarray, sigma: np.ndarray,
                            rho: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per draw, the log marginal likelihood ``(D,)`` of the observed residuals ``(D, n)`` at
    AR(1) ``positions`` (offset, law's error and noise integrated out; :func:`observed_covariance`)."""
    n = len(positions)
    C_oo = observed_covariance(K, offset_sd, sigma, rho, positions)
    L = np.linalg.cholesky(C_oo)
    alpha = np.linalg.solve(C_oo, residuals[..., None])[..., 0]
    return -0.5 * (np.einsum("dn,dn->d", residuals, alpha) + 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
                   + n * np.log(2 * np.pi))


def condition(residuals: np.ndarray, K: np.ndarray, offset_sd: np.ndarray, sigma: np.ndarray, rho: np.ndarray,
               positions: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per draw, a draw of the run's deviation from the law's curve at every point given the
    observed residuals ``(D, n)`` (Matheron's rule: a joint prior draw, corrected by
    ``C_fo C_oo^-1`` times its misfit to the data), and its conditional mean at the last
    observed point.

    ``K`` ``(P, P)`` is the law error's covariance over the ``n`` observed then the future
    points; the offset adds ``offset_sd^2`` everywhere and the observed points, at AR(1)
    ``positions`` ``(n,)``, get AR(1) noise. Returns ``(deviation (D, P),
    mean_at_last_observed (D,))``."""
    D, n = residuals.shape[0], len(positions)
    C_oo = observed_covariance(K, offset_sd, sigma, rho, positions)
    prior = prior_deviation(K, offset_sd, rng)
    noise = np.einsum("dij,dj->di", np.linalg.cholesky(ar1_correlation(positions, rho)),
                      rng.standard_normal((D, n)))
    misfit = residuals - prior[:, :n] - sigma[:, None] * noise
    weights = np.linalg.solve(C_oo, misfit[..., None])[..., 0]  # C_oo^-1 (r - prior - noise)
    alpha = np.linalg.solve(C_oo, residuals[..., None])[..., 0]
    cross = lambda v: v @ K[:, :n].T + (offset_sd**2 * v.sum(1))[:, None]  # noqa: E731  C_{all,o} v
    return prior + cross(weights), cross(alpha)[:, n - 1]
