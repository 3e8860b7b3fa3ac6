"""Fit the Chinchilla law ``L(N, D) = E + A/N^alpha + B/D^beta`` with NUTS.

:func:`fit_chinchilla` is the Chinchilla counterpart of :func:`bayescale.fit.fit`: it
selects the points with the same rule (:func:`bayescale.curves.prepare_curves`: the
early transient of curves is dropped; a final loss, the only point of its run, is
always kept), so a Kaplan and a Chinchilla fit of one run table see identical
observations and can be compared by PSIS-LOO (:mod:`bayescale.compare`). The model is
:func:`bayescale.models.chinchilla_model`; ``D`` is ``batch_tokens * step``.

The posterior's ``meta`` has ``model="chinchilla"``, ``constants`` (E, A, B, alpha,
beta), the references (``log_N_ref``, ``log_D_ref``, ...) and the fitted ranges of
``params`` and ``tokens`` that the predictor's law-error term measures distances from
(:mod:`bayescale.predict`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from bayescale.cores import expose_cpu_cores
from bayescale.curves import DEFAULT_MIN_STEP_FRACTION, CurveData, IdentifiabilityWarning, prepare_curves
from bayescale.diagnostics import check, diagnose
from bayescale.fit import DEFAULT_EXTRAPOLATION_ERROR, FitResult, check_settings, posterior_meta, sample
from bayescale.models import (CHINCHILLA_CONSTANTS, CHINCHILLA_LATENTS, ChinchillaConstants, ChinchillaPriors,
                              chinchilla_log_loss, chinchilla_model)
from bayescale.models.chinchilla import has_curves
from bayescale.posterior import Posterior


def prepare_chinchilla(
    runs: pd.DataFrame,
    group_by: str | None = "auto",
    min_step_fraction: float = DEFAULT_MIN_STEP_FRACTION,
    min_step: float = 0.0,
) -> CurveData:
    """The points of :func:`~bayescale.curves.prepare_curves` plus the token references.

    Adds ``log_D_ref`` (mean log tokens of the kept points) to the references and the
    fitted ``tokens`` range (smallest and largest ``batch_tokens * step``) to the ranges.
    The Kaplan model's identifiability warnings (which name its constants) are replaced
    by the Chinchilla ones: fewer than 3 sizes leave alpha and A to their priors, fewer
    than 3 distinct token counts leave beta and B to theirs.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        data = prepare_curves(runs, group_by=group_by, min_step_fraction=min_step_fraction, min_step=min_step)
    log_D = data.log_B.astype(float) + data.log_S.astype(float)
    n_tokens = len(np.unique(np.round(log_D, 6)))
    for count, what, constants in ((len(data.sizes), "model size(s)", "alpha and A"),
                                   (n_tokens, "distinct token count(s)", "beta and B")):
        if count < 3:
            warnings.warn(f"the fitted points have {count} {what}: {constants} are decided by their priors, not the "
                          "data; add runs that span a decade or more of it", IdentifiabilityWarning, stacklevel=2)
    return dataclasses.replace(
        data,
        references={**data.references, "log_D_ref": float(np.mean(log_D))},
        ranges={**data.ranges, "tokens": [float(np.exp(log_D.min())), float(np.exp(log_D.max()))]},
    )


def _dims(data: CurveData) -> tuple[dict, dict]:
    coords = {"group": data.groups, "obs": np.arange(data.n_points)}
    group_sites = [*CHINCHILLA_CONSTANTS, *CHINCHILLA_LATENTS]
    if data.n_groups == 1:  # non-centred latents (bayescale.models.chinchilla)
        group_sites += [f"{s}_decentered" for s in CHINCHILLA_LATENTS]
    dims = {s: ["group"] for s in group_sites}
    dims["log_loss"] = ["obs"]
    if has_curves(data):
        coords["run"] = data.runs
        dims.update({"run_offset": ["run"], "run_offset_decentered": ["run"]})
    return coords, dims


def fit_chinchilla(
    runs: pd.DataFrame,
    *,
    group_by: str | None = "auto",
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    min_step_fraction: float = DEFAULT_MIN_STEP_FRACTION,
    min_step: float = 0.0,
    priors: ChinchillaPriors | None = None,
    target_accept: float = 0.9,
    chain_method: Literal["vectorized", "parallel", "sequential"] = "parallel",
    extrapolation_error: float = DEFAULT_EXTRAPOLATION_ERROR,
    progress: bool = True,
    warn: bool = True,
) -> FitResult:
    """Sample the posterior of the Chinchilla law given a validated run table.

    Final losses (one row per run, e.g. :func:`bayescale.runs.load_gadre2024`) and
    curves (e.g. :func:`bayescale.runs.load_gemstones2025`; run offsets and AR(1)
    residuals then apply) are both accepted. Arguments are those of
    :func:`bayescale.fit.fit`; with ``warn=True`` failing diagnostics raise a
    :class:`~bayescale.diagnostics.ConvergenceWarning` that names the fix.
    """
    check_settings(chains, warmup, draws, target_accept)
    priors = priors or ChinchillaPriors()
    data = prepare_chinchilla(runs, group_by=group_by, min_step_fraction=min_step_fraction, min_step=min_step)
    coords, dims = _dims(data)
    idata, seconds, method = sample(chinchilla_model, (priors,), data, coords, dims, chains=chains, warmup=warmup,
                                    draws=draws, seed=seed, target_accept=target_accept,
                                    chain_method=chain_method, progress=progress)
    settings = dict(chains=chains, warmup=warmup, draws=draws, seed=seed, min_step_fraction=min_step_fraction,
                    min_step=min_step, target_accept=target_accept, chain_method=method, sampling_seconds=seconds)
    meta = posterior_meta("chinchilla", data, priors, settings, extrapolation_error,
                          constants=list(CHINCHILLA_CONSTANTS), curves=has_curves(data))
    posterior = Posterior(idata=idata, meta=meta)
    # As for the Kaplan fit, the gate covers the constants forecasts are made of; the
    # nuisance parameters (noise scale, AR(1) correlation, seed spread) are not gated.
    diagnostics = diagnose(idata, list(CHINCHILLA_CONSTANTS))
    if warn:
        check(diagnostics)
    return FitResult(posterior=posterior, diagnostics=diagnostics, seconds=seconds)


def simulate_chinchilla_runs(
    constants: ChinchillaConstants,
    sizes: Sequence[float],
    tokens_per_param: Sequence[float],
    batch_tokens: float = 2.0**19,
    noise: float = 0.005,
    seed: int = 0,
    group: str | None = None,
) -> pd.DataFrame:
    """Final losses from known constants: one run per (size, tokens-per-parameter ratio).

    ``loss = L(N, D) exp(eps)`` with ``eps ~ Normal(0, noise)`` and ``D = ratio * N``;
    ``step = D / batch_tokens`` (fractional, as in published tables). With ``group`` the
    table gets a ``group`` column and the run ids carry the group's name. Like
    :func:`bayescale.synthetic.simulate_runs`, it first exposes the CPU cores where this
    is the process's first JAX computation.
    """
    expose_cpu_cores()
    rng = np.random.default_rng(seed)
    N, ratio = (a.ravel() for a in np.meshgrid(np.asarray(sizes, float), np.asarray(tokens_per_param, float)))
    D = N * ratio
    mean = np.exp(np.asarray(chinchilla_log_loss(constants, np.log(N), np.log(D)), float))
    prefix = f"{group}-" if group else ""
    table = pd.DataFrame({
        "run": [f"{prefix}N{n:.3g}-D{d:.3g}" for n, d in zip(N, D)],
        "params": N, "batch_tokens": batch_tokens, "step": D / batch_tokens, "tokens": D,
        "loss": mean * np.exp(rng.normal(0.0, noise, N.shape)),
    })
    if group:
        table["group"] = group
    return table
