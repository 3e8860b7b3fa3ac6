"""bayescale's InferenceData assembly against ArviZ's own converter on one NumPyro run."""

from __future__ import annotations

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer import MCMC, NUTS, Predictive
from numpyro.infer.reparam import LocScaleReparam

from bayescale.inference_data import inference_data


def _model(x, group, y=None):
    """A small model with the kinds of sites a bayescale fit has: per-group latents (one of them
    reparametrised, so that a ``_decentered`` site appears), a deterministic, a noise scale and
    Student-t observations on a plate."""
    with handlers.reparam(config={"slope": LocScaleReparam(0)}), numpyro.plate("group", 2):
        slope = numpyro.sample("slope", dist.Normal(1.0, 0.5))
        level = numpyro.sample("level", dist.Normal(0.0, 1.0))
    numpyro.deterministic("ratio", slope / (1.0 + jnp.abs(level)))
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.3))
    with numpyro.plate("obs", x.shape[0]):
        numpyro.sample("y", dist.StudentT(5.0, level[group] + slope[group] * x, sigma), obs=y)


def test_inference_data_matches_from_numpyro():
    """Same groups, variables, dimensions, coordinates, dtypes and values as ``az.from_numpyro``;
    the log-likelihood (float32, computed in another order) to within 1e-4 nats."""
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 24).astype(np.float32)
    group = np.repeat([0, 1], 12)
    y = (np.where(group, 0.5, -0.5) + np.where(group, 1.5, 0.8) * x + 0.1 * rng.standard_normal(24)).astype(np.float32)
    coords = {"group": ["a", "b"], "obs": np.arange(24)}
    site_dims = {"slope": ["group"], "slope_decentered": ["group"], "level": ["group"], "y": ["obs"]}
    mcmc = MCMC(NUTS(_model), num_warmup=50, num_samples=40, num_chains=2, chain_method="vectorized",
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), x, group, y=y, extra_fields=("diverging", "num_steps"))
    prior = Predictive(_model, num_samples=10)(jax.random.PRNGKey(1), x, group)
    constant_data = {"x": x, "group_idx": group}

    ours = inference_data(mcmc, _model, (x, group), {"y": y}, prior=prior, coords=coords, dims=site_dims,
                          constant_data=constant_data)
    theirs = az.from_numpyro(mcmc, prior=prior, coords=coords, dims=site_dims, constant_data=constant_data,
                             log_likelihood=True)

    assert set(ours.groups()) == set(theirs.groups()) == {"posterior", "sample_stats", "log_likelihood", "prior",
                                                          "prior_predictive", "observed_data", "constant_data"}
    for group_name in theirs.groups():
        a, b = ours[group_name], theirs[group_name]
        assert set(a.data_vars) == set(b.data_vars), group_name
        assert dict(a.sizes) == dict(b.sizes), group_name
        for coord in b.coords:
            np.testing.assert_array_equal(a[coord].values, b[coord].values)
        for name in b.data_vars:
            assert (a[name].dims, a[name].dtype) == (b[name].dims, b[name].dtype), (group_name, name)
            if group_name == "log_likelihood":
                np.testing.assert_allclose(a[name].values, b[name].values, rtol=0, atol=1e-4)
            else:
                np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"{group_name}/{name}")
    assert {"diverging", "n_steps", "tree_depth"} <= set(ours.sample_stats.data_vars)
    assert ours.log_likelihood["y"].sizes == {"chain": 2, "draw": 40, "obs": 24}
    assert np.isfinite(ours.log_likelihood["y"].values).all()
