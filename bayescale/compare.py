"""Choose between law forms on evidence: PSIS-LOO over identical observations.

Candidates: the laws of :mod:`bayescale.models.registry`, by default all of them:
``kaplan`` (``L_N = (N_c/N)^alpha_N``), ``kaplan_irreducible`` (``L_N = L_inf +
(N_c/N)^alpha_N``), their forms on the learning-rate schedule ``kaplan_schedule`` and
``kaplan_schedule_irreducible`` (:mod:`bayescale.models.schedule`) and ``chinchilla``
(``L = E + A/N^alpha + B/D^beta``). Each is fitted with NUTS and scored by its expected log pointwise predictive density,
estimated by Pareto-smoothed importance sampling leave-one-out cross-validation
(``az.loo`` on the ``log_loss`` log-likelihood every bayescale posterior carries), and
the models are ranked and weighted by stacking (``az.compare``).

Two conditions make the numbers meaningful:

* **Identical observations.** ELPD sums over points, so models must score the same
  points: every law's fit drops each curve's early transient by the same rule
  (:func:`bayescale.curves.prepare_curves`), given the same run table and
  ``min_step_fraction``/``min_step``. :func:`compare_posteriors`
  checks the observed log losses and the fitted (N, B, S) of every posterior and
  refuses with :class:`IncomparableError` when they differ.
* **Reliable importance weights.** A point whose Pareto shape ``k`` exceeds 0.7 is so
  influential that PSIS cannot estimate its LOO density; such points are counted per
  model and reported in a :class:`ParetoKWarning` that names the fix.

For curves the pointwise terms are AR(1) conditionals ``p(y_i | y_{i-1}, theta)``
(both model families use the same factorisation), so the sum is the joint log density
and the comparison is between models of the same data; leaving a point out is then
"one checkpoint given the previous one".

References: Vehtari, Gelman, Gabry (2017), "Practical Bayesian model evaluation using
leave-one-out cross-validation and WAIC", Statistics and Computing 27; Yao, Vehtari,
Simpson, Gelman (2018), "Using stacking to average Bayesian predictive
distributions", Bayesian Analysis 13.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from bayescale.defaults import PARETO_K_MAX
from bayescale.fit import FitResult, fit
from bayescale.models.registry import LAWS
from bayescale.posterior import Posterior


class IncomparableError(ValueError):
    """The posteriors were fitted to different observations, so their ELPDs cannot be compared."""


class ParetoKWarning(UserWarning):
    """Some points have Pareto k above 0.7: their PSIS-LOO estimates are unreliable."""


@dataclass(frozen=True)
class Comparison:
    """The comparison table (one row per model, best first) and the LOO objects behind it.

    Table columns: ``model``, ``rank``, ``elpd_loo``, ``se``, ``p_loo``, ``elpd_diff``
    (to the best), ``dse`` (its standard error), ``weight`` (stacking) and
    ``pareto_k_bad`` (points with k > 0.7).
    """

    table: pd.DataFrame
    loo: dict[str, az.ELPDData]
    n_points: int


def check_same_observations(posteriors: Mapping[str, Posterior]) -> int:
    """Raise :class:`IncomparableError` unless every posterior saw the same points; return their number."""
    names = list(posteriors)
    if len(names) < 2:
        raise ValueError(f"compare needs at least two models, got {len(names)} ({', '.join(names)})")

    def observations(p: Posterior) -> dict[str, np.ndarray]:
        out = {"log_loss": p.idata.observed_data["log_loss"].values}
        out.update({k: p.idata.constant_data[k].values for k in ("log_N", "log_B", "log_S")})
        return out

    first = observations(posteriors[names[0]])
    for name in names[1:]:
        other = observations(posteriors[name])
        if other["log_loss"].shape != first["log_loss"].shape:
            raise IncomparableError(
                f"'{names[0]}' was fitted to {first['log_loss'].size} points and '{name}' to "
                f"{other['log_loss'].size}: PSIS-LOO compares models only on identical observations; fit both "
                "to the same run table with the same min_step_fraction and min_step")
        differ = [k for k in first if not np.array_equal(first[k], other[k])]
        if differ:
            raise IncomparableError(
                f"'{names[0]}' and '{name}' were fitted to different points (they differ in {', '.join(differ)}): "
                "PSIS-LOO compares models only on identical observations; fit both to the same run table "
                "with the same min_step_fraction and min_step")
    return int(first["log_loss"].size)


def _loo(posterior: Posterior) -> az.ELPDData:
    """PSIS-LOO of one posterior; ArviZ's own high-k warning is replaced by :class:`ParetoKWarning`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto", category=UserWarning)
        return az.loo(posterior.idata, pointwise=True, var_name="log_loss", scale="log")


def compare_posteriors(posteriors: Mapping[str, Posterior]) -> Comparison:
    """PSIS-LOO of each posterior and the stacking comparison (see the module docstring).

    Warns with :class:`ParetoKWarning` when some model has points with ``k > 0.7``.
    """
    n_points = check_same_observations(posteriors)
    loo = {name: _loo(p) for name, p in posteriors.items()}
    bad = {name: int(np.sum(np.asarray(elpd.pareto_k) > PARETO_K_MAX)) for name, elpd in loo.items()}
    with warnings.catch_warnings():
        # ArviZ 0.23 sorts its table with pandas' deprecated ``inplace=True`` (pandas >= 3 warns).
        warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.sort_values",
                                category=DeprecationWarning)
        compared = az.compare(loo, ic="loo", method="stacking", scale="log")
    table = compared.rename_axis("model").reset_index()
    table = table[["model", "rank", "elpd_loo", "se", "p_loo", "elpd_diff", "dse", "weight"]]
    table["pareto_k_bad"] = table["model"].map(bad)
    flagged = {name: count for name, count in bad.items() if count}
    if flagged:
        warnings.warn(
            "PSIS-LOO is unreliable for "
            + ", ".join(f"{count} of {n_points} points under {name}" for name, count in flagged.items())
            + f" (Pareto k > {PARETO_K_MAX}): those points are highly influential (often the largest sizes or "
            "the ends of curves); draw more (--draws), refit leaving each influential run out (exact LOO or "
            "K-fold over runs), or read the ranking as indicative only",
            ParetoKWarning, stacklevel=2)
    return Comparison(table=table.reset_index(drop=True), loo=loo, n_points=n_points)


def fit_models(runs: pd.DataFrame, models: Sequence[str] = tuple(LAWS), **options: Any) -> dict[str, FitResult]:
    """Fit each named law (from :data:`bayescale.models.registry.LAWS`) to the same points of ``runs``.

    ``options`` are the keyword arguments of :func:`bayescale.fit.fit` (``group_by``,
    ``chains``, ``warmup``, ``draws``, ``seed``, ``min_step_fraction``, ``min_step``,
    ``target_accept``, ``chain_method``, ``extrapolation_error``, ``progress``, ``warn``,
    ...); the point selection options must be the same for every model, which passing
    them once guarantees.
    """
    unknown = [m for m in models if m not in LAWS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(LAWS)}")
    if len(set(models)) != len(models):
        raise ValueError(f"models {', '.join(models)} name a model twice; list each once")
    return {name: fit(runs, law=name, **options) for name in models}


def compare_models(runs: pd.DataFrame, models: Sequence[str] = tuple(LAWS),
                   **options: Any) -> tuple[Comparison, dict[str, FitResult]]:
    """Fit ``models`` to ``runs`` (``options`` as in :func:`fit_models`) and compare them by PSIS-LOO."""
    fits = fit_models(runs, models, **options)
    return compare_posteriors({name: f.posterior for name, f in fits.items()}), fits
