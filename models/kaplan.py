r"""Joint hierarchical model of all loss curves under the Kaplan/Su laws.

Generative model, for group ``g`` (e.g. evaluation split), run ``r`` and evaluation
point ``i`` (all logs natural)::

    # re-centred constants; with G > 1 groups each latent is a vector over groups
    log L_ref[g]        ~ Normal(log L_min_obs, sd)        # log(L_N - L_inf) at N_ref
    log alpha_N[g]      ~ Normal(log 0.1, 1.0)
    log A_ref[g]        ~ Normal(log(0.2 L_med_obs), sd)   # log step term at S_ref
    log alpha_S[g]      ~ Normal(log 0.76, 0.75)
    log B_ref[g]        ~ Normal(mean log B_obs, sd)       # log B_crit at L_ref
    log(1/alpha_B)[g]   ~ Normal(log(1/0.21), 0.75)
    L_inf[g] = f[g] * L_min_obs,  f[g] ~ Beta(2, 2)        # irreducible variant only

    # partial pooling across groups (G > 1), for each latent x with prior (m, s):
    x[g] = mu + delta[g],  mu ~ Normal(m, s),  delta[g] ~ Normal(0, group_sd)
    #   i.e. x ~ MultivariateNormal(m 1, s^2 1 1^T + group_sd^2 I)   (mu integrated out)

    # paper constants (deterministic sites)
    N_c = N_ref * L_ref^(1/alpha_N),  S_c = S_ref * A_ref^(1/alpha_S),
    B_*  = B_ref * L_ref^(1/alpha_B)   (L_ref here the median observed loss)

    # offsets and noise
    run_offset[r]  ~ Normal(0, tau_run),   tau_run ~ HalfNormal(0.02)    # seed noise
    mu_i  = log L(S_i; N_i, B_i | constants[g_i]) + run_offset[r_i]
    r_i   = log_loss_i - mu_i
    log_loss_i ~ StudentT(nu, mu_i + rho r_prev(i), sigma sqrt(1 - rho^2))   # has a previous point
    log_loss_i ~ StudentT(nu, mu_i, sigma)                                  # first kept point

``L(S; N, B)`` is the implicit trajectory of :func:`bayescale.laws.trajectory`. The
AR(1) term follows consecutive kept checkpoints of the same run and group (lag in
checkpoints, not in steps); it is a conditional likelihood with Student-t innovations,
which keeps the posterior from treating 100 correlated points of one curve as 100
independent facts. Without observations (prior predictive) every point is drawn from
the stationary marginal ``StudentT(nu, mu_i, sigma)``.

The law's own error (how far real curves depart from the power laws, which grows
with the distance of an extrapolation) is not a parameter here: the predictor adds
it (:mod:`bayescale.predict`), since the fitted sizes cannot reveal it.

Parametrisation for NUTS, chosen by measurement on the bundled runs (two groups, 11
runs; 2 chains x 2,000 draws, three seeds; benchmarks/RESULTS.md):

* The between-group spread ``group_sd`` is fixed, not sampled, and the population mean
  is integrated out, so each latent has a fixed Gaussian prior over groups. Two or
  three groups cannot estimate a spread (its posterior is its prior), and a sampled
  spread makes a funnel: non-centred, NUTS needed about 550 leapfrog steps per draw
  (tree depth 9); centred, it diverged. With the fixed spread the group latents are
  sampled directly (centred), since every group has hundreds of points.
* The run offsets are non-centred (``LocScaleReparam``): a run's offset is known only
  to about its own size (tens of autocorrelated points), and with centred offsets the
  divergent transitions gathered where ``tau_run`` approaches zero.

The re-centring (loss at a reference size, step term at a reference step, critical
batch at a reference loss) removes the near non-identifiability of the (log N_c,
alpha_N), (log S_c, alpha_S) and (log B_*, alpha_B) pairs that stalls NUTS; see
docs/model.md.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer.reparam import LocScaleReparam

from bayescale import laws
from bayescale.curves import CurveData

from .priors import KaplanPriors

#: Latent per-group sites, in the order of :func:`constants_from_latents`.
LATENTS = ("log_L_ref", "log_alpha_N", "log_A_ref", "log_alpha_S", "log_B_ref", "log_inv_alpha_B")
#: Deterministic sites reported in the papers' parametrisation.
CONSTANTS = ("N_c", "alpha_N", "S_c", "alpha_S", "B_star", "alpha_B")


def constants_from_latents(latents: dict, references: dict, L_inf=0.0) -> laws.KaplanConstants:
    """Map the re-centred latent quantities to the paper constants (any array shapes)."""
    alpha_N = jnp.exp(latents["log_alpha_N"])
    alpha_S = jnp.exp(latents["log_alpha_S"])
    alpha_B = jnp.exp(-latents["log_inv_alpha_B"])
    return laws.KaplanConstants(
        log_N_c=references["log_N_ref"] + latents["log_L_ref"] / alpha_N,
        alpha_N=alpha_N,
        log_S_c=references["log_S_ref"] + latents["log_A_ref"] / alpha_S,
        alpha_S=alpha_S,
        log_B_star=latents["log_B_ref"] + references["log_L_ref"] / alpha_B,
        alpha_B=alpha_B,
        L_inf=L_inf,
    )


def _prior_centres(data: CurveData, priors: KaplanPriors) -> dict[str, tuple[float, float]]:
    refs = data.references
    return {
        "log_L_ref": (refs["log_L_min"], priors.log_L_ref_sd),
        "log_alpha_N": priors.log_alpha_N,
        "log_A_ref": (refs["log_L_ref"] + math.log(0.2), priors.log_A_ref_sd),
        "log_alpha_S": priors.log_alpha_S,
        "log_B_ref": (refs["log_B_mean"], priors.log_B_ref_sd),
        "log_inv_alpha_B": priors.log_inv_alpha_B,
    }


def _group_latent(name: str, loc: float, scale: float, n_groups: int, group_sd: float):
    """One latent per group. A single group draws it from its prior; several groups share
    a population mean (prior ``Normal(loc, scale)``, integrated out) and differ from it by
    ``Normal(0, group_sd)``: ``MultivariateNormal(loc, scale^2 J + group_sd^2 I)``."""
    if n_groups == 1:
        with numpyro.plate("group", 1):
            return numpyro.sample(name, dist.Normal(loc, scale))
    cov = scale**2 * jnp.ones((n_groups, n_groups)) + group_sd**2 * jnp.eye(n_groups)
    return numpyro.sample(name, dist.MultivariateNormal(jnp.full(n_groups, loc), covariance_matrix=cov))


def _model(data: CurveData, priors: KaplanPriors, irreducible: bool, log_loss):
    G = data.n_groups
    latents = {
        name: _group_latent(name, loc, scale, G, priors.group_sd)
        for name, (loc, scale) in _prior_centres(data, priors).items()
    }
    L_inf = 0.0
    if irreducible:
        with numpyro.plate("group", G):
            fraction = numpyro.sample("L_inf_fraction", dist.Beta(2.0, 2.0))
        L_inf = numpyro.deterministic("L_inf", fraction * jnp.exp(data.references["log_L_min"]))
    c = constants_from_latents(latents, data.references, L_inf)
    with numpyro.plate("group", G):
        numpyro.deterministic("N_c", jnp.exp(c.log_N_c))
        numpyro.deterministic("alpha_N", c.alpha_N)
        numpyro.deterministic("S_c", jnp.exp(c.log_S_c))
        numpyro.deterministic("alpha_S", c.alpha_S)
        numpyro.deterministic("B_star", jnp.exp(c.log_B_star))
        numpyro.deterministic("alpha_B", c.alpha_B)

    run_scale = numpyro.sample("run_offset_scale", dist.HalfNormal(priors.run_sd))
    with numpyro.plate("run", len(data.runs)):
        run_offset = numpyro.sample("run_offset", dist.Normal(0.0, run_scale))
    sigma = numpyro.sample("sigma", dist.HalfNormal(priors.noise_sd))
    rho = numpyro.sample("rho", dist.Uniform(0.0, 1.0))

    g = data.group_idx
    c_obs = laws.KaplanConstants(*(jnp.asarray(v)[g] if jnp.ndim(v) else v for v in c))
    mu = (
        jnp.log(laws.trajectory(c_obs, jnp.exp(data.log_N), jnp.exp(data.log_B), jnp.exp(data.log_S)))
        + run_offset[data.run_idx]
    )
    if log_loss is None:
        loc, scale = mu, sigma
    else:
        resid_prev = (log_loss - mu)[data.prev_idx]
        loc = mu + jnp.where(data.has_prev, rho * resid_prev, 0.0)
        scale = sigma * jnp.where(data.has_prev, jnp.sqrt(1.0 - rho**2), 1.0)
    with numpyro.plate("obs", data.n_points):
        numpyro.sample("log_loss", dist.StudentT(priors.nu, loc, scale), obs=log_loss)


def kaplan_model(
    data: CurveData,
    priors: KaplanPriors = KaplanPriors(),
    irreducible: bool = False,
    log_loss=None,
) -> None:
    """NumPyro model of all curves in ``data`` (see the module docstring).

    ``log_loss`` defaults to ``None`` (prior predictive); pass ``data.log_loss`` to
    condition. ``irreducible=True`` adds ``L_inf`` to the loss floor.
    """
    reparam = {"run_offset": LocScaleReparam(0)}
    if data.n_groups == 1:  # unit-scale coordinates for the starting-point search
        reparam.update({name: LocScaleReparam(0) for name in LATENTS})
    with handlers.reparam(config=reparam):
        _model(data, priors, irreducible, log_loss)
