"""The classical staged point estimate of Su et al. (2024), the baseline to beat.

Stages:

1. **Size and step terms.** On the run with the largest batch of every size (taken as
   far above the critical batch), fit ``log L = log(L_N + (S_c / S)^alpha_S)`` with
   ``L_N = (N_c / N)^alpha_N`` by least squares on log loss.
2. **Critical batch.** For each size with three or more batch sizes, take loss contours:
   for a target loss ``L`` read the steps ``S_i`` each batch ``B_i`` needs (log-log
   interpolation along its curve). Kaplan's trade-off
   ``(S/S_min - 1)(E/E_min - 1) = 1`` is equivalent to ``S_i = S_min + E_min / B_i``, a
   straight line in ``1/B_i`` fitted by least squares per contour. Then
   ``B_crit(L) = E_min / S_min`` and a straight-line fit of ``log B_crit`` against
   ``log L`` gives ``B_*`` and ``alpha_B``.
3. **Refinement.** Stage 1 is repeated with the steps converted to their infinite-batch
   equivalent ``S_min = S / (1 + B_crit(L)/B)``.

No uncertainty comes out of this procedure; bayescale's posterior is compared against it.

Reference: Su, Tian, Shen, Cai 2024, "Unraveling the Mystery of Scaling Laws: Part I",
arXiv:2403.06563, section 3; Kaplan et al. 2020, section 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from bayescale.models import kaplan
from bayescale.curves import DEFAULT_MIN_STEP_FRACTION, transient_mask


@dataclass(frozen=True)
class ClassicEstimate:
    """Point constants and the contour points behind the critical-batch fit."""

    constants: kaplan.KaplanConstants
    contours: pd.DataFrame

    def as_dict(self) -> dict[str, float]:
        c = self.constants
        return {"N_c": float(np.exp(c.log_N_c)), "alpha_N": float(c.alpha_N), "S_c": float(np.exp(c.log_S_c)),
                "alpha_S": float(c.alpha_S), "B_star": float(np.exp(c.log_B_star)), "alpha_B": float(c.alpha_B)}


def _fit_size_and_steps(df: pd.DataFrame, steps: np.ndarray) -> np.ndarray:
    """Least squares for (log N_c, alpha_N, log S_c, alpha_S) on log loss."""
    log_N, log_S, y = np.log(df["params"].to_numpy()), np.log(steps), np.log(df["loss"].to_numpy())

    def resid(p):
        log_Nc, aN, log_Sc, aS = p
        return np.logaddexp(aN * (log_Nc - log_N), aS * (log_Sc - log_S)) - y

    start = [np.log(df["params"].max()) + np.log(df["loss"].min()) / 0.2, 0.2, np.log(np.median(steps)) - 1.0, 0.7]
    return least_squares(resid, start, bounds=([-np.inf, 1e-3, -np.inf, 1e-2], [np.inf, 3.0, np.inf, 5.0])).x


def _steps_to_reach(curve: pd.DataFrame, L: float) -> float:
    """First step where a curve reaches ``L`` (log-log interpolation); NaN if it never does."""
    loss, step = curve["loss"].to_numpy(), curve["step"].to_numpy()
    below = np.flatnonzero(loss <= L)
    if len(below) == 0 or below[0] == 0:
        return np.nan
    i = below[0]
    t = (np.log(loss[i - 1]) - np.log(L)) / (np.log(loss[i - 1]) - np.log(loss[i]))
    return float(np.exp(np.log(step[i - 1]) + t * (np.log(step[i]) - np.log(step[i - 1]))))


def _contours(df: pd.DataFrame, n_levels: int) -> pd.DataFrame:
    rows = []
    for N, size in df.groupby("params"):
        curves = {B: c.sort_values("step") for B, c in size.groupby("batch_tokens")}
        if len(curves) < 3:
            continue
        # losses that every batch's curve reaches, inside the fitted range
        hi = min(c["loss"].max() for c in curves.values())
        lo = max(c["loss"].min() for c in curves.values())
        if not lo < hi:
            continue
        for L in np.geomspace(lo, hi, n_levels + 2)[1:-1]:
            S = np.array([_steps_to_reach(c, L) for c in curves.values()])
            B = np.array(list(curves))
            ok = np.isfinite(S)
            if ok.sum() < 3:
                continue
            E_min, S_min = np.polyfit(1.0 / B[ok], S[ok], 1)
            if S_min > 0 and E_min > 0:
                rows.append({"params": N, "loss": L, "S_min": S_min, "E_min": E_min, "B_crit": E_min / S_min})
    return pd.DataFrame(rows, columns=["params", "loss", "S_min", "E_min", "B_crit"])


def classic_fit(runs: pd.DataFrame, min_step_fraction: float = DEFAULT_MIN_STEP_FRACTION,
                contour_levels: int = 8) -> ClassicEstimate:
    """Su et al.'s staged estimate from a validated run table (one group: filter first)."""
    df = runs.loc[transient_mask(runs, min_step_fraction)]
    largest = df[df["batch_tokens"] == df.groupby("params")["batch_tokens"].transform("max")]
    if largest["params"].nunique() < 2:
        raise ValueError("the classical estimate needs runs at two or more model sizes")
    contours = _contours(df, contour_levels)
    if len(contours) < 2:
        raise ValueError("the classical estimate needs a batch sweep (3 or more batch sizes) at some model size")
    slope, intercept = np.polyfit(np.log(contours["loss"]), np.log(contours["B_crit"]), 1)
    alpha_B, log_B_star = -1.0 / slope, intercept
    log_Nc, aN, log_Sc, aS = _fit_size_and_steps(largest, largest["step"].to_numpy())
    b_crit = np.exp(log_B_star - np.log(largest["loss"].to_numpy()) / alpha_B)
    s_min = largest["step"].to_numpy() / (1.0 + b_crit / largest["batch_tokens"].to_numpy())
    log_Nc, aN, log_Sc, aS = _fit_size_and_steps(largest, s_min)
    constants = kaplan.KaplanConstants(log_Nc, aN, log_Sc, aS, log_B_star, alpha_B)
    return ClassicEstimate(constants=constants, contours=contours)
