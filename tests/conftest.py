"""Shared fixtures: CPU only, fixed seeds, a compilation cache for the session and one small
fitted posterior per test process; helpers that build posteriors with a given ``rho`` or with
their points relabelled as other curves."""

from __future__ import annotations

import atexit
import copy
import dataclasses
import os
import shutil
import tempfile

# The suite fits the same small tables many times, in each test process (``make test``
# runs two, pytest-xdist) and in the subprocesses some tests start, and most of a small
# fit's time is XLA compiling the same programs again. JAX's persistent compilation
# cache, in a folder that lives as long as the session and that the worker processes
# inherit, compiles each of them once. Set before JAX is imported, which reads it then.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _COMPILATION_CACHE = tempfile.mkdtemp(prefix="bayescale-tests-jax-cache-")
    atexit.register(shutil.rmtree, _COMPILATION_CACHE, ignore_errors=True)
    os.environ.update(JAX_COMPILATION_CACHE_DIR=_COMPILATION_CACHE, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")

import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import pytest  # noqa: E402

from bayescale.cores import use_cpu_cores
from bayescale.fit import fit

numpyro.set_platform("cpu")
use_cpu_cores(2)  # before JAX starts: two chains in parallel, patient rendezvous
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs  # noqa: E402

#: Sizes and batches of the shared synthetic sweep (1.5 decades of N, batches on both
#: sides of the critical batch at the losses reached).
SIZES = (1.5e4, 4e4, 1e5, 2.5e5)
BATCHES = (256.0, 1024.0, 4096.0)


def assert_sampler_sane(diagnostics) -> None:
    """Sanity bounds for statistical tests, far looser than the gate (R-hat <= 1.01, ESS
    >= 400): the chains agree (R-hat <= 1.05), there are enough effective draws for the
    ends of a 98% interval (bulk and tail ESS >= 100) and divergences are rare (<= 1% of
    draws). Whether a fit clears the gate itself depends on the MCMC path, which changes
    with library versions and CPUs; the gate's logic is tested in test_diagnostics.py."""
    d = diagnostics
    assert d.max_rhat <= 1.05, d.format()
    assert min(d.min_ess_bulk, d.min_ess_tail) >= 100, d.format()
    assert d.divergences <= 0.01 * d.n_draws, d.format()


@pytest.fixture(scope="session")
def small_runs():
    """A synthetic run table drawn from :data:`EXAMPLE_CONSTANTS` (seed 0)."""
    return simulate_runs(EXAMPLE_CONSTANTS, sizes=SIZES, batches=BATCHES, final_step=3000, points=30, seed=0)


@pytest.fixture(scope="session")
def small_fit(small_runs):
    """One quick fit of ``small_runs`` shared by every test that needs a posterior."""
    return fit(small_runs, chains=2, warmup=300, draws=700, seed=0, progress=False, warn=False)


@pytest.fixture(scope="session")
def small_posterior(small_fit):
    return small_fit.posterior


@pytest.fixture(scope="session")
def byte_posterior(small_posterior):
    """``small_posterior`` as fitted on a byte-level table (``vocab_size`` 256): the same draws,
    losses in nats/byte and a ceiling at ln 256."""
    from bayescale.posterior import Posterior

    return Posterior(small_posterior.idata, dataclasses.replace(small_posterior.meta, vocab_size=256))


def with_rho(posterior, rho: float, residuals: str = "ar1"):
    """``posterior`` with every draw of ``rho`` set to ``rho`` and the residual model recorded as ``residuals``."""
    idata = copy.deepcopy(posterior.idata)
    idata.posterior["rho"] = idata.posterior["rho"] * 0 + rho
    settings = posterior.meta.settings
    meta = dataclasses.replace(posterior.meta, settings={
        **settings, "priors": {**settings["priors"], "residual_correlation": residuals}})
    return dataclasses.replace(posterior, idata=idata, meta=meta)


def as_long_curves(posterior, runs: int = 2):
    """``posterior`` with its fitted points relabelled as ``runs`` long curves of one group."""
    idata = copy.deepcopy(posterior.idata)
    n = idata.constant_data["run_idx"].size
    idata.constant_data["run_idx"] = idata.constant_data["run_idx"] * 0 + np.arange(n) % runs
    idata.constant_data["group_idx"] = idata.constant_data["group_idx"] * 0
    return dataclasses.replace(posterior, idata=idata)
