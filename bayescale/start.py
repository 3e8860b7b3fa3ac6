"""Starting points for NUTS chains: near a posterior mode, dispersed per chain.

Started from NumPyro's default (the median of a few prior draws), a chain sometimes
lands where the trajectory solver's curves are far from every observation; the
gradients there are enormous, warmup shrinks the step size to nothing and the chain
stays near its start for the whole run (seen as R-hat above 2 on synthetic data on
some seeds, and on the bundled runs). :func:`starting_points` avoids that:

1. draw a prior-median point (``init_to_median``) in the unconstrained space;
2. run ``steps`` Adam steps (Kingma & Ba 2015) on the potential energy (the negative
   log joint density), keeping the best finite point seen;
3. give each chain that point plus independent ``Normal(0, jitter)`` noise in the
   unconstrained space (:func:`dispersed`), so that R-hat can still reveal chains that
   drift apart.

Steps 1 and 2 are traced once and compiled as one program. Run op by op, as
``initialize_model`` runs outside a compiled function, the model's first trace and
gradient cost many small compilations: on the bundled demo 24 s against 12 s compiled
(benchmarks/RESULTS.md, "demo gate over seeds").

The optimisation is short on purpose: it brings every chain into the region where the
likelihood is informative, not to the mode itself (in a hierarchical model the joint
mode of a non-centred scale sits at zero), and warmup does the rest.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from numpyro.infer import init_to_median
from numpyro.infer.util import initialize_model

#: Adam steps on the potential energy before sampling.
OPTIMISATION_STEPS = 400
#: Adam step size in unconstrained units.
STEP_SIZE = 0.03
#: Standard deviation of each chain's offset from the optimised point (unconstrained units).
JITTER = 0.05


def _adam(potential: Callable[[jax.Array], jax.Array], x0: jax.Array, steps: int, step_size: float) -> jax.Array:
    """``steps`` Adam steps on ``potential`` from ``x0``; returns the best finite point seen.

    A non-finite value or gradient leaves the point where it was (the step is skipped).
    """
    value_and_grad = jax.value_and_grad(potential)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def step(carry, t):
        x, m, v, best_x, best_f = carry
        f, g = value_and_grad(x)
        ok = jnp.isfinite(f) & jnp.all(jnp.isfinite(g))
        better = ok & (f < best_f)
        best_x, best_f = jnp.where(better, x, best_x), jnp.where(better, f, best_f)
        g = jnp.where(ok, g, 0.0)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        x = jnp.where(ok, x - step_size * m_hat / (jnp.sqrt(v_hat) + eps), x)
        return (x, m, v, best_x, best_f), None

    zeros = jnp.zeros_like(x0)
    init = (x0, zeros, zeros, x0, jnp.asarray(jnp.inf, x0.dtype))
    (_, _, _, best_x, _), _ = jax.lax.scan(step, init, jnp.arange(1, steps + 1, dtype=x0.dtype))
    return best_x


def starting_points(
    key: jax.Array,
    model: Callable[..., None],
    model_args: tuple,
    model_kwargs: dict,
    chains: int,
    *,
    steps: int = OPTIMISATION_STEPS,
    step_size: float = STEP_SIZE,
    jitter: float = JITTER,
) -> dict[str, jax.Array]:
    """Unconstrained starting values for ``chains`` chains (see the module docstring).

    The result is what :meth:`numpyro.infer.MCMC.run` takes as ``init_params``: one
    array per latent site, with a leading chain axis when ``chains > 1``.
    """
    key_init, key_jitter = jax.random.split(key)

    @jax.jit
    def optimised(key: jax.Array) -> dict[str, jax.Array]:  # one compiled program (module docstring)
        info = initialize_model(key, model, model_args=model_args, model_kwargs=model_kwargs,
                                init_strategy=init_to_median(num_samples=15))
        flat, unravel = ravel_pytree(info.param_info.z)
        return unravel(_adam(lambda y: info.potential_fn(unravel(y)), flat, steps, step_size))

    return dispersed(key_jitter, optimised(key_init), chains, jitter)


def dispersed(key: jax.Array, point: dict[str, jax.Array], chains: int, jitter: float = JITTER) -> dict[str, jax.Array]:
    """``chains`` copies of the unconstrained ``point``, each plus independent ``Normal(0, jitter)``
    noise, laid out as :meth:`numpyro.infer.MCMC.run` takes ``init_params`` (a leading chain
    axis when ``chains > 1``)."""
    flat, unravel = ravel_pytree(point)
    noise = jitter * jax.random.normal(key, (chains, flat.shape[0]), flat.dtype)
    points = jax.vmap(unravel)(flat + noise)
    return points if chains > 1 else jax.tree_util.tree_map(lambda a: a[0], points)
