"""The critical batch on a single-batch ladder: the wide prior against the literature prior.

Gemstones 2025 trained every size at one batch (4M tokens per step) with BPE tokens, so
the fitted runs cannot identify the critical batch and its prior decides it. This
benchmark fits the Kaplan law to the models up to 0.6B total parameters (the selection
of ``public_data.py``) twice, with ``KaplanPriors(critical_batch="data")`` (the default:
wide, around the fitted batch) and ``critical_batch="literature"`` (Kaplan et al. 2020 and
Su et al. 2024: B_* = 2.1e8 tokens, alpha_B = 0.21; ``models/priors.py``), and scores the
new-run forecasts of the held-out 1-2B curves: median |relative error|, 90% coverage and
median 90% width of every held-out checkpoint past the transient, and how much of the
forecast's variance at the held-out final checkpoints moves with the critical batch
(:func:`bayescale.predict.critical_batch_share`). The literature prior's numbers were
written down before this comparison and are not tuned on it.

Run: ``python benchmarks/batch_prior.py [--data ../shared/data] [--chains 2 --warmup 500 --draws 500]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time

import numpy as np
import pandas as pd
from common import (add_append_option, add_data_option, add_sampler_options, append_results, data_folder,
                    markdown_table)
from extrapolation import thin

from bayescale import fit
from bayescale.cores import use_cpu_cores
from bayescale.curves import transient_mask
from bayescale.environment import conditions
from bayescale.models.priors import KaplanPriors
from bayescale.predict import critical_batch_share, loss_draws
from bayescale.runs import load_gemstones2025

GEMSTONES_FIT_MAX_TOTAL = 6.0e8


def score(post, held: pd.DataFrame, seed: int) -> dict:
    draws = loss_draws(post, held["params"].to_numpy(), held["batch_tokens"].to_numpy(), held["step"].to_numpy(),
                       seed=seed)
    lo, med, hi = np.quantile(draws, [0.05, 0.5, 0.95], axis=0)
    y = held["loss"].to_numpy()
    finals = held.loc[held["step"] == held.groupby("run")["step"].transform("max")]
    share = [critical_batch_share(post, N, B, S, seed=seed)
             for N, B, S in finals[["params", "batch_tokens", "step"]].to_numpy()]
    return {"median abs rel err": float(np.median(np.abs(med / y - 1))), "in 90%": float(np.mean((y >= lo) & (y <= hi))),
            "90% width (nats)": float(np.median(np.log(hi) - np.log(lo))),
            "variance with B_crit (final, median)": float(np.median(share)),
            "alpha_B (median)": float(np.median(post.draws("alpha_B"))),
            "B_star (median)": float(np.median(post.draws("B_star")))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_option(ap, "gemstones2025/")
    add_sampler_options(ap, chains=2, warmup=500, draws=500)
    ap.add_argument("--points", type=int, default=15, help="fitted checkpoints per curve (default: 15)")
    add_append_option(ap)
    args = ap.parse_args()
    use_cpu_cores()
    data = data_folder(args)
    runs = load_gemstones2025(data / "gemstones2025" / "train_loss_curves.jsonl")
    runs = runs.loc[transient_mask(runs)].reset_index(drop=True)
    train = thin(runs[runs["params_total"] <= GEMSTONES_FIT_MAX_TOTAL], args.points)
    held = runs[runs["params_total"] > GEMSTONES_FIT_MAX_TOTAL].reset_index(drop=True)
    rows, notes = [], []
    for prior in ("data", "literature"):
        start = time.perf_counter()
        result = fit(train, law="kaplan", group_by=None, chains=args.chains, warmup=args.warmup, draws=args.draws,
                     seed=args.seed, priors=dataclasses.replace(KaplanPriors(), critical_batch=prior),
                     progress=False, warn=False)
        rows.append({"critical-batch prior": prior, **score(result.posterior, held, args.seed),
                     "fit s": round(time.perf_counter() - start, 1)})
        notes.append(f"{prior}: {result.diagnostics.format().splitlines()[0]}")
    table = pd.DataFrame(rows)
    text = markdown_table(table, "{:.4g}")
    print(table.to_string(index=False))
    section = "\n".join([
        f"\n## critical-batch prior on a single-batch ladder (Gemstones) — {dt.date.today()}\n",
        f"{conditions()}. Kaplan fitted on {train['run'].nunique()} curves up to 0.6B total parameters "
        f"({len(train)} points), {args.chains} chains x {args.draws} draws ({args.warmup} warmup), seed {args.seed}; "
        f"held out {held['run'].nunique()} curves of 1-2B ({len(held)} checkpoints).\n", text, "",
        *(f"- {n}" for n in notes)])
    if not args.no_append:
        append_results(section)


if __name__ == "__main__":
    main()
