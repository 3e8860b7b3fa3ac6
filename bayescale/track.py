r"""Track a live run: update its forecast from its own first checkpoints.

The ladder's posterior forecasts a new run before it starts (the ``new_run`` predictive
of :mod:`bayescale.predict`). Once the run has logged some checkpoints, its own curve is
the best evidence about how it departs from the ladder. Per posterior draw ``d`` the
new run's log loss at step ``t`` is

.. math::

    \log L_t = \mu_d(t) + o + \delta(t) + \varepsilon_t, \qquad
    o \sim N(0, \tau_d^2 + \kappa^2),

with ``mu_d`` the law's mean curve under the run's schedule; ``o`` the run's offset (the
ladder's seed spread ``tau``, widened by one unit ``kappa`` of the law's error: a live
run on other hardware, data order or code differs from the ladder's runs by more than
their seeds do); ``delta`` the law's own error, a Gaussian process over the run's steps;
and ``epsilon`` the evaluation noise, AR(1) along the run with correlation ``rho_d`` and
scale ``sigma_d`` (as in the fit; Gaussian here), read as a process in log-steps: the
fit's ``rho`` is the correlation of points one fitted spacing apart, so a run logged
every few steps is not taken for many independent facts (:mod:`bayescale.deviation`).
The law's error has, at
every point, the predictor's variance ``kappa^2 sum_a d_a(t)^2`` (``d_a`` the
log-distance outside the fitted range on axis ``a``: size, steps, batch;
:mod:`bayescale.predict`), but its parts correlate differently along the run: the
steps' and the batch's parts are shared by all points (as in the predictor), while the
size's part is a smooth function of log step, correlated as
``exp(-(log t - log t')^2 / (2 l^2))`` with ``l`` the posterior's ``error_length`` (an
e-fold of steps a priori, :data:`~bayescale.defaults.DEFAULT_ERROR_LENGTH`; ``bayescale
fit --law-error ladder`` measures ``kappa`` and ``l`` on the ladder:
:mod:`bayescale.law_error`). A curve's departure from the law far beyond the ladder is a
shape, not only a level; with a level alone the checkpoints would select the few draws
whose curves happen to match that shape. The checkpoints before the ladder fit's
transient share of the *planned* steps are not used (the ladder's runs were fitted
past that share of theirs). The Gaussian pieces live in :mod:`bayescale.deviation`.

**Update.** All of ``o + delta + epsilon`` is Gaussian, so given the observed residuals
``r = log y - mu_d`` (at most :data:`~bayescale.deviation.MAX_UPDATE_POINTS` checkpoints,
spread evenly) the marginal likelihood ``N(r; 0, C_oo)`` of each draw is exact, and so
is the conditional distribution of the run's deviation at the future steps. The draws
are reweighted by the likelihood (importance sampling from the ladder's posterior to
the joint posterior of the ladder and the partial run, whose own unknowns are
integrated out) and resampled;
each kept draw, every copy of it on its own, gets a deviation drawn from its
conditional distribution by Matheron's rule (a joint prior draw corrected by
``C_fo C_oo^-1`` times its misfit to the data), then evaluation noise that continues
the AR(1) from the last checkpoint (the noise there is the residual less the drawn
deviation, exactly; Student-t innovations with the fit's ``nu``:
:func:`bayescale.deviation.continue_noise`), so the next checkpoints start where the
run's noise left off and forget it over a few fitted spacings. Drawn once per draw
before the resampling, the copies of a heavy draw would share one deviation, and a band
resting on a few draws would lose the spread that the checkpoints leave in the run's
own future. ``effective_draws``
(``(sum w)^2 / sum w^2``) says how many draws carry the update; with few (under
:data:`MIN_EFFECTIVE_DRAWS`, or a tenth of the draws) the partial curve disagrees with
most of the ladder's posterior, and the joint refit below is the safer answer.

**Refit.** ``method="refit"`` fits the law again, with NUTS, to the ladder's fitted
points (stored with its posterior) and the partial run's kept checkpoints as one more
run, under the ladder fit's priors, references and sampler settings (any of which
``sampler`` overrides); its fitted ranges widen to take in the partial run. The rest of
the run is then the fitted run's: per draw of the joint posterior the law's curve plus
the run's own fitted offset, plus the size's part of the law's error it had against the
ladder, conditioned on its residuals from the joint curve (the refit has seen this size
only up to the last checkpoint, so the part stays as uncertain beyond it as in the
reweighting; the joint ranges alone would call the rest of the run interpolation), plus
the law's error beyond the joint fit's ranges (as in the predictor), plus evaluation
noise continued from the last checkpoint, as in the reweighting. ``method="auto"`` (the
default) reweights, and refits when the reweighting rests on fewer than
``min(MIN_EFFECTIVE_DRAWS, D/10)`` effective draws; ``method="reweight"`` never refits
and warns instead.
``tests/test_track.py`` checks that the reweighting agrees with the refit inside the
fitted ranges, where the law's error vanishes and both describe the same model.

**Alarm.** When the latest observed checkpoints (the last :data:`ALARM_POINTS`) lie
outside the ladder-only forecast's 90% band, the run has left what the ladder expected,
and the result says so in one line.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayescale.curves import CurveData, prepare_curves, transient_mask
from bayescale.defaults import (CHAIN_METHODS, DEFAULT_MIN_STEP_FRACTION, SAMPLER_DEFAULTS, SAMPLER_SETTINGS,
                                TRACK_METHODS)
from bayescale.deviation import (ar1_positions, condition, continue_noise, law_error_covariance,
                                 marginal_log_likelihood, prior_deviation, thin_checkpoints)
from bayescale.fit import FitResult, check_settings, fit
from bayescale.models.law import Law, outside
from bayescale.models.skeleton import centre_within_sizes
from bayescale.posterior import Posterior, fitted_points, loss_units
from bayescale.predict import (band_frame, check_schedule, clip_to_ceiling, fitted_priors, law_error_draws, loss_draws,
                               quantile_bands, scale_draws, schedule_covariates, state_ceiling)
from bayescale.residuals import fitted_spacing
from bayescale.schedules import Schedule

#: Fewest effective draws behind a reweighting before :func:`track` refits (``method="auto"``)
#: or warns (``method="reweight"``); a tenth of the draws when there are fewer than ten times as many.
MIN_EFFECTIVE_DRAWS = 100
#: Latest checkpoints that must all lie outside the ladder-only 90% band to raise the alarm.
ALARM_POINTS = 3
#: Level of the band the alarm checks.
ALARM_LEVEL = 0.9


class TrackWarning(UserWarning):
    """The reweighting rests on few posterior draws; a joint refit is safer."""


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


def _resample(log_w: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Systematic resampling of the draws by weight; returns the kept indices and the effective draws."""
    w = np.exp(log_w - np.max(log_w))
    w /= w.sum()
    ess = float(1.0 / np.sum(w**2))
    positions = (rng.random() + np.arange(len(w))) / len(w)
    return np.minimum(np.searchsorted(np.cumsum(w), positions), len(w) - 1), ess


def too_few_draws(effective_draws: float, draws: int) -> bool:
    """Whether a reweighting of ``draws`` draws rests on too few effective ones (:data:`MIN_EFFECTIVE_DRAWS`)."""
    return effective_draws < min(MIN_EFFECTIVE_DRAWS, 0.1 * draws)


def refit_settings(posterior: Posterior, sampler: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """NUTS settings of a joint refit: the ladder fit's (recorded in its posterior; ``bayescale
    fit``'s defaults where it records none), overridden by ``sampler`` (any of
    :data:`~bayescale.defaults.SAMPLER_SETTINGS`). Raises ``ValueError`` for unknown names
    and values NUTS cannot use."""
    unknown = sorted(set(sampler or {}) - set(SAMPLER_SETTINGS))
    if unknown:
        raise ValueError(f"unknown sampler setting(s) {', '.join(unknown)}; use {', '.join(SAMPLER_SETTINGS)}")
    recorded = posterior.meta.settings
    options = {**SAMPLER_DEFAULTS, **{k: recorded[k] for k in SAMPLER_SETTINGS if k in recorded}, **(sampler or {})}
    check_settings(options["chains"], options["warmup"], options["draws"], options["target_accept"])
    if options["chain_method"] not in CHAIN_METHODS:
        raise ValueError(f"chain_method='{options['chain_method']}' is not one of {', '.join(CHAIN_METHODS)}")
    return options


def widened_ranges(law: Law, ranges: Mapping[str, list[float]], params: float, batch_tokens: float,
                   steps: np.ndarray) -> dict[str, list[float]]:
    """Fitted ``ranges`` widened to take in the points of one more run (``params``,
    ``batch_tokens``, ``steps``), on every key, the law's own axes included."""
    values = {"params": params, "batch_tokens": batch_tokens, "step": steps}
    axes = law.axis_values(np.full(steps.shape, params), np.full(steps.shape, batch_tokens), steps)
    values.update({key: axes[axis] for axis, key in law.fitted_ranges()})
    return {key: [float(min(lo, np.min(values[key]))), float(max(hi, np.max(values[key])))] if key in values
            else [lo, hi] for key, (lo, hi) in ranges.items()}


def joint_data(posterior: Posterior, curve: pd.DataFrame, covariates: Mapping[str, np.ndarray] | None,
               group: str) -> tuple[CurveData, str]:
    """The points of a joint refit: the ladder's fitted points and the partial run's kept
    checkpoints ``curve`` (with the law's ``covariates`` at them) as one more run in
    ``group``. The references stay the ladder's, so the priors are the ladder fit's; the
    fitted ranges widen to take in the run (:func:`widened_ranges`). Returns the points
    and the run's name among them."""
    meta = posterior.meta
    ladder = fitted_points(posterior)
    ladder["run"] = np.asarray(meta.runs, dtype=object)[ladder["run"].to_numpy()]
    name = str(curve["run"].iloc[0])
    name = f"{name} (tracked)" if name in meta.runs else name
    N, B = float(curve["params"].iloc[0]), float(curve["batch_tokens"].iloc[0])
    same = ladder["params"][np.isclose(ladder["params"], N, rtol=1e-6)]  # one of the ladder's sizes, as it stored it
    steps = curve["step"].to_numpy(float)
    run = pd.DataFrame({"run": name, "params": same.iloc[0] if len(same) else N, "batch_tokens": B, "step": steps,
                        "loss": curve["loss"].to_numpy(float), "group": group, **(covariates or {})})
    data = prepare_curves(pd.concat([ladder, run], ignore_index=True), group_by="group", min_step_fraction=0.0,
                          covariate_columns=posterior.law.covariates,
                          max_points=meta.settings.get("max_points"))  # as the ladder was fitted (absent: every point)
    return dataclasses.replace(data, references=dict(meta.references), group_by=meta.group_by,
                               ranges=widened_ranges(posterior.law, meta.ranges, N, B, steps),
                               dropped=dict(meta.dropped)), name


def refit(posterior: Posterior, data: CurveData, *, seed: int = 0, progress: bool = False,
          sampler: Mapping[str, Any] | None = None) -> FitResult:
    """Fit the ladder's law to the joint points ``data`` (:func:`joint_data`) with the ladder
    fit's priors, law-error growth and length, and sampler settings (:func:`refit_settings`)."""
    recorded = posterior.meta.settings
    return fit(data, law=posterior.law, priors=fitted_priors(posterior), seed=seed, progress=progress,
               min_step_fraction=recorded.get("min_step_fraction", DEFAULT_MIN_STEP_FRACTION),
               min_step=recorded.get("min_step", 0.0), max_points=recorded.get("max_points"),
               extrapolation_error=float(posterior.meta.extrapolation_error),
               error_length=float(posterior.meta.error_length), vocab_size=posterior.meta.vocab_size,
               **refit_settings(posterior, sampler))


def fitted_run_mean(joint: Posterior, data: CurveData, run: str, steps: np.ndarray,
                    covariates: Mapping[str, np.ndarray] | None, group: str) -> tuple[np.ndarray, np.ndarray]:
    """Per draw of ``joint`` (a posterior of ``data``), the log loss ``(D, P)`` of ``run`` at
    ``steps`` without noise: the law's curve plus the run's fitted offset (centred as in the
    fit). Also returns the offsets ``(D,)``."""
    index = data.runs.index(run)
    at = np.flatnonzero(data.run_idx == index)[0]
    N, B = float(np.exp(data.log_N[at])), float(np.exp(data.log_B[at]))
    mean = np.log(loss_draws(joint, N, B, steps, mode="mean", group=group, covariates=covariates))
    offset = (np.asarray(centre_within_sizes(joint.draws("run_offset"), data))[:, index]
              if "run_offset" in joint.idata.posterior else np.zeros(joint.n_draws))
    return mean + offset[:, None], offset


def size_error_after(ladder: Posterior, joint: Posterior, params: float, log_steps: np.ndarray,
                     residuals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draws ``(D, P)`` of the size's part of the law's error along a refitted run, given its
    ``residuals`` ``(D, n)`` from the joint fit's curve at its first ``n`` points.

    The refit sees the run only up to its last checkpoint; how the law's curve departs from
    the truth at its size further on is as uncertain as before the refit. So the run keeps
    the size's part of the law's error it had against the ``ladder`` (``kappa d_N``,
    correlated over the ladder's ``error_length`` e-folds of steps), conditioned on the residuals
    with the joint fit's AR(1) noise: small where the run was seen, growing past its last
    checkpoint. Zero when ``params`` lies inside the ladder's sizes."""
    law, meta = ladder.law, ladder.meta
    size_axis = law.fitted_ranges()[0][0]
    d_N = float(law.axis_distances(meta.ranges, params)[size_axis])
    if d_N == 0:
        return np.zeros((joint.n_draws, len(log_steps)))
    axes = np.full((len(log_steps), 1), float(meta.extrapolation_error) * d_N)
    K = law_error_covariance(axes, log_steps, float(meta.error_length))
    positions = ar1_positions(log_steps[:residuals.shape[1]], fitted_spacing(joint))
    deviation, _ = condition(residuals, K, np.zeros(joint.n_draws), scale_draws(joint, "sigma"),
                             scale_draws(joint, "rho"), positions, rng)
    return deviation


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
    method: str = "auto",
    sampler: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Forecast the rest of a live run from the ladder's posterior and the run's checkpoints.

    ``partial_runs`` is a validated run table of one run (any size); ``schedule`` its
    planned schedule to ``total_steps`` (default constant; other schedules need a
    schedule-aware law). ``method`` is ``"reweight"``, ``"refit"`` or ``"auto"``
    (module docstring); ``sampler`` overrides the refit's NUTS settings (``chains``,
    ``warmup``, ``draws``, ``target_accept``, ``chain_method``; default: the ladder
    fit's) and ``progress`` shows its progress bar. Returns the bands from the last
    observed step to ``total_steps`` (``points`` log-spaced steps): columns ``step,
    median, lower, upper`` (updated by the run's own curve), ``ladder_median,
    ladder_lower, ladder_upper`` (the ladder alone) and ``level`` when several levels are
    asked. ``df.attrs`` holds ``alarm`` (a sentence, or ``None``), ``method`` (the one
    used), ``refit`` (a sentence on the refit, or ``None``), ``effective_draws`` (of the
    reweighting, computed by every method), ``offset`` (the median shift of the run from
    the law's curve on log loss), ``observed`` (the partial curve with its ladder-only
    band), ``loss_units``, ``ceiling`` (draws of either band clipped at ``ln V``:
    :func:`bayescale.predict.state_ceiling`) and, with ``target_loss``,
    ``p_target_before`` and ``p_target_after``: the probability of a loss at or below it
    at ``total_steps``.
    """
    if method not in TRACK_METHODS:
        raise ValueError(f"method='{method}' is not one of {', '.join(TRACK_METHODS)}")
    if method != "reweight":
        refit_settings(posterior, sampler)  # bad settings fail before any work
    if not (np.isfinite(total_steps) and total_steps > 0):
        raise ValueError(f"total_steps={total_steps} must be a positive number of steps")
    if schedule is not None and schedule.last_step is not None and schedule.last_step < total_steps:
        raise ValueError(f"the schedule ends at step {schedule.last_step:g}, before --total-steps {total_steps:g}; "
                         "give the planned learning rate up to the last step")
    check_schedule(posterior.law, schedule)
    curve = partial_curve(posterior, partial_runs, total_steps, group)
    settings = posterior.meta.settings
    fraction = settings.get("min_step_fraction", 0.0)
    keep = transient_mask(curve, fraction, settings.get("min_step", 0.0), final_step=total_steps)
    if not keep.any():
        raise ValueError(f"every checkpoint of the partial run lies in the early transient the fit drops (before "
                         f"{fraction:.0%} of the planned {total_steps:g} steps); track it once it has logged more "
                         "steps, or fit the ladder with a smaller --min-step-fraction")
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
    offset_sd = np.sqrt(tau**2 + kappa**2)

    K = law_error_covariance(axes, np.log(steps), float(meta.error_length))
    prior = prior_deviation(K, offset_sd, rng)  # the ladder alone: offset, law error, then stationary noise
    ladder = clip_to_ceiling(posterior, np.exp(mu + prior + rng.standard_t(nu, size=mu.shape) * sigma[:, None]))
    used = np.r_[thin_checkpoints(n), np.arange(n, len(steps))]
    m = len(used) - (len(steps) - n)
    residuals = (np.log(curve["loss"].to_numpy(float))[None, :] - mu[:, :n])[:, used[:m]]
    K_used = K[np.ix_(used, used)]
    positions = ar1_positions(np.log(steps[used[:m]]), fitted_spacing(posterior))
    keep, ess = _resample(marginal_log_likelihood(residuals, K_used, offset_sd, sigma, rho, positions), rng)
    few = too_few_draws(ess, D)
    refitted = None  # a sentence on the refit, when there is one
    if method == "refit" or (method == "auto" and few):
        updated, offset, refitted = _refit_forecast(posterior, curve, covariates, grid, group, rng, seed=seed,
                                                    progress=progress, sampler=sampler)
        if method == "auto":
            refitted = f"the reweighting rests on {ess:.0f} effective draws of {D}, so {refitted}"
    else:  # a deviation of its own for every kept copy of a draw
        deviation, shift = condition(residuals[keep], K_used, offset_sd[keep], sigma[keep], rho[keep],
                                     positions, rng)
        last = residuals[keep][:, m - 1] - deviation[:, m - 1]  # the noise at the last checkpoint, exactly
        noise = continue_noise(last, np.log(observed[-1]), np.log(grid), rho[keep], sigma[keep], nu,
                               fitted_spacing(posterior), rng)
        updated = clip_to_ceiling(posterior, np.exp(mu[keep][:, n:] + deviation[:, m:] + noise))
        offset = float(np.median(shift))
        if few:
            warnings.warn(f"the update rests on {ess:.0f} effective posterior draws (of {D}): the partial curve "
                          "disagrees with most of the ladder's posterior; refit with the partial run added to the "
                          "ladder's runs for a safer forecast (method='refit', --method refit)", TrackWarning,
                          stacklevel=2)

    df = band_frame(updated, levels, {"step": grid})
    before = band_frame(ladder[:, n:], levels, {"step": grid})
    for col in ("median", "lower", "upper"):
        df[f"ladder_{col}"] = before[col].to_numpy()
    band = quantile_bands(ladder[:, :n], (ALARM_LEVEL,))[ALARM_LEVEL]
    seen = pd.DataFrame({"step": observed, "loss": curve["loss"].to_numpy(float), "ladder_median": band[0],
                         "ladder_lower": band[1], "ladder_upper": band[2]})
    df.attrs.update(observed=seen, effective_draws=ess, offset=offset, refit=refitted,
                    method="reweight" if refitted is None else "refit", alarm=_alarm(seen),
                    total_steps=float(total_steps), params=N, batch_tokens=B,
                    schedule=(schedule or Schedule()).describe(), loss_units=loss_units(meta))
    state_ceiling(df, posterior, np.concatenate([ladder[:, n:], updated]), f"tracking N={N:.3g}, B={B:.3g}")
    if target_loss is not None:
        df.attrs["p_target_before"] = float(np.mean(ladder[:, -1] <= target_loss))
        df.attrs["p_target_after"] = float(np.mean(updated[:, -1] <= target_loss))
    return df


def _refit_forecast(posterior: Posterior, curve: pd.DataFrame, covariates: Mapping[str, np.ndarray] | None,
                    grid: np.ndarray, group: str | None, rng: np.random.Generator, *, seed: int, progress: bool,
                    sampler: Mapping[str, Any] | None) -> tuple[np.ndarray, float, str]:
    """The joint refit's forecast of the partial run ``curve`` at ``grid`` (``covariates`` at the
    curve's steps, then the grid's): its draws ``(D, P)``, the run's median offset and a
    sentence on the refit. Per draw of the joint posterior: the law's curve plus the run's
    fitted offset, the size's part of the law's error beyond its last checkpoint
    (:func:`size_error_after`), the law's error beyond the joint fit's ranges, and the
    evaluation noise's AR(1) continued from the last checkpoint."""
    name = posterior.groups[posterior.group_index(group)]
    n = len(curve)
    data, run = joint_data(posterior, curve, {k: v[:n] for k, v in covariates.items()} if covariates else None, name)
    result = refit(posterior, data, seed=seed, progress=progress, sampler=sampler)
    joint = result.posterior
    used = thin_checkpoints(n)
    m = len(used)
    steps = np.r_[curve["step"].to_numpy(float)[used], grid]
    log_mean, offsets = fitted_run_mean(joint, data, run, steps,
                                        {k: np.r_[v[:n][used], v[n:]] for k, v in covariates.items()}
                                        if covariates else None, name)
    N, B = float(curve["params"].iloc[0]), float(curve["batch_tokens"].iloc[0])
    residuals = np.log(curve["loss"].to_numpy(float)[used])[None, :] - log_mean[:, :m]
    size_error = size_error_after(posterior, joint, N, np.log(steps), residuals, rng)
    error = law_error_draws(joint, joint.law.distance(joint.meta.ranges, N, B, grid), rng)
    noise = continue_noise(residuals[:, m - 1] - size_error[:, m - 1], np.log(steps[m - 1]), np.log(grid),
                           scale_draws(joint, "rho"), scale_draws(joint, "sigma"), fitted_priors(joint).nu,
                           fitted_spacing(joint), rng)
    draws = np.exp(log_mean[:, m:] + size_error[:, m:] + error + noise)
    options = joint.meta.settings
    verdict = result.diagnostics.format().splitlines()[0]
    return clip_to_ceiling(posterior, draws), float(np.median(offsets)), (
        f"the ladder's {len(data.runs) - 1} runs were refitted with the partial run added ({options['chains']} chains "
        f"x {options['draws']} draws, {result.seconds:.0f} s of sampling): {verdict}")


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
