"""Chains stuck in a minor mode: found by how well their draws fit the data, and left out.

A chain can settle during warm-up in a local mode of the posterior that holds almost
none of its mass and stay there for the whole run: on the Multi-Power-Law curves of one
size (three schedules), one chain of four explains the schedules' differences by large
run offsets (seed spread 0.018 on log loss) instead of the annealing term (0.0003 in
the other three), with a log-likelihood 41 nats lower at every one of its draws.
R-hat flags such a fit, but its draws still widen every band: in the same-size split of
``benchmarks/schedules.py`` (two chains, one stuck) the 90% bands of the six unseen
schedules were 0.054 wide on log loss (5% of the loss) and held 100% of their points;
without the stuck chain they are 0.004 wide (0.4%) and hold 91% (``benchmarks/RESULTS.md``).

Yao, Vehtari and Gelman (2022, "Stacking for non-mixing Bayesian computations: the
curse and blessing of multimodal posteriors", JMLR 23) weigh non-mixing chains by their
leave-one-out predictive accuracy; a chain in a minor mode then gets a weight near
zero. :func:`stuck_chains` finds such chains by a stricter, cheaper rule that cannot
catch a chain merely exploring the posterior's tail: a chain is stuck when even its
better draws fit worse than nearly all of the best chain's, that is, when the
:data:`UPPER` quantile of its total log-likelihood lies below the :data:`LOWER`
quantile of the chain with the highest median log-likelihood (ranges that do not
overlap, about ten nats or more apart for these models). A chain on a long excursion
into a tail keeps overlapping draws and stays.

The fit then runs as many fresh chains (:func:`rerun_stuck_chains`), each with a warm-up
of its own, from the best chain's last draw (plus the usual small dispersion,
:func:`bayescale.start.dispersed`), and puts them in the stuck chains' place
(:func:`replace_chains`). A fresh chain that is
stuck again is left out. Either way the fit says so
(:attr:`bayescale.diagnostics.Diagnostics.left_out`); the gate judges the chains it
keeps, and a single chain fails it (R-hat needs two).
"""

from __future__ import annotations

from collections.abc import Callable

import arviz as az
import numpy as np
import xarray as xr

#: Quantile of a chain's total log-likelihood that must lie below the best chain's :data:`LOWER`.
UPPER = 0.95
#: Quantile of the best chain's total log-likelihood that bounds the others' :data:`UPPER`.
LOWER = 0.05
#: Groups of an ``InferenceData`` whose draws belong to the posterior's chains.
CHAIN_GROUPS = ("posterior", "sample_stats", "log_likelihood")


def chain_log_likelihood(idata: az.InferenceData) -> np.ndarray:
    """Total log-likelihood of every draw, summed over the observed points: ``(chains, draws)``."""
    values = np.asarray(idata.log_likelihood["log_loss"].values, float)
    return values.reshape(*values.shape[:2], -1).sum(-1)


def best_chain(idata: az.InferenceData) -> int:
    """The chain with the highest median total log-likelihood."""
    return int(np.argmax(np.median(chain_log_likelihood(idata), axis=1)))


def stuck_chains(idata: az.InferenceData) -> tuple[int, ...]:
    """Chains whose draws all fit the data worse than the best chain's (module docstring); none
    without a ``log_likelihood`` group or with a single chain."""
    if "log_likelihood" not in idata.groups() or idata.posterior.sizes["chain"] < 2:
        return ()
    total = chain_log_likelihood(idata)
    floor = np.quantile(total[best_chain(idata)], LOWER)
    return tuple(int(k) for k in np.flatnonzero(np.quantile(total, UPPER, axis=1) < floor))


def _how_stuck(idata: az.InferenceData, stuck: tuple[int, ...]) -> str:
    median = np.median(chain_log_likelihood(idata), axis=1)
    best = best_chain(idata)
    gaps = ", ".join(f"chain {k} by {median[best] - median[k]:.0f}" for k in stuck)
    return (f"{len(stuck)} of {len(median)} chains stuck in a minor mode: every draw fits the data worse than "
            f"chain {best}'s (median log-likelihood lower: {gaps} nats)")


def left_out_sentence(idata: az.InferenceData, stuck: tuple[int, ...], rerun_from: int | None = None) -> str:
    """One line on the ``stuck`` chains of ``idata`` that were left out: which, and how much worse
    they fit; ``rerun_from``: the chain whose last draw they had been run again from."""
    rerun = "" if rerun_from is None else f", after running again from chain {rerun_from}'s last draw"
    return f"left out {_how_stuck(idata, stuck)}{rerun}; more warm-up or another seed may bring them to the main mode"


def restarted_sentence(idata: az.InferenceData, stuck: tuple[int, ...]) -> str:
    """One line on the ``stuck`` chains of ``idata`` that were run again from the best chain's last draw."""
    return (f"ran again {_how_stuck(idata, stuck)}, from chain {best_chain(idata)}'s last draw with a warm-up of "
            "their own; the fresh chains joined the main mode")


def replace_chains(idata: az.InferenceData, chains: tuple[int, ...], fresh: az.InferenceData) -> az.InferenceData:
    """``idata`` with ``chains`` replaced by the chains of ``fresh`` (same sites and draws), which
    follow the kept ones; chains renumbered from 0, the prior groups as they are."""
    out = without_chains(idata, chains)
    for group in CHAIN_GROUPS:
        if group in out.groups():
            merged = xr.concat([out[group], fresh[group]], dim="chain")
            out[group] = merged.assign_coords(chain=np.arange(merged.sizes["chain"]))
    return out


def without_chains(idata: az.InferenceData, chains: tuple[int, ...]) -> az.InferenceData:
    """``idata`` without ``chains`` in its posterior, sample statistics and log-likelihood, renumbered
    from 0; the prior groups stay as they are."""
    keep = [k for k in range(idata.posterior.sizes["chain"]) if k not in set(chains)]
    out = idata.copy()
    for group in CHAIN_GROUPS:
        if group in out.groups():
            data = out[group].isel(chain=keep)
            out[group] = data.assign_coords(chain=np.arange(len(keep)))
    return out


def rerun_stuck_chains(idata: az.InferenceData, last: dict[str, np.ndarray],
                       rerun: Callable[[dict, int], tuple[az.InferenceData, float]]
                       ) -> tuple[az.InferenceData, str | None, float]:
    """Chains stuck in a minor mode (module docstring) run again from the best chain's last
    position ``last[best]`` (``last``: every chain's last unconstrained position, a leading chain
    axis), by ``rerun(point, chains) -> (data, seconds)``; the fresh chains take the stuck ones'
    place, and any chain stuck after that is left out. Returns the data, one sentence on what
    was done (``None`` when no chain was stuck) and the seconds the fresh chains took."""
    stuck = stuck_chains(idata)
    if not stuck:
        return idata, None, 0.0
    best = best_chain(idata)
    fresh, seconds = rerun({name: value[best] for name, value in last.items()}, len(stuck))
    merged = replace_chains(idata, stuck, fresh)
    again = stuck_chains(merged)
    if again:
        return without_chains(merged, again), left_out_sentence(merged, again, rerun_from=best), seconds
    return merged, restarted_sentence(idata, stuck), seconds
