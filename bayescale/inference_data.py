"""A fit's ArviZ ``InferenceData``, assembled from NumPyro's draws with one compiled program.

``az.from_numpyro`` runs the model outside any compiled function twice: once to find the
observed sites, and once, vectorised over the draws, for the pointwise log-likelihood. On a
CPU every small operation of such a run is compiled on its own, and that compiling
dominated the conversion: 7.7 s for a small fit (2 x 700 draws of 108 points), and still
5.0 s without the log-likelihood. Here the observed sites are known (the model's ``log_loss``)
and the log-likelihood is one compiled program (:func:`pointwise_log_likelihood`), so the
conversion costs that program's compilation. The groups, names, dimensions and sample
statistics are those ``az.from_numpyro`` writes.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from numpyro.infer import MCMC
from numpyro.infer.util import log_likelihood

import arviz as az

#: Draws per vectorised batch of the log-likelihood (bounds its memory on large tables).
LOG_LIKELIHOOD_BATCH = 256


def pointwise_log_likelihood(model: Callable[..., None], samples: dict[str, jax.Array], model_args: tuple,
                             observed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``log p(y_i | theta_d)`` at every point ``i`` of each observed site for every draw ``d``.

    ``samples`` holds the draws with one leading axis; each site's result is ``(draws,
    points)``. The density of each point is the model's own, e.g. under the AR(1) residuals
    of :func:`bayescale.models.skeleton.curve_model` a point's density given the previous
    residual of its curve, as PSIS-LOO (Vehtari et al. 2017) takes it. The draws are mapped
    in batches of :data:`LOG_LIKELIHOOD_BATCH` inside one compiled function.
    """
    def one(draw: dict[str, jax.Array]) -> dict[str, jax.Array]:
        return log_likelihood(model, draw, *model_args, batch_ndims=0, **observed)

    values = jax.jit(lambda s: jax.lax.map(one, s, batch_size=LOG_LIKELIHOOD_BATCH))(samples)
    return {site: np.asarray(value) for site, value in values.items()}


def _with_chain_axis(draws: dict[str, jax.Array]) -> dict[str, np.ndarray]:
    """Draws of one run of ``Predictive`` as ArviZ takes them: a single chain."""
    return {name: np.asarray(value)[None] for name, value in draws.items()}


def inference_data(mcmc: MCMC, model: Callable[..., None], model_args: tuple, observed: dict[str, np.ndarray], *,
                   prior: dict[str, jax.Array] | None, coords: dict, dims: dict,
                   constant_data: dict[str, np.ndarray]) -> az.InferenceData:
    """The ``InferenceData`` of a finished ``mcmc`` run of ``model(*model_args, **observed)``.

    Groups: ``posterior`` (every sampled and deterministic site, by chain), ``sample_stats``
    (``diverging``, ``n_steps`` and ``tree_depth``, when the run kept ``diverging`` and
    ``num_steps``), ``log_likelihood`` (:func:`pointwise_log_likelihood` of each observed
    site), ``observed_data`` and ``constant_data``; with ``prior`` (draws of ``Predictive``
    without observations) also ``prior`` and ``prior_predictive``, split by whether a site
    is observed.
    """
    samples = mcmc.get_samples(group_by_chain=True)
    chains, draws = next(iter(samples.values())).shape[:2]
    flat = jax.tree_util.tree_map(lambda a: a.reshape((chains * draws, *a.shape[2:])), samples)
    log_lik = {site: value.reshape(chains, draws, -1)
               for site, value in pointwise_log_likelihood(model, flat, model_args, observed).items()}
    stats = {name: np.asarray(value) for name, value in mcmc.get_extra_fields(group_by_chain=True).items()}
    if "num_steps" in stats:
        stats["n_steps"] = stats.pop("num_steps")
        stats["tree_depth"] = np.log2(stats["n_steps"]).astype(int) + 1
    groups = {}
    if prior is not None:
        groups["prior"] = _with_chain_axis({k: v for k, v in prior.items() if k not in observed})
        groups["prior_predictive"] = _with_chain_axis({k: v for k, v in prior.items() if k in observed})
    return az.from_dict(posterior={k: np.asarray(v) for k, v in samples.items()}, sample_stats=stats,
                        log_likelihood=log_lik, observed_data=dict(observed), constant_data=constant_data,
                        coords=coords, dims=dims, **groups)
