"""Speed of fitting and of trajectory bands, on this machine's CPU.

1. Fit about 2,000 synthetic points (4 chains x 1,000 draws by default) and time it.
2. Trajectory bands for every draw (4,000) x 512 steps with ``predict_trajectory``, and
   the same numbers from per-draw SciPy loops (Brent's method per step, and array Newton
   over all steps of a draw), each timed on a subset of draws and scaled, in the same run.

Prints a table and appends it, with the date, machine and conditions, to
benchmarks/RESULTS.md. Run: ``python benchmarks/fit_speed.py [--chains 4 --draws 1000]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
from bayescale.models import kaplan as laws
from common import add_append_option, add_sampler_options, publish
from bayescale.models.law import expand
from scipy.optimize import brentq, newton

from bayescale import fit, use_cpu_cores
from bayescale.environment import conditions
from bayescale.predict import predict_trajectory
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs



def agreement_of(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours / theirs - 1)))


def _scipy_bands(c: laws.KaplanConstants, N: float, B: float, steps: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The vectorised baseline: SciPy's array Newton over all steps of one draw at a time."""
    out = np.empty((len(draws), len(steps)))
    for row, d in enumerate(draws):
        log_Nc, aN, log_Sc, aS, log_Bs, aB = (float(np.asarray(v)[d]) for v in c[:6])
        L_N = np.exp(aN * (log_Nc - np.log(N)))

        def f(L):
            return L - L_N - np.exp(aS * (log_Sc + np.log1p(np.exp(log_Bs - np.log(L) / aB) / B) - np.log(steps)))

        start = L_N + np.exp(aS * (log_Sc - np.log(steps))) * 1.5
        out[row] = newton(f, start, maxiter=100, tol=1e-10)
    return out


def _brentq_draw(c: laws.KaplanConstants, N: float, B: float, steps: np.ndarray, d: int) -> np.ndarray:
    """The scalar baseline: SciPy's Brent root finder once per step of one draw."""
    log_Nc, aN, log_Sc, aS, log_Bs, aB = (float(np.asarray(v)[d]) for v in c[:6])
    L_N = np.exp(aN * (log_Nc - np.log(N)))
    out = np.empty(len(steps))
    for i, S in enumerate(steps):
        def f(L):
            return L - L_N - np.exp(aS * (log_Sc + np.log1p(np.exp(log_Bs - np.log(L) / aB) / B) - np.log(S)))
        hi = L_N + np.exp(aS * (log_Sc + np.log1p(np.exp(log_Bs - np.log(L_N) / aB) / B) - np.log(S))) * 1.01
        out[i] = brentq(f, L_N * (1 + 1e-12), hi, xtol=1e-12)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sampler_options(ap, chains=4, warmup=1000, draws=1000, seed=False, chain_method="parallel")
    ap.add_argument("--baseline-draws", type=int, default=100, help="draws timed for the SciPy loop (scaled up)")
    add_append_option(ap)
    args = ap.parse_args()
    use_cpu_cores(args.chains)

    runs = simulate_runs(EXAMPLE_CONSTANTS, sizes=[1.5e4, 3e4, 6e4, 1.2e5, 2.5e5, 5e5], batches=[256, 1024, 4096],
                         final_step=3000, points=400, seed=0)
    start = time.perf_counter()
    result = fit(runs, chains=args.chains, warmup=args.warmup, draws=args.draws, chain_method=args.chain_method,
                 progress=False, warn=False)
    fit_seconds = time.perf_counter() - start
    n_points = int(result.posterior.idata.observed_data["log_loss"].size)
    post = result.posterior

    steps = np.geomspace(10, 1e5, 512)
    predict_trajectory(post, 1e7, 4096.0, steps)  # compile
    band_times = []
    for _ in range(5):
        t = time.perf_counter()
        predict_trajectory(post, 1e7, 4096.0, steps, mode="mean")
        band_times.append(time.perf_counter() - t)
    band_seconds = float(np.median(band_times))

    c = post.constants()
    subset = np.arange(args.baseline_draws)
    t = time.perf_counter()
    scipy_draws = _scipy_bands(c, 1e7, 4096.0, steps, subset)
    scipy_seconds = (time.perf_counter() - t) * post.n_draws / len(subset)
    t = time.perf_counter()
    brent_draws = np.stack([_brentq_draw(c, 1e7, 4096.0, steps, d) for d in subset[:10]])
    brent_seconds = (time.perf_counter() - t) * post.n_draws / 10
    ours = np.asarray(laws.trajectory(expand(c), 1e7, 4096.0, steps[None, :]))[subset]
    agreement = max(agreement_of(ours, scipy_draws), agreement_of(ours[:10], brent_draws))

    rows = [
        ("fit: points (after the transient cut)", f"{n_points}"),
        (f"fit: {args.chains} chains x {args.draws} draws ({args.warmup} warmup, {args.chain_method})",
         f"{fit_seconds:.1f} s (target <= 60 s)"),
        ("fit: diagnostics", result.diagnostics.format().splitlines()[0]),
        (f"bands: {post.n_draws} draws x 512 steps (median of 5)", f"{band_seconds:.3f} s (target < 1 s)"),
        ("SciPy brentq per draw and step, scaled from 10 draws", f"{brent_seconds:.1f} s"),
        ("speed-up of bands over the brentq loop", f"{brent_seconds / band_seconds:.0f}x (target >= 50x)"),
        (f"SciPy array Newton per draw, scaled from {len(subset)} draws", f"{scipy_seconds:.1f} s"),
        ("speed-up of bands over the array-Newton loop", f"{scipy_seconds / band_seconds:.1f}x"),
        ("largest relative difference, solver vs SciPy", f"{agreement:.1e}"),
    ]
    width = max(len(r[0]) for r in rows)
    table = "\n".join(f"| {name:<{width}} | {value} |" for name, value in rows)
    header = (f"\n## fit_speed — {dt.date.today().isoformat()}\n\n"
              f"Machine: {conditions()}. Synthetic curves from "
              f"`EXAMPLE_CONSTANTS` (6 sizes x 3 batches, 400 log-spaced evaluations each, distinct integer steps).\n\n"
              f"| measurement | value |\n|---|---|\n")
    publish(header + table, args)


if __name__ == "__main__":
    main()
