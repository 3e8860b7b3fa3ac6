r"""Scaling laws of Kaplan et al. (2020) as refined by Su et al. (2024), in JAX.

Notation (DESIGN.md sections 2-3): ``N`` non-embedding parameters, ``B`` batch size in
tokens, ``S`` optimizer steps, ``E = B S`` tokens, ``L`` loss in nats per token.

.. math::

    L_N(N)        &= L_\infty + (N_c / N)^{\alpha_N}                   \\
    L(N, S_{min}) &= L_N + (S_c / S_{min})^{\alpha_S}                   \\
    B_{crit}(L)   &= B_* / L^{1/\alpha_B}                                \\
    S_{min}(L)    &= S_c (L - L_N)^{-1/\alpha_S}, \quad
    S(L; B) = S_{min}(L) (1 + B_{crit}(L) / B)                           \\
    E_{min}(L)    &= B_{crit}(L) S_{min}(L), \quad E(L; B) = B\, S(L; B)

The trajectory at a finite batch ``B`` is the root of the implicit equation
``L = L_N + (S_c (1 + B_crit(L)/B) / S)^alpha_S``, solved by :func:`trajectory`.
``L_inf = 0`` gives Kaplan's original form.

References: Kaplan et al. 2020, "Scaling Laws for Neural Language Models",
arXiv:2001.08361, eqs. 1.4, 1.6, 5.1-5.6; Su, Tian, Shen, Cai 2024, "Unraveling the
Mystery of Scaling Laws: Part I", arXiv:2403.06563.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

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


def expand(c: KaplanConstants, axis: int = -1) -> KaplanConstants:
    """Insert a broadcasting axis into every constant (draws x points layouts)."""
    return KaplanConstants(*(jnp.expand_dims(jnp.asarray(v), axis) for v in c))


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


def min_tokens(c: KaplanConstants, N: ArrayLike, L: ArrayLike) -> jax.Array:
    """Tokens to reach ``L`` in the small-batch limit: ``E_min = B_crit(L) S_min(L)``."""
    return critical_batch(c, L) * min_steps(c, N, L)


def steps_to_loss(c: KaplanConstants, N: ArrayLike, B: ArrayLike, L: ArrayLike) -> jax.Array:
    """Steps to reach ``L`` at batch ``B``: ``S_min(L) (1 + B_crit(L)/B)`` (Kaplan eq. 5.1)."""
    return min_steps(c, N, L) * (1.0 + critical_batch(c, L) / B)


def tokens_to_loss(c: KaplanConstants, N: ArrayLike, B: ArrayLike, L: ArrayLike) -> jax.Array:
    """Tokens to reach ``L`` at batch ``B``: ``B S(L; B)``."""
    return B * steps_to_loss(c, N, B, L)


def training_flops(N: ArrayLike, tokens: ArrayLike) -> jax.Array:
    """Training compute ``C = 6 N E`` in FLOPs (forward + backward, attention excluded)."""
    return 6.0 * jnp.asarray(N) * jnp.asarray(tokens)


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
