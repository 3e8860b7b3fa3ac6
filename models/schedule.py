r"""The schedule-aware Kaplan law: curves in size, batch, steps *and* learning-rate schedule.

Kaplan's law describes runs at a constant learning rate after warm-up. Real ladders
decay the rate (cosine, warm-up-stable-decay), which moves the whole curve: a decaying
rate makes less progress per step, and the decay itself lowers the loss. Following
the Multi-Power Law (Luo et al. 2025, arXiv:2503.12811) and the LR-annealing law
(Tissue et al. 2024, arXiv:2408.11029), the step count of Kaplan's law becomes the LR
area ``A(t)`` (peak-rate steps) and an annealing term lowers the loss
(:mod:`bayescale.schedules` defines both features):

.. math::

    L(N, B, t) = L_K\big(N, B, A(t)\big)\, \exp\!\big(-D(N)\, \Phi(t)\big), \qquad
    D(N) = D_{ref}\, (N / N_{ref})^{-\gamma_D},

where ``L_K(N, B, S)`` is Kaplan's trajectory (:func:`bayescale.models.kaplan.trajectory`,
with its critical batch), ``Phi`` rises from 0 towards the total fractional decrease
of the rate as the decay takes effect, and ``D`` is the log-loss gain of a full decay.
A constant schedule has ``A(t) = t`` and ``Phi = 0``: the law is then exactly Kaplan's,
constants and all. Minimum loss and critical batch are Kaplan's (a schedule changes
how fast a run gets there, not where it ends with unlimited steps); steps to a loss
without a schedule are those of a constant rate; with a schedule the predictor solves
for them (:func:`bayescale.predict.predict_steps_to_loss`).

Priors: Kaplan's (:mod:`bayescale.models.kaplan`), plus
``log D_ref ~ Normal(log 0.03, 1)`` and ``gamma_D ~ Normal(0, 0.5)``
(:class:`~bayescale.models.priors.SchedulePriors`).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.curves import IdentifiabilityWarning, prepare_curves
from bayescale.defaults import DEFAULT_MAX_POINTS
from bayescale.schedules import FEATURES, table_features

from .kaplan import LATENTS as KAPLAN_LATENTS
from .kaplan import Kaplan, constants_from_latents, measure_step_term_at_fitted_batch, trajectory, warn_unidentified
from .law import Covariates, Extrapolation
from .priors import SchedulePriors

ArrayLike = jax.typing.ArrayLike

#: Latent per-group sites: Kaplan's, then the annealing gain's.
LATENTS = (*KAPLAN_LATENTS, "log_anneal_gain", "anneal_slope")


class ScheduleConstants(NamedTuple):
    """Kaplan's constants (:class:`~bayescale.models.kaplan.KaplanConstants`, same fields) plus
    the annealing gain ``D(N) = exp(log_D_ref) (N / exp(log_N_ref))^(-gamma_D)``."""

    log_N_c: ArrayLike
    alpha_N: ArrayLike
    log_S_c: ArrayLike
    alpha_S: ArrayLike
    log_B_star: ArrayLike
    alpha_B: ArrayLike
    L_inf: ArrayLike
    log_D_ref: ArrayLike
    gamma_D: ArrayLike
    log_N_ref: ArrayLike


def anneal_gain(c: ScheduleConstants, log_N: ArrayLike) -> jax.Array:
    """``D(N)``: how much a full decay lowers the log loss of a model of size ``N``."""
    return jnp.exp(c.log_D_ref - c.gamma_D * (log_N - c.log_N_ref))


class ScheduleKaplan(Kaplan):
    """Kaplan's law on the LR area, with an annealing gain (module docstring)."""

    constants = (*Kaplan.constants, "anneal_gain", "anneal_exponent")
    latents = LATENTS
    covariates = FEATURES
    reference = ("Kaplan et al. 2020, arXiv:2001.08361; Luo et al. 2025, arXiv:2503.12811; "
                 "Tissue et al. 2024, arXiv:2408.11029")

    def __init__(self, irreducible: bool = False):
        super().__init__(irreducible)
        self.name = "kaplan_schedule" + ("_irreducible" if irreducible else "")
        self.title = "Kaplan/Su law on the learning-rate area, with annealing" + (
            " and an irreducible loss L_inf" if irreducible else "")

    def default_priors(self) -> SchedulePriors:
        return SchedulePriors()

    def prepare(self, runs, *, group_by, min_step_fraction, min_step, max_points=DEFAULT_MAX_POINTS):
        table = runs.join(table_features(runs))
        data = prepare_curves(table, group_by=group_by, min_step_fraction=min_step_fraction, min_step=min_step,
                              covariate_columns=FEATURES, max_points=max_points)
        warn_unidentified(data)
        data = measure_step_term_at_fitted_batch(data)
        data.ranges["lr_anneal"] = [float(np.min(data.covariates["lr_anneal"])),
                                    float(np.max(data.covariates["lr_anneal"]))]
        if data.ranges["lr_anneal"][1] < 0.05:
            warnings.warn("no fitted run decays its learning rate: the annealing gain is decided by its prior; "
                          "add runs with a cosine, linear or WSD decay", IdentifiabilityWarning, stacklevel=3)
        return data

    def extrapolation(self, ranges, N, B=None, S=None, covariates=None) -> Extrapolation:
        """Kaplan's axes, plus ``schedule`` when the request's schedule is known: how many
        times more annealing ``Phi`` (:mod:`bayescale.schedules`) the request reaches than
        any fitted point, ``log(max Phi / max fitted Phi)`` (0 within; infinite when no
        fitted run decays its rate). It is stated, not added to the law's error, which
        grows with size, steps and batch only (:mod:`bayescale.predict`)."""
        ext = super().extrapolation(ranges, N, B, S)
        if covariates is None or "lr_anneal" not in ranges:  # posteriors fitted before the range was recorded
            return ext
        wanted, fitted = float(np.max(covariates["lr_anneal"])), ranges["lr_anneal"][1]
        beyond = 0.0 if wanted <= fitted else np.inf if fitted <= 0 else float(np.log(wanted / fitted))
        return Extrapolation({**ext.axes, "schedule": beyond})

    def prior_centres(self, data, priors: SchedulePriors) -> dict[str, tuple[float, float]]:
        return {**super().prior_centres(data, priors), "log_anneal_gain": priors.log_anneal_gain,
                "anneal_slope": priors.anneal_slope}

    def constants_from_latents(self, latents, references) -> ScheduleConstants:
        k = constants_from_latents(latents, references, latents.get("L_inf", 0.0))
        return ScheduleConstants(*k, log_D_ref=latents["log_anneal_gain"], gamma_D=latents["anneal_slope"],
                                 log_N_ref=references["log_N_ref"])

    def paper_constants(self, c: ScheduleConstants) -> dict:
        return {**super().paper_constants(c), "anneal_gain": jnp.exp(c.log_D_ref), "anneal_exponent": c.gamma_D}

    def mean_log_loss(self, c: ScheduleConstants, x: Covariates):
        area = jnp.exp(x["log_lr_area"])
        return (jnp.log(trajectory(c, jnp.exp(x.log_N), jnp.exp(x.log_B), area))
                - anneal_gain(c, x.log_N) * x["lr_anneal"])


KAPLAN_SCHEDULE = ScheduleKaplan()
KAPLAN_SCHEDULE_IRREDUCIBLE = ScheduleKaplan(irreducible=True)
