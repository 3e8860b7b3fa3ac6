"""Learning-rate schedules: the schedule-aware Kaplan law against the constant-LR one, on public curves.

Data: Luo et al. 2025 (arXiv:2503.12811), Llama-2-style models of about 25M, 100M and
400M parameters, nine learning-rate schedules per size (constant, cosine, WSD with an
exponential or linear decay, two-stage "wsdcon"), all after a linear warm-up over 2,160
steps to 3e-4, pretraining loss every 128 steps (``luo2025_multipower/`` of ``--data``).
The run table this script builds from each CSV: ``run`` (size/schedule), ``params``
(nominal 25e6, 100e6, 400e6: the data's README does not give the paper's exact
non-embedding counts), ``batch_tokens`` (one nominal value, :data:`BATCH_TOKENS`, for
every run: the batch is the same for every run, and the Kaplan priors centre the
critical batch on the observed batch, so with a single batch its value does not change
the fitted curves), ``step``, ``loss`` and ``learning_rate`` (the CSV's ``lr``, the rate
in effect at that step). No early transient is cut (``min_step_fraction=0``: the rows
start at the end of the warm-up); each curve is thinned to the fit's default of 32 points
evenly spaced in log-steps (:func:`bayescale.curves.thin_curves`).

Measured, on the same splits, for ``kaplan_schedule`` (Kaplan's law on the LR area with
an annealing gain, :mod:`bayescale.models.schedule`) and ``kaplan`` (constant-LR law),
each fitted with :func:`bayescale.fit.fit` and predicted with
:func:`bayescale.predict.loss_draws` (``mode="new_run"``, one call per held-out run, the
schedule features from :func:`bayescale.schedules.table_features`):

1. **Same size.** Per size, fit ``cosine_24000``, ``constant_24000`` and ``wsdcon_9``,
   predict the other six schedules: median |relative error| of the median forecast over
   every held-out point, share of points inside the central 90% band, median 90% width
   relative to the loss (log upper - log lower) and in nats of loss (upper - lower, the
   unit of the goals); per held-out schedule the median error. The bands
   are also taken apart: parameter uncertainty alone (``mode="mean"``), plus seed and
   evaluation noise (``new_run`` with the law-error scale ``extrapolation_error`` set to
   0) and everything (``new_run`` as stored).
   **Same sizes, one fit** (``--splits all-sizes``): the split as the schedule work was
   first measured, one fit of those three schedules of all three sizes together (the
   sizes share the law's constants), predicting the other six schedules of every size;
   scored pooled, and per size in the notes.
2. **Reference.** The Multi-Power Law (Luo et al. 2025, eq. in :func:`mpl_curve`),
   point-fitted per size on the same three schedules by SciPy least squares (Huber loss
   with delta 1e-3 on log loss, the paper's objective; analytic Jacobian; several
   starts), predicting the same six.
3. **Across sizes.** Fit all nine schedules of 25M and 100M, predict all nine of 400M.
   Every run has one batch, so the critical batch is left to its prior; the split is run
   with the wide default prior and with the published constants
   (``KaplanPriors(critical_batch="literature")``, ``bayescale fit --batch-prior
   literature``; these losses are nats per BPE token of web text, the units those
   constants were measured in), and with the irreducible-loss variant under the latter;
   three of the fits again with the fit's default early-transient cut (the first 10% of
   each run's steps, ``min_step_fraction`` 0.1), and with independent residuals along each
   run (``residual_correlation="independent"``; also on the one-fit split of 1, with the
   default cut too), which weigh each run's level in full. Reference: the schedule law's mean curve
   least-squares fitted to the same thinned points (:func:`point_fit_schedule_law`), which
   shows how far the law form itself extrapolates. Two sizes cannot measure the law's
   error, so its growth is the a-priori 0.01 per e-fold; the fits of
   :data:`LAW_ERROR_REFITS` are scored again, with the same draws, at each growth of
   ``--law-error-kappas`` (by default those ``law_error_ladders.py`` measured on other
   ladders), to show what an a-priori value taken from them would give.
4. **PSIS-LOO** of ``kaplan_schedule`` against ``kaplan`` on each size's fit of split 1
   (:func:`bayescale.compare.compare_posteriors`); and, on the one-fit and cross-size splits,
   between ``kaplan_schedule`` and its irreducible variant (:data:`LOO_PAIRS`), on the fitted
   points only: the row "PSIS-LOO's choice" is the held-out accuracy of the law a user who
   compares the two first (``bayescale compare``) would forecast with.
5. **Fit time.** Sampling seconds (``FitResult.seconds``) of both laws on the same
   points with the same settings; the ratio per size and its median.
6. **Gadre et al. 2024** final losses (held-out 1.4B and 6.9B runs as in
   ``public_data.py``): ``kaplan`` against ``kaplan_schedule`` with each run's cosine
   schedule (peak ``lr``, ``warmup_steps``, final rate ``lr_cooldown_end``).

Prints the tables and appends them, dated, with the machine and library versions, to
benchmarks/RESULTS.md.

Run: ``python benchmarks/schedules.py --data ../shared/data [--chains 2 --warmup 500 --draws 500] [--quick]
[--splits same-size cross-size gadre]``.
"""

from __future__ import annotations

import os

# least_squares' small dense algebra is slower with OpenBLAS threads on a busy 2-core CPU.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime as dt  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import (  # noqa: E402
    add_append_option, add_data_option, add_sampler_options, data_folder, markdown_table, publish)
from scipy.optimize import least_squares  # noqa: E402

from bayescale.cores import use_cpu_cores  # noqa: E402
from bayescale.defaults import DEFAULT_MAX_POINTS, DEFAULT_MIN_STEP_FRACTION  # noqa: E402
from bayescale.environment import conditions  # noqa: E402


#: Nominal non-embedding sizes (the data's README names the models 25M, 100M and 400M).
SIZES = {"25M": 25e6, "100M": 100e6, "400M": 400e6}
#: One batch for every run (nominal: 2**19 tokens). With a single batch size the critical
#: batch is decided by its prior, which is centred on the observed batch, so the value
#: shifts nothing but the reported B_star.
BATCH_TOKENS = 524_288.0
#: The paper's fitting schedules; the other six are predicted.
FIT_SCHEDULES = ("cosine_24000", "constant_24000", "wsdcon_9")
SCHEDULES = ("constant_24000", "constant_72000", "cosine_24000", "cosine_72000", "wsd_20000_24000",
             "wsdld_20000_24000", "wsdcon_3", "wsdcon_9", "wsdcon_18")
#: Warm-up of every run: linear over 2,160 steps to the peak 3e-4 (data README).
WARMUP_STEPS = 2160
PEAK_LR = 3e-4
LAWS = ("kaplan_schedule", "kaplan")


class FitOptions(NamedTuple):
    """One bayescale fit of the benchmark: the law, its critical-batch prior
    (``KaplanPriors.critical_batch``), the early-transient cut (0: every point from the end of
    the warm-up) and how the residuals along a curve are modelled (``residual_correlation``)."""

    law: str
    batch_prior: str = "data"
    min_step_fraction: float = 0.0
    residuals: str = "ar1"

    @property
    def label(self) -> str:
        parts = [self.law] + ([f"{self.batch_prior} B_crit prior"] if self.batch_prior != "data" else [])
        if self.min_step_fraction:
            parts.append(f"first {self.min_step_fraction:.0%} of each run cut")
        if self.residuals != "ar1":
            parts.append(f"{self.residuals} residuals")
        return ", ".join(parts)


#: The cross-size split's fits: every 400M point lies beyond the fitted sizes, and one batch
#: per size leaves the critical batch to its prior, so the split is also run with the
#: published constants (these losses are nats per BPE token of web text, the units those
#: measurements were made in); again with the fit's default early-transient cut; and with
#: independent residuals, which weight each run's level rather than its shape.
CROSS_SIZE_FITS = (FitOptions("kaplan_schedule"), FitOptions("kaplan"), FitOptions("kaplan_schedule", "literature"),
                   FitOptions("kaplan", "literature"), FitOptions("kaplan_schedule_irreducible", "literature"),
                   FitOptions("kaplan_schedule", min_step_fraction=DEFAULT_MIN_STEP_FRACTION),
                   FitOptions("kaplan", min_step_fraction=DEFAULT_MIN_STEP_FRACTION),
                   FitOptions("kaplan_schedule", "literature", DEFAULT_MIN_STEP_FRACTION),
                   FitOptions("kaplan_schedule", residuals="independent"),
                   FitOptions("kaplan", residuals="independent"))
#: The cross-size fits scored again at other law-error growths (``--law-error-kappas``): the
#: fit's default cut, and independent residuals.
LAW_ERROR_REFITS = (FitOptions("kaplan_schedule", min_step_fraction=DEFAULT_MIN_STEP_FRACTION),
                    FitOptions("kaplan_schedule", residuals="independent"))
#: Law-error growths per e-fold measured on other ladders by ``law_error_ladders.py``
#: (2026-12-07, 4 x 1000 draws): the two public ladders pooled, Gadre and Gemstones (0.0025), and
#: the top of their 95% interval (0.004); the bundled sweep's tiny models (0.02).
OTHER_LADDER_KAPPAS = (0.0025, 0.004, 0.02)
#: Fits of the one-fit split over every size: with three sizes an irreducible loss can follow
#: the curvature of the size term (the per-size floors are not one power law of N); independent
#: residuals against the AR(1) ones; the fit's default early-transient cut.
ALL_SIZES_FITS = (*(FitOptions(law) for law in (*LAWS, "kaplan_schedule_irreducible")),
                  FitOptions("kaplan_schedule", residuals="independent"),
                  FitOptions("kaplan_schedule", min_step_fraction=DEFAULT_MIN_STEP_FRACTION))
#: The fits PSIS-LOO chooses between on each split's fitted points, before any held-out point is
#: seen: the schedule law and its irreducible variant (``bayescale compare --models
#: kaplan_schedule,kaplan_schedule_irreducible``); across sizes under the published critical-batch
#: prior, the one prior both were fitted with there.
LOO_PAIRS = {"all-sizes": (FitOptions("kaplan_schedule"), FitOptions("kaplan_schedule_irreducible")),
             "cross-size": (FitOptions("kaplan_schedule", "literature"),
                            FitOptions("kaplan_schedule_irreducible", "literature"))}
#: The benchmark's parts (``--splits``).
SPLITS = ("same-size", "all-sizes", "cross-size", "gadre")
QUANTILES = (0.05, 0.5, 0.95)


# ---------------------------------------------------------------------------------------
# Data


def load_luo(folder: Path) -> pd.DataFrame:
    """The Luo et al. 2025 curves as one run table (module docstring)."""
    parts = []
    for size, params in SIZES.items():
        for schedule in SCHEDULES:
            raw = pd.read_csv(folder / f"csv_{size[:-1]}" / f"{schedule}.csv")
            parts.append(pd.DataFrame({
                "run": f"{size}/{schedule}", "size": size, "schedule": schedule, "params": params,
                "batch_tokens": BATCH_TOKENS, "step": raw["step"].astype(float), "loss": raw["loss"].astype(float),
                "learning_rate": raw["lr"].astype(float)}))
    return pd.concat(parts, ignore_index=True)


def gadre_with_schedules(path: Path) -> pd.DataFrame:
    """Gadre et al. 2024 final losses with each run's schedule as run-table columns.

    ``load_gadre2024`` does not give ``schedule``/``final_lr_fraction``/``total_steps``
    yet (another change adds them); until it does they are built here from the raw
    table: open_lm decays the rate by a cosine from ``lr`` to ``lr_cooldown_end`` over
    the run after ``warmup_steps`` of linear warm-up, and every run ends its schedule at
    its last step (the final loss is taken there).
    """
    from bayescale.runs import load_gadre2024

    runs = load_gadre2024(path)
    raw = pd.read_csv(path).set_index("name").loc[runs["run"]]
    if "schedule" not in runs.columns:
        runs["schedule"] = "cosine"
        runs["final_lr_fraction"] = (raw["lr_cooldown_end"] / raw["lr"]).to_numpy(float)
        runs["total_steps"] = np.ceil(runs["step"].to_numpy(float))
    return runs


# ---------------------------------------------------------------------------------------
# The Multi-Power Law (Luo et al. 2025), written out in NumPy


class MPLRun:
    """One run's schedule, laid out for the Multi-Power Law at its logged steps.

    Rates per optimizer step ``s = 1..T``: linear warm-up ``PEAK_LR s / W`` for ``s <= W``,
    then the CSV's ``lr`` interpolated linearly between logged rows. After warm-up the
    paper counts steps ``t = s - W`` with ``eta_0`` the peak: ``S_W`` is the warm-up area,
    ``S1(t) = sum_{tau=1..t} eta_tau`` and ``S_k(t) = S1(t) - S1(k-1)``. Only the steps
    ``k`` where the rate changes (``eta_{k-1} != eta_k``) enter the loss-drop sum.
    """

    def __init__(self, steps: np.ndarray, lrs: np.ndarray, loss: np.ndarray | None = None):
        steps = np.asarray(steps, float)
        s = np.arange(1, int(steps.max()) + 1, dtype=float)
        eta = np.where(s <= WARMUP_STEPS, PEAK_LR * s / WARMUP_STEPS, np.interp(s, steps, np.asarray(lrs, float)))
        self.S_W = float(eta[:WARMUP_STEPS].sum())
        post = eta[WARMUP_STEPS - 1:]  # post[0] = eta_0 (the peak, last warm-up step), post[t] = eta_t
        self.cum = np.concatenate([[0.0], np.cumsum(post[1:])])  # cum[t] = S1(t)
        self.t = np.rint(steps).astype(np.int64) - WARMUP_STEPS
        drop = post[:-1] - post[1:]  # drop[k-1] = eta_{k-1} - eta_k
        k = np.flatnonzero(drop != 0.0) + 1
        self.k, self.drop, self.log_eta = k, drop[k - 1], np.log(post[k] / PEAK_LR)
        self.loss = None if loss is None else np.asarray(loss, float)
        self._Sk = None

    def Sk(self, rows: slice = slice(None)) -> np.ndarray:
        """``S_k(t)`` for the logged steps ``rows`` x decay steps ``k`` (0 where ``k > t``)."""
        t = self.t[rows]
        Sk = self.cum[t][:, None] - self.cum[self.k - 1][None, :]
        return np.where(self.k[None, :] <= t[:, None], Sk, 0.0)


def _unpack(theta):
    """The paper's constants from the fitted coordinates ``(L0, log A, alpha, log B, log C', beta, gamma)``.

    ``C' = C PEAK_LR^-gamma`` multiplies ``(eta_k / PEAK_LR)^-gamma S_k(t)``: the same law,
    but ``C'`` and ``gamma`` are nearly independent, whereas ``C`` and ``gamma`` trade off
    along a ridge (rates span only 3e-5 to 3e-4), on which the fit ran into a bound of ``C``.
    """
    L0, log_A, alpha, log_B, log_C1, beta, gamma = theta
    return L0, np.exp(log_A), alpha, np.exp(log_B), np.exp(log_C1), beta, gamma


def mpl_curve(theta, run: MPLRun, jacobian: bool = False, chunk: int = 48):
    """``L(t) = L0 + A (S1(t) + S_W)^-alpha - LD(t)``,
    ``LD(t) = B sum_k (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t))``, ``G(x) = 1 - (C x + 1)^-beta``,
    at the run's logged steps; with ``jacobian=True`` also d L / d theta, theta =
    (L0, log A, alpha, log B, log C', beta, gamma) (:func:`_unpack`)."""
    L0, A, alpha, B, C, beta, gamma = _unpack(theta)
    u = run.cum[run.t] + run.S_W
    power = A * u ** (-alpha)
    n = len(run.t)
    sums = np.zeros((4, n))  # sum d G, sum d dG/dC, sum d dG/dbeta, sum d dG/dgamma
    if len(run.k):
        scale = np.exp(-gamma * run.log_eta)
        cached = run._Sk if jacobian else None
        if jacobian and cached is None:  # fitted runs: S_k(t) once, reused by every evaluation
            run._Sk = cached = run.Sk()
        for lo in range(0, n, n if cached is not None else chunk):
            rows = slice(lo, min(n, lo + (n if cached is not None else chunk)))
            x = (cached[rows] if cached is not None else run.Sk(rows)) * scale[None, :]
            log_z = np.log1p(C * x)
            zb = np.exp(-beta * log_z)
            sums[0, rows] = (1.0 - zb) @ run.drop
            if jacobian:
                dz = beta * zb / (1.0 + C * x) * x  # dG/dC
                sums[1, rows] = dz @ run.drop
                sums[2, rows] = (zb * log_z) @ run.drop
                sums[3, rows] = (dz * run.log_eta[None, :]) @ run.drop  # -dG/dgamma / C
    pred = L0 + power - B * sums[0]
    if not jacobian:
        return pred
    J = np.column_stack([np.ones(n), power, -power * np.log(u), -B * sums[0], -B * C * sums[1], -B * sums[2],
                         B * C * sums[3]])
    return pred, J


def fit_mpl(runs: list[MPLRun]) -> tuple[np.ndarray, dict]:
    """Least-squares fit of the seven constants to ``runs`` (Huber, delta 1e-3, on log loss).

    Starts: ``(L0, A, alpha)`` from the constant-rate part of the law fitted alone
    (``B = 0``), then every combination of ``B`` in {100, 1000}, ``C'`` in {30, 300}
    (``C`` of about 0.3-3 at ``gamma`` 0.5), ``gamma`` in {0.3, 0.7} with ``beta = 0.5``;
    the best final cost wins.
    """
    y = np.concatenate([r.loss for r in runs])
    lo = np.array([0.0, -10, 0.01, -5, -10, 0.01, -1.0])
    hi = np.array([float(y.min()), 5, 3.0, 12, 15, 5.0, 3.0])

    def residuals(theta):
        pred = np.concatenate([mpl_curve(theta, r) for r in runs])
        return np.log(np.maximum(pred, 1e-6)) - np.log(y)  # a trial step may overshoot below zero

    def jac(theta):
        preds, Js = zip(*(mpl_curve(theta, r, jacobian=True) for r in runs))
        return np.concatenate(Js) / np.concatenate(preds)[:, None]

    def solve(theta0, free=None):
        theta0 = np.clip(theta0, lo + 1e-9, hi - 1e-9)
        free = np.ones(7, bool) if free is None else free
        f = lambda p: residuals(np.where(free, _fill(p, free, theta0), theta0))  # noqa: E731
        j = lambda p: jac(np.where(free, _fill(p, free, theta0), theta0))[:, free]  # noqa: E731
        res = least_squares(f, theta0[free], jac=j, bounds=(lo[free], hi[free]), loss="huber", f_scale=1e-3,
                            x_scale="jac", max_nfev=400)
        return _fill(res.x, free, theta0), res

    base = np.array([0.8 * y.min(), np.log(0.5), 0.5, np.log(1e-9), 0.0, 0.5, 0.5])
    base, _ = solve(base, free=np.array([1, 1, 1, 0, 0, 0, 0], bool))
    best, best_res, costs = None, None, []
    for B in (100.0, 1000.0):
        for C in (30.0, 300.0):
            for gamma in (0.3, 0.7):
                start = base.copy()
                start[3:] = [np.log(B), np.log(C), 0.5, gamma]
                theta, res = solve(start)
                costs.append(res.cost)
                if best_res is None or res.cost < best_res.cost:
                    best, best_res = theta, res
    spread = (max(costs) - min(costs)) / max(min(costs), 1e-300)
    return best, {"cost": best_res.cost, "starts": len(costs), "cost_spread": spread, "nfev": best_res.nfev}


def _fill(p, free, theta0):
    out = np.array(theta0, float)
    out[free] = p
    return out


def mpl_constants(theta) -> str:
    L0, A, alpha, B, C1, beta, gamma = _unpack(theta)
    return (f"L0 {L0:.3f}, A {A:.3f}, alpha {alpha:.3f}, B {B:.1f}, C {C1 * PEAK_LR ** gamma:.3g}, "
            f"beta {beta:.3f}, gamma {gamma:.3f}")


#: Starts of :func:`point_fit_schedule_law`, (log N_c, alpha_N, log S_c, alpha_S, log B_*,
#: alpha_B, log D_ref, gamma_D): Kaplan et al. 2020's constants with a 3% annealing gain, and
#: the same with a steep critical batch (alpha_B 0.09), the region single-batch curves reach.
POINT_FIT_STARTS = ((np.log(8.8e13), 0.076, np.log(2.1e3), 0.76, np.log(2.1e8), 0.21, np.log(0.03), 0.0),
                    (np.log(8.8e13), 0.076, np.log(2.1e3), 0.76, np.log(1e11), 0.09, np.log(0.03), 0.0))


def point_fit_schedule_law(train: pd.DataFrame, held: pd.DataFrame) -> tuple[np.ndarray, float]:
    """The mean curve of ``kaplan_schedule`` fitted by least squares on log loss to the points a
    Bayesian fit of ``train`` sees (each curve thinned to :data:`DEFAULT_MAX_POINTS`), without run
    offsets, AR(1) noise or priors: its forecast of ``held`` and its median |relative error| on the
    fitted points.

    The law's own function (:meth:`ScheduleKaplan.mean_log_loss`) in float64, Levenberg-Marquardt
    with JAX's Jacobian from each of :data:`POINT_FIT_STARTS`; the lowest cost wins. It separates
    the law form from the likelihood: how far the best curve of this form extrapolates.
    """
    import jax
    import jax.numpy as jnp

    from bayescale.curves import thin_curves
    from bayescale.models.law import Covariates
    from bayescale.models.schedule import KAPLAN_SCHEDULE, ScheduleConstants
    from bayescale.schedules import table_features

    fitted = train[thin_curves(train["step"].to_numpy(float), train["run"].to_numpy(), DEFAULT_MAX_POINTS)]
    with jax.enable_x64(True):
        def covariates(table):
            features = table_features(table)
            return Covariates(*(jnp.log(table[c].to_numpy(float)) for c in ("params", "batch_tokens", "step")),
                              {k: jnp.asarray(features[k].to_numpy(float)) for k in KAPLAN_SCHEDULE.covariates})

        x_fit, x_held = covariates(fitted), covariates(held)
        log_N_ref = float(np.mean(np.log(fitted["params"].unique())))

        def curve(theta, x):
            c = ScheduleConstants(*theta[:6], L_inf=0.0, log_D_ref=theta[6], gamma_D=theta[7], log_N_ref=log_N_ref)
            return KAPLAN_SCHEDULE.mean_log_loss(c, x)

        y = np.log(fitted["loss"].to_numpy(float))
        residual = jax.jit(lambda theta: curve(theta, x_fit) - y)
        jacobian = jax.jit(jax.jacfwd(residual))
        best = min((least_squares(lambda t: np.asarray(residual(t)), np.asarray(start, float),
                                  jac=lambda t: np.asarray(jacobian(t)), method="lm", max_nfev=3000)
                    for start in POINT_FIT_STARTS), key=lambda r: r.cost)
        return np.exp(np.asarray(curve(best.x, x_held))), float(np.median(np.abs(np.expm1(best.fun))))


# ---------------------------------------------------------------------------------------
# bayescale fits and bands


def _recorded(call):
    """Run ``call``; return its value, wall seconds and its distinct warnings (recorded, reported)."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        value = call()
    seen = dict.fromkeys(f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in record)
    return value, time.perf_counter() - start, list(seen)


def fit_law(train: pd.DataFrame, options: FitOptions, args: argparse.Namespace):
    """Fit with the script's sampler settings and ``options`` (:class:`FitOptions`)."""
    from bayescale import fit
    from bayescale.models import get_law

    priors = dataclasses.replace(get_law(options.law).default_priors(), critical_batch=options.batch_prior,
                                 residual_correlation=options.residuals)
    return _recorded(lambda: fit(train, law=options.law, group_by=None, priors=priors, chains=args.chains,
                                 warmup=args.warmup, draws=args.draws, seed=args.seed,
                                 min_step_fraction=options.min_step_fraction, target_accept=args.target_accept,
                                 progress=False, warn=False))


def bands(posterior, held: pd.DataFrame, seed: int, mode: str = "new_run") -> np.ndarray:
    """5%, 50%, 95% points (rows) at every held-out point, one ``loss_draws`` call per held-out run
    (each a new run: its own offset, and the law error shared along its curve)."""
    from bayescale.predict import loss_draws
    from bayescale.schedules import table_features

    q = np.empty((len(QUANTILES), len(held)))
    for i, (_, run) in enumerate(held.groupby("run", sort=False)):
        features = table_features(run)
        covariates = {name: features[name].to_numpy(float) for name in posterior.law.covariates}
        draws = loss_draws(posterior, run["params"].to_numpy(), run["batch_tokens"].to_numpy(),
                           run["step"].to_numpy(), mode=mode, covariates=covariates, seed=seed + i)
        q[:, held.index.get_indexer(run.index)] = np.quantile(draws, QUANTILES, axis=0)
    return q


def calibrated_range(posterior, held: pd.DataFrame, q: np.ndarray, seed: int) -> str:
    """The 5-95% range of the 90% bands' coverage over joint replicates of the held-out points
    drawn under the posterior's own model (:mod:`bayescale.replicates`): what a calibrated band
    shows on these points, where one law error moves every point of the held-out size, and how
    often it covers more than the goal's 0.98 of them."""
    from bayescale.defaults import COVERAGE_RANGE
    from bayescale.replicates import format_range, replicate_coverage, replicate_losses
    from bayescale.schedules import table_features

    features = table_features(held)
    joint = replicate_losses(posterior, held, np.full(len(held), posterior.groups[0]),
                             {name: features[name].to_numpy(float) for name in posterior.law.covariates}, seed=seed)
    inside = replicate_coverage(joint, q[0], q[2])
    low, high = np.quantile(inside, COVERAGE_RANGE)
    return f"{format_range(low, high)}; above 0.98 in {np.mean(inside > 0.98):.0%}"


def score(truth: np.ndarray, q: np.ndarray | None, median: np.ndarray | None = None) -> dict:
    """Median and mean |relative error| of the median; with bands, 90% coverage and the median
    90% width, relative (``log upper - log lower``) and in nats of loss (``upper - lower``)."""
    median = q[1] if median is None else median
    err = np.abs(median / truth - 1.0)
    out = {"points": len(truth), "median_err": float(np.median(err)), "mean_err": float(np.mean(err))}
    if q is not None:
        out.update(coverage_90=float(np.mean((truth >= q[0]) & (truth <= q[2]))),
                   width_90=float(np.median(np.log(q[2]) - np.log(q[0]))),
                   width_90_nats=float(np.median(q[2] - q[0])))
    return out


def per_schedule(held: pd.DataFrame, median: np.ndarray) -> dict[str, float]:
    err = np.abs(median / held["loss"].to_numpy() - 1.0)
    return {s: float(np.median(err[(held["schedule"] == s).to_numpy()])) for s in held["schedule"].unique()}


def _gate(result) -> str:
    """The convergence gate's verdict and, when it fails, each failed check (with the site)."""
    return "; ".join(result.diagnostics.format().splitlines()).replace("  - ", "")


# ---------------------------------------------------------------------------------------
# The benchmarks


def same_size(runs: pd.DataFrame, args, notes: list[str]):
    """Splits 1, 2, 4 and 5: per size, fit the three schedules, predict the other six."""
    from bayescale.compare import compare_posteriors

    rows, by_schedule, decomposition, loo_rows, times = [], [], [], [], []
    for size in args.sizes:
        part = runs[runs["size"] == size]
        train = part[part["schedule"].isin(FIT_SCHEDULES)].reset_index(drop=True)
        held = part[~part["schedule"].isin(FIT_SCHEDULES)].reset_index(drop=True)
        truth = held["loss"].to_numpy()
        if size == args.sizes[0]:
            notes.append(_distance_note(train, held))
        fits = {}
        for law in LAWS:
            result, wall, messages = fit_law(train, FitOptions(law), args)
            fits[law] = result
            notes += [f"same size {size}, {law}: {_gate(result)}; sampling {result.seconds:.1f} s, whole fit "
                      f"{wall:.1f} s", *(f"same size {size}, {law}: {m}" for m in messages)]
            post = result.posterior
            start = time.perf_counter()
            q = bands(post, held, args.seed)
            predict_seconds = time.perf_counter() - start
            rows.append({"split": f"same size {size}", "method": law, **score(truth, q),
                         "calibrated_90": calibrated_range(post, held, q, args.seed),
                         "fit_s": result.seconds, "predict_s": predict_seconds})
            by_schedule.append({"size": size, "method": law, **per_schedule(held, q[1])})
            for label, p, mode in (("parameters only (mean)", post, "mean"),
                                   ("+ seed and noise (new_run, kappa 0)", post.with_law_error(0.0), "new_run"),
                                   ("+ law error (new_run, as stored)", post, "new_run")):
                qd = bands(p, held, args.seed, mode=mode)
                for extrapolated in (False, True):
                    sel = (held["step"] > train["step"].max()).to_numpy() == extrapolated
                    decomposition.append({"size": size, "method": law, "bands": label,
                                          "held-out points": "steps beyond the fitted 24,000" if extrapolated
                                          else "steps within the fitted range",
                                          **score(truth[sel], qd[:, sel])})
            for name in ("sigma", "run_offset_scale", "rho"):
                if name in post.idata.posterior:
                    notes.append(f"same size {size}, {law}: posterior median {name} "
                                 f"{float(np.median(post.draws(name))):.3g}")
        first = {law: _first_pass_seconds(fits[law]) for law in LAWS}
        times.append({"size": size, "kaplan_schedule_s": first["kaplan_schedule"], "kaplan_s": first["kaplan"],
                      "ratio": first["kaplan_schedule"] / first["kaplan"]})
        comparison, _, messages = _recorded(lambda: compare_posteriors(
            {law: fits[law].posterior for law in LAWS}))
        notes += [f"PSIS-LOO {size}: {m}" for m in messages]
        for _, r in comparison.table.iterrows():
            loo_rows.append({"size": size, "points": comparison.n_points, **r.to_dict()})

        # The Multi-Power Law reference on the same split.
        start = time.perf_counter()
        train_runs = [MPLRun(g["step"], g["learning_rate"], g["loss"]) for _, g in train.groupby("run")]
        theta, info = fit_mpl(train_runs)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        median = np.empty(len(held))
        for _, g in held.groupby("run", sort=False):
            median[held.index.get_indexer(g.index)] = mpl_curve(theta, MPLRun(g["step"], g["learning_rate"]))
        rows.append({"split": f"same size {size}", "method": "Multi-Power Law (point fit)",
                     **score(truth, None, median), "fit_s": fit_seconds, "predict_s": time.perf_counter() - start})
        by_schedule.append({"size": size, "method": "Multi-Power Law", **per_schedule(held, median)})
        fitted = np.concatenate([mpl_curve(theta, r) for r in train_runs])
        observed = np.concatenate([r.loss for r in train_runs])
        notes.append(f"same size {size}, Multi-Power Law: {mpl_constants(theta)}; {info['starts']} starts, final "
                     f"costs within {info['cost_spread']:.1%} of the best; in-sample median |rel err| "
                     f"{np.median(np.abs(fitted / observed - 1)):.3%}")
    return rows, by_schedule, decomposition, loo_rows, times


def all_sizes(runs: pd.DataFrame, args, notes: list[str]) -> list[dict]:
    """Split 1, one fit: of the three schedules of every size (the sizes share the law's
    constants), predicting the other six schedules of every size; scored pooled and per size."""
    train = runs[runs["schedule"].isin(FIT_SCHEDULES) & runs["size"].isin(args.sizes)].reset_index(drop=True)
    held = runs[~runs["schedule"].isin(FIT_SCHEDULES) & runs["size"].isin(args.sizes)].reset_index(drop=True)
    truth = held["loss"].to_numpy()
    rows, fitted = [], {}
    for options in ALL_SIZES_FITS:
        result, q, row = fit_and_predict(train, held, options, args, f"all sizes, {options.label}", notes)
        rows.append({"split": "same sizes, one fit", "method": options.label, **row})
        fitted[options] = (result, rows[-1])
        for size in args.sizes:
            sel = (held["size"] == size).to_numpy()
            notes.append(f"all sizes, {options.label}, {size} held-out schedules: " + ", ".join(
                f"{k} {v:.4g}" for k, v in score(truth[sel], q[:, sel]).items()))
    return rows + [loo_choice({o: fitted[o] for o in LOO_PAIRS["all-sizes"]}, "all sizes", notes)]


def loo_choice(fitted: dict, label: str, notes: list[str]) -> dict:
    """PSIS-LOO (:func:`bayescale.compare.compare_posteriors`) between fits of the same points,
    ``{FitOptions: (FitResult, row)}``: the comparison in the notes, and the best fit's row as
    the method "PSIS-LOO's choice: ..." (what a user who compares first would forecast with)."""
    from bayescale.compare import compare_posteriors

    by_label = {options.label: value for options, value in fitted.items()}
    comparison, _, messages = _recorded(lambda: compare_posteriors({k: r.posterior for k, (r, _) in by_label.items()}))
    notes.append(f"{label}, PSIS-LOO on the {comparison.n_points} fitted points: " + "; ".join(
        f"{r['model']}: elpd_loo {r['elpd_loo']:.1f} (se {r['se']:.1f}), elpd_diff {r['elpd_diff']:.1f} (dse "
        f"{r['dse']:.1f}), stacking weight {r['weight']:.2f}, Pareto k > 0.7 at {r['pareto_k_bad']} points"
        for _, r in comparison.table.iterrows()))
    notes += [f"{label}, PSIS-LOO: {m}" for m in messages]
    best = comparison.table["model"].iloc[0]
    return {**by_label[best][1], "method": f"PSIS-LOO's choice: {best}"}


def fit_and_predict(train: pd.DataFrame, held: pd.DataFrame, options: FitOptions, args, label: str,
                    notes: list[str]):
    """Fit ``train`` (:func:`fit_law` with ``options``), note its gate, points and times under
    ``label``, and predict ``held``: the fit, the bands (:func:`bands`) and the scores."""
    result, wall, messages = fit_law(train, options, args)
    notes += [f"{label}: {_gate(result)}; {_fitted(result)} of {len(train)} logged points of "
              f"{train['run'].nunique()} runs fitted; sampling {result.seconds:.1f} s, whole fit {wall:.1f} s",
              *(f"{label}: {m}" for m in messages)]
    start = time.perf_counter()
    q = bands(result.posterior, held, args.seed)
    predict_seconds = time.perf_counter() - start
    return result, q, {**score(held["loss"].to_numpy(), q),
                       "calibrated_90": calibrated_range(result.posterior, held, q, args.seed),
                       "fit_s": result.seconds, "predict_s": predict_seconds}


def _fitted(result) -> int:
    """How many points a fit saw (after thinning, :func:`bayescale.curves.thin_curves`)."""
    return int(result.posterior.idata.constant_data["log_N"].size)


def _first_pass_seconds(result) -> float:
    """Sampling seconds of a fit's first pass: without the chains run again from the main mode
    (``rerun_seconds``, :func:`bayescale.modes.rerun_stuck_chains`), which a stuck chain adds."""
    return result.seconds - result.posterior.meta.settings.get("rerun_seconds", 0.0)


def _distance_note(train: pd.DataFrame, held: pd.DataFrame) -> str:
    """How far the held-out curves reach beyond the fitted ones, in steps (the axis the law error is
    measured on) and in LR area (the axis kaplan_schedule evaluates Kaplan's law on)."""
    from bayescale.schedules import table_features

    fitted_area = float(np.exp(table_features(train)["log_lr_area"]).max())
    fitted_step = float(train["step"].max())
    parts = []
    for run, g in held.groupby("run", sort=False):
        last = g.loc[g["step"].idxmax()]
        area = float(np.exp(table_features(g)["log_lr_area"]).max())
        if last["step"] > fitted_step:
            parts.append(f"{last['schedule']} {np.log(last['step'] / fitted_step):.2f} in steps, "
                         f"{max(0.0, np.log(area / fitted_area)):.2f} in LR area")
    return ("log-distance of the last held-out point beyond the fitted data (same-size split): "
            + "; ".join(parts) + " (the law error's standard deviation is kappa = extrapolation_error times the "
            "distance in steps)")


def cross_size(runs: pd.DataFrame, args, notes: list[str]) -> list[dict]:
    """Split 3: fit every schedule of 25M and 100M, predict every schedule of 400M, under each
    fit of :data:`CROSS_SIZE_FITS`, and the schedule law's least-squares point fit."""
    train = runs[runs["size"].isin(("25M", "100M"))].reset_index(drop=True)
    held = runs[runs["size"] == "400M"].reset_index(drop=True)
    if args.quick:
        train = train[train["schedule"].isin(FIT_SCHEDULES)].reset_index(drop=True)
    truth = held["loss"].to_numpy()
    start = time.perf_counter()
    median, in_sample = point_fit_schedule_law(train, held)
    rows = [{"split": "25M+100M -> 400M", "method": "kaplan_schedule, least-squares point fit (no band)",
             **score(truth, None, median), "fit_s": time.perf_counter() - start}]
    notes.append(f"across sizes, kaplan_schedule least-squares point fit: median |rel err| {in_sample:.2%} on its "
                 f"fitted points, signed median error on 400M {np.median(median / truth - 1):+.2%}")
    fitted = {}
    for options in CROSS_SIZE_FITS:
        method = options.label
        result, q, row = fit_and_predict(train, held, options, args, f"across sizes, {method}", notes)
        rows.append({"split": "25M+100M -> 400M", "method": method, **row})
        fitted[options] = (result, rows[-1])
        per = per_schedule(held, q[1])
        notes.append(f"across sizes, {method}: median |rel err| per 400M schedule: "
                     + ", ".join(f"{s} {e:.2%}" for s, e in per.items()))
        qm = bands(result.posterior, held, args.seed, mode="mean")
        notes.append(f"across sizes, {method}: signed median error (median forecast / truth - 1) "
                     f"{np.median(q[1] / truth - 1):+.2%}; parameters-only (mean mode) 90% width "
                     f"{np.median(np.log(qm[2] / qm[0])):.4f} (log upper - log lower), coverage "
                     f"{np.mean((truth >= qm[0]) & (truth <= qm[2])):.0%}")
        notes.append(f"across sizes, {method}: posterior medians "
                     + ", ".join(f"{c} {v:.3g}" for c, v in _medians(result.posterior).items())
                     + "; AR(1) rho " + f"{np.median(result.posterior.draws('rho')):.3f}, sigma "
                     + f"{np.median(result.posterior.draws('sigma')):.4f}")
    rows += [law_error_row(fitted[options][0], held, options, kappa, args)
             for options in LAW_ERROR_REFITS for kappa in args.law_error_kappas]
    return rows + [loo_choice({o: fitted[o] for o in LOO_PAIRS["cross-size"]}, "across sizes", notes)]


def law_error_row(result, held: pd.DataFrame, options: FitOptions, kappa: float, args) -> dict:
    """The cross-size row of ``result`` (a fit with ``options``) scored again with the law-error
    growth ``kappa`` in place of the a-priori one: the same draws, bands and replicates."""
    posterior = result.posterior.with_law_error(kappa)
    start = time.perf_counter()
    q = bands(posterior, held, args.seed)
    return {"split": "25M+100M -> 400M", "method": f"{options.label}, law error {kappa:g} per e-fold",
            **score(held["loss"].to_numpy(), q), "calibrated_90": calibrated_range(posterior, held, q, args.seed),
            "fit_s": result.seconds, "predict_s": time.perf_counter() - start}


def _medians(posterior) -> dict[str, float]:
    """Posterior medians of the paper constants (one group)."""
    summary = posterior.summary()
    return dict(zip(summary["constant"], summary["median"]))


def gadre(path: Path, args, notes: list[str]) -> tuple[list[dict], pd.DataFrame]:
    """Split 6: Gadre et al. final losses, fit up to 411.6M total parameters, predict 1.4B and 6.9B."""
    from bayescale import fit
    from bayescale.predict import loss_draws
    from bayescale.schedules import table_features

    runs = gadre_with_schedules(path)
    train = runs[runs["params_total"] <= 4.2e8].reset_index(drop=True)
    held = runs[runs["params_total"] > 4.2e8].reset_index(drop=True)
    features = table_features(runs)
    area_per_step = np.exp(features["log_lr_area"]) / runs["step"]
    for label, idx in (("fitted", runs.index[runs["params_total"] <= 4.2e8]),
                       ("held-out", runs.index[runs["params_total"] > 4.2e8])):
        notes.append(f"Gadre {label} runs at their final step: LR area / steps {area_per_step[idx].min():.3f}-"
                     f"{area_per_step[idx].max():.3f}, annealing Phi {features.loc[idx, 'lr_anneal'].min():.3f}-"
                     f"{features.loc[idx, 'lr_anneal'].max():.3f}")
    rows, detail = [], {}
    for law in LAWS:
        result, wall, messages = _recorded(lambda law=law: fit(
            train, law=law, group_by="group", chains=args.chains, warmup=args.warmup, draws=args.draws,
            seed=args.seed, target_accept=args.target_accept, progress=False, warn=False))
        notes += [f"Gadre, {law}: {_gate(result)}; sampling {result.seconds:.1f} s",
                  *(f"Gadre, {law}: {m}" for m in messages)]
        q = np.empty((len(QUANTILES), len(held)))
        names = result.posterior.law.covariates
        for dataset, part in held.groupby("group"):
            f = table_features(part)
            for i in part.index:  # one new run per held-out run
                draws = loss_draws(result.posterior, part.loc[[i], "params"].to_numpy(),
                                   part.loc[[i], "batch_tokens"].to_numpy(), part.loc[[i], "step"].to_numpy(),
                                   group=dataset, seed=args.seed + int(i), mode="new_run",
                                   covariates={n: f.loc[[i], n].to_numpy(float) for n in names})
                q[:, i] = np.quantile(draws[:, 0], QUANTILES)
        truth = held["loss"].to_numpy()
        for size, idx in held.groupby("params_total").groups.items():
            sel = held.index.isin(idx)
            rows.append({"held-out size": f"{size / 1e9:.1f}B", "method": law, "runs": int(sel.sum()),
                         "mean_abs_err_nats": float(np.mean(np.abs(q[1, sel] - truth[sel]))),
                         "mean_signed_err_nats": float(np.mean(q[1, sel] - truth[sel])),
                         "median_rel_err": float(np.median(np.abs(q[1, sel] / truth[sel] - 1))),
                         "coverage_90": float(np.mean((truth[sel] >= q[0, sel]) & (truth[sel] <= q[2, sel])))})
        detail[law] = [f"{q[1, i]:.3f} [{q[0, i]:.3f}, {q[2, i]:.3f}]" for i in range(len(held))]
    table = pd.DataFrame({"run": held["run"], "truth": held["loss"].map("{:.3f}".format), **detail})
    return rows, table


# ---------------------------------------------------------------------------------------
# Output


def _fmt(df: pd.DataFrame, formats: dict[str, str]) -> pd.DataFrame:
    out = df.copy()
    for column, fmt in formats.items():
        if column in out.columns:
            out[column] = out[column].map(lambda v, fmt=fmt: "" if pd.isna(v) else fmt.format(v))
    return out


def goals(table: pd.DataFrame) -> list[str]:
    """One line per bayescale row with bands: which goals it meets."""
    lines = []
    for _, r in table[table["method"].str.startswith((*LAWS, "PSIS-LOO")) & table["coverage_90"].notna()].iterrows():
        cross = r["split"].startswith("25M+100M")
        checks = [("median error", r["median_err"] <= (0.01 if cross else 0.003)),
                  ("coverage", 0.80 <= r["coverage_90"] <= 0.98)]
        if cross:
            checks.append(("width", r["width_90_nats"] <= 0.08))
        verdict = ", ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in checks)
        lines.append(f"- {r['split']}, {r['method']}: {r['median_err']:.2%}, coverage {r['coverage_90']:.2f} "
                     f"(a calibrated band: {r['calibrated_90']}), width {r['width_90_nats']:.4f} nats "
                     f"({r['width_90']:.4f} relative): {verdict}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_option(ap, "luo2025_multipower/ and gadre2024/")
    add_sampler_options(ap, chains=2, warmup=500, draws=500, target_accept=0.9,
                        help={"target_accept": "NUTS target acceptance (default: 0.9, as fit)"})
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 25M only for the same-size split, 3 schedules per size across sizes, "
                         "2 chains x 100 warm-up x 100 draws, nothing appended")
    ap.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), metavar="PART",
                    help=f"the parts to run, of {', '.join(SPLITS)} (default: all); a partial run says which "
                         "parts it ran")
    ap.add_argument("--law-error-kappas", nargs="*", type=float, default=list(OTHER_LADDER_KAPPAS),
                    metavar="KAPPA",
                    help="law-error growths per e-fold at which the cross-size split's default-cut and "
                         "independent-residual fits are scored again (default: "
                         f"{' '.join(f'{k:g}' for k in OTHER_LADDER_KAPPAS)}, measured on other ladders by "
                         "law_error_ladders.py; none: skip)")
    add_append_option(ap)
    args = ap.parse_args()
    if args.quick:
        args.chains, args.warmup, args.draws, args.no_append = 2, 100, 100, True
    args.sizes = ("25M",) if args.quick else tuple(SIZES)
    use_cpu_cores()  # one chain per core where JAX can still be configured
    data = data_folder(args)
    start = time.perf_counter()
    at_start = conditions()
    notes: list[str] = []
    runs = load_luo(data / "luo2025_multipower")
    rows, by_schedule, decomposition, loo_rows, times = (
        same_size(runs, args, notes) if "same-size" in args.splits else ([], [], [], [], []))
    if "all-sizes" in args.splits:
        rows += all_sizes(runs, args, notes)
    if "cross-size" in args.splits:
        rows += cross_size(runs, args, notes)
    gadre_rows, gadre_detail = (gadre(data / "gadre2024" / "final_losses.csv", args, notes)
                                if "gadre" in args.splits else ([], None))
    total = time.perf_counter() - start

    pct = "{:.2%}"
    command = " ".join(["python benchmarks/schedules.py", *(["--quick"] if args.quick else []),
                        *(["--splits", *args.splits] if list(args.splits) != list(SPLITS) else [])])
    parts = [
        f"\n## schedules — kaplan_schedule vs kaplan on Luo et al. 2025 schedules — "
        f"{dt.date.today().isoformat()}\n",
        f"`{command}` (parts run: {', '.join(args.splits)}). Machine: {at_start}; "
        f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}. NUTS {args.chains} chains x {args.warmup} "
        f"warm-up x {args.draws} draws, target_accept {args.target_accept}, seed {args.seed}; no early-transient cut "
        f"(min_step_fraction 0) unless a row says so, each curve thinned to the fit's default of {DEFAULT_MAX_POINTS} points evenly spaced in "
        f"log-steps (`bayescale.curves.thin_curves`; the data log every 128 steps); sizes nominal ({', '.join(f'{k} = {v:g}' for k, v in SIZES.items())} "
        f"non-embedding parameters); one batch of {BATCH_TOKENS:,.0f} tokens (nominal) for every run. Bands: "
        f"new-run 90% bands, one `loss_draws` call per held-out run, schedule features from "
        f"`table_features`. Whole benchmark: {total:.0f} s.\n",
    ]
    if rows:
        main_table = _fmt(pd.DataFrame(rows, columns=["split", "method", "points", "median_err", "mean_err",
                                                      "coverage_90", "width_90", "width_90_nats", "calibrated_90",
                                                      "fit_s", "predict_s"]),
                          {"median_err": pct, "mean_err": pct, "coverage_90": "{:.2f}", "width_90": "{:.4f}",
                           "width_90_nats": "{:.4f}", "calibrated_90": "{}", "fit_s": "{:.1f}", "predict_s": "{:.1f}"})
        main_table.columns = ["split", "method", "held-out points", "median abs rel err", "mean abs rel err",
                              "in 90% band", "median 90% width (log upper - log lower)",
                              "median 90% width (nats)", "a calibrated 90% band holds (5-95%)",
                              "fit s", "predict s"]
        parts += [
            "Held-out accuracy (same size: fit cosine_24000, constant_24000, wsdcon_9 of one size, predict its "
            "other six schedules; same sizes, one fit: fit those three schedules of every size in one fit, predict "
            "the other six of every size; across sizes: fit all nine schedules of 25M and 100M, predict all nine of 400M, "
            "with the wide critical-batch prior and with the published one, from the end of the warm-up or after the "
            "fit's default cut of each run's first 10%, and the schedule law's mean curve point-fitted by least squares "
            "to the same thinned points as a reference). Errors are |median forecast / truth - "
            "1| over every held-out point; the Multi-Power Law is a point fit (no band). fit s: NUTS sampling "
            "seconds (`FitResult.seconds`), least-squares wall seconds for the Multi-Power Law. A calibrated "
            "band holds: the 5-95% range of the band's coverage over 400 joint replicates of the held-out points drawn "
            "under the fit's own model (`bayescale.replicates`: one law error for every point, one offset per run, "
            "AR(1) noise along a run), i.e. what a calibrated band shows on these points, and the share of "
            "replicates in which it holds more than 0.98 of them.\n",
            markdown_table(main_table),
            "\nAgainst the goals (same size: median error <= 0.3%, 90% coverage 0.80-0.98; across sizes: <= 1.0%, "
            "0.80-0.98, median width <= 0.08 nats of loss, upper - lower):\n",
            *goals(pd.DataFrame(rows)),
        ]
    if by_schedule:
        decomp = _fmt(pd.DataFrame(decomposition), {"median_err": pct, "mean_err": pct, "coverage_90": "{:.2f}",
                                                    "width_90": "{:.4f}", "width_90_nats": "{:.4f}"})
        loo = _fmt(pd.DataFrame(loo_rows)[["size", "points", "model", "rank", "elpd_loo", "se", "p_loo",
                                           "elpd_diff", "dse", "weight", "pareto_k_bad"]],
                   {"elpd_loo": "{:.1f}", "se": "{:.1f}", "p_loo": "{:.1f}", "elpd_diff": "{:.1f}",
                    "dse": "{:.1f}", "weight": "{:.2f}"})
        times_df = pd.DataFrame(times)
        ratio = float(np.median(times_df["ratio"]))
        parts += [
            "\nMedian |relative error| per held-out schedule (same-size split):\n",
            markdown_table(_fmt(pd.DataFrame(by_schedule), {s: pct for s in SCHEDULES})),
            "\nWhere the band width comes from (same-size split): each row adds one source of uncertainty; "
            "held-out points split by whether their step lies inside the fitted steps (the law-error term is zero "
            "there) or beyond step 24,000 (constant_72000, cosine_72000).\n",
            markdown_table(decomp),
            "\nPSIS-LOO on the fitted points of the same-size split (higher elpd is better):\n",
            markdown_table(loo),
            f"\nSampling time on the same points and settings (same-size split), first pass (without chains run "
            f"again after sticking in a minor mode); median ratio kaplan_schedule / kaplan: {ratio:.2f} (budget: "
            f"at most 2).\n",
            markdown_table(_fmt(times_df, {"kaplan_schedule_s": "{:.1f}", "kaplan_s": "{:.1f}", "ratio": "{:.2f}"})),
        ]
    if gadre_rows:
        gadre_table = _fmt(pd.DataFrame(gadre_rows), {"mean_abs_err_nats": "{:.3f}", "mean_signed_err_nats": "{:+.3f}",
                                                      "median_rel_err": pct, "coverage_90": "{:.2f}"})
        parts += ["\nGadre et al. 2024 final C4-validation losses: fit on total N <= 411.6M (three datasets as "
                  "groups), predict the 1.4B and 6.9B runs; kaplan_schedule reads each run's cosine schedule "
                  "(warm-up, final rate lr_cooldown_end / lr, ending at the run's last step).\n",
                  markdown_table(gadre_table), "\nHeld-out runs (truth; median [90% band]):\n", markdown_table(gadre_detail)]
    parts += ["\nNotes (diagnostics, warnings, fitted constants):\n", *(f"- {n}" for n in notes)]
    text = "\n".join(parts)
    publish(text, args)


if __name__ == "__main__":
    main()
