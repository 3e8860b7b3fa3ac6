"""Honest extrapolation: leave the largest sizes of real curves out, with and without the law-error term.

Fits the Kaplan model on Gemstones (McLeish et al. 2025) training-loss curves of models
up to about 0.6B parameters (each curve thinned to ``--points`` log-spaced checkpoints)
and predicts the held-out 1-2B curves at every checkpoint past the early transient. For
the law-error scale ``kappa`` = 0 (parameter and noise uncertainty only) and the default,
it reports the coverage of the 50% and 90% new-run bands beside the range of coverage a
calibrated band shows on the same points (``bayescale.calibrate``), the 90% bands' median
width and the median absolute relative error. It fits twice: with the default AR(1) residuals along a
run and with independent ones (``residual_correlation="independent"``, ``fit --residuals
independent``, docs/model.md section 4.4). Appends the table to benchmarks/RESULTS.md.

Run: ``python benchmarks/extrapolation.py [--data ../shared/data]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time

import numpy as np
import pandas as pd
from common import add_append_option, add_data_option, add_sampler_options, data_folder, markdown_table, publish

from bayescale import fit
from bayescale.calibrate import calibrate
from bayescale.cores import use_cpu_cores
from bayescale.curves import transient_mask
from bayescale.defaults import DEFAULT_EXTRAPOLATION_ERROR, RESIDUAL_CORRELATIONS
from bayescale.environment import conditions
from bayescale.models.kaplan import KAPLAN
from bayescale.replicates import format_range
from bayescale.runs import load_gemstones2025


def thin(runs: pd.DataFrame, points: int) -> pd.DataFrame:
    """Keep about ``points`` log-spaced checkpoints of every run."""
    keep = []
    for _, run in runs.groupby("run"):
        idx = np.unique(np.round(np.geomspace(1, len(run), points)).astype(int) - 1)
        keep.append(run.iloc[idx])
    return pd.concat(keep, ignore_index=True)


def score(post, held: pd.DataFrame) -> dict:
    """Coverage of the 50% and 90% new-run bands (``bayescale.calibrate``), beside the 5-95%
    range a calibrated band shows on the same points (joint replicates,
    ``bayescale.replicates``), the 90% bands' median relative width and the median error."""
    result = calibrate(post, held, levels=(0.5, 0.9))
    cov = result.coverage[result.coverage["bin"] == "all"].set_index("nominal")
    points = result.points
    out = {}
    for level in (0.5, 0.9):
        p = f"{level:.0%}".rstrip("%")
        out[f"coverage_{p}"] = float(cov.loc[level, "coverage"])
        out[f"calibrated_{p}"] = format_range(cov.loc[level, "expected_low"], cov.loc[level, "expected_high"])
    return {**out, "median_width_90_rel": float(np.median((points["upper_90"] - points["lower_90"]) / points["median"])),
            "median_abs_rel_error": float(np.median(np.abs(points["median"] / points["loss"] - 1)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_option(ap, "gemstones2025/")
    ap.add_argument("--max-fit-params", type=float, default=6e8, help="largest total size fitted")
    ap.add_argument("--points", type=int, default=15, help="checkpoints kept per fitted curve")
    add_sampler_options(ap, chains=4, draws=1000, seed=False,
                        help={"chains": "NUTS chains (default: 4, as bayescale fit)",
                              "draws": "NUTS draws per chain, and as many warm-up iterations (default: 1000)"})
    add_append_option(ap)
    args = ap.parse_args()
    use_cpu_cores()  # one chain per core (must run before JAX starts)
    runs = load_gemstones2025(data_folder(args) / "gemstones2025" / "train_loss_curves.jsonl")
    train = thin(runs[runs["params_total"] <= args.max_fit_params], args.points)
    held = runs[runs["params_total"] > args.max_fit_params]
    held = held.loc[transient_mask(held)]
    rows, fits = [], []
    for residuals in RESIDUAL_CORRELATIONS:
        start = time.perf_counter()
        priors = dataclasses.replace(KAPLAN.default_priors(), residual_correlation=residuals)
        result = fit(train, chains=args.chains, warmup=args.draws, draws=args.draws, priors=priors, progress=False,
                     warn=False)
        rho = float(np.median(result.posterior.draws("rho")))
        fits.append(f"{residuals}: {time.perf_counter() - start:.0f} s, rho {rho:.3f}, "
                    f"{result.diagnostics.format().splitlines()[0]}")
        for kappa in (0.0, DEFAULT_EXTRAPOLATION_ERROR):
            rows.append({"residuals": residuals, "law_error_kappa": kappa,
                         **score(result.posterior.with_law_error(kappa), held)})
    table = pd.DataFrame(rows)
    header = (f"\n## extrapolation (Gemstones, leave the 1-2B sizes out) — {dt.date.today().isoformat()}\n\n"
              f"Machine: {conditions()}. Fit on {train['run'].nunique()} curves up to "
              f"{args.max_fit_params:.2g} total parameters ({len(train)} points, {args.points} per curve), "
              f"{args.chains} chains x {args.draws} draws; held out {held['run'].nunique()} curves, "
              f"{len(held)} points past the transient. Fits: {'; '.join(fits)}\n\n")
    publish(header + markdown_table(table, "{:.4g}"), args)


if __name__ == "__main__":
    main()
