r"""Track a live run: update its forecast from its own first checkpoints.

The ladder's posterior forecasts a new run before it starts (the ``new_run`` predictive
of :mod:`bayescale.predict`). Once the run has logged some checkpoints, its own curve is
the best evidence about how it departs from the ladder. Per posterior draw ``d`` the
new run's log loss at step ``t`` is

.. math::

    \log L_t = \mu_d(t) + o + \kappa \sum_a z_a\, d_{a,t} + \varepsilon_t, \qquad
    o \sim N(0, \tau_d^2 + \kappa^2), \quad z_a \sim N(0, 1),

with ``mu_d`` the law's mean curve under the run's schedule, ``o`` the run's offset
(the ladder's seed spread ``tau``, widened by one unit ``kappa`` of the law's error: a
live run on other hardware, data order or code differs from the ladder's runs by more
than their seeds do, and with ``tau`` alone a run a few percent off the ladder inside
its ranges would leave the update to a handful of draws), ``kappa z_a d_{a,t}`` the law's own error along each axis ``a``
of the law (size, steps, batch; ``d_{a,t}`` the log-distance of the point outside the
fitted range on that axis, ``kappa`` per unit of it), and ``epsilon`` the evaluation
noise, AR(1) along the checkpoints with correlation ``rho_d`` and scale ``sigma_d`` (as
in the fit; Gaussian here). The law error's variance at a point is
``kappa^2 sum_a d_a^2``, the predictor's (:mod:`bayescale.predict`); it is split by
axis here so that what the checkpoints reveal about the size's error (constant along
the run) is not stretched by the steps still to come, whose own error stays open.

**Update.** Given the observed residuals ``r_t = log y_t - mu_d(t)``, ``(o, z)`` enter
linearly, so their posterior per draw is Gaussian and the marginal likelihood of the
partial curve is exact: with ``H = [1, kappa d_{a,t} ...]``, prior
``Lambda = diag(tau^2, 1, ...)`` and the AR(1) covariance ``Sigma``,

.. math::

    P = \Lambda^{-1} + H^\top \Sigma^{-1} H, \quad m = P^{-1} H^\top \Sigma^{-1} r, \quad
    w_d \propto N(r;\, 0,\, H \Lambda H^\top + \Sigma).

The draws are reweighted by ``w_d`` (importance sampling from the ladder's posterior to
the joint posterior of the ladder and the partial run: the new run adds only ``o`` and
``z``, which are integrated out exactly) and resampled; each kept draw gets
``(o, z) ~ N(m, P^{-1})`` and new evaluation noise (Student-t, the fit's ``nu``) at the
forecast steps. ``effective_draws`` (``(sum w)^2 / sum w^2``) says how many draws carry
the update; with few (under :data:`MIN_EFFECTIVE_DRAWS`, or a tenth of the draws) the partial curve disagrees with
most of the ladder's posterior, and a joint refit (the partial run added to the ladder's
run table) is the safer answer; a warning says so. ``tests/test_track.py`` checks the
update against such a refit.

**Alarm.** When the latest observed checkpoints (the last :data:`ALARM_POINTS`) lie
outside the ladder-only forecast's 90% band, the run has left what the ladder expected,
and the result says so in one line.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayescale.curves import transient_mask
from bayescale.models.law import outside
from bayescale.posterior import Posterior
from bayescale.predict import (band_frame, check_schedule, fitted_priors, loss_draws, quantile_bands, scale_draws,
                               schedule_covariates)
from bayescale.schedules import Schedule

#: Fewest effective draws behind an update before :func:`track` warns (a tenth of the
#: draws when there are fewer than ten times as many).
MIN_EFFECTIVE_DRAWS = 100
#: Latest checkpoints that must all lie outside the ladder-only 90% band to raise the alarm.
ALARM_POINTS = 3
#: Level of the band the alarm checks.
ALARM_LEVEL = 0.9


class TrackWarning(UserWarning):
    """The update rests on few posterior draws; a joint refit is safer."""


def check_step_order(table: pd.DataFrame, group_by: str | None = None) -> None:
    """Raise ``ValueError`` when a run's steps do not increase down ``table`` (per group
    column, when it has one): checkpoints of a live run come in order, and rows out of
    order usually mean two logs were pasted together."""
    keys = ["run"] + ([group_by] if group_by and group_by in table.columns else [])
    for _, rows in table.groupby(keys, sort=False):
        steps = pd.to_numeric(rows["step"], errors="coerce").to_numpy(float)
        back = np.flatnonzero(np.diff(steps) <= 0)
        if len(back):
            i = int(back[0])
            raise ValueError(f"the partial run's steps are out of order: step {steps[i + 1]:g} follows "
                             f"{steps[i]:g}; give the checkpoints in the order they were logged, one row per step")


def partial_curve(posterior: Posterior, partial: pd.DataFrame, total_steps: float,
                  group: str | None = None) -> pd.DataFrame:
    """The one run of ``partial`` (a validated run table) in ``group``, checked: one run,
    steps in increasing order, before ``total_steps``. Raises ``ValueError`` with one line."""
    runs = partial["run"].unique()
    if len(runs) != 1:
        raise ValueError(f"the partial file holds {len(runs)} runs ({', '.join(map(str, runs[:3]))}"
                         f"{', ...' if len(runs) > 3 else ''}); give the checkpoints of one live run")
    curve = partial
    column = posterior.meta.group_by
    if column is not None and column in partial.columns:
        name = posterior.groups[posterior.group_index(group)]
        curve = partial[partial[column].astype(str) == name]
        if curve.empty:
            raise ValueError(f"the partial run has no rows of group '{name}' (column {column})")
    check_step_order(curve)
    steps = curve["step"].to_numpy(float)
    if steps[-1] >= total_steps:
        raise ValueError(f"the partial run already reached step {steps[-1]:g}, at or beyond --total-steps "
                         f"{total_steps:g}; nothing is left to forecast")
    return curve.reset_index(drop=True)


def _ar1_whiten(x: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``W x`` along the points, per draw: ``x_1`` and ``(x_t - rho x_{t-1}) / sqrt(1 - rho^2)``.

    ``x`` has shape ``(draws, points, ...)``; ``W^T W`` is the inverse of the unit-variance
    AR(1) correlation matrix."""
    r = rho.reshape((-1,) + (1,) * (x.ndim - 1))
    out = x.copy()
    out[:, 1:] = (x[:, 1:] - r * x[:, :-1]) / np.sqrt(1.0 - r**2)
    return out


def _update(residuals: np.ndarray, design: np.ndarray, tau: np.ndarray, sigma: np.ndarray,
            rho: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per draw, the Gaussian posterior of ``(o, z)`` and the log marginal likelihood (module docstring).

    ``residuals`` ``(D, n)``, ``design`` ``(D, n, k)``; returns mean ``(D, k)``,
    covariance ``(D, k, k)`` and log likelihood ``(D,)``."""
    D, n = residuals.shape
    k = design.shape[-1]
    rho = np.clip(rho, 0.0, 0.999)
    r = _ar1_whiten(residuals, rho) / sigma[:, None]
    H = _ar1_whiten(design, rho) / sigma[:, None, None]
    prior_precision = np.broadcast_to(np.eye(k), (D, k, k)).copy()
    prior_precision[:, 0, 0] = 1.0 / np.maximum(tau, 1e-12) ** 2
    precision = prior_precision + np.einsum("dni,dnj->dij", H, H)
    b = np.einsum("dni,dn->di", H, r)
    cov = np.linalg.inv(precision)
    mean = np.einsum("dij,dj->di", cov, b)
    # log N(r; 0, H Lambda H^T + Sigma) by the matrix determinant lemma and Woodbury, whitened:
    # |Sigma| = sigma^(2n) (1 - rho^2)^(n-1) with unit-variance AR(1) correlation
    log_det_sigma = 2 * n * np.log(sigma) + (n - 1) * np.log(1.0 - rho**2)
    log_det = log_det_sigma + np.linalg.slogdet(precision)[1] - np.linalg.slogdet(prior_precision)[1]
    quad = np.sum(r**2, axis=1) - np.einsum("di,di->d", b, mean)
    return mean, cov, -0.5 * (n * np.log(2 * np.pi) + log_det + quad)


def _resample(log_w: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Systematic resampling of the draws by weight; returns the kept indices and the effective draws."""
    w = np.exp(log_w - np.max(log_w))
    w /= w.sum()
    ess = float(1.0 / np.sum(w**2))
    positions = (rng.random() + np.arange(len(w))) / len(w)
    return np.minimum(np.searchsorted(np.cumsum(w), positions), len(w) - 1), ess


def track(
    posterior: Posterior,
    partial_runs: pd.DataFrame,
    total_steps: float,
    *,
    schedule: Schedule | None = None,
    levels: Sequence[float] = (0.9,),
    target_loss: float | None = None,
    group: str | None = None,
    points: int = 64,
    seed: int = 0,
) -> pd.DataFrame:
    """Forecast the rest of a live run from the ladder's posterior and the run's checkpoints.

    ``partial_runs`` is a validated run table of one run (any size); ``schedule`` its
    planned schedule to ``total_steps`` (default constant; other schedules need a
    schedule-aware law). Returns the bands from the last observed step to
    ``total_steps`` (``points`` log-spaced steps): columns ``step, median, lower, upper``
    (updated by the run's own curve), ``ladder_median, ladder_lower, ladder_upper`` (the
    ladder alone) and ``level`` when several levels are asked. ``df.attrs`` holds
    ``alarm`` (a sentence, or ``None``), ``effective_draws``, ``offset`` (the median
    shift of the run from the ladder's curve on log loss), ``observed`` (the partial
    curve with its ladder-only band) and, with ``target_loss``, ``p_target_before`` and
    ``p_target_after``: the probability of a loss at or below it at ``total_steps``.
    """
    if not (np.isfinite(total_steps) and total_steps > 0):
        raise ValueError(f"total_steps={total_steps} must be a positive number of steps")
    if schedule is not None and schedule.last_step is not None and schedule.last_step < total_steps:
        raise ValueError(f"the schedule ends at step {schedule.last_step:g}, before --total-steps {total_steps:g}; "
                         "give the planned learning rate up to the last step")
    check_schedule(posterior.law, schedule)
    curve = partial_curve(posterior, partial_runs, total_steps, group)
    settings = posterior.meta.settings
    keep = transient_mask(curve, settings.get("min_step_fraction", 0.0), settings.get("min_step", 0.0))
    if not keep.any():
        raise ValueError("every checkpoint of the partial run lies in the early transient the fit drops; "
                         "track it once it has logged more steps")
    curve = curve.loc[keep].reset_index(drop=True)
    N, B = float(curve["params"].iloc[0]), float(curve["batch_tokens"].iloc[0])
    observed = curve["step"].to_numpy(float)
    grid = np.unique(np.r_[np.geomspace(observed[-1], total_steps, points), total_steps])
    steps = np.r_[observed, grid]
    covariates = schedule_covariates(posterior, schedule, steps, total_steps)
    law, meta = posterior.law, posterior.meta
    mu = np.log(loss_draws(posterior, N, B, steps, mode="mean", group=group, covariates=covariates))
    values = law.axis_values(np.full(steps.shape, N), np.full(steps.shape, B), steps)
    kappa = float(meta.extrapolation_error)
    axes = np.stack([kappa * outside(values[axis], *meta.ranges[key]) for axis, key in law.fitted_ranges()], axis=1)
    tau, sigma = scale_draws(posterior, "run_offset_scale"), scale_draws(posterior, "sigma")
    rho = scale_draws(posterior, "rho")
    nu = fitted_priors(posterior).nu
    rng = np.random.default_rng(seed)
    n, D = len(observed), posterior.n_draws

    design = np.concatenate([np.ones((len(steps), 1)), axes], axis=1)  # (points, 1 + axes)
    k = design.shape[1]

    def new_run(mu_d, scale, oz):  # log loss of the new run per draw: offset, law error, noise
        noise = rng.standard_t(nu, size=mu_d.shape) * scale[:, None]
        return np.exp(mu_d + oz @ design.T + noise)

    offset_sd = np.sqrt(tau**2 + kappa**2)
    ladder = new_run(mu, sigma, rng.standard_normal((D, k)) * np.c_[offset_sd, np.ones((D, k - 1))])
    residuals = np.log(curve["loss"].to_numpy(float))[None, :] - mu[:, :n]
    mean, cov, log_w = _update(residuals, np.broadcast_to(design[:n], (D, n, k)), offset_sd, sigma, rho)
    keep, ess = _resample(log_w, rng)
    oz = mean[keep] + np.einsum("dij,dj->di", np.linalg.cholesky(cov[keep]), rng.standard_normal((D, k)))
    updated = new_run(mu[keep], sigma[keep], oz)
    if ess < min(MIN_EFFECTIVE_DRAWS, 0.1 * D):
        warnings.warn(f"the update rests on {ess:.0f} effective posterior draws (of {D}): the partial curve disagrees "
                      "with most of the ladder's posterior; refit with the partial run added to the ladder's runs "
                      "for a safer forecast", TrackWarning, stacklevel=2)

    df = band_frame(updated[:, n:], levels, {"step": grid})
    before = band_frame(ladder[:, n:], levels, {"step": grid})
    for col in ("median", "lower", "upper"):
        df[f"ladder_{col}"] = before[col].to_numpy()
    band = quantile_bands(ladder[:, :n], (ALARM_LEVEL,))[ALARM_LEVEL]
    seen = pd.DataFrame({"step": observed, "loss": curve["loss"].to_numpy(float), "ladder_median": band[0],
                         "ladder_lower": band[1], "ladder_upper": band[2]})
    df.attrs.update(observed=seen, effective_draws=ess, offset=float(np.median(oz[:, 0])),
                    alarm=_alarm(seen), total_steps=float(total_steps), params=N, batch_tokens=B,
                    schedule=(schedule or Schedule()).describe())
    if target_loss is not None:
        df.attrs["p_target_before"] = float(np.mean(ladder[:, -1] <= target_loss))
        df.attrs["p_target_after"] = float(np.mean(updated[:, -1] <= target_loss))
    return df


def _alarm(seen: pd.DataFrame) -> str | None:
    """One line when the last :data:`ALARM_POINTS` checkpoints all left the ladder-only band, else ``None``."""
    last = seen.tail(ALARM_POINTS)
    above, below = last["loss"] > last["ladder_upper"], last["loss"] < last["ladder_lower"]
    if len(last) < ALARM_POINTS or not (above.all() or below.all()):
        return None
    side = "above" if above.all() else "below"
    row = last.iloc[-1]
    return (f"ALARM: the run is tracking {side} the ladder's forecast: its last {len(last)} checkpoints lie outside "
            f"the {ALARM_LEVEL:.0%} band (step {row['step']:g}: loss {row['loss']:.4g}, band "
            f"[{row['ladder_lower']:.4g}, {row['ladder_upper']:.4g}])")
