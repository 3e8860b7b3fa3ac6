"""Convergence diagnostics gated on the thresholds of Vehtari et al. (2021).

A fit passes when every reported constant has split R-hat <= 1.01, bulk and tail
effective sample size >= 400 and the sampler reported no divergent transition.
Failing fits are not hidden: :func:`check` warns with :class:`ConvergenceWarning`
and says what to try.

Reference: Vehtari, Gelman, Simpson, Carpenter, Buerkner (2021), "Rank-normalization,
folding, and localization: an improved R-hat", Bayesian Analysis 16(2).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd

RHAT_MAX = 1.01
ESS_MIN = 400


class ConvergenceWarning(UserWarning):
    """The sampler did not converge well enough to trust the intervals."""


@dataclass(frozen=True)
class Diagnostics:
    """R-hat, ESS and divergences of one fit; ``table`` has one row per scalar. ``left_out`` is a
    sentence on chains stuck in a minor mode that the fit ran again or left out
    (:mod:`bayescale.modes`; a left-out chain's draws are not in the rest), or ``None``."""

    table: pd.DataFrame
    divergences: int
    n_draws: int
    left_out: str | None = None

    @property
    def max_rhat(self) -> float:
        return float(self.table["r_hat"].max(skipna=False))  # NaN (one chain) fails the gate

    @property
    def min_ess_bulk(self) -> float:
        return float(self.table["ess_bulk"].min())

    @property
    def min_ess_tail(self) -> float:
        return float(self.table["ess_tail"].min())

    @property
    def passed(self) -> bool:
        return (self.max_rhat <= RHAT_MAX and self.min_ess_bulk >= ESS_MIN
                and self.min_ess_tail >= ESS_MIN and self.divergences == 0)

    def problems(self) -> list[str]:
        """Each failed check with the fix to try."""
        out = []
        if self.table["r_hat"].isna().any():  # split R-hat needs two chains to compare
            out.append("R-hat is undefined with a single chain: run two or more chains (--chains 2)")
        if self.table["r_hat"].max() > RHAT_MAX:
            worst = self.table["r_hat"].idxmax()
            out.append(f"R-hat {self.table['r_hat'].max():.3f} > {RHAT_MAX} ({worst}): chains disagree; run more warmup "
                       "(--warmup) and check that the data identify this constant")
        for kind in ("bulk", "tail"):
            value = float(self.table[f"ess_{kind}"].min())
            if value < ESS_MIN:
                worst = self.table[f"ess_{kind}"].idxmin()
                out.append(f"{kind} ESS {value:.0f} < {ESS_MIN} ({worst}): draw more (--draws) or more chains (--chains); "
                           "if it stays low with more draws, NUTS is stepping over a curved region: raise --target-accept (0.99)")
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions: the posterior has regions NUTS cannot explore; "
                       "raise target_accept (--target-accept 0.95, then 0.99) or add data at more sizes and batches")
        return out

    def format(self) -> str:
        head = (f"R-hat max {self.max_rhat:.3f} (<= {RHAT_MAX}), ESS bulk min {self.min_ess_bulk:.0f}, "
                f"tail min {self.min_ess_tail:.0f} (>= {ESS_MIN}), divergences {self.divergences} "
                f"of {self.n_draws} draws: {'PASS' if self.passed else 'FAIL'}")
        return "\n".join([head, *("  - " + p for p in self.problems()),
                          *([f"  - {self.left_out}"] if self.left_out else [])])


def diagnose(idata: az.InferenceData, var_names: list[str], left_out: str | None = None) -> Diagnostics:
    """Compute R-hat, bulk/tail ESS and divergences for ``var_names`` (``left_out``: a sentence on
    stuck chains run again or left out before, :class:`Diagnostics`).

    The draws are summarised in float64: a scale constant decided by a wide prior (e.g.
    ``B_star`` when every run has one batch size) reaches 1e20 and beyond, whose square
    overflows the sampler's float32 in ArviZ's Monte Carlo error estimates.
    """
    draws = idata.posterior[var_names].astype("float64")
    table = az.summary(draws, kind="diagnostics", round_to="none")
    stats = idata.sample_stats if "sample_stats" in idata.groups() else {}
    diverging = stats["diverging"].values if "diverging" in stats else np.zeros(1)
    n_draws = int(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"])
    return Diagnostics(table=table[["r_hat", "ess_bulk", "ess_tail"]], divergences=int(diverging.sum()),
                       n_draws=n_draws, left_out=left_out)


def check(diagnostics: Diagnostics) -> bool:
    """Warn with the fixes when ``diagnostics`` fail the gate; return whether they pass."""
    if not diagnostics.passed:
        warnings.warn("the fit did not pass its convergence checks: " + "; ".join(diagnostics.problems()),
                      ConvergenceWarning, stacklevel=2)
    return diagnostics.passed
