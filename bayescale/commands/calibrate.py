"""``bayescale calibrate``: were the forecast intervals honest? Score them against realized runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from bayescale.commands.common import (add_runs_arguments, check_output, format_table, level, note,
                                       posterior_command, print_json, read_runs_arguments)
from bayescale.defaults import DEFAULT_LEVELS, RANGE_FACTOR, SCALE_FACTOR

EPILOG = f"""\
examples:
  # coverage of the 50/80/90/95% intervals, PIT, CRPS and interval scores of every
  # realized point (e.g. the runs of a larger model trained after the forecast)
  bayescale calibrate --posterior p.nc --runs realized.csv

  # also write points.csv, coverage.csv, scores.csv, coverage.png and pit.png
  bayescale calibrate --posterior p.nc --runs realized.csv --out calibration/

  # other column names; only the 90% interval
  bayescale calibrate --posterior p.nc --runs theirs.csv --column-map loss=eval_loss --level 0.9

Every point is compared with the new-run predictive distribution at its (N, B, S) and
group (the posterior's group-by column must be in the file). Results are given overall
and by realized N over the largest fitted N, each coverage beside the range a calibrated
forecast would show on the same points: realized points are not independent (a run's
points share its offset and correlated noise, and every point shares the law's error),
so on a few runs of one held-out size a calibrated 90% interval may well cover all of
them, or few. Checks that stop with a message: unknown
groups; sizes, batches or steps more than {RANGE_FACTOR:g}x outside the fitted ranges; a
typical loss ratio to the forecast beyond {SCALE_FACTOR:g}x (e.g. bits instead of nats;
--no-scale-check turns this one off).
"""


def register(subparsers) -> None:
    p = posterior_command(subparsers, "calibrate", "coverage, PIT, CRPS and interval scores against realized runs",
                          __doc__, EPILOG)
    add_runs_arguments(p, "REALIZED_FILE", "realized runs", "loss=eval_loss")
    p.add_argument("--level", type=level, action="append", metavar="P",
                   help="central interval probability; repeat (default: 0.5 0.8 0.9 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the new-run noise draws (default: 0)")
    p.add_argument("--no-scale-check", action="store_true",
                   help="score losses even when they are far from every forecast (units are not checked)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write the tables (CSV) and figures (PNG) here")
    p.add_argument("--json", action="store_true", help="print coverage and scores as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bayescale.calibrate import calibrate
    from bayescale.plots import plot_coverage, plot_pit
    from bayescale.posterior import Posterior

    check_output(args.out, folder=True)
    posterior = Posterior.load(args.posterior)
    group_by = posterior.meta.group_by
    runs = read_runs_arguments(args, group_columns=[group_by] if group_by else [])
    result = calibrate(posterior, runs, levels=tuple(args.level or DEFAULT_LEVELS), seed=args.seed,
                       scale_check=not args.no_scale_check, progress=not args.quiet)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name in ("points", "coverage", "scores"):
            getattr(result, name).to_csv(args.out / f"{name}.csv", index=False)
        plot_coverage(result).savefig(args.out / "coverage.png", dpi=110)
        plot_pit(result).savefig(args.out / "pit.png", dpi=110)
        note(f"wrote points.csv, coverage.csv, scores.csv, coverage.png and pit.png to {args.out}")
    if result.dropped:
        note(f"{result.dropped} early-transient points left out (the fit's own rule)")
    if args.json:
        counts, edges = result.pit_histogram()
        print_json({"points": len(result.points), "dropped": result.dropped, "coverage": result.coverage,
                    "scores": result.scores, "pit_histogram": {"counts": counts.tolist(), "edges": edges.tolist()}})
        return 0
    print(f"coverage of central intervals ({len(result.points)} realized points; nominal in the header):")
    print(format_table(result.coverage_table()))
    print("\nrange a calibrated forecast would show on these points (5-95% of joint replicates under its own model;\n"
          "points of one run, and every point through the law's error, move together):")
    print(format_table(result.expected_table()))
    print("\nall points: " + "\n            ".join(result.verdicts()))
    print("\nscores (nats, lower is better; pit_mean 0.5 when unbiased):")
    print(format_table(result.scores))
    return 0
