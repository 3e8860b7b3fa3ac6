"""How fast does a law's error grow beyond a ladder? ``kappa`` measured on every ladder at hand.

Beyond the fitted sizes every forecast carries the law's own error, standard deviation
``kappa d`` on log loss at ``d`` e-folds outside the fitted ranges (docs/model.md
section 7.2). By default ``kappa`` is 0.01 per e-fold, set a priori. Where a ladder has
too few sizes to measure it (two, say), that a-priori value is most of a cross-size
band, so it should rest on what other ladders show. This benchmark measures it with
the project's own estimator (:func:`bayescale.law_error.ladder_law_error`, as
``bayescale fit --law-error ladder`` does) on each ladder with enough sizes:

1. **Gadre et al. 2024** final C4-validation losses (Chinchilla law, one group per
   dataset): the 1.4B and 6.9B runs lie in the top third of the log-size span.
2. **Gemstones 2025** training curves at a constant learning rate (Kaplan law; each
   curve past its first 10% of steps, thinned to ``--points`` log-spaced checkpoints).
3. **The bundled sweep**, the project's own runs (``kaplan_schedule``, one group per
   evaluation split; constant, cosine and WSD schedules).

The Multi-Power-Law curves (Luo et al. 2025) have three sizes, too few: the estimator
needs three below the held-out top third.

Per ladder: the runs whose size lies in the top third of the log-size span are held
out and the rest fitted (same law, priors and sampler settings as the whole ladder
would get); the held-out curves' log evidence over the grid of ``kappa`` and the
correlation length ``l`` is read at the smaller fit's draws. The table gives the best
grid point, the 95% likelihood interval of ``kappa`` (the profile over ``l`` within
1.92 log units of its maximum, chi-square with one degree of freedom), the log
evidence of the a-priori ``kappa`` 0.01 against the best, and the smaller fit's seed
spread ``tau`` and noise scale ``sigma`` (medians): on a ladder where these are large, a
law error of the same size hides in them, so a small ``kappa`` there is weak evidence.
A pooled row adds the ladders' profiles (each ladder its own ``l``; one ``kappa``
shared), as if the ladders were independent draws of one law error growth, and says how
much log evidence a growth per ladder gains over the shared one (twice that gain is the
likelihood-ratio statistic against one shared growth: chi-square with one degree of
freedom fewer than the ladders, 5.99 at 95% for three ladders, 3.84 for two).

Last, what each ``kappa`` implies for a forecast ln 4 = 1.39 e-folds beyond the fitted
sizes (the Multi-Power-Law cross-size split of ``schedules.py``): the law error's 90%
width on log loss, 2 x 1.645 x ``kappa`` x 1.39.

Run: ``python benchmarks/law_error_ladders.py [--data ../shared/data] [--chains 4 --warmup 1000 --draws 1000]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import (  # noqa: E402
    BUNDLED_RUNS, add_append_option, add_data_option, add_sampler_options, data_folder, markdown_table, publish)
from extrapolation import thin  # noqa: E402

from bayescale import fit  # noqa: E402
from bayescale.cores import use_cpu_cores  # noqa: E402
from bayescale.curves import transient_mask  # noqa: E402
from bayescale.defaults import DEFAULT_EXTRAPOLATION_ERROR  # noqa: E402
from bayescale.environment import conditions  # noqa: E402
from bayescale.law_error import ladder_law_error, split_by_size  # noqa: E402
from bayescale.predict import scale_draws  # noqa: E402
from bayescale.runs import load_gadre2024, load_gemstones2025, load_runs  # noqa: E402

#: Half the 95% point of chi-square with one degree of freedom: the likelihood interval's drop.
INTERVAL_DROP = 1.92
#: The Multi-Power-Law cross-size split's distance beyond its fitted sizes (400M from 100M), in e-folds.
CROSS_SIZE_DISTANCE = float(np.log(4.0))
#: Two-sided 90% normal quantile.
Z90 = 1.645
#: Column headers: the a-priori growth's log evidence against the best; the width it implies.
AT_DEFAULT = f"log evidence of {DEFAULT_EXTRAPOLATION_ERROR:g} - best"
WIDTH = f"law-error 90% width at {CROSS_SIZE_DISTANCE:.2f} e-folds"


class Ladder(NamedTuple):
    """A run table with the law and grouping it is fitted with."""

    name: str
    runs: pd.DataFrame
    law: str
    group_by: str | None


def ladders(data: Path, points: int) -> list[Ladder]:
    """The three ladders of the module docstring."""
    gemstones = load_gemstones2025(data / "gemstones2025" / "train_loss_curves.jsonl")
    gemstones = thin(gemstones.loc[transient_mask(gemstones)].reset_index(drop=True), points)
    return [Ladder("Gadre 2024, final losses", load_gadre2024(data / "gadre2024" / "final_losses.csv"),
                   "chinchilla", "group"),
            Ladder("Gemstones 2025, constant-LR curves", gemstones, "kaplan", None),
            Ladder("bundled sweep, constant/cosine/WSD curves", load_runs(BUNDLED_RUNS), "kaplan_schedule", "split")]


def profile(evidence: pd.DataFrame) -> pd.Series:
    """The log evidence per ``kappa``, maximised over the length."""
    return evidence.groupby("kappa")["log_evidence"].max()


def at(prof: pd.Series, kappa: float) -> float:
    """The profile at the grid point nearest ``kappa``."""
    return float(prof.iloc[int(np.argmin(np.abs(prof.index.to_numpy() - kappa)))])


def interval(prof: pd.Series) -> tuple[float, float]:
    """The grid's ``kappa`` values within :data:`INTERVAL_DROP` of the profile's maximum: lowest, highest."""
    kept = prof.index[prof >= prof.max() - INTERVAL_DROP]
    return float(kept.min()), float(kept.max())


def interval_text(prof: pd.Series) -> str:
    """The interval as text, saying where it reaches the grid's edge."""
    edges = (prof.index.min(), prof.index.max())
    return " - ".join(f"{v:.3g}" + (" (grid's edge)" if v in edges else "") for v in interval(prof))


def measure(ladder: Ladder, args: argparse.Namespace, notes: list[str]) -> tuple[dict, pd.Series]:
    """Measure ``kappa`` on ``ladder``: its table row and its profile over ``kappa``."""
    below, held = split_by_size(ladder.runs)
    fits: list = []

    def fit_part(table: pd.DataFrame):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            result = fit(table, law=ladder.law, group_by=ladder.group_by, chains=args.chains, warmup=args.warmup,
                         draws=args.draws, seed=args.seed, target_accept=args.target_accept, progress=False,
                         warn=False)
        fits.append(result)
        notes.extend(f"{ladder.name}: {m}" for m in dict.fromkeys(
            f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in record))
        return result.posterior, result.diagnostics.passed

    start = time.perf_counter()
    estimate = ladder_law_error(below, held, fit_part)
    seconds = time.perf_counter() - start
    result = fits[0]
    notes.append(f"{ladder.name}, smaller fit: {result.diagnostics.format().splitlines()[0]}")
    prof = profile(estimate.evidence)
    sizes = below["params"].unique()
    row = {
        "ladder": ladder.name, "law": ladder.law,
        "fitted": f"{below['run'].nunique()} runs, {len(sizes)} sizes, {sizes.min():.3g}-{sizes.max():.3g}",
        "held out": f"{held['run'].nunique()} runs at {min(estimate.distances):.2f}-{max(estimate.distances):.2f} "
                    "e-folds",
        "tau": f"{np.median(scale_draws(result.posterior, 'run_offset_scale')):.4f}",
        "sigma": f"{np.median(scale_draws(result.posterior, 'sigma')):.4f}",
        "gate": "PASS" if estimate.check_passed else "FAIL",
        "kappa": f"{estimate.kappa:.3g}", "l (e-folds)": f"{estimate.length:g}",
        "kappa, 95% interval": interval_text(prof),
        AT_DEFAULT: f"{at(prof, DEFAULT_EXTRAPOLATION_ERROR) - prof.max():.2f}",
        "s": f"{seconds:.0f}", WIDTH: implied_width(estimate.kappa),
    }
    return row, prof


def implied_width(kappa: float) -> str:
    """The law error's 90% width on log loss :data:`CROSS_SIZE_DISTANCE` e-folds beyond the fitted sizes."""
    return f"{2 * Z90 * kappa * CROSS_SIZE_DISTANCE:.4f}"


def pooled(profiles: list[pd.Series], names: list[str]) -> dict:
    """The row of the summed profiles (one ``kappa`` shared by the ladders), with the log
    evidence that one ``kappa`` per ladder gains over the shared one (twice it is the
    likelihood-ratio statistic, chi-square with ``len(profiles) - 1`` degrees of freedom when
    the ladders do share one)."""
    total = sum(profiles)
    best = float(total.idxmax())
    return {"ladder": "pooled: " + " + ".join(names), "kappa": f"{best:.3g}",
            "kappa, 95% interval": interval_text(total),
            AT_DEFAULT: f"{at(total, DEFAULT_EXTRAPOLATION_ERROR) - total.max():.2f}",
            "one kappa per ladder - shared": f"{sum(p.max() for p in profiles) - total.max():.2f}",
            WIDTH: implied_width(best)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_option(ap, "gadre2024/ and gemstones2025/")
    add_sampler_options(ap, chains=4, warmup=1000, draws=1000, target_accept=0.95)
    ap.add_argument("--points", type=int, default=15, help="fitted checkpoints per Gemstones curve (default: 15)")
    add_append_option(ap)
    args = ap.parse_args()
    use_cpu_cores()
    start = time.perf_counter()
    notes: list[str] = []
    rows, profiles = [], []
    all_ladders = ladders(data_folder(args), args.points)
    for ladder in all_ladders:
        print(f"measuring the law error on {ladder.name} ...", flush=True)
        row, prof = measure(ladder, args, notes)
        rows.append(row)
        profiles.append(prof)
    table = pd.DataFrame(rows)
    names = [ladder.name.split(",")[0] for ladder in all_ladders]
    pools = pd.DataFrame([pooled(profiles, names), pooled(profiles[:2], names[:2])])
    total = time.perf_counter() - start
    text = "\n".join([
        f"\n## law_error_ladders — kappa measured on every ladder at hand — {dt.date.today().isoformat()}\n",
        f"`python benchmarks/law_error_ladders.py`. Machine: {conditions()}; OPENBLAS_NUM_THREADS="
        f"{os.environ['OPENBLAS_NUM_THREADS']}. NUTS {args.chains} chains x {args.warmup} warm-up x {args.draws} "
        f"draws, target_accept {args.target_accept}, seed {args.seed}, for each smaller fit. Per ladder the runs in "
        f"the top third of the log-size span are held out (`bayescale.law_error.split_by_size`) and the evidence "
        f"of their residuals from the smaller fit's law is read on the grid kappa 0.001-0.1 x l "
        f"(`bayescale.law_error.ladder_law_error`). 95% interval: the kappas whose profile log evidence (max over "
        f"l) lies within {INTERVAL_DROP} of its maximum. tau, sigma: the smaller fit's seed spread and noise scale "
        f"on log loss (medians). Law-error width: 2 x {Z90} x kappa x ln 4, the 90% width on log loss of the law "
        f"error alone at the Multi-Power-Law cross-size split's distance. Whole benchmark: {total:.0f} s.\n",
        markdown_table(table),
        "\nPooled (each ladder's profile maximised over its own l, summed; one kappa):\n",
        markdown_table(pools),
        "\nNotes:\n",
        *(f"- {n}" for n in notes),
    ])
    publish(text, args)


if __name__ == "__main__":
    main()
