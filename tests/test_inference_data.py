"""bayescale's InferenceData assembly against ArviZ's own converter on one NumPyro run."""

from __future__ import annotations

import arviz as az
import jax
import numpy as np
from numpyro.infer import MCMC, NUTS, Predictive

from bayescale.inference_data import inference_data
from bayescale.models.registry import get_law
from bayescale.models.skeleton import curve_model, dims
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs


def test_inference_data_matches_from_numpyro():
    """Same groups, variables, dimensions, coordinates, dtypes and values as ``az.from_numpyro``;
    the log-likelihood (float32, computed in another order) to within 1e-3 nats."""
    law = get_law("kaplan")
    priors = law.default_priors()
    runs = simulate_runs(EXAMPLE_CONSTANTS, sizes=(2e4, 6e4, 2e5), batches=(256.0, 1024.0, 4096.0), final_step=2000,
                         points=8, seed=3)
    data = law.prepare(runs, group_by="auto", min_step_fraction=0.1, min_step=0.0, max_points=None)
    coords, site_dims = dims(data, law)
    args = (data, law, priors)
    mcmc = MCMC(NUTS(curve_model), num_warmup=30, num_samples=20, num_chains=2, chain_method="vectorized",
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), *args, log_loss=data.log_loss, extra_fields=("diverging", "num_steps"))
    prior = Predictive(curve_model, num_samples=10)(jax.random.PRNGKey(1), *args)
    constant_data = {"log_N": data.log_N, "run_idx": data.run_idx}

    ours = inference_data(mcmc, curve_model, args, {"log_loss": data.log_loss}, prior=prior, coords=coords,
                          dims=site_dims, constant_data=constant_data)
    theirs = az.from_numpyro(mcmc, prior=prior, coords=coords, dims=site_dims, constant_data=constant_data,
                             log_likelihood=True)

    assert set(ours.groups()) == set(theirs.groups()) >= {"posterior", "sample_stats", "log_likelihood", "prior",
                                                          "prior_predictive", "observed_data", "constant_data"}
    for group in theirs.groups():
        a, b = ours[group], theirs[group]
        assert set(a.data_vars) == set(b.data_vars), group
        assert dict(a.sizes) == dict(b.sizes), group
        for coord in b.coords:
            np.testing.assert_array_equal(a[coord].values, b[coord].values)
        for name in b.data_vars:
            assert (a[name].dims, a[name].dtype) == (b[name].dims, b[name].dtype), (group, name)
            if group == "log_likelihood":
                np.testing.assert_allclose(a[name].values, b[name].values, rtol=0, atol=1e-3)
            else:
                np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"{group}/{name}")
    assert np.isfinite(ours.log_likelihood["log_loss"].values).all()
    assert ours.log_likelihood["log_loss"].sizes == {"chain": 2, "draw": 20, "obs": data.n_points}
