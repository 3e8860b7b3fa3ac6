r"""The Kaplan/Su law form: its mathematics and its :class:`~bayescale.models.law.Law` objects.

Scaling laws of Kaplan et al. (2020) as refined by Su et al. (2024). Notation
(docs/model.md): ``N`` non-embedding parameters, ``B`` batch size in tokens, ``S``
optimizer steps, ``E = B S`` tokens, ``L`` loss in nats per token.

.. math::

    L_N(N)        &= L_\infty + (N_c / N)^{\alpha_N}                   \\
    L(N, S_{min}) &= L_N + (S_c / S_{min})^{\alpha_S}                   \\
    B_{crit}(L)   &= B_* / L^{1/\alpha_B}                                \\
    S_{min}(L)    &= S_c (L - L_N)^{-1/\alpha_S}, \quad
    S(L; B) = S_{min}(L) (1 + B_{crit}(L) / B)                           \\
    E_{min}(L)    &= B_{crit}(L) S_{min}(L), \quad E(L; B) = B\, S(L; B)

The trajectory at a finite batch ``B`` is the root of the implicit equation
``L = L_N + (S_c (1 + B_crit(L)/B) / S)^alpha_S``, solved by :func:`trajectory`.
``L_inf = 0`` gives Kaplan's original form (law ``kaplan``); the law
``kaplan_irreducible`` adds a floor ``L_inf`` per group.

Priors, per group ``g``, of the re-centred latents (sampled by the shared skeleton,
:mod:`bayescale.models.skeleton`, which adds the pooling across groups, run offsets and
the AR(1) Student-t observation)::

    log L_ref[g]        ~ Normal(log L_min_obs, sd)        # log(L_N - L_inf) at N_ref
    log alpha_N[g]      ~ Normal(log 0.1, 1.0)
    log A_ref[g]        ~ Normal(log(0.2 L_med_obs), sd)   # log step term at S_ref, B_mean
    log alpha_S[g]      ~ Normal(log 0.76, 0.75)
    log B_ref[g]        ~ Normal(mean log B_obs, sd)       # log B_crit at L_ref
    log(1/alpha_B)[g]   ~ Normal(log(1/0.21), 0.75)
    L_inf[g] = f[g] * L_min_obs,  f[g] ~ Beta(2, 2)        # kaplan_irreducible only

    # paper constants (deterministic sites)
    N_c = N_ref * L_ref^(1/alpha_N),  S_c = S_ref * A_ref^(1/alpha_S) / (1 + B_ref/B_mean),
    B_*  = B_ref * L_ref^(1/alpha_B)   (L_ref here the median observed loss)

The re-centring (loss at a reference size, step term at a reference step, critical
batch at a reference loss; the step term measured at the fitted batches' mean ``B_mean``,
which is what the curves show) removes the near non-identifiability of the (log N_c,
alpha_N), (log S_c, alpha_S) and (log B_*, alpha_B) pairs that stalls NUTS; see
docs/model.md.

References: Kaplan et al. 2020, "Scaling Laws for Neural Language Models",
arXiv:2001.08361, eqs. 1.4, 1.6, 5.1-5.6; Su, Tian, Shen, Cai 2024, "Unraveling the
Mystery of Scaling Laws: Part I", arXiv:2403.06563.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax

from bayescale.curves import IdentifiabilityWarning, prepare_curves
from bayescale.defaults import DEFAULT_MAX_POINTS

from .law import Covariates, Law
from .priors import (LITERATURE_ALPHA_B, LITERATURE_B_STAR, LITERATURE_LOG_B_SD, LITERATURE_LOG_INV_ALPHA_B_SD,
                     KaplanPriors)

ArrayLike = jax.typing.ArrayLike

#: Most Newton iterations of :func:`trajectory`; the example constants of
#: :mod:`bayescale.synthetic` converge in 3, the hardest cases of the wide test grid
#: (steep B_crit laws) take more.
SOLVER_MAX_ITERATIONS = 40
#: Convergence tolerance on the Newton step in ``u = log(L - L_N)``, relative to ``1 + |u|``.
SOLVER_TOL = 1e-6


class KaplanConstants(NamedTuple):
    """Constants of the Kaplan/Su laws; every field broadcasts (e.g. one per draw).

    Scale constants are kept as logarithms so that draws from a posterior can be
    vectorised without overflow. ``L_inf`` is the irreducible loss (0 in Kaplan's form).
    """

    log_N_c: ArrayLike
    alpha_N: ArrayLike
    log_S_c: ArrayLike
    alpha_S: ArrayLike
    log_B_star: ArrayLike
    alpha_B: ArrayLike
    L_inf: ArrayLike = 0.0

    @classmethod
    def from_paper(
        cls,
        N_c: ArrayLike,
        alpha_N: ArrayLike,
        S_c: ArrayLike,
        alpha_S: ArrayLike,
        B_star: ArrayLike,
        alpha_B: ArrayLike,
        L_inf: ArrayLike = 0.0,
    ) -> "KaplanConstants":
        """Build from the constants as the papers print them (not logged)."""
        return cls(np.log(N_c), alpha_N, np.log(S_c), alpha_S, np.log(B_star), alpha_B, L_inf)


#: Kaplan et al. (2020), Table 5 (WebText2, BPE tokens; B_* in tokens).
KAPLAN_2020 = KaplanConstants.from_paper(
    N_c=8.8e13, alpha_N=0.076, S_c=2.1e3, alpha_S=0.76, B_star=2.1e8, alpha_B=0.21
)


def loss_floor(c: KaplanConstants, N: ArrayLike) -> jax.Array:
    """Minimum reachable loss of a model of size ``N``: ``L_inf + (N_c/N)^alpha_N``."""
    return c.L_inf + jnp.exp(c.alpha_N * (c.log_N_c - jnp.log(N)))


def log_critical_batch(c: KaplanConstants, L: ArrayLike) -> jax.Array:
    """``log B_crit(L) = log B_* - log(L) / alpha_B`` (Kaplan eq. 1.4)."""
    return c.log_B_star - jnp.log(L) / c.alpha_B


def critical_batch(c: KaplanConstants, L: ArrayLike) -> jax.Array:
    """Critical batch size in tokens at loss ``L``."""
    return jnp.exp(log_critical_batch(c, L))


def min_steps(c: KaplanConstants, N: ArrayLike, L: ArrayLike) -> jax.Array:
    """Steps to reach ``L`` at an effectively infinite batch: ``S_c (L - L_N)^(-1/alpha_S)``.

    ``inf`` where ``L <= L_N`` (the loss is out of reach for this size).
    """
    excess = jnp.asarray(L) - loss_floor(c, N)
    safe = jnp.where(excess > 0, excess, 1.0)
    return jnp.where(excess > 0, jnp.exp(c.log_S_c - jnp.log(safe) / c.alpha_S), jnp.inf)


def _residual(u, base, a, k, L_N, log_ratio):
    """``f(u)`` of the implicit equation and its derivative, with ``u = log(L - L_N)``.

    ``f(u) = u - base - a softplus(log_ratio - k log(L_N + e^u))`` where
    ``base = alpha_S (log S_c - log S)``, ``a = alpha_S``, ``k = 1/alpha_B`` and
    ``log_ratio = log B_* - log B``. ``f`` is strictly increasing, ``f' >= 1``.
    """
    L = L_N + jnp.exp(u)
    x = log_ratio - k * jnp.log(L)
    f = u - base - a * jax.nn.softplus(x)
    df = 1.0 + a * jax.nn.sigmoid(x) * k * jnp.exp(u) / L
    return f, df


def _solve(base, a, k, L_N, log_ratio, max_iterations, tol):
    """Safeguarded Newton on ``f(u) = 0`` inside a shrinking bracket (no gradients).

    Stops when every Newton step is below ``tol * (1 + |u|)`` or after
    ``max_iterations``; a step that would leave the bracket is replaced by bisection.
    """

    def g(u):  # the fixed-point map u = g(u); g is decreasing in u
        return base + a * jax.nn.softplus(log_ratio - k * jnp.log(L_N + jnp.exp(u)))

    # base <= root <= g(base); applying g to a bound gives a tighter opposite bound.
    hi = g(base)
    lo = g(hi)
    u = 0.5 * (lo + hi)

    def step(state):
        i, u, lo, hi, _ = state
        f, df = _residual(u, base, a, k, L_N, log_ratio)
        lo = jnp.where(f <= 0, u, lo)
        hi = jnp.where(f >= 0, u, hi)
        newton = u - f / df
        # a converged point's Newton step is below float resolution and may touch the
        # bracket; bisecting it would throw the root away, so a tiny step is always taken
        tiny = jnp.abs(newton - u) <= tol * (1.0 + jnp.abs(u))
        inside = ((newton > lo) & (newton < hi)) | tiny
        new = jnp.where(inside, newton, 0.5 * (lo + hi))
        return i + 1, new, lo, hi, jnp.max(jnp.abs(new - u) / (1.0 + jnp.abs(u)))

    def unconverged(state):
        i, _, _, _, change = state
        return (i < max_iterations) & (change > tol)

    init = (0, u, lo, hi, jnp.asarray(jnp.inf, dtype=u.dtype))
    _, u, _, _, _ = lax.while_loop(unconverged, step, init)
    return u


def trajectory(
    c: KaplanConstants,
    N: ArrayLike,
    B: ArrayLike,
    S: ArrayLike,
    max_iterations: int = SOLVER_MAX_ITERATIONS,
    tol: float = SOLVER_TOL,
) -> jax.Array:
    r"""Loss after ``S`` steps at batch ``B`` for a model of size ``N``.

    Solves ``L = L_N + (S_c (1 + B_crit(L)/B) / S)^alpha_S`` for ``L`` in ``u = log(L - L_N)``.
    The root lies in ``[u_lo, u_hi]`` with ``u_lo = alpha_S (log S_c - log S)`` (the
    infinite-batch value) and ``u_hi = u_lo + alpha_S log1p(B_crit(L_N)/B)``; the
    decreasing fixed-point map tightens that bracket once, then Newton steps that stay
    inside the current bracket (bisection otherwise) run in a ``lax.while_loop`` until
    the largest step is below ``tol`` (at most ``max_iterations``), so the function
    JIT-compiles and vectorises over any broadcast of draws x steps.

    Gradients flow through the converged root by the implicit function theorem
    (one Newton step on the differentiable residual at the stopped root):
    ``du/dtheta = -(df/dtheta) / (df/du)``.
    """
    N, B, S = (jnp.asarray(v) for v in (N, B, S))
    L_N = loss_floor(c, N)
    a = jnp.asarray(c.alpha_S)
    k = 1.0 / jnp.asarray(c.alpha_B)
    base = a * (c.log_S_c - jnp.log(S))
    log_ratio = c.log_B_star - jnp.log(B)
    base, a, k, L_N, log_ratio = jnp.broadcast_arrays(base, a, k, L_N, log_ratio)

    stopped = [lax.stop_gradient(v) for v in (base, a, k, L_N, log_ratio)]
    u_star = lax.stop_gradient(_solve(*stopped, max_iterations, tol))
    f, df = _residual(u_star, base, a, k, L_N, log_ratio)
    u = u_star - f / lax.stop_gradient(df)
    return L_N + jnp.exp(u)


#: Latent per-group sites, in the order of :func:`constants_from_latents`.
LATENTS = ("log_L_ref", "log_alpha_N", "log_A_ref", "log_alpha_S", "log_B_ref", "log_inv_alpha_B")
#: Deterministic sites reported in the papers' parametrisation.
CONSTANTS = ("N_c", "alpha_N", "S_c", "alpha_S", "B_star", "alpha_B")


#: Reference key of the batch (log tokens) at which ``log_A_ref`` measures the step term;
#: posteriors saved without it measured the step term at an unlimited batch.
STEP_TERM_BATCH = "log_B_step_term"


def measure_step_term_at_fitted_batch(data):
    """``data`` with the reference that makes ``log_A_ref`` the step term at the fitted
    batches' geometric mean (:func:`constants_from_latents`)."""
    return dataclasses.replace(data, references={**data.references, STEP_TERM_BATCH: data.references["log_B_mean"]})


def constants_from_latents(latents: dict, references: dict, L_inf=0.0) -> KaplanConstants:
    """Map the re-centred latent quantities to the paper constants (any array shapes).

    ``log_A_ref`` is the step term at ``S_ref`` for a run at the batch ``B_mean`` of
    ``references[STEP_TERM_BATCH]``: ``(S_c (1 + B_crit(L_ref)/B_mean) / S_ref)^alpha_S``,
    so ``log S_c = log S_ref + log_A_ref / alpha_S - softplus(log B_crit(L_ref) - log B_mean)``
    (docs/model.md, section 4.1). The curves measure that product; where the critical
    batch grows far beyond the batches trained they measure nothing else, and sampling
    ``log S_c`` itself put the chains on a curved ridge there. Without the reference
    (posteriors saved before it existed) the softplus term is 0.
    """
    alpha_N = jnp.exp(latents["log_alpha_N"])
    alpha_S = jnp.exp(latents["log_alpha_S"])
    alpha_B = jnp.exp(-latents["log_inv_alpha_B"])
    batch_share = (jax.nn.softplus(latents["log_B_ref"] - references[STEP_TERM_BATCH])
                   if STEP_TERM_BATCH in references else 0.0)
    return KaplanConstants(
        log_N_c=references["log_N_ref"] + latents["log_L_ref"] / alpha_N,
        alpha_N=alpha_N,
        log_S_c=references["log_S_ref"] + latents["log_A_ref"] / alpha_S - batch_share,
        alpha_S=alpha_S,
        log_B_star=latents["log_B_ref"] + references["log_L_ref"] / alpha_B,
        alpha_B=alpha_B,
        L_inf=L_inf,
    )


def warn_unidentified(data) -> None:
    """Warn when the fitted points cannot identify a constant, so that its prior decides it."""
    n_sizes = len(data.sizes)
    if n_sizes < 3:
        warnings.warn(
            f"the runs have {n_sizes} model size(s): alpha_N and N_c are decided by their priors, not the data; "
            "add runs at 3 or more sizes spanning a decade or more",
            IdentifiabilityWarning,
            stacklevel=4,
        )
    batches_per_size = [len(np.unique(data.log_B[data.size_idx == i])) for i in range(n_sizes)]
    if max(batches_per_size) < 2:
        warnings.warn(
            "every model size was trained at a single batch size: B_star and alpha_B (the critical batch) are decided "
            "by their priors; add runs at 3 or more batch sizes, below and above the critical batch, at some size",
            IdentifiabilityWarning,
            stacklevel=4,
        )


class Kaplan(Law):
    """The Kaplan/Su law: curves in size, batch and steps (module docstring); with
    ``irreducible=True`` a loss floor ``L_inf`` per group."""

    constants = CONSTANTS
    scale_constants = ("N_c", "S_c", "B_star")
    latents = LATENTS
    batch_latents = ("log_B_ref", "log_inv_alpha_B")
    units = "N_c in parameters, S_c in steps, B_* in tokens"
    reference = "Kaplan et al. 2020, arXiv:2001.08361; Su et al. 2024, arXiv:2403.06563"
    offsets_for_final_losses = True  # as measured: every Kaplan fit has run offsets

    def __init__(self, irreducible: bool = False):
        self.irreducible = irreducible
        self.name = "kaplan_irreducible" if irreducible else "kaplan"
        self.title = ("Kaplan/Su law with an irreducible loss L_inf" if irreducible else "Kaplan/Su law")
        self.extra_sites = ("L_inf_fraction",) if irreducible else ()
        self.derived_sites = ("L_inf",) if irreducible else ()

    def default_priors(self) -> KaplanPriors:
        return KaplanPriors()

    def prepare(self, runs, *, group_by, min_step_fraction, min_step, max_points=DEFAULT_MAX_POINTS):
        data = prepare_curves(runs, group_by=group_by, min_step_fraction=min_step_fraction, min_step=min_step,
                              max_points=max_points)
        warn_unidentified(data)
        return measure_step_term_at_fitted_batch(data)

    def prior_centres(self, data, priors: KaplanPriors) -> dict[str, tuple[float, float]]:
        refs = data.references
        batch = {"log_B_ref": (refs["log_B_mean"], priors.log_B_ref_sd), "log_inv_alpha_B": priors.log_inv_alpha_B}
        if priors.critical_batch == "literature":  # B_crit(L_ref) = B_* / L_ref^(1/alpha_B), published constants
            batch = {"log_B_ref": (math.log(LITERATURE_B_STAR) - refs["log_L_ref"] / LITERATURE_ALPHA_B,
                                   LITERATURE_LOG_B_SD),
                     "log_inv_alpha_B": (math.log(1.0 / LITERATURE_ALPHA_B), LITERATURE_LOG_INV_ALPHA_B_SD)}
        return {
            "log_L_ref": (refs["log_L_min"], priors.log_L_ref_sd),
            "log_alpha_N": priors.log_alpha_N,
            "log_A_ref": (refs["log_L_ref"] + math.log(0.2), priors.log_A_ref_sd),
            "log_alpha_S": priors.log_alpha_S,
            **batch,
        }

    def extra_latents(self, data, priors) -> dict:
        if not self.irreducible:
            return {}
        with numpyro.plate("group", data.n_groups):
            fraction = numpyro.sample("L_inf_fraction", dist.Beta(2.0, 2.0))
        return {"L_inf": numpyro.deterministic("L_inf", fraction * jnp.exp(data.references["log_L_min"]))}

    def constants_from_latents(self, latents, references) -> KaplanConstants:
        return constants_from_latents(latents, references, latents.get("L_inf", 0.0))

    def paper_constants(self, c: KaplanConstants) -> dict:
        return {"N_c": jnp.exp(c.log_N_c), "alpha_N": c.alpha_N, "S_c": jnp.exp(c.log_S_c), "alpha_S": c.alpha_S,
                "B_star": jnp.exp(c.log_B_star), "alpha_B": c.alpha_B}

    def mean_log_loss(self, c: KaplanConstants, x: Covariates):
        return jnp.log(trajectory(c, jnp.exp(x.log_N), jnp.exp(x.log_B), jnp.exp(x.log_S)))

    def min_loss(self, c: KaplanConstants, N):
        return loss_floor(c, N)

    def critical_batch(self, c: KaplanConstants, L):
        return critical_batch(c, L)

    def steps_to_loss(self, c: KaplanConstants, N, B, L) -> dict:
        s_min = np.asarray(min_steps(c, N, L), float)
        b_crit = np.asarray(critical_batch(c, L), float)
        steps = s_min * (1.0 + b_crit / B)
        return {"steps": steps, "tokens": B * steps, "min_steps": s_min, "min_tokens": b_crit * s_min,
                "critical_batch": b_crit}

    def fitted_ranges(self):
        return (("size", "params"), ("steps", "step"), ("batch", "batch_tokens"))

    def axis_values(self, N, B, S):
        return {"size": N, "steps": S, "batch": B}


KAPLAN = Kaplan()
KAPLAN_IRREDUCIBLE = Kaplan(irreducible=True)
