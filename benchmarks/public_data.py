"""bayescale against the bootstrap baseline on public runs that nobody here produced.

1. **Gadre et al. 2024** final C4-validation losses: fit on the sizes up to 411.6M total
   parameters (filtered on the total count ``N``; the fits use the non-embedding count
   ``N_no_embed``, 5.7M-360M), predict the 1.4B and 6.9B runs of each dataset
   (c4_original, rpj, rw_original). bayescale: one hierarchical Chinchilla fit with a
   group per dataset. Bootstrap: one Huber/L-BFGS fit per dataset with run-resampling.
2. **Gemstones 2025** training-loss curves (constant learning rate, one batch size):
   fit on the models up to 0.6B total parameters (16 curves), predict the six 1-2B
   curves. Fitting points: each curve past the early transient (the first 10% of its
   steps, the rule every method shares), thinned to ``--points`` log-spaced
   checkpoints. Evaluation: every held-out checkpoint past the transient, and
   separately the final checkpoint of each held-out curve. bayescale: the Kaplan model
   (one batch size, so the critical batch is decided by its prior: the identifiability
   warning is expected and reported) and the Chinchilla model (run offsets and AR(1)
   residuals along each curve). Bootstrap: Huber/L-BFGS with whole curves resampled.

bayescale's numbers are new-run predictive bands (parameter uncertainty, run and
evaluation noise, and the law-error term that grows with the distance outside the
fitted sizes and tokens); the bootstrap's are percentile bands of the refitted laws,
as practised. For each benchmark, dataset and method: mean absolute error of the
median, the fraction of held-out truths inside the central 50% and 90% intervals,
the mean 90% width and the wall time of the whole method (fit, including JIT
compilation, and prediction) measured in this run. Prints the tables and appends them,
dated, with the machine and settings, to benchmarks/RESULTS.md.

Run: ``python benchmarks/public_data.py [--data ../shared/data] [--chains 4 --warmup 1000 --draws 1000]``.
"""

from __future__ import annotations

import os

# L-BFGS-B's tiny LAPACK calls spend most of their time handing work to OpenBLAS
# threads on a busy CPU (50x slower on 2 shared cores); one thread is the fast setting.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import (  # noqa: E402
    add_append_option, add_data_option, add_sampler_options, data_folder, markdown_table, publish)
from extrapolation import thin  # noqa: E402

from bayescale import fit  # noqa: E402
from bayescale.baselines.bootstrap import fit_bootstrap  # noqa: E402
from bayescale.cores import use_cpu_cores  # noqa: E402
from bayescale.curves import transient_mask  # noqa: E402
from bayescale.environment import conditions  # noqa: E402
from bayescale.predict import loss_draws  # noqa: E402
from bayescale.runs import load_gadre2024, load_gemstones2025  # noqa: E402

#: Largest total parameter count fitted (Gadre: the 411.6M models; Gemstones: up to 543M).
GADRE_FIT_MAX_TOTAL = 4.2e8
GEMSTONES_FIT_MAX_TOTAL = 6.0e8
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _quantiles(draws: np.ndarray) -> np.ndarray:
    """Rows: the 5%, 25%, 50%, 75% and 95% points of each column of ``draws``."""
    return np.quantile(draws, QUANTILES, axis=0)


def _score(label: str, method: str, truth: np.ndarray, q: np.ndarray, seconds: float) -> dict:
    """Error of the median, coverage of the 50% and 90% intervals and mean 90% width over held-out points."""
    in_50 = (truth >= q[1]) & (truth <= q[3])
    in_90 = (truth >= q[0]) & (truth <= q[4])
    return {"benchmark": label, "method": method, "points": len(truth),
            "abs_err": float(np.mean(np.abs(q[2] - truth))), "in_50": float(np.mean(in_50)),
            "in_90": float(np.mean(in_90)), "width_90": float(np.mean(q[4] - q[0])), "seconds": seconds}


def _timed(call: Callable[[], object]) -> tuple[object, float, list[str]]:
    """Run ``call``; return its value, wall seconds and the distinct warnings it raised (recorded, reported)."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        value = call()
    messages = list(dict.fromkeys(f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in record))
    return value, time.perf_counter() - start, messages


def gadre(path: Path, args: argparse.Namespace, notes: list[str]) -> tuple[list[dict], pd.DataFrame, str]:
    runs = load_gadre2024(path)
    train, held = runs[runs["params_total"] <= GADRE_FIT_MAX_TOTAL], runs[runs["params_total"] > GADRE_FIT_MAX_TOTAL]
    result, seconds, messages = _timed(lambda: fit(
        train, law="chinchilla", group_by="group", chains=args.chains, warmup=args.warmup, draws=args.draws,
        seed=args.seed, target_accept=args.target_accept, progress=False, warn=False))
    notes += [f"Gadre, bayescale Chinchilla: {result.diagnostics.format().splitlines()[0]}",
              *(f"Gadre, bayescale Chinchilla: {m}" for m in messages)]
    rows, detail, errors = [], [], []
    for dataset, test in held.groupby("group"):
        start = time.perf_counter()
        draws = loss_draws(result.posterior, test["params"].to_numpy(), test["batch_tokens"].to_numpy(),
                           test["step"].to_numpy(), group=dataset, seed=args.seed)
        q_bayes = _quantiles(draws)
        predict_seconds = time.perf_counter() - start
        boot, boot_seconds, messages = _timed(lambda: fit_bootstrap(
            train[train["group"] == dataset], n_boot=args.n_boot, seed=args.seed))
        notes += [f"Gadre {dataset}, bootstrap: {m}" for m in messages]
        q_boot = _quantiles(boot.loss_draws(test["params"].to_numpy(), test["tokens"].to_numpy()))
        truth = test["loss"].to_numpy()
        label = f"Gadre {dataset}"
        rows += [_score(label, "bayescale Chinchilla", truth, q_bayes,
                        seconds / held["group"].nunique() + predict_seconds),
                 _score(label, "bootstrap Chinchilla", truth, q_boot, boot_seconds)]
        for i, (_, run) in enumerate(test.iterrows()):
            errors += [{"method": method, "params_total": run["params_total"], "error": q[2, i] - truth[i]}
                       for method, q in (("bayescale Chinchilla", q_bayes), ("bootstrap Chinchilla", q_boot))]
            detail.append({"run": run["run"], "N total": f"{run['params_total']:.3g}",
                           "D": f"{run['tokens']:.3g}", "truth": f"{truth[i]:.3f}",
                           "bayescale [90%]": f"{q_bayes[2, i]:.3f} [{q_bayes[0, i]:.3f}, {q_bayes[4, i]:.3f}]",
                           "bootstrap [90%]": f"{q_boot[2, i]:.3f} [{q_boot[0, i]:.3f}, {q_boot[4, i]:.3f}]"})
    notes.append(f"Gadre: the one hierarchical bayescale fit took {seconds:.1f} s for the three datasets "
                 "(shared equally in the table, plus each dataset's prediction time)")
    detail = pd.DataFrame(detail)
    notes += _errors_by_size(pd.DataFrame(errors)) + _recipe_differences(path, train, held)
    return rows, detail, result.posterior.meta.settings["chain_method"]


def _errors_by_size(errors: pd.DataFrame) -> list[str]:
    """Mean signed and absolute error of each method's median per held-out size, over the datasets."""
    lines = []
    for method, part in errors.groupby("method", sort=False):
        sizes = [f"{size / 1e9:.1f}B: mean error {g['error'].mean():+.3f}, mean |error| {g['error'].abs().mean():.3f} "
                 f"nats over {len(g)} runs" for size, g in part.groupby("params_total")]
        lines.append(f"Gadre, {method} median by held-out size: " + "; ".join(sizes))
    return lines


def _recipe_differences(path: Path, train: pd.DataFrame, held: pd.DataFrame) -> list[str]:
    """Training settings of the held-out runs that no fitted run shares (a law fitted to one
    recipe forecasts that recipe), read from the published table."""
    raw = pd.read_csv(path).set_index("name")
    columns = [c for c in ("lr", "lr_from_args", "wd", "warmup_steps", "warmup_from_args") if c in raw.columns]
    fitted = {c: sorted(set(raw.loc[train["run"], c])) for c in columns}
    lines = []
    for size, runs in held.groupby("params_total"):
        differ = {c: sorted(set(raw.loc[runs["run"], c])) for c in columns}
        differ = {c: v for c, v in differ.items() if not set(v) <= set(fitted[c])}
        if differ:
            lines.append(f"Gadre, {size / 1e9:.1f}B held-out runs were trained with settings no fitted run used: "
                         + ", ".join(f"{c} {'/'.join(f'{x:g}' for x in v)} (fitted: {'/'.join(f'{x:g}' for x in fitted[c])})"
                                     for c, v in differ.items()))
    return lines


def gemstones(path: Path, args: argparse.Namespace, notes: list[str]) -> list[dict]:
    runs = load_gemstones2025(path)
    runs = runs.loc[transient_mask(runs)].reset_index(drop=True)
    train = thin(runs[runs["params_total"] <= GEMSTONES_FIT_MAX_TOTAL], args.points)
    held = runs[runs["params_total"] > GEMSTONES_FIT_MAX_TOTAL].reset_index(drop=True)
    final = (held["step"] == held.groupby("run")["step"].transform("max")).to_numpy()
    truth = held["loss"].to_numpy()
    notes.append(f"Gemstones: fitted {train['run'].nunique()} curves, {len(train)} points; held out "
                 f"{held['run'].nunique()} curves, {len(held)} checkpoints past the transient")
    options = dict(group_by=None, chains=args.chains, warmup=args.warmup, draws=args.draws, seed=args.seed,
                   target_accept=args.target_accept, progress=False, warn=False)
    rows = []
    for name, law in (("bayescale Kaplan", "kaplan"), ("bayescale Chinchilla", "chinchilla")):
        def run_method(law=law):
            result = fit(train, law=law, **options)
            draws = loss_draws(result.posterior, held["params"].to_numpy(), held["batch_tokens"].to_numpy(),
                               held["step"].to_numpy(), seed=args.seed)
            return result, _quantiles(draws)

        (result, q), seconds, messages = _timed(run_method)
        notes += [f"Gemstones, {name}: {result.diagnostics.format().splitlines()[0]}",
                  *(f"Gemstones, {name}: {m}" for m in messages)]
        rows += [_score("Gemstones, all checkpoints", name, truth, q, seconds),
                 _score("Gemstones, final checkpoints", name, truth[final], q[:, final], seconds)]

    def run_bootstrap():
        boot = fit_bootstrap(train, n_boot=args.n_boot, seed=args.seed)
        return _quantiles(boot.loss_draws(held["params"].to_numpy(), held["tokens"].to_numpy()))

    q, seconds, messages = _timed(run_bootstrap)
    notes += [f"Gemstones, bootstrap: {m}" for m in messages]
    rows += [_score("Gemstones, all checkpoints", "bootstrap Chinchilla", truth, q, seconds),
             _score("Gemstones, final checkpoints", "bootstrap Chinchilla", truth[final], q[:, final], seconds)]
    return rows


def verdict(table: pd.DataFrame) -> list[str]:
    """One sentence per benchmark: does bayescale cover at least as often, at comparable error?"""
    lines = []
    for label, part in table.groupby("benchmark", sort=False):
        boot = part[part["method"].str.startswith("bootstrap")].iloc[0]
        for _, ours in part[part["method"].str.startswith("bayescale")].iterrows():
            covers = "at least as often as" if ours["in_90"] >= boot["in_90"] else "LESS often than"
            error = ("smaller" if ours["abs_err"] < 0.9 * boot["abs_err"] else
                     "comparable" if ours["abs_err"] <= 1.1 * boot["abs_err"] else "LARGER")
            lines.append(f"- {label}: {ours['method']}'s 90% intervals held the truth {covers} the bootstrap's "
                         f"({ours['in_90']:.0%} vs {boot['in_90']:.0%} of {int(ours['points'])}), at {error} error "
                         f"({ours['abs_err']:.3f} vs {boot['abs_err']:.3f} nats), {ours['width_90']:.3f} vs "
                         f"{boot['width_90']:.3f} nats wide.")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_option(ap, "gadre2024/ and gemstones2025/")
    add_sampler_options(ap, chains=4, warmup=1000, draws=1000, target_accept=0.99, help={
        "chains": "NUTS chains (default: 4, as bayescale fit)",
        "target_accept": "NUTS target acceptance of every bayescale fit (default: 0.99; at 0.9 the Gemstones "
                         "Chinchilla fit misses the low-E tail of its (E, A, alpha) ridge and fails the gate)"})
    ap.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates (default: 200)")
    ap.add_argument("--points", type=int, default=15, help="fitted checkpoints per Gemstones curve (default: 15)")
    add_append_option(ap)
    args = ap.parse_args()
    use_cpu_cores()  # one chain per core where JAX can still be configured (falls back to vectorized otherwise)
    data = data_folder(args)
    start = time.perf_counter()
    notes: list[str] = []
    rows, detail, chain_method = gadre(data / "gadre2024" / "final_losses.csv", args, notes)
    rows += gemstones(data / "gemstones2025" / "train_loss_curves.jsonl", args, notes)
    total = time.perf_counter() - start
    table = pd.DataFrame(rows)

    fmt = {"abs_err": "{:.3f}", "in_50": "{:.0%}", "in_90": "{:.0%}", "width_90": "{:.3f}", "seconds": "{:.1f}"}
    shown = table.assign(**{k: table[k].map(v.format) for k, v in fmt.items()})
    shown.columns = ["benchmark", "method", "held-out points", "abs. error of median (nats)", "in 50%", "in 90%",
                     "90% width (nats)", "wall time (s)"]
    text = "\n".join([
        f"\n## public_data — bayescale vs bootstrap on public runs — {dt.date.today().isoformat()}\n",
        f"Machine: {conditions()}; OPENBLAS_NUM_THREADS="
        f"{os.environ['OPENBLAS_NUM_THREADS']}. Settings: NUTS {args.chains} chains x {args.draws} draws "
        f"({args.warmup} warmup, {chain_method} chains, target_accept {args.target_accept}), seed {args.seed}; bootstrap {args.n_boot} run-resamples, "
        f"L-BFGS-B from the 20 best of Hoffmann et al.'s 4,500 grid starts (each resample: the full-data optimum and its "
        f"own best grid start), Huber delta 1e-3 on log loss. Gadre: fit on total N <= 411.6M (non-embedding "
        f"N in the law), predict 1.4B and 6.9B, C4 validation loss. Gemstones: fit on total N <= 0.6B, "
        f"{args.points} log-spaced checkpoints per curve past the first 10% of steps; evaluated on every "
        f"held-out checkpoint past that cut and on each held-out curve's final checkpoint. "
        f"bayescale bands are new-run predictive bands (law-error scale 0.01 per log-distance). "
        f"Whole benchmark: {total:.0f} s.\n",
        markdown_table(shown),
        "\nGadre held-out runs (truth; median [90% interval]):\n",
        markdown_table(detail),
        "\nVerdict:\n",
        *verdict(table),
        "\nNotes (diagnostics and warnings, recorded per method):\n",
        *(f"- {n}" for n in notes),
    ])
    publish(text, args)


if __name__ == "__main__":
    main()
