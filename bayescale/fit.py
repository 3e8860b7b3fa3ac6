"""Fit a scaling-law form to a run table with NUTS.

``fit(runs, law="kaplan")`` asks the law (:mod:`bayescale.models`; any name of
:mod:`bayescale.models.registry` or a :class:`~bayescale.models.law.Law` object) for
the points to fit (:meth:`~bayescale.models.law.Law.prepare`: the early transient of
curves is dropped; a final loss, the only point of its run, is always kept, so every
law sees identical observations and can be compared by PSIS-LOO), samples the posterior
of the shared model (:func:`bayescale.models.skeleton.curve_model`) with NumPyro's NUTS
(Hoffman & Gelman 2014), draws the prior and prior predictive, assembles an ArviZ
``InferenceData`` (:mod:`bayescale.inference_data`) and gates the result on R-hat, ESS
and divergences (:mod:`bayescale.diagnostics`) over the law's constants. A chain stuck
in a minor mode (every draw fitting the data worse than the best chain's) is run again
first, from the best chain's last draw with a warm-up of its own, and left out if it is
stuck again; the diagnostics and the posterior's settings say which
(:mod:`bayescale.modes`).

Chains: ``chain_method="parallel"`` (the default) runs one chain per CPU device. JAX
has one CPU device unless XLA is told otherwise before JAX starts; a fit that runs
before any other JAX computation does that itself (:func:`bayescale.cores.expose_cpu_cores`).
Where JAX already runs with too few devices the fit falls back to ``"vectorized"`` (all
chains in one XLA program) and warns once: call :func:`use_cpu_cores` (or
``numpyro.set_host_device_count``) before any JAX computation. Either way XLA's CPU
rendezvous timeouts are raised to a day, so a busy machine makes a fit slow, never dead
(see :mod:`bayescale.cores`). A fit in a process that has used more than half of its
memory mappings on compiled code first clears JAX's caches
(:func:`bayescale.cores.release_compiled_code`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from typing import Literal

import jax
import numpy as np
import pandas as pd
from numpyro.infer import MCMC, NUTS, Predictive

import arviz as az

from bayescale import __version__
from bayescale.cores import expose_cpu_cores, release_compiled_code, warn_vectorized
from bayescale.cores import use_cpu_cores  # noqa: F401 - the docstring's name, re-exported
from bayescale.curves import DEFAULT_MIN_STEP_FRACTION, CurveData, check_max_points
from bayescale.defaults import (DEFAULT_ERROR_LENGTH, DEFAULT_EXTRAPOLATION_ERROR, DEFAULT_MAX_POINTS, LAW_ERROR_SOURCES,
                                PUBLIC_EXTRAPOLATION_ERROR)
from bayescale.diagnostics import Diagnostics, check, diagnose
from bayescale.environment import library_versions
from bayescale.inference_data import inference_data
from bayescale.models.law import Law
from bayescale.models.registry import get_law
from bayescale.models.skeleton import curve_model, dims
from bayescale.modes import rerun_stuck_chains
from bayescale.posterior import Posterior, PosteriorMeta
from bayescale.runs import vocab_size_of
from bayescale.start import dispersed, starting_points

PRIOR_DRAWS = 500


@dataclasses.dataclass(frozen=True)
class FitResult:
    """A posterior with its diagnostics and the wall time of sampling."""

    posterior: Posterior
    diagnostics: Diagnostics
    seconds: float


def _chain_method(requested: str, chains: int) -> str:
    """The chain method to run: ``"parallel"`` needs a device per chain, else ``"vectorized"``.

    Runs before the fit's first JAX computation, so that where JAX has not started yet
    the CPU devices for parallel chains can still be exposed.
    """
    if requested != "parallel":
        return requested
    in_time = expose_cpu_cores(chains)
    devices = jax.local_device_count()
    if devices >= chains:
        return requested
    if not in_time and jax.default_backend() == "cpu":
        warn_vectorized(devices, chains)
    return "vectorized"


def check_settings(chains: int, warmup: int, draws: int, target_accept: float) -> None:
    """Raise ``ValueError`` for sampler settings NUTS cannot use."""
    for name, value in (("chains", chains), ("warmup", warmup), ("draws", draws)):
        if value < 1:
            raise ValueError(f"{name}={value} must be at least 1")
    if not 0.5 <= target_accept < 1.0:
        raise ValueError(f"target_accept={target_accept} must be in [0.5, 1)")


def sample(
    model: Callable[..., None],
    model_args: tuple,
    data: CurveData,
    coords: dict,
    dims: dict,
    *,
    seed: int,
    chains: int,
    warmup: int,
    draws: int,
    target_accept: float,
    chain_method: str,
    progress: bool,
    stream: int = 0,
    init: dict | None = None,
    prior: bool = True,
) -> tuple[az.InferenceData, float, str, dict]:
    """Run NUTS on ``model(data, *model_args, log_loss=...)`` and assemble the ``InferenceData``.

    The random keys come from ``seed``; ``stream > 0`` draws another independent stream
    from the same seed (for the chains :func:`bayescale.modes.rerun_stuck_chains` runs).
    Chains start at ``init`` (unconstrained values, a leading chain axis when ``chains >
    1``), by default near a posterior mode, each with its own small offset
    (:func:`~bayescale.start.starting_points`). With ``prior``, also draws
    :data:`PRIOR_DRAWS` prior and prior-predictive samples. Stores the fitted points' N, B,
    S, run and group as ``constant_data`` and the pointwise log-likelihood (for PSIS-LOO).
    Returns the data, the wall time of finding starting points and sampling in seconds,
    the chain method used and every chain's last unconstrained position (a leading chain
    axis when ``chains > 1``).
    """
    method = _chain_method(chain_method, chains)  # before JAX starts: it may expose the CPU cores
    release_compiled_code()  # a long process that keeps fitting must not run out of memory mappings (cores.py)
    kernel = NUTS(model, target_accept_prob=target_accept, dense_mass=True)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains, chain_method=method,
                progress_bar=progress)
    key = jax.random.PRNGKey(seed)
    key_start, key_mcmc, key_prior = jax.random.split(jax.random.fold_in(key, stream) if stream else key, 3)
    start = time.perf_counter()
    if init is None:
        init = starting_points(key_start, model, (data, *model_args), {"log_loss": data.log_loss}, chains)
    mcmc.run(key_mcmc, data, *model_args, log_loss=data.log_loss, init_params=init,
             extra_fields=("diverging", "num_steps"))
    jax.block_until_ready(mcmc.get_samples(group_by_chain=True))  # sampling is dispatched asynchronously
    seconds = time.perf_counter() - start
    prior_draws = Predictive(model, num_samples=PRIOR_DRAWS)(key_prior, data, *model_args) if prior else None
    constant_data = {"log_N": data.log_N, "log_B": data.log_B, "log_S": data.log_S,
                     "run_idx": data.run_idx, "group_idx": data.group_idx, **data.covariates}
    idata = inference_data(mcmc, model, (data, *model_args), {"log_loss": data.log_loss}, prior=prior_draws,
                           coords=coords, dims=dims, constant_data=constant_data)
    return idata, seconds, method, mcmc.last_state.z


def posterior_meta(law: Law, data: CurveData, priors: object, settings: dict, extrapolation_error: float,
                   vocab_size: int | None = None, error_length: float = DEFAULT_ERROR_LENGTH) -> PosteriorMeta:
    """The :class:`~bayescale.posterior.PosteriorMeta` of a fit, as it will read back from disk (JSON).

    ``settings`` holds the sampler settings; the priors (a dataclass) and the package
    version are added to them, and the versions of Python, JAX, NumPyro, ArviZ, NumPy,
    pandas and SciPy (:func:`~bayescale.environment.library_versions`) under ``versions``.
    ``vocab_size`` is the fitted runs' vocabulary (``None`` when unknown).
    """
    meta = PosteriorMeta(
        law=law.name, groups=data.groups, group_by=data.group_by, sizes=data.sizes, runs=data.runs,
        references=data.references, ranges=data.ranges, dropped=data.dropped,
        extrapolation_error=extrapolation_error, error_length=error_length, vocab_size=vocab_size,
        settings={**settings, "priors": dataclasses.asdict(priors), "bayescale_version": __version__},
        versions=library_versions())
    return PosteriorMeta.from_dict(json.loads(json.dumps(meta.to_dict())))


def fit(
    runs: pd.DataFrame | CurveData,
    *,
    law: str | Law = "kaplan",
    group_by: str | None = "auto",
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    min_step_fraction: float = DEFAULT_MIN_STEP_FRACTION,
    min_step: float = 0.0,
    max_points: int | None = DEFAULT_MAX_POINTS,
    priors: object | None = None,
    target_accept: float = 0.9,
    chain_method: Literal["vectorized", "parallel", "sequential"] = "parallel",
    extrapolation_error: float = DEFAULT_EXTRAPOLATION_ERROR,
    error_length: float = DEFAULT_ERROR_LENGTH,
    law_error: Literal["prior", "ladder", "public"] = "prior",
    progress: bool = True,
    warn: bool = True,
    vocab_size: int | None = None,
) -> FitResult:
    """Sample the posterior of ``law`` (a registered name or a law object) given a validated run table.

    Curves and final losses (one row per run, e.g. :func:`bayescale.runs.load_gadre2024`)
    are both accepted; so are points already prepared (:class:`~bayescale.curves.CurveData`,
    fitted as they are: ``group_by``, ``min_step_fraction``, ``min_step`` and ``max_points``
    are then only recorded; the joint refit of :func:`bayescale.track.track`). Curves with
    more than ``max_points`` points are thinned to that many, evenly spaced in log-steps
    (:func:`bayescale.curves.thin_curves`; ``None`` fits every point). ``priors`` defaults to
    the law's (``law.default_priors()``). The law's error beyond the fitted data grows by
    ``extrapolation_error`` per e-fold and its size's part stays correlated over
    ``error_length`` e-folds of steps along a run; with ``law_error="ladder"`` both are
    measured instead on the run table's larger runs by a second, smaller fit
    (:mod:`bayescale.law_error`; the measurement is kept in ``settings["law_error"]``), and
    with ``law_error="public"`` the growth is the one measured on public ladders of language
    models (:data:`~bayescale.defaults.PUBLIC_EXTRAPOLATION_ERROR`, recorded the same way).
    The table's vocabulary (:func:`bayescale.runs.vocab_size_of`; ``vocab_size`` for
    prepared points) is recorded with the posterior.
    Returns a :class:`FitResult`; with ``warn=True`` failing diagnostics raise a
    :class:`~bayescale.diagnostics.ConvergenceWarning` that names the fix.
    """
    law = get_law(law)
    check_settings(chains, warmup, draws, target_accept)
    check_max_points(max_points)
    if not (np.isfinite(extrapolation_error) and extrapolation_error >= 0):
        raise ValueError(f"extrapolation_error={extrapolation_error} must be a number >= 0 (--extrapolation-error; "
                         f"default {DEFAULT_EXTRAPOLATION_ERROR})")
    if not error_length > 0:
        raise ValueError(f"error_length={error_length} must be a positive number of e-folds of steps (inf: a level)")
    if law_error not in LAW_ERROR_SOURCES:
        raise ValueError(f"law_error='{law_error}' is not one of {', '.join(LAW_ERROR_SOURCES)}")
    if law_error != "prior" and extrapolation_error != DEFAULT_EXTRAPOLATION_ERROR:
        raise ValueError(f"extrapolation_error={extrapolation_error} and law_error='{law_error}' both set the law "
                         "error's growth: pass one of them (--extrapolation-error goes with --law-error prior)")
    if law_error == "ladder":
        from bayescale.law_error import ladder_law_error, split_by_size

        if isinstance(runs, CurveData):
            raise ValueError("law_error='ladder' needs the run table, not prepared points: it fits the smaller "
                             "runs again")
        ladder = split_by_size(runs)  # a ladder too small to measure on fails before any sampling
    priors = priors or law.default_priors()
    data = runs if isinstance(runs, CurveData) else law.prepare(runs, group_by=group_by,
                                                                 min_step_fraction=min_step_fraction, min_step=min_step,
                                                                 max_points=max_points)
    coords, site_dims = dims(data, law)
    run = functools.partial(sample, curve_model, (law, priors), data, coords, site_dims, seed=seed, warmup=warmup,
                            draws=draws, target_accept=target_accept, chain_method=chain_method, progress=progress)
    idata, seconds, method, last = run(chains=chains)

    def rerun(point: dict, fresh_chains: int) -> tuple[az.InferenceData, float]:
        init = dispersed(jax.random.fold_in(jax.random.PRNGKey(seed), 1), point, fresh_chains)
        fresh, fresh_seconds, _, _ = run(chains=fresh_chains, stream=2, init=init, prior=False)
        return fresh, fresh_seconds

    idata, left_out, more = rerun_stuck_chains(idata, last, rerun)
    seconds += more
    settings = dict(chains=chains, warmup=warmup, draws=draws, seed=seed, min_step_fraction=min_step_fraction,
                    min_step=min_step, max_points=max_points, target_accept=target_accept, chain_method=method,
                    sampling_seconds=seconds,
                    **({"left_out_chains": left_out} if left_out else {}), **({"rerun_seconds": more} if more else {}))
    if law_error == "ladder":
        def fit_part(table: pd.DataFrame) -> tuple[Posterior, bool]:
            part = fit(table, law=law, group_by=group_by, chains=chains, warmup=warmup, draws=draws, seed=seed,
                       min_step_fraction=min_step_fraction, min_step=min_step, max_points=max_points, priors=priors,
                       target_accept=target_accept, chain_method=chain_method, progress=progress, warn=False)
            return part.posterior, part.diagnostics.passed

        estimate = ladder_law_error(*ladder, fit_part)
        extrapolation_error, error_length = estimate.kappa, estimate.length
        settings["law_error"] = estimate.record()
    elif law_error == "public":
        extrapolation_error = PUBLIC_EXTRAPOLATION_ERROR
        settings["law_error"] = {"source": "public", "kappa": extrapolation_error, "length": float(error_length)}
    posterior = Posterior(idata=idata, meta=posterior_meta(law, data, priors, settings, extrapolation_error,
                                                           vocab_size if isinstance(runs, CurveData)
                                                           else vocab_size_of(runs), error_length))
    # The gate covers the constants that forecasts are made of; nuisance parameters
    # (noise scale, AR(1) correlation, seed spread) are summarised but not gated.
    diagnostics = diagnose(idata, law.gated(), left_out)
    if warn:
        check(diagnostics)
    return FitResult(posterior=posterior, diagnostics=diagnostics, seconds=seconds)
