"""Priors of the scaling-law models, centred on the literature but wide.

Exponents get log-normal priors centred on published values: Kaplan et al. (2020)
Table 5 (alpha_N 0.076, alpha_S 0.76, alpha_B 0.21; BPE tokens on WebText2) and the
Chinchilla fit as re-estimated by Besiroglu et al. (2024) (E 1.82, A 482, B 2085,
alpha 0.35, beta 0.37). Scale constants (N_c, S_c, B_*) move by orders of magnitude
with tokenizer, data and context, so their re-centred versions (the loss at a reference
size, the step term at a reference step, the critical batch at a reference loss) are
centred on the data's own references with standard deviations of one to several
e-folds. Every scale below is a standard deviation in log units unless said otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bayescale.defaults import RESIDUAL_CORRELATIONS


#: Published critical-batch constants, tokens and nats per token (BPE): Kaplan et al. 2020,
#: Table 5 (WebText2): B_* = 2.1e8 tokens, alpha_B = 0.21; Su et al. 2024 re-estimated
#: B_* ~ 2e8 and alpha_B ~ 0.21 on their own data and models up to 33B parameters.
LITERATURE_B_STAR = 2.1e8
LITERATURE_ALPHA_B = 0.21
#: Spread of the literature prior: sd of log B_crit at the reference loss (a factor e either
#: way) and of log(1/alpha_B) (alpha_B within 0.13-0.35 in 95% of the prior).
LITERATURE_LOG_B_SD = 1.0
LITERATURE_LOG_INV_ALPHA_B_SD = 0.25
#: Half-normal scale of the correlation length of the residuals along a curve, in e-folds
#: of steps (docs/model.md, section 4.4): wander that fades within about an e-fold (a factor
#: 2.7 in steps). A departure that lasts a whole run is a level, which the run offsets (centred
#: within sizes) and the law's error carry, not the residual noise.
CORRELATION_LENGTH_SD = 1.0
#: Values of ``KaplanPriors.critical_batch``.
CRITICAL_BATCH_PRIORS = ("data", "literature")


def check_residual_correlation(value: str) -> None:
    """Raise ``ValueError`` unless ``value`` is one of :data:`RESIDUAL_CORRELATIONS`."""
    if value not in RESIDUAL_CORRELATIONS:
        raise ValueError(f"residual_correlation='{value}' is not one of {', '.join(RESIDUAL_CORRELATIONS)}")


@dataclass(frozen=True)
class KaplanPriors:
    """Priors of :data:`bayescale.models.kaplan.KAPLAN` (and ``KAPLAN_IRREDUCIBLE``) (Normal on the log of each quantity)."""

    #: log alpha_N: centred between Kaplan's 0.076 and the larger exponents of small models.
    log_alpha_N: tuple[float, float] = (math.log(0.1), 1.0)
    #: log alpha_S: Kaplan's 0.76.
    log_alpha_S: tuple[float, float] = (math.log(0.76), 0.75)
    #: log (1 / alpha_B): Kaplan's 1 / 0.21.
    log_inv_alpha_B: tuple[float, float] = (math.log(1.0 / 0.21), 0.75)
    #: sd of log L_N(N_ref) around the smallest observed loss.
    log_L_ref_sd: float = 0.75
    #: sd of the log step term at S_ref around 20% of the median loss.
    log_A_ref_sd: float = 1.5
    #: sd of log B_crit(L_ref) around the geometric mean of the observed batches.
    log_B_ref_sd: float = 2.5
    #: standard deviation of every re-centred latent of a group around the groups' common
    #: mean (log units), fixed rather than sampled: two or three groups cannot estimate
    #: it, and sampling it made a funnel NUTS crossed only slowly (models/skeleton.py).
    #: Groups such as evaluation splits are different data distributions: on
    #: the bundled runs, separate least-squares fits per split differ by a factor of 10
    #: in N_c and 0.26 vs 0.18 in alpha_N. A scale of 0.1 shrank the out-of-domain
    #: constants into the in-domain ones (3.7% error on the held-out size, 62% of its
    #: points in the 90% bands); 0.5 lets each split follow its own data (1.7%, 81%).
    group_sd: float = 0.5
    #: half-normal scale of the observation noise on log loss.
    noise_sd: float = 0.05
    #: half-normal scale of per-run offsets (seed-to-seed noise) on log loss.
    run_sd: float = 0.02
    #: Student-t degrees of freedom of the observation noise.
    nu: float = 4.0
    #: Prior of the critical batch. ``"data"``: ``log B_crit(L_ref)`` around the geometric
    #: mean of the fitted batches (sd ``log_B_ref_sd``) and Kaplan's exponent with sd 0.75,
    #: wide enough for any tokenizer, so that a ladder trained at one batch per size leaves
    #: the critical batch to a wide prior. ``"literature"``: the published constants above
    #: (``B_crit(L) = B_* / L^(1/alpha_B)`` with B_* = 2.1e8 tokens, alpha_B = 0.21) with
    #: sds ``LITERATURE_LOG_B_SD`` and ``LITERATURE_LOG_INV_ALPHA_B_SD``: for losses in nats
    #: per BPE token of a web-text-like corpus, where those measurements were made; not for
    #: byte-level or other units.
    critical_batch: str = "data"
    #: How the residuals along a curve are modelled, one of ``RESIDUAL_CORRELATIONS``
    #: (:data:`bayescale.defaults.RESIDUAL_CORRELATION_HELP`; docs/model.md, section 4.4).
    residual_correlation: str = "ar1"
    #: half-normal scale of the AR(1)'s correlation length, in e-folds of steps.
    correlation_length_sd: float = CORRELATION_LENGTH_SD

    def __post_init__(self):
        if self.critical_batch not in CRITICAL_BATCH_PRIORS:
            raise ValueError(f"critical_batch='{self.critical_batch}' is not one of {', '.join(CRITICAL_BATCH_PRIORS)}")
        check_residual_correlation(self.residual_correlation)


@dataclass(frozen=True)
class ChinchillaPriors:
    """Priors of :data:`bayescale.models.chinchilla.CHINCHILLA`, ``L = E + A/N^alpha + B/D^beta``.

    Exponents follow the Epoch re-estimate (Besiroglu et al. 2024: alpha 0.35, beta
    0.37). The published scales (E 1.82, A 482, B 2085) move with the parameter
    convention, tokenizer and data, so the re-centred scales are set relative to the
    data: the size term at ``N_ref`` and the data term at ``D_ref`` are centred on a
    quarter of the median observed loss each (their share at the Epoch constants'
    compute-optimal point), and ``E`` is a fraction of the smallest observed loss whose
    logit is Normal(0, 1.1), which matches the mean and variance of the logit of a
    Beta(2, 2) fraction.
    """

    #: log alpha: Epoch's 0.35.
    log_alpha: tuple[float, float] = (math.log(0.35), 0.5)
    #: log beta: Epoch's 0.37.
    log_beta: tuple[float, float] = (math.log(0.37), 0.5)
    #: log of the size term A / N_ref^alpha as a fraction of the median observed loss.
    log_A_ref_fraction: tuple[float, float] = (math.log(0.25), 1.0)
    #: log of the data term B / D_ref^beta as a fraction of the median observed loss.
    log_B_ref_fraction: tuple[float, float] = (math.log(0.25), 1.0)
    #: logit of E as a fraction of the smallest observed loss.
    logit_E_fraction: tuple[float, float] = (0.0, 1.1)
    #: standard deviation of every latent of a group around the groups' common mean (fixed).
    group_sd: float = 0.25
    #: half-normal scale of the observation noise on log loss.
    noise_sd: float = 0.05
    #: half-normal scale of per-run offsets on log loss (curve data only).
    run_sd: float = 0.02
    #: Student-t degrees of freedom of the observation noise.
    nu: float = 4.0
    #: How the residuals along a curve are modelled (as :class:`KaplanPriors`).
    residual_correlation: str = "ar1"
    #: half-normal scale of the AR(1)'s correlation length, in e-folds of steps (as :class:`KaplanPriors`).
    correlation_length_sd: float = CORRELATION_LENGTH_SD

    def __post_init__(self):
        check_residual_correlation(self.residual_correlation)


@dataclass(frozen=True)
class SchedulePriors(KaplanPriors):
    """Priors of the schedule-aware Kaplan law (:mod:`bayescale.models.schedule`): Kaplan's,
    plus the annealing gain ``D(N) = D_ref (N / N_ref)^(-gamma_D)`` (log loss drops by
    ``D Phi`` after a full decay, ``Phi`` = 1).

    Decaying the rate to a tenth or less at the end of a run lowers the final loss by
    about 2-5% against a constant rate (Hägele et al. 2024, arXiv:2405.18392; Luo et al.
    2025, arXiv:2503.12811), hence ``log D_ref ~ Normal(log 0.03, 1)``: 0.4% to 22% in 95%
    of the prior. Whether the gain grows or shrinks with size is left open,
    ``gamma_D ~ Normal(0, 0.5)``.
    """

    #: log D_ref: the annealing gain on log loss at N_ref.
    log_anneal_gain: tuple[float, float] = (math.log(0.03), 1.0)
    #: anneal_slope = gamma_D: how the gain falls with size, D ~ N^(-gamma_D).
    anneal_slope: tuple[float, float] = (0.0, 0.5)
