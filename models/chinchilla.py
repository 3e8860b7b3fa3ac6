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
    # with a fixed spread group_sd, as in the Kaplan model (bayescale.models.kaplan)
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

**Curves** (several kept points in some run): as in the Kaplan model
(:mod:`bayescale.models.kaplan`), each run gets an offset
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
(DESIGN.md section 4) removes the ridge between (log A, alpha) and (log B, beta) that
otherwise slows NUTS.

References: Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models",
arXiv:2203.15556; Besiroglu, Erdil, Barnett, You 2024, "Chinchilla Scaling: A
replication attempt", arXiv:2404.10102.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer.reparam import LocScaleReparam

from bayescale.curves import CurveData

from .kaplan import _group_latent
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

    def expand(self, axis: int = -1) -> "ChinchillaConstants":
        """Insert a broadcasting axis into every constant (draws x points layouts)."""
        return ChinchillaConstants(*(jnp.expand_dims(jnp.asarray(v), axis) for v in self))


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


def _prior_centres(data: CurveData, priors: ChinchillaPriors) -> dict[str, tuple[float, float]]:
    log_L_med = data.references["log_L_ref"]
    return {
        "log_A_ref": (log_L_med + priors.log_A_ref_fraction[0], priors.log_A_ref_fraction[1]),
        "log_B_ref": (log_L_med + priors.log_B_ref_fraction[0], priors.log_B_ref_fraction[1]),
        "log_alpha": priors.log_alpha,
        "log_beta": priors.log_beta,
        "logit_E_fraction": priors.logit_E_fraction,
    }


def has_curves(data: CurveData) -> bool:
    """Whether some run has several kept points (then run offsets and AR(1) residuals apply)."""
    return bool(data.has_prev.any())


def _model(data: CurveData, priors: ChinchillaPriors, log_loss) -> None:
    G = data.n_groups
    latents = {
        name: _group_latent(name, loc, scale, G, priors.group_sd)
        for name, (loc, scale) in _prior_centres(data, priors).items()
    }
    c = chinchilla_constants_from_latents(latents, data.references)
    with numpyro.plate("group", G):
        numpyro.deterministic("E", jnp.exp(c.log_E))
        numpyro.deterministic("A", jnp.exp(c.log_A))
        numpyro.deterministic("B", jnp.exp(c.log_B))
        numpyro.deterministic("alpha", c.alpha)
        numpyro.deterministic("beta", c.beta)

    g = data.group_idx
    c_obs = ChinchillaConstants(*(jnp.asarray(v)[g] for v in c))
    mu = chinchilla_log_loss(c_obs, data.log_N, data.log_B + data.log_S)
    sigma = numpyro.sample("sigma", dist.HalfNormal(priors.noise_sd))
    loc, scale = mu, sigma
    if has_curves(data):
        run_scale = numpyro.sample("run_offset_scale", dist.HalfNormal(priors.run_sd))
        with numpyro.plate("run", len(data.runs)):
            run_offset = numpyro.sample("run_offset", dist.Normal(0.0, run_scale))
        rho = numpyro.sample("rho", dist.Uniform(0.0, 1.0))
        mu = mu + run_offset[data.run_idx]
        loc = mu
        if log_loss is not None:
            resid_prev = (log_loss - mu)[data.prev_idx]
            loc = mu + jnp.where(data.has_prev, rho * resid_prev, 0.0)
            scale = sigma * jnp.where(data.has_prev, jnp.sqrt(1.0 - rho**2), 1.0)
    with numpyro.plate("obs", data.n_points):
        numpyro.sample("log_loss", dist.StudentT(priors.nu, loc, scale), obs=log_loss)


def chinchilla_model(data: CurveData, priors: ChinchillaPriors = ChinchillaPriors(), log_loss=None) -> None:
    """NumPyro model of the losses in ``data`` under the Chinchilla law (module docstring).

    ``data.references`` must hold ``log_N_ref``, ``log_D_ref``, ``log_L_ref`` (the log
    median loss) and ``log_L_min`` (see :func:`bayescale.chinchilla.prepare_chinchilla`).
    ``log_loss`` defaults to ``None`` (prior predictive); pass ``data.log_loss`` to
    condition. Without observations every point is drawn from the stationary marginal.
    """
    reparam = {"run_offset": LocScaleReparam(0)}
    if data.n_groups == 1:  # several groups: a centred multivariate prior (bayescale.models.kaplan)
        reparam.update({name: LocScaleReparam(0) for name in CHINCHILLA_LATENTS})
    with handlers.reparam(config=reparam):
        _model(data, priors, log_loss)
