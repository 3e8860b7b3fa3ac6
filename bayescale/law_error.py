r"""The law's error, measured on the ladder itself.

Beyond the fitted data a forecast carries the law's own error (:mod:`bayescale.predict`):
on log loss, standard deviation ``kappa d`` at log-distance ``d`` outside the fitted
ranges, and along a run the size's part of it is a smooth function of log step,
correlated over ``l`` e-folds of steps (:mod:`bayescale.track`). By default ``kappa``
(0.01) and ``l`` (one e-fold) are set a priori. A ladder with enough sizes can measure
them: fit its smaller sizes, and ask how its larger runs depart from that fit's law.

**Split.** Runs whose size lies in the top :data:`HELD_OUT_SHARE` of the ladder's
log-size span are held out; the rest (at least :data:`MIN_FITTED_SIZES` sizes) are
fitted with the same law, priors and sampler settings.

**Evidence.** Per held-out run, per draw ``d`` of the smaller fit, the residuals
``r = log y - mu_d`` of its checkpoints (at most
:data:`~bayescale.deviation.MAX_UPDATE_POINTS`, past the fit's transient) are Gaussian
under the tracking model of :mod:`bayescale.track`: the run's offset (the ladder's seed
spread ``tau_d``: a run of the same ladder), the law's error with covariance
``kappa^2 K_l`` (``K_l`` from the run's distances outside the smaller fit's ranges) and
AR(1) evaluation noise (in log-steps, as the fit's: :mod:`bayescale.deviation`). Its
evidence

.. math::

    p(r \mid \kappa, l) = \frac{1}{D} \sum_d N\big(r_d;\ 0,\ \tau_d^2 \mathbf{1}\mathbf{1}^T
        + \kappa^2 K_l + \sigma_d^2 R(\rho_d)\big)

averages over the draws (the smaller fit's parameter uncertainty) and multiplies over
held-out runs (treated as independent). ``kappa`` and ``l`` are the grid point of
:data:`KAPPAS` x :data:`LENGTHS` with the largest evidence (type-II maximum likelihood);
``l = inf`` is a level, one shift along the whole run. The estimate assumes that the
law errs per e-fold beyond the larger ladder as it does beyond the smaller one, and it
rests on few runs: the whole evidence surface is kept with the posterior.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayescale.calibrate import match_groups
from bayescale.curves import transient_mask
from bayescale.models.law import outside
from bayescale.posterior import Posterior, fitted_points
from bayescale.predict import loss_draws, scale_draws
from bayescale.residuals import fitted_spacing
from bayescale.schedules import table_features
from bayescale.deviation import ar1_positions, law_error_covariance, marginal_log_likelihood, thin_checkpoints

#: Share of the ladder's log-size span, from the top, whose runs are held out.
HELD_OUT_SHARE = 1 / 3
#: Fewest distinct sizes the smaller fit keeps.
MIN_FITTED_SIZES = 3
#: Law-error growths tried (per unit of log-distance, on log loss).
KAPPAS = tuple(float(k) for k in np.geomspace(1e-3, 0.1, 21))
#: Lengths tried (e-folds of steps over which the size's part stays correlated; inf: a level).
LENGTHS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, float("inf"))
#: Most posterior draws of the smaller fit the evidence averages over (spread evenly).
MAX_DRAWS = 200


class HeldOutCurve(NamedTuple):
    """One held-out curve (a run in one group) against the smaller fit: its residuals
    ``(draws, n)`` from the law's mean curve, the distances ``(n, A)`` of its points outside
    the fitted ranges per axis (the size first), their log steps ``(n,)`` and the size's
    distance ``d_N``."""

    run: str
    residuals: np.ndarray
    axes: np.ndarray
    log_steps: np.ndarray
    d_N: float


@dataclass
class LawErrorEstimate:
    """``kappa`` and ``length`` measured on a ladder (module docstring), with what they rest on:
    the held-out runs and their size distances ``d_N`` beyond the smaller fit, its largest
    size, its verdict, and the log evidence over the whole grid (``evidence``: columns
    ``kappa, length, log_evidence``)."""

    kappa: float
    length: float
    held_out: list[str]
    distances: list[float]
    largest_fitted: float
    fitted_runs: int
    check_passed: bool
    evidence: pd.DataFrame

    def record(self) -> dict:
        """The estimate as recorded with the posterior (JSON-safe; the grid's best point per length)."""
        best = self.evidence.loc[self.evidence.groupby("length")["log_evidence"].idxmax()]
        return {"source": "ladder", "kappa": self.kappa, "length": self.length, "held_out": self.held_out,
                "distances": self.distances, "largest_fitted": self.largest_fitted,
                "fitted_runs": self.fitted_runs, "check_passed": self.check_passed,
                "best_per_length": {f"{r.length:g}": {"kappa": r.kappa, "log_evidence": r.log_evidence}
                                    for r in best.itertuples()}}


def law_error_record(meta) -> dict:
    """How a posterior's law error was set: its ``settings["law_error"]`` when measured on the
    ladder or taken from the public ladders, else ``{"source": "prior", "kappa", "length"}`` (``meta`` a
    :class:`~bayescale.posterior.PosteriorMeta`)."""
    return meta.settings.get("law_error") or {"source": "prior", "kappa": float(meta.extrapolation_error),
                                              "length": float(meta.error_length)}


def describe_record(record: dict) -> str:
    """One line on a :func:`law_error_record`: the growth, the length and what they rest on."""
    length = record["length"]
    along = ("a level along the run" if np.isinf(length)
             else f"its size's part correlated over {length:g} e-folds of steps")
    if record["source"] == "public":
        return (f"law error from public ladders: kappa {record['kappa']:.3g} per e-fold (the top of the 95% interval "
                f"measured on the Gadre 2024 and Gemstones 2025 ladders, 6M-7B parameters), {along}")
    if record["source"] != "ladder":
        return f"law error set a priori: kappa {record['kappa']:.3g} per e-fold, {along}"
    edge = f" (the edge of the grid {KAPPAS[0]:g}-{KAPPAS[-1]:g})" if record["kappa"] in (KAPPAS[0], KAPPAS[-1]) else ""
    gate = "" if record["check_passed"] else "; the smaller fit failed its convergence checks"
    d = record["distances"]
    return (f"law error measured on the ladder: kappa {record['kappa']:.3g} per e-fold{edge}, {along}; "
            f"{record['fitted_runs']} runs up to N={record['largest_fitted']:.3g} fitted, {len(record['held_out'])} "
            f"larger runs held out at {min(d):.2f}-{max(d):.2f} e-folds beyond them{gate}")


def law_error_caveat(posterior: Posterior, share: float, forecast: str) -> str:
    """The sentence ``predict`` prints beyond the fitted data: how much of ``forecast``'s
    predictive variance is the law's own error (``share``, from
    :func:`bayescale.predict.law_error_share`), what its growth rests on, and, where it was
    set a priori, whether the fitted ladder could measure it (:func:`split_by_size`) and, where it
    cannot, that the public ladders' growth can be borrowed (``fit --law-error public``)."""
    record = law_error_record(posterior.meta)
    text = f"{100 * share:.0f}% of the predictive variance of {forecast} is the law's own error ({describe_record(record)})"
    if record["source"] == "ladder":
        return text
    points = fitted_points(posterior)
    try:
        split_by_size(points)
    except ValueError:
        borrow = ("" if record["source"] == "public" else "; a ladder of real-scale language models can borrow the "
                  "growth measured on public ones: bayescale fit --law-error public")
        return (f"{text}; measuring it on the ladder (bayescale fit --law-error ladder) needs {MIN_FITTED_SIZES} or "
                f"more sizes below the top {HELD_OUT_SHARE:.0%} of its log-size span, and these runs have "
                f"{points['params'].nunique()} size(s) in all{borrow}")
    return f"{text}; this ladder has the sizes to measure it: bayescale fit --law-error ladder"


def split_by_size(runs: pd.DataFrame, share: float = HELD_OUT_SHARE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs of ``runs`` below and within the top ``share`` of its log-size span.
    Raises ``ValueError`` when fewer than :data:`MIN_FITTED_SIZES` sizes stay below, or none above."""
    size = runs.groupby("run", sort=False)["params"].first()
    log_N = np.log(size.to_numpy(float))
    cut = log_N.max() - share * (log_N.max() - log_N.min())
    held = set(size.index[log_N > cut])
    below = runs[~runs["run"].isin(held)]
    if not held or below["params"].nunique() < MIN_FITTED_SIZES:
        raise ValueError(f"measuring the law's error on the ladder needs {MIN_FITTED_SIZES} sizes below the top "
                         f"{share:.0%} of its log-size span and a run within it; these runs have "
                         f"{below['params'].nunique()} and {len(held)}: keep the default law error "
                         "(--law-error prior) or add sizes")
    return below.reset_index(drop=True), runs[runs["run"].isin(held)].reset_index(drop=True)


def held_out_residuals(posterior: Posterior, held_out: pd.DataFrame, draws: np.ndarray) -> list[HeldOutCurve]:
    """The curves of ``held_out`` (runs beyond ``posterior``'s sizes) against the law's mean
    curve of ``posterior`` at the given ``draws``, at most
    :data:`~bayescale.deviation.MAX_UPDATE_POINTS` checkpoints each past the fit's transient."""
    law, meta = posterior.law, posterior.meta
    settings = meta.settings
    keep = transient_mask(held_out, settings.get("min_step_fraction", 0.0), settings.get("min_step", 0.0))
    features = table_features(held_out).loc[keep].reset_index(drop=True) if law.covariates else None
    table = held_out.loc[keep].reset_index(drop=True)
    groups = pd.Series(match_groups(posterior, table), index=table.index)
    cases = []
    curves = table["run"].astype(str) + "\0" + groups
    for curve in pd.unique(curves):
        rows = np.flatnonzero(curves.to_numpy() == curve)
        rows = rows[thin_checkpoints(len(rows))]
        part = table.iloc[rows]
        N, B, steps = (part[c].to_numpy(float) for c in ("params", "batch_tokens", "step"))
        covariates = None if features is None else {k: features[k].to_numpy(float)[rows] for k in law.covariates}
        mean = np.log(loss_draws(posterior, N, B, steps, mode="mean", group=str(groups.iloc[rows[0]]),
                                 covariates=covariates))[draws]
        values = law.axis_values(N, B, steps)
        axes = np.stack([outside(values[axis], *meta.ranges[key]) for axis, key in law.fitted_ranges()], axis=1)
        residuals = np.log(part["loss"].to_numpy(float))[None, :] - mean
        cases.append(HeldOutCurve(str(part["run"].iloc[0]), residuals, axes, np.log(steps), float(axes[:, 0].max())))
    return cases


def log_evidence(cases: list[HeldOutCurve], tau: np.ndarray, sigma: np.ndarray, rho: np.ndarray, spacing: float,
                 kappas=KAPPAS, lengths=LENGTHS) -> pd.DataFrame:
    """The log evidence of the held-out curves ``cases`` (:func:`held_out_residuals`) for each
    ``kappa`` and ``length`` (module docstring), given the smaller fit's seed spread ``tau``,
    noise scale ``sigma`` and AR(1) correlation ``rho`` at the same draws, and its fitted
    points' log-step ``spacing`` (:func:`bayescale.residuals.fitted_spacing`: the AR(1) runs
    in log-steps, :mod:`bayescale.deviation`): columns ``kappa, length, log_evidence``."""
    total = np.zeros((len(kappas), len(lengths)))
    for _, residuals, axes, log_steps, _ in cases:
        D = residuals.shape[0]
        positions = ar1_positions(log_steps, spacing)
        for j, length in enumerate(lengths):
            unit = law_error_covariance(axes, log_steps, length)
            for i, kappa in enumerate(kappas):
                ll = marginal_log_likelihood(residuals, kappa**2 * unit, tau, sigma, rho, positions)
                total[i, j] += logsumexp(ll) - np.log(D)
    k, l = np.meshgrid(kappas, lengths, indexing="ij")
    return pd.DataFrame({"kappa": k.ravel(), "length": l.ravel(), "log_evidence": total.ravel()})


def ladder_law_error(fitted: pd.DataFrame, held_out: pd.DataFrame,
                     fit_part: Callable[[pd.DataFrame], tuple[Posterior, bool]]) -> LawErrorEstimate:
    """Measure ``kappa`` and the length on a ladder split by :func:`split_by_size` (module
    docstring). ``fit_part`` fits a run table (here the ``fitted`` runs) with the ladder's
    law, priors and sampler settings and returns the posterior and whether it passed its
    convergence checks."""
    posterior, passed = fit_part(fitted)
    D = posterior.n_draws
    draws = np.unique(np.round(np.linspace(0, D - 1, min(D, MAX_DRAWS))).astype(int))
    cases = held_out_residuals(posterior, held_out, draws)
    evidence = log_evidence(cases, *(scale_draws(posterior, name)[draws]
                                     for name in ("run_offset_scale", "sigma", "rho")), fitted_spacing(posterior))
    best = evidence.loc[evidence["log_evidence"].idxmax()]
    return LawErrorEstimate(kappa=float(best["kappa"]), length=float(best["length"]),
                            held_out=list(dict.fromkeys(c.run for c in cases)),
                            distances=list({c.run: c.d_N for c in cases}.values()),
                            largest_fitted=float(posterior.meta.ranges["params"][1]),
                            fitted_runs=int(fitted["run"].nunique()), check_passed=bool(passed), evidence=evidence)
