"""Where the width of ``track``'s updated band comes from, and what the ladder says about it.

On Gemstones (``benchmarks/track.py``) the band updated from 20% of a 1-2B run holds
every later checkpoint, with a relative 90% width near 3.7% at the end. This script
takes the band apart without reading any held-out loss, then checks the part that
dominates against the ladder alone.

1. **Sources of the width.** The Kaplan ladder of ``benchmarks/track.py`` (total N <=
   0.6B, ``--points`` log-spaced checkpoints per curve past the first 10%). For each
   1-2B run observed to 20% of its steps: the prior standard deviation of the law's
   error at the final step (``kappa d``); the standard deviation of the run's deviation
   from the law's curve at the final step given its checkpoints, under the model of
   :mod:`bayescale.track` (offset, law error with the size's part correlated over
   :data:`~bayescale.defaults.DEFAULT_ERROR_LENGTH` e-folds of steps, AR(1) noise), and the same
   with a longer length, with the size's part as a level (length infinite) and without
   the law's error; the spread over draws of the law's own extrapolation from the last
   checkpoint to the end (parameter uncertainty); and the evaluation noise's standard
   deviation (Student-t). A Gaussian model's conditional variances depend on where the
   checkpoints are, not on their values, so no loss of these runs is read.
2. **The ladder's own check.** Fit the ladder's runs up to ``--replay-max`` total
   parameters, track the ladder's larger runs (up to 0.6B; still ladder runs, the 1-2B
   runs are not read) from 20% of their steps by reweighting, and score the forecast of
   the rest. Also split each run's realized departure from the smaller ladder's law
   (median over draws of the mean curve) into its level at the last observed checkpoint
   and its change from there to the end, against the model's standard deviation of
   that change, ``kappa d_N sqrt(2 (1 - exp(-u^2 / (2 l^2))))`` with ``u`` the
   log-steps from the last checkpoint to the end.

Prints the tables and appends them, dated, to benchmarks/RESULTS.md.

Run: ``python benchmarks/track_width.py [--data ../shared/data] [--chains 2 --warmup 400 --draws 400]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import add_append_option, add_data_option, add_sampler_options, markdown_table, publish  # noqa: E402
from extrapolation import thin  # noqa: E402
from track import GEMSTONES_FIT_MAX_TOTAL, ROOT, _fit  # noqa: E402

from bayescale.cores import use_cpu_cores  # noqa: E402
from bayescale.curves import transient_mask  # noqa: E402
from bayescale.environment import conditions  # noqa: E402
from bayescale.models.law import outside  # noqa: E402
from bayescale.predict import fitted_priors, loss_draws, scale_draws  # noqa: E402
from bayescale.runs import load_gemstones2025  # noqa: E402
from bayescale.defaults import DEFAULT_ERROR_LENGTH as ERROR_LENGTH
from bayescale.deviation import ar1_correlation, ar1_positions, law_error_covariance, thin_checkpoints  # noqa: E402
from bayescale.residuals import fitted_spacing  # noqa: E402
from bayescale.track import track  # noqa: E402

#: Lengths (e-folds of steps) of the size's part of the law's error compared in part 1.
LENGTHS = (ERROR_LENGTH, 2.0, 4.0, np.inf)
FRACTION = 0.2


def error_axes(post, N: float, B: float, steps: np.ndarray) -> np.ndarray:
    """``kappa d_a`` per point and axis (the size first), as :func:`bayescale.track.track` builds them."""
    law, meta = post.law, post.meta
    values = law.axis_values(np.full(steps.shape, N), np.full(steps.shape, B), steps)
    return np.stack([float(meta.extrapolation_error) * outside(values[axis], *meta.ranges[key])
                     for axis, key in law.fitted_ranges()], axis=1)


def conditional_sd(post, axes: np.ndarray, steps: np.ndarray, length: float) -> float:
    """Median over draws of the standard deviation of a run's deviation from the law's curve at
    the last of ``steps`` given the others (the checkpoints), under the model of
    :mod:`bayescale.track` with the size's part correlated over ``length`` e-folds (``inf``: a level)."""
    n = len(steps) - 1
    used = np.r_[thin_checkpoints(n), n]
    K = law_error_covariance(axes, np.log(steps), length)[np.ix_(used, used)]
    kappa = float(post.meta.extrapolation_error)
    offset_var = scale_draws(post, "run_offset_scale") ** 2 + kappa**2
    sigma, rho = scale_draws(post, "sigma"), scale_draws(post, "rho")
    m = len(used) - 1
    C = offset_var[:, None, None] + K[None]
    positions = ar1_positions(np.log(steps[used[:m]]), fitted_spacing(post))
    C_oo = C[:, :m, :m] + (sigma**2)[:, None, None] * ar1_correlation(positions, rho)
    cross = C[:, :m, m]
    variance = C[:, m, m] - np.einsum("dm,dm->d", cross, np.linalg.solve(C_oo, cross[..., None])[..., 0])
    return float(np.sqrt(np.median(variance)))


def width_sources(post, held: pd.DataFrame) -> pd.DataFrame:
    """Part 1 of the module docstring, one row per held-out run (its steps and size only)."""
    rows = []
    min_fraction = post.meta.settings["min_step_fraction"]
    for name, run in held.groupby("run"):
        final = float(run["step"].max())
        partial = run[run["step"] <= FRACTION * final]
        observed = partial.loc[transient_mask(partial, min_fraction), "step"].to_numpy(float)
        N, B = float(run["params"].iloc[0]), float(run["batch_tokens"].iloc[0])
        steps = np.r_[observed, final]
        axes = error_axes(post, N, B, steps)
        mu = np.log(loss_draws(post, N, B, steps[-2:], mode="mean"))
        row = {"run": name, "d_N": f"{axes[-1, 0] / float(post.meta.extrapolation_error):.2f}",
               "prior sd of the law's error at the end": f"{np.sqrt(np.sum(axes[-1] ** 2)):.4f}"}
        for length in LENGTHS:
            row[f"given the checkpoints, l = {length:g}"] = f"{conditional_sd(post, axes, steps, length):.4f}"
        row["no law error"] = f"{conditional_sd(post, 0 * axes, steps, ERROR_LENGTH):.4f}"
        row["parameters (law from last checkpoint to end)"] = f"{np.std(mu[:, 1] - mu[:, 0]):.4f}"
        nu = fitted_priors(post).nu
        row["noise"] = f"{np.median(scale_draws(post, 'sigma')) * np.sqrt(nu / (nu - 2)):.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


def replay(runs: pd.DataFrame, args, notes: list[str]) -> pd.DataFrame:
    """Part 2 of the module docstring: the ladder's larger runs tracked by a fit of its smaller ones."""
    ladder = runs[runs["params_total"] <= GEMSTONES_FIT_MAX_TOTAL]
    cut = ladder.loc[transient_mask(ladder)]
    post = _fit(thin(cut[cut["params_total"] <= args.replay_max], args.points), "kaplan", args, notes,
                f"Gemstones ladder up to {args.replay_max:.3g} total")
    kappa, largest = float(post.meta.extrapolation_error), post.meta.ranges["params"][1]
    rows = []
    for name, run in ladder[ladder["params_total"] > args.replay_max].groupby("run"):
        final = float(run["step"].max())
        N, B = float(run["params"].iloc[0]), float(run["batch_tokens"].iloc[0])
        partial = run[run["step"] <= FRACTION * final]
        rest = run[run["step"] > partial["step"].max()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = track(post, partial, final, points=256, seed=args.seed, method="reweight")
        grid, at = np.log(df["step"]), np.log(rest["step"])
        truth = rest["loss"].to_numpy()
        inside = (truth >= np.interp(at, grid, df["lower"])) & (truth <= np.interp(at, grid, df["upper"]))
        last, end = df.iloc[-1], float(run["loss"].iloc[-1])
        seen = float(partial["step"].iloc[-1])
        law = np.median(np.log(loss_draws(post, N, B, np.array([seen, final]), mode="mean")), axis=0)
        level = np.log(float(partial["loss"].iloc[-1])) - law[0]
        u, d_N = np.log(final / seen), np.log(N / largest)
        rows.append({"run": name, "d_N": f"{d_N:.2f}", "err ladder": f"{abs(last['ladder_median'] / end - 1):.2%}",
                     "err updated": f"{abs(last['median'] / end - 1):.2%}",
                     "90% half-width at end": f"{(last['upper'] - last['lower']) / 2 / last['median']:.2%}",
                     "in 90% (rest)": f"{inside.mean():.0%}", "ESS": f"{df.attrs['effective_draws']:.0f}",
                     "level at 20% (log)": f"{level:+.4f}",
                     "change 20% -> end (log)": f"{np.log(end) - law[1] - level:+.4f}",
                     f"model sd of the change (l = {ERROR_LENGTH:g})":
                         f"{kappa * d_N * np.sqrt(2 * (1 - np.exp(-u**2 / (2 * ERROR_LENGTH**2)))):.4f}"})
    return pd.DataFrame(rows)


def ladder_arguments(description: str, extra=lambda ap: None) -> argparse.Namespace:
    """The command line of a script that fits the Gemstones ladder (this one and
    ``track_density.py``): its data, sampler and ``--points`` options, those ``extra`` adds,
    and ``--no-append``; the CPU cores are claimed for the chains."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_option(ap, "gemstones2025/")
    add_sampler_options(ap, chains=2, warmup=400, draws=400, target_accept=0.9)
    ap.add_argument("--points", type=int, default=15, help="fitted checkpoints per curve (default: 15)")
    extra(ap)
    add_append_option(ap)
    args = ap.parse_args()
    use_cpu_cores()
    return args


def gemstones_ladder(args, notes: list[str], label: str) -> tuple[pd.DataFrame, object]:
    """The Gemstones runs, and the Kaplan ladder of ``benchmarks/track.py`` fitted on them
    (total N <= 0.6B, ``--points`` log-spaced checkpoints per curve past the first 10%)."""
    data = args.data if args.data.is_absolute() else ROOT / args.data
    runs = load_gemstones2025(data / "gemstones2025" / "train_loss_curves.jsonl")
    cut = runs.loc[transient_mask(runs)]
    return runs, _fit(thin(cut[cut["params_total"] <= GEMSTONES_FIT_MAX_TOTAL], args.points), "kaplan", args,
                      notes, label)


def main() -> None:
    args = ladder_arguments(__doc__, lambda ap: ap.add_argument(
        "--replay-max", type=float, default=1.2e8,
        help="part 2 fits the ladder's runs up to this many total parameters (default: 1.2e8)"))
    start = time.perf_counter()
    notes: list[str] = []
    runs, post = gemstones_ladder(args, notes, "Gemstones ladder (as in track.py)")
    sources = width_sources(post, runs[runs["params_total"] > GEMSTONES_FIT_MAX_TOTAL])
    replayed = replay(runs, args, notes)
    text = "\n".join([
        f"\n## track: where the updated band's width comes from (Gemstones) — {dt.date.today().isoformat()}\n",
        f"Machine: {conditions()}. `benchmarks/track_width.py`: NUTS {args.chains} chains x {args.draws} draws "
        f"({args.warmup} warmup), seed {args.seed}, {args.points} checkpoints per fitted curve; runs observed to "
        f"{FRACTION:.0%} of their steps. Whole script: {time.perf_counter() - start:.0f} s.\n",
        "Standard deviations on log loss at the final step of each 1-2B run (no loss of these runs is read): the "
        "law's error before the update, the run's deviation from the law's curve given its checkpoints for lengths "
        "l (e-folds of steps) of the size's part of the law's error, then without the law's error; the "
        "parameters' and the noise's parts:\n",
        markdown_table(sources),
        f"\nThe ladder's own check: fitted on total N <= {args.replay_max:.3g}, its larger runs tracked from "
        f"{FRACTION:.0%} by reweighting:\n",
        markdown_table(replayed),
        "\nNotes:\n",
        *(f"- {n}" for n in notes),
    ])
    publish(text, args)


if __name__ == "__main__":
    main()
