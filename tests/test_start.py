"""Starting points for NUTS: near the posterior mode, one dispersed copy per chain."""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

from bayescale.start import JITTER, starting_points

TRUE_MEAN, TRUE_SD = 3.0, 0.5


def _model(y, *, scale_prior=1.0):
    mean = numpyro.sample("mean", dist.Normal(0.0, 10.0))
    sd = numpyro.sample("sd", dist.HalfNormal(scale_prior))
    numpyro.sample("y", dist.Normal(mean, sd), obs=y)


def _data() -> np.ndarray:
    return TRUE_MEAN + TRUE_SD * np.random.default_rng(0).standard_normal(200)


def test_chains_start_near_the_mode_each_with_its_own_offset():
    """From the prior median (mean 0, far from the data's 3), the Adam steps bring the chains
    into the region the data inform, most of the way to the mode (they are not meant to reach
    it: warmup does the rest); the chains share that point up to offsets of about JITTER."""
    y = _data()
    start = starting_points(jax.random.PRNGKey(0), _model, (y,), {"scale_prior": 1.0}, chains=4)
    assert set(start) == {"mean", "sd"}
    mean, log_sd = np.asarray(start["mean"]), np.asarray(start["sd"])  # unconstrained: log sd
    assert mean.shape == log_sd.shape == (4,)
    assert np.all(np.abs(mean - y.mean()) < y.mean() / 3)
    assert np.all(np.isfinite(log_sd))
    spread = np.concatenate([mean - mean.mean(), log_sd - log_sd.mean()])
    assert 0 < np.std(spread) < 5 * JITTER


def test_one_chain_has_no_chain_axis():
    start = starting_points(jax.random.PRNGKey(1), _model, (_data(),), {}, chains=1)
    assert np.shape(start["mean"]) == () and np.shape(start["sd"]) == ()
