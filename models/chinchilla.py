r"""Hierarchical model of final losses (or loss curves) under the Chinchilla law.

The law of Hoffmann et al. (2022), eq. 2, in the log-sum-exp form used by Besiroglu
et al. (2024) to fit it::

    L(N, D) = E + A / N^alpha + B / D^beta
    log L   = logsumexp(a - alpha log N,  b - beta log D,  e),   a = log A, b = log B, e = log E

with ``N`` the parameters (the run table's ``params``: non-embedding) and ``D`` the
training tokens (``batch_tokens * step``).

Generative model, for group ``g`` (e.g. dataset), run ``r`` and point ``i`` (all logs
natural; ``N_ref`` and ``D_ref`` are the geometric means of the observed sizes and
token counts, ``L_med``, ``L_min`` the median and smallest observed losses)::

    # re-centred constants per group; with G > 1 groups they share a population mean
    # with a fixed spread group_sd (the shared skeleton, bayescale.models.skeleton)
    log A_ref[g]          ~ Normal(log(0.25 L_med), 1.0)    # log(A / N_ref^alpha), the size term at N_ref
    log B_ref[g]          ~ Normal(log(0.25 L_med), 1.0)    # log(B / D_ref^beta), the data term at D_ref
    log alpha[g]          ~ Normal(log 0.35, 0.5)
    log beta[g]           ~ Normal(log 0.37, 0.5)
    logit(E[g] / L_min)   ~ Normal(0, 1.1)                  # the floor lies below every observed loss

    # paper constants (deterministic sites)
    A = A_ref N_ref^alpha,  B = B_ref D_ref^beta

    mu_i = log L(N_i, D_i | constants[g_i])   (+ run_offset[r_i] for curves)
    log_loss_i ~ StudentT(nu, mu_i, sigma),   sigma ~ HalfNormal(0.05)

**Final losses** (one point per run, the common published form): the run-to-run
(seed) noise and the evaluation noise are one term, ``sigma``.

**Curves** (several kept points in some run): as for every law (the shared skeleton,
:mod:`bayescale.models.skeleton`), each run gets an offset
``run_offset[r] ~ Normal(0, tau_run)``, ``tau_run ~ HalfNormal(0.02)``, and the residuals
``r_i = log_loss_i - mu_i`` along a run follow an AR(1) with ``rho ~ Uniform(0, 1)``:
``log_loss_i ~ StudentT(nu, mu_i + rho r_prev(i), sigma sqrt(1 - rho^2))`` for a point
with a previous kept point of the same run, so that 100 correlated checkpoints do not
count as 100 independent facts.

Why these priors: the exponents are centred on the Epoch re-estimate (alpha 0.35,
beta 0.37, Besiroglu et al. 2024) with a log-sd of 0.5 (90% range about 0.15-0.8).
The published scales (E 1.82, A 482, B 2085) depend on the parameter convention, the
tokenizer and the data (at 1e5 parameters and 1e6 byte tokens they predict a loss of
23 nats, ten times a byte-level model's), so the scales are centred on the data: at
the Epoch constants' compute-optimal point (D = 20 N, N = 1e8) the size and data terms
are each about a quarter of the loss, which gives the ``0.25 L_med`` centres with one
e-fold of spread. Re-centring the size and data terms at ``N_ref`` and ``D_ref``
(docs/model.md) removes the ridge between (log A, alpha) and (log B, beta) that
otherwise slows NUTS.

References: Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models",
arXiv:2203.15556; Besiroglu, Erdil, Barnett, You 2024, "Chinchilla Scaling: A
replication attempt", arXiv:2404.10102.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.curves import IdentifiabilityWarning, prepare_curves
from bayescale.defaults import DEFAULT_MAX_POINTS

from .law import Covariates, Law
from .priors import ChinchillaPriors

ArrayLike = jax.typing.ArrayLike

#: Latent per-group sites, in the order of :func:`chinchilla_constants_from_latents`.
CHINCHILLA_LATENTS = ("log_A_ref", "log_B_ref", "log_alpha", "log_beta", "logit_E_fraction")
#: Deterministic sites reported in the paper's parametrisation.
CHINCHILLA_CONSTANTS = ("E", "A", "B", "alpha", "beta")


class ChinchillaConstants(NamedTuple):
    """Constants of ``L = E + A/N^alpha + B/D^beta``; every field broadcasts.

    Scales are kept as logarithms (``log_E``, ``log_A``, ``log_B``) so that posterior
    draws can be vectorised without overflow.
    """

    log_E: ArrayLike
    log_A: ArrayLike
    alpha: ArrayLike
    log_B: ArrayLike
    beta: ArrayLike

    @classmethod
    def from_paper(cls, E: ArrayLike, A: ArrayLike, B: ArrayLike, alpha: ArrayLike,
                   beta: ArrayLike) -> "ChinchillaConstants":
        """Build from the constants as the papers print them (not logged)."""
        return cls(np.log(E), np.log(A), alpha, np.log(B), beta)



#: Besiroglu et al. (2024), Chinchilla re-estimate (total parameters, MassiveText tokens).
EPOCH_2024 = ChinchillaConstants.from_paper(E=1.82, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)


def chinchilla_log_loss(c: ChinchillaConstants, log_N: ArrayLike, log_D: ArrayLike) -> jax.Array:
    """``log L(N, D) = logsumexp(log A - alpha log N, log B - beta log D, log E)``."""
    size_term = c.log_A - c.alpha * log_N
    data_term = c.log_B - c.beta * log_D
    return jnp.logaddexp(jnp.logaddexp(size_term, data_term), c.log_E)


def chinchilla_log_floor(c: ChinchillaConstants, log_N: ArrayLike) -> jax.Array:
    """Loss with unlimited data, ``log(E + A/N^alpha)`` (the ``D -> inf`` limit)."""
    return jnp.logaddexp(c.log_A - c.alpha * log_N, c.log_E)


def chinchilla_log_tokens(c: ChinchillaConstants, log_N: ArrayLike, L: ArrayLike) -> jax.Array:
    """Tokens to reach loss ``L`` at size ``N``: ``log D = (log B - log(L - E - A/N^alpha)) / beta``.

    ``inf`` where ``L`` is at or below the size's floor ``E + A/N^alpha`` (out of reach).
    """
    excess = jnp.asarray(L) - jnp.exp(chinchilla_log_floor(c, log_N))
    safe = jnp.where(excess > 0, excess, 1.0)
    return jnp.where(excess > 0, (c.log_B - jnp.log(safe)) / c.beta, jnp.inf)


def chinchilla_constants_from_latents(latents: dict, references: dict) -> ChinchillaConstants:
    """Map the re-centred latent quantities to the paper constants (any array shapes).

    ``references`` needs ``log_N_ref``, ``log_D_ref`` and ``log_L_min``.
    """
    alpha = jnp.exp(latents["log_alpha"])
    beta = jnp.exp(latents["log_beta"])
    return ChinchillaConstants(
        log_E=jax.nn.log_sigmoid(latents["logit_E_fraction"]) + references["log_L_min"],
        log_A=latents["log_A_ref"] + alpha * references["log_N_ref"],
        alpha=alpha,
        log_B=latents["log_B_ref"] + beta * references["log_D_ref"],
        beta=beta,
    )



class Chinchilla(Law):
    """The Chinchilla law ``L(N, D) = E + A/N^alpha + B/D^beta`` with ``D = B S`` (module docstring)."""

    name = "chinchilla"
    title = "Chinchilla law L(N, D) = E + A/N^alpha + B/D^beta"
    constants = CHINCHILLA_CONSTANTS
    scale_constants = ("A", "B")
    latents = CHINCHILLA_LATENTS
    reference = "Hoffmann et al. 2022, arXiv:2203.15556; Besiroglu et al. 2024, arXiv:2404.10102"
    uses_batch = False

    def default_priors(self) -> ChinchillaPriors:
        return ChinchillaPriors()

    def prepare(self, runs, *, group_by, min_step_fraction, min_step, max_points=DEFAULT_MAX_POINTS):
        """The points of :func:`~bayescale.curves.prepare_curves` plus the token references.

        Adds ``log_D_ref`` (mean log tokens of the kept points) to the references and the
        fitted ``tokens`` range (smallest and largest ``batch_tokens * step``) to the
        ranges. Fewer than 3 sizes leave alpha and A to their priors, fewer than 3 distinct
        token counts leave beta and B to theirs.
        """
        data = prepare_curves(runs, group_by=group_by, min_step_fraction=min_step_fraction, min_step=min_step,
                              max_points=max_points)
        log_D = data.log_B.astype(float) + data.log_S.astype(float)
        n_tokens = len(np.unique(np.round(log_D, 6)))
        for count, what, constants in ((len(data.sizes), "model size(s)", "alpha and A"),
                                       (n_tokens, "distinct token count(s)", "beta and B")):
            if count < 3:
                warnings.warn(f"the fitted points have {count} {what}: {constants} are decided by their priors, not "
                              "the data; add runs that span a decade or more of it", IdentifiabilityWarning,
                              stacklevel=3)
        return dataclasses.replace(
            data,
            references={**data.references, "log_D_ref": float(np.mean(log_D))},
            ranges={**data.ranges, "tokens": [float(np.exp(log_D.min())), float(np.exp(log_D.max()))]},
        )

    def prior_centres(self, data, priors: ChinchillaPriors) -> dict[str, tuple[float, float]]:
        log_L_med = data.references["log_L_ref"]
        return {
            "log_A_ref": (log_L_med + priors.log_A_ref_fraction[0], priors.log_A_ref_fraction[1]),
            "log_B_ref": (log_L_med + priors.log_B_ref_fraction[0], priors.log_B_ref_fraction[1]),
            "log_alpha": priors.log_alpha,
            "log_beta": priors.log_beta,
            "logit_E_fraction": priors.logit_E_fraction,
        }

    def constants_from_latents(self, latents, references) -> ChinchillaConstants:
        return chinchilla_constants_from_latents(latents, references)

    def paper_constants(self, c: ChinchillaConstants) -> dict:
        return {"E": jnp.exp(c.log_E), "A": jnp.exp(c.log_A), "B": jnp.exp(c.log_B), "alpha": c.alpha,
                "beta": c.beta}

    def mean_log_loss(self, c: ChinchillaConstants, x: Covariates):
        return chinchilla_log_loss(c, x.log_N, x.log_tokens)

    def min_loss(self, c: ChinchillaConstants, N):
        return jnp.exp(chinchilla_log_floor(c, jnp.log(N)))

    def steps_to_loss(self, c: ChinchillaConstants, N, B, L) -> dict:
        tokens = np.exp(np.asarray(chinchilla_log_tokens(c, np.log(N), L), float))
        return {"steps": tokens / B, "tokens": tokens}

    def fitted_ranges(self):
        return (("size", "params"), ("tokens", "tokens"))

    def axis_values(self, N, B, S):
        tokens = None if B is None or S is None else np.asarray(B, float) * np.asarray(S, float)
        return {"size": N, "tokens": tokens}


CHINCHILLA = Chinchilla()
