"""Tracking a live run: does its own first checkpoints' evidence improve the ladder's forecast?

:func:`bayescale.track.track` updates the ladder's new-run forecast of one run from the
checkpoints it has logged so far. This benchmark replays held-out public runs as if
they were live: it shows ``track`` the first part of each curve and scores the
forecast of the rest against what the run went on to log.

1. **Gemstones 2025** (constant learning rate, one batch): fit the Kaplan law on the
   models up to 0.6B total parameters (16 curves, 22M-440M non-embedding; the same
   selection, transient cut and ``--points`` log-spaced thinning as
   ``public_data.py``) with the law's error measured on that ladder
   (``law_error="ladder"``: its four 0.34-0.44B runs held out from a second fit of the
   rest; :mod:`bayescale.law_error`), then track each of the six 1-2B models from its
   first 10%, 20% and 40% of steps (the rows with ``step <= fraction * final step``)
   with ``total_steps`` = its final step; and again from the same draws with the
   a-priori law error (kappa 0.01 per e-fold, length one e-fold). ``track`` uses a live
   run's checkpoints past the ladder fit's transient share of its *planned* steps (10%
   by default), so for the runs observed to 10% the ladder is fitted past 5% of every
   run instead (``min_step_fraction=0.05``), as a user tracking that early would fit it.
2. **Multi-Power-Law curves** (Luo et al. 2025, nine schedules per size): fit
   ``kaplan_schedule`` on all nine runs of 25M and 100M (nominal sizes; constant batch
   2**19 tokens, a placeholder: the batch is the same for every run; ``learning_rate`` =
   the csv's ``lr``; ``min_step_fraction=0``; every ``--stride``-th row and the last: the
   law reads the schedule from the same rows, linear between them, so a coarser stride
   also blurs sharp drops such as wsdcon's), then track
   each 400M run from its first 20% of steps with its planned schedule
   (``Schedule.from_rates`` of its full ``lr`` column) and ``total_steps`` = its last step.
   Two sizes are too few to measure the law's error on, so it is the a-priori one.

Every case is tracked twice with the same seed: ``method="reweight"`` (importance
reweighting of the ladder's draws) and ``method="refit"`` (the ladder refitted with the
partial run added, with the ladder fit's sampler settings); ``auto``, the default, is
the refit where the reweighting rests on too few effective draws
(:func:`bayescale.track.too_few_draws`) and the reweighting elsewhere, read off the two.
Per case and forecast (updated by reweighting, by refit, by auto; the ladder alone,
``ladder_median``; the single-curve baseline): median |relative error| of the forecast
median of the final loss; the share of the realized checkpoints after the observed
part inside the 90% band (``track`` is called with ``--grid`` log-spaced points and
the band interpolated linearly in log-step to the exact checkpoint steps); the same two
on the *next* checkpoints only, those in the run's following 10% of steps
(:data:`NEXT_SHARE`; the error there is each run's mean |relative error| of the median,
then the median over runs), where the run's own latest departure from the law, carried
on by the noise's AR(1), matters most; the median relative 90% width at the final step.
Also the median ``effective_draws`` of the reweighting, the refits' wall time and
convergence verdicts, and the runs whose alarm fired. Baseline: a saturating power law
``L(S) = E + A S^-alpha`` fitted by least squares (``scipy.optimize.curve_fit``) to the
observed part alone (the same points ``track`` uses) and extrapolated, with a naive
90% band from the fit covariance plus the residual scatter (schedule-blind, so on
decaying schedules it is a straw man, shown for completeness).

Run: ``python benchmarks/track.py [--data ../shared/data] [--chains 2 --warmup 400 --draws 400] [--quick]``
(the sampler settings serve the ladder fits and every refit).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime as dt  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import (  # noqa: E402
    add_append_option, add_data_option, add_sampler_options, markdown_table, publish)
from extrapolation import thin  # noqa: E402
from scipy.optimize import curve_fit  # noqa: E402

from bayescale import fit  # noqa: E402
from bayescale.cores import use_cpu_cores  # noqa: E402
from bayescale.curves import transient_mask  # noqa: E402
from bayescale.defaults import (DEFAULT_ERROR_LENGTH, DEFAULT_EXTRAPOLATION_ERROR,  # noqa: E402
                                DEFAULT_MIN_STEP_FRACTION)
from bayescale.environment import conditions  # noqa: E402
from bayescale.law_error import describe_record, law_error_record  # noqa: E402
from bayescale.runs import load_gemstones2025, validate_runs  # noqa: E402
from bayescale.schedules import Schedule  # noqa: E402
from bayescale.diagnostics import ConvergenceWarning  # noqa: E402
from bayescale.track import TrackWarning, too_few_draws, track  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GEMSTONES_FIT_MAX_TOTAL = 6.0e8
#: The transient share of the Gemstones ladder whose fit serves the runs observed to 10%.
TRANSIENT_FOR_10 = 0.05
LUO_SIZES = {25: 25e6, 100: 100e6, 400: 400e6}
LUO_BATCH = 2.0**19
#: The ladders the benchmark tracks (``--parts``).
PARTS = ("gemstones", "multipower")
#: The forecasts scored per case, in the order of the tables.
FORECASTS = ("reweight", "refit", "auto", "ladder", "single-curve")
#: The share of a run's steps, after its observed part, whose checkpoints are scored as "next".
NEXT_SHARE = 0.1


def power_law(S, E, A, alpha):
    return E + A * S ** (-alpha)


def single_curve(steps: np.ndarray, loss: np.ndarray, at: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``E + A S^-alpha`` to the observed points; return the median and naive 90% band (2, len(at))
    at ``at``: parameters drawn from the fit covariance, plus Gaussian residual scatter."""
    s0 = steps[-1]
    x = steps / s0  # scale steps for conditioning
    p0 = (0.9 * loss.min(), loss[0] - 0.9 * loss.min(), 0.5)
    try:
        popt, pcov = curve_fit(power_law, x, loss, p0=p0, bounds=([0.0, 0.0, 1e-3], [loss.min(), np.inf, 5.0]),
                               maxfev=20000)
    except (RuntimeError, ValueError):
        return np.full(len(at), np.nan), np.full((2, len(at)), np.nan)
    median = power_law(at / s0, *popt)
    resid_sd = float(np.std(loss - power_law(x, *popt), ddof=min(3, len(loss) - 1)))
    rng = np.random.default_rng(seed)
    if np.all(np.isfinite(pcov)):
        p = rng.multivariate_normal(popt, pcov, size=2000, check_valid="ignore")
        p[:, 2] = np.clip(p[:, 2], 1e-3, None)
        draws = power_law((at / s0)[None, :], p[:, :1], p[:, 1:2], p[:, 2:3])
    else:
        draws = np.broadcast_to(median, (2000, len(at)))
    draws = draws + rng.standard_normal(draws.shape) * resid_sd
    return median, np.quantile(draws, [0.05, 0.95], axis=0)


def tracked(post, partial: pd.DataFrame, final_step: float, schedule, args, method: str) -> tuple[pd.DataFrame, dict]:
    """``track`` by ``method`` with the benchmark's sampler settings; the forecast and what it
    warned about and took: ``few_draws`` (a TrackWarning), ``failed_gate`` (a refit's
    ConvergenceWarning) and ``seconds``."""
    sampler = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws, "target_accept": args.target_accept}
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        df = track(post, partial, final_step, schedule=schedule, points=args.grid, seed=args.seed, method=method,
                   sampler=sampler)
    return df, {"few_draws": any(issubclass(w.category, TrackWarning) for w in record),
                "failed_gate": any(issubclass(w.category, ConvergenceWarning) for w in record),
                "seconds": time.perf_counter() - start}


def next_until(fraction: float, final_step: float) -> float:
    """The last step of the "next" window of a run observed to ``fraction`` of its ``final_step``:
    the :data:`NEXT_SHARE` of its steps right after the observed part."""
    return (fraction + NEXT_SHARE) * final_step


def scores_at(median: np.ndarray, lower: np.ndarray, upper: np.ndarray, rest: pd.DataFrame,
              truth_final: float, until: float) -> dict:
    """A forecast's scores at the ``rest`` of a run's checkpoints (``median``, ``lower``, ``upper``
    there): final-loss error, 90% coverage of all of them, mean |relative error| and 90% coverage
    of the next ones (those up to step ``until``, :func:`next_until`), relative 90% width at the end."""
    truth = rest["loss"].to_numpy(float)
    inside, near = (truth >= lower) & (truth <= upper), rest["step"].to_numpy(float) <= until
    return {"err": abs(median[-1] / truth_final - 1), "in90": inside, "final": median[-1],
            "next_err": float(np.mean(np.abs(median[near] / truth[near] - 1))), "next_in90": inside[near],
            "width": (upper[-1] - lower[-1]) / median[-1]}


def band_scores(df: pd.DataFrame, prefix: str, rest: pd.DataFrame, truth_final: float, until: float) -> dict:
    """:func:`scores_at` of the band ``{prefix}median, {prefix}lower, {prefix}upper`` of a ``track``
    result, interpolated linearly in log-step to the ``rest`` of the run's checkpoints."""
    grid, at = np.log(df["step"].to_numpy(float)), np.log(rest["step"].to_numpy(float))
    median, lower, upper = (np.interp(at, grid, df[f"{prefix}{name}"]) for name in ("median", "lower", "upper"))
    return scores_at(median, lower, upper, rest, truth_final, until)


def score_case(post, run: pd.DataFrame, fraction: float, schedule, args, label: str) -> dict:
    """Track ``run`` from its first ``fraction`` of steps (reweight and refit) and score every
    forecast (:data:`FORECASTS`) of the rest."""
    final_step = float(run["step"].max())
    partial = run[run["step"] <= fraction * final_step]
    rest = run[run["step"] > partial["step"].max()]
    truth_final = float(run.loc[run["step"] == final_step, "loss"].iloc[0])
    reweighted, reweighting = tracked(post, partial, final_step, schedule, args, "reweight")
    refitted, refitting = tracked(post, partial, final_step, schedule, args, "refit")
    assert reweighted["step"].iloc[-1] == final_step
    few = too_few_draws(reweighted.attrs["effective_draws"], post.n_draws)
    until = next_until(fraction, final_step)
    scores = {"reweight": band_scores(reweighted, "", rest, truth_final, until),
              "refit": band_scores(refitted, "", rest, truth_final, until),
              "ladder": band_scores(reweighted, "ladder_", rest, truth_final, until)}
    scores["auto"] = scores["refit" if few else "reweight"]
    # the single-curve baseline sees the same points as track (past the fit's transient rule)
    settings = post.meta.settings
    keep = transient_mask(partial, settings.get("min_step_fraction", 0.0), settings.get("min_step", 0.0),
                          final_step=final_step)
    seen = partial.loc[keep]
    at = rest["step"].to_numpy(float)
    b_med, b_band = single_curve(seen["step"].to_numpy(float), seen["loss"].to_numpy(float), at, args.seed)
    scores["single-curve"] = scores_at(b_med, b_band[0], b_band[1], rest, truth_final, until)
    return {"benchmark": label, "run": run["run"].iloc[0], "fraction": fraction, "observed": len(partial),
            "remaining": len(rest), "truth_final": truth_final, "scores": scores,
            "effective_draws": reweighted.attrs["effective_draws"], "few_draws": few,
            "alarm": reweighted.attrs["alarm"] is not None, "refit_seconds": refitting["seconds"],
            "refit_failed_gate": refitting["failed_gate"]}


def summarize(cases: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per benchmark and observed fraction: one row per forecast (error, coverage, width), and
    one row on the reweighting and the refits."""
    rows, about = [], []
    for (label, fraction), part in pd.DataFrame(cases).groupby(["benchmark", "fraction"], sort=False):
        for name in FORECASTS:
            scored = [s[name] for s in part["scores"]]
            inside = np.concatenate([s["in90"] for s in scored])
            near_inside = np.concatenate([s["next_in90"] for s in scored])
            rows.append({"benchmark": label, "observed": f"{fraction:.0%}", "forecast": name, "runs": len(part),
                         "err final (median)": f"{np.median([s['err'] for s in scored]):.2%}",
                         "in 90% (rest)": f"{inside.mean():.0%}", "checkpoints": len(inside),
                         f"err next {NEXT_SHARE:.0%} (median)": f"{np.median([s['next_err'] for s in scored]):.2%}",
                         f"in 90% next {NEXT_SHARE:.0%}": f"{near_inside.mean():.0%}",
                         "90% width at end (median)": f"{np.median([s['width'] for s in scored]):.1%}"})
        about.append({"benchmark": label, "observed": f"{fraction:.0%}", "runs": len(part),
                      "ESS (median)": f"{part['effective_draws'].median():.0f}",
                      "few draws (auto refits)": int(part["few_draws"].sum()),
                      "refit s (median)": f"{part['refit_seconds'].median():.0f}",
                      "refits failing the gate": int(part["refit_failed_gate"].sum()),
                      "alarms": int(part["alarm"].sum())})
    return pd.DataFrame(rows), pd.DataFrame(about)


def _fit(table, law, args, notes, label, **kw):
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = fit(table, law=law, group_by=None, chains=args.chains, warmup=args.warmup, draws=args.draws,
                     seed=args.seed, target_accept=args.target_accept, progress=False, warn=False, **kw)
    seconds = time.perf_counter() - start
    notes.append(f"{label}: fitted {table['run'].nunique()} runs, {len(table)} points in {seconds:.0f} s; "
                 f"{result.diagnostics.format().splitlines()[0]}")
    notes += [f"{label}: {m}" for m in dict.fromkeys(f"{w.category.__name__}: {str(w.message).splitlines()[0]}"
                                                      for w in record)]
    return result.posterior


def gemstones_ladders(runs: pd.DataFrame, min_step_fraction: float, args, notes: list[str]) -> tuple:
    """The Gemstones ladder fitted past ``min_step_fraction`` of every run with the law error
    measured on it (``law_error="ladder"``), and the same draws with the a-priori law error."""
    cut = runs.loc[transient_mask(runs, min_step_fraction)]
    train = thin(cut[cut["params_total"] <= GEMSTONES_FIT_MAX_TOTAL], args.points)
    label = f"Gemstones, Kaplan ladder past {min_step_fraction:.0%}"
    measured = _fit(train, "kaplan", args, notes, label, law_error="ladder", min_step_fraction=min_step_fraction)
    notes.append(f"{label}: {describe_record(law_error_record(measured.meta))}")
    settings = {k: v for k, v in measured.meta.settings.items() if k != "law_error"}
    prior = dataclasses.replace(measured, meta=dataclasses.replace(
        measured.meta, extrapolation_error=DEFAULT_EXTRAPOLATION_ERROR, error_length=DEFAULT_ERROR_LENGTH,
        settings=settings))
    return measured, prior


def gemstones(path: Path, args, notes: list[str]) -> list[dict]:
    """Track the 1-2B runs with the ladder's law error measured on the ladder and with the
    a-priori one. A live run's checkpoints before the ladder fit's transient share of its
    planned steps are not used, so the runs observed to 10% are tracked with a ladder
    fitted past 5% of every run (:data:`TRANSIENT_FOR_10`) and the others with the default."""
    runs = load_gemstones2025(path)
    held = runs[runs["params_total"] > GEMSTONES_FIT_MAX_TOTAL]
    names = sorted(held["run"].unique(), key=lambda r: held.loc[held["run"] == r, "params"].iloc[0])
    if args.quick:
        names = names[::3]
    ladders: dict[float, tuple] = {}
    cases = []
    for fraction in args.fractions:
        cut = DEFAULT_MIN_STEP_FRACTION if fraction > DEFAULT_MIN_STEP_FRACTION else TRANSIENT_FOR_10
        if cut not in ladders:
            ladders[cut] = gemstones_ladders(runs, cut, args, notes)
        for post, label in zip(ladders[cut], ("Gemstones 1-2B, law error measured", "Gemstones 1-2B, law error a priori")):
            for name in names:
                cases.append(score_case(post, held[held["run"] == name], fraction, None, args, label))
    return cases


def load_luo(folder: Path, size: int) -> pd.DataFrame:
    parts = []
    for csv in sorted((folder / f"csv_{size}").glob("*.csv")):
        raw = pd.read_csv(csv)
        parts.append(pd.DataFrame({"run": f"{size}M_{csv.stem}", "params": LUO_SIZES[size], "batch_tokens": LUO_BATCH,
                                   "step": raw["step"].astype(float), "loss": raw["loss"].astype(float),
                                   "learning_rate": raw["lr"].astype(float)}))
    return validate_runs(pd.concat(parts, ignore_index=True), source=str(folder / f"csv_{size}"))


def luo(folder: Path, args, notes: list[str]) -> list[dict]:
    ladder = pd.concat([load_luo(folder, 25), load_luo(folder, 100)], ignore_index=True)
    position = ladder.groupby("run").cumcount()
    last = position == ladder.groupby("run")["step"].transform("size") - 1
    ladder = ladder[(position % args.stride == 0) | last].reset_index(drop=True)
    post = _fit(ladder, "kaplan_schedule", args, notes, "Multi-Power, kaplan_schedule ladder", min_step_fraction=0.0)
    held = load_luo(folder, 400)
    names = sorted(held["run"].unique())
    if args.quick:
        names = names[::4]
    cases = []
    for name in names:
        run = held[held["run"] == name]
        schedule = Schedule.from_rates(run["step"].to_numpy(float), run["learning_rate"].to_numpy(float))
        cases.append(score_case(post, run, 0.2, schedule, args, "Multi-Power 400M"))
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_option(ap, "gemstones2025/ and luo2025_multipower/")
    add_sampler_options(ap, chains=2, warmup=400, draws=400, target_accept=0.9)
    ap.add_argument("--points", type=int, default=15, help="fitted checkpoints per Gemstones curve (default: 15)")
    ap.add_argument("--stride", type=int, default=2, help="keep every n-th row of the Multi-Power ladder, and its last (default: 2)")
    ap.add_argument("--grid", type=int, default=256, help="log-spaced forecast points per track call (default: 256)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2x150x150 draws, fewer runs and fractions")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), metavar="PART",
                    help=f"the ladders to track, of {', '.join(PARTS)} (default: both)")
    add_append_option(ap)
    args = ap.parse_args()
    args.fractions = (0.1, 0.2, 0.4)
    if args.quick:
        args.chains, args.warmup, args.draws, args.fractions = 2, 150, 150, (0.2,)
    use_cpu_cores()
    data = args.data if args.data.is_absolute() else ROOT / args.data
    start = time.perf_counter()
    notes: list[str] = []
    cases = []
    if "gemstones" in args.parts:
        cases += gemstones(data / "gemstones2025" / "train_loss_curves.jsonl", args, notes)
    if "multipower" in args.parts:
        cases += luo(data / "luo2025_multipower", args, notes)
    total = time.perf_counter() - start
    table, about = summarize(cases)
    per_run = pd.DataFrame(cases)
    scores = per_run["scores"]
    detail = pd.DataFrame({
        "benchmark": per_run["benchmark"], "run": per_run["run"], "fraction": per_run["fraction"].map("{:.0%}".format),
        "truth": per_run["truth_final"].map("{:.4f}".format),
        **{name: scores.map(lambda sc, n=name: f"{sc[n]['final']:.4f}")
           for name in ("reweight", "refit", "ladder", "single-curve")},
        **{f"in 90% {name}": scores.map(lambda sc, n=name: f"{sc[n]['in90'].mean():.0%}")
           for name in ("reweight", "refit", "ladder")},
        "ESS": per_run["effective_draws"].map("{:.0f}".format),
        "refit s": per_run["refit_seconds"].map("{:.0f}".format), "alarm": per_run["alarm"]})
    alarms = per_run[per_run["alarm"]]
    flags = (", --quick" if args.quick else "") + (
        "" if list(args.parts) == list(PARTS) else ", --parts " + " ".join(args.parts))
    text = "\n".join([
        f"\n## track — forecasting a live run from its first checkpoints — {dt.date.today().isoformat()}\n",
        f"Machine: {conditions()}; OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}. Settings: NUTS "
        f"{args.chains} chains x {args.draws} draws ({args.warmup} warmup, target_accept {args.target_accept}), seed "
        f"{args.seed}{flags}, for the ladder fits and every refit. Gemstones: Kaplan "
        f"fitted on total N <= 0.6B ({args.points} log-spaced checkpoints per curve past the first 10%; past 5% for "
        f"the runs observed to 10%) with the law error measured on it (law_error='ladder'), and the same draws "
        f"with the a-priori law error; the six 1-2B "
        f"runs tracked from {', '.join(f'{f:.0%}' for f in args.fractions)} of their steps. Multi-Power: "
        f"kaplan_schedule fitted on the 25M and 100M runs (nominal sizes, batch 2**19 tokens, every {args.stride}th "
        f"row, min_step_fraction 0), the nine 400M runs tracked from 20% of their steps with their full planned lr "
        f"schedule. Each case tracked by reweighting and by refit (auto: the refit where the reweighting rests on "
        f"too few effective draws, else the reweighting). Errors: median |relative error| of the final loss's "
        f"forecast median over runs; in 90%: share of the realized checkpoints after the observed part inside the "
        f"90% band (pooled over runs; track on {args.grid} log-spaced points, band interpolated linearly in "
        f"log-step); next {NEXT_SHARE:.0%}: the same on the checkpoints in the run's next {NEXT_SHARE:.0%} of steps "
        f"after the observed part (error: each run's mean |relative error| of the median there, median over "
        f"runs); widths: median relative 90% width at the final step. Single-curve: E + A S^-alpha by "
        f"curve_fit on the observed points, band from the fit covariance plus residual scatter. Whole benchmark: "
        f"{total:.0f} s.\n",
        markdown_table(table),
        "\nThe reweighting and the refits:\n",
        markdown_table(about),
        "\nPer run (final loss: truth, then the forecast medians):\n",
        markdown_table(detail),
        "\nNotes:\n",
        *(f"- {n}" for n in notes),
        f"- Alarms: {len(alarms)} of {len(per_run)} cases"
        + (": " + ", ".join(f"{r.run} at {r.fraction:.0%}" for r in alarms.itertuples()) if len(alarms) else ""),
    ])
    publish(text, args)


if __name__ == "__main__":
    main()
