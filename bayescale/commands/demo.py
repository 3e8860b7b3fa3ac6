"""``bayescale demo``: fit the bundled runs, check a held-out size and schedule, forecast larger
ones, track a run."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from bayescale.commands.common import (FORMATTER, add_sampler_arguments, check_output, format_table, gate_exit_code,
                                       note, positive_float)
from bayescale.defaults import DEMO_CHAINS, DEMO_SAMPLING, DEMO_WARMUP

EPILOG = """\
examples:
  bayescale demo                        # writes demo-output/
  bayescale demo --out /tmp/demo --seed 1 --target-loss 1.0
  bayescale demo --strict               # exit 3 if the fit fails its convergence checks
  bayescale demo --irreducible          # with a loss floor L_inf
  bayescale demo --constant-only        # constant-rate runs and the constant-rate law only

What it does: loads the bundled CPU sweep (byte-level GPTs trained by bayescale's own
trainer on the Python standard library, evaluated in-domain and out-of-domain), fits
the hierarchical schedule-aware Kaplan/Su model (kaplan_schedule) to the constant-rate
and cosine runs of every size but the largest, predicts what it never saw and scores
the prediction (median relative error, 50%/90% band coverage): the held-out size, and
the WSD runs, a schedule it never fitted, each point under its own run's schedule. Then
it forecasts models 10x and 100x larger (minimum loss, steps and tokens to a target
loss, the critical batch there and the trajectory at that batch), and ends by tracking
the held-out size from its first 20% of steps, as one would a live run. With
--constant-only it fits the constant-rate law (kaplan) to the constant-rate runs and
skips the schedule check. Outputs: summary.md, held_out.csv, forecasts.csv,
tracking.csv, PNG figures and posterior.nc.

Without --irreducible the size term (N_c/N)^alpha_N falls towards zero, so far
forecasts of the minimum loss are optimistic; with it the floor L_inf is a parameter
per split and the forecasts' bands include its uncertainty.

The demo sets target_accept and the default draws per law (law: draws per chain,
target_accept): {sampling}. The posterior has a long tail where the critical batch
grows far beyond the batches trained, and the irreducible variants a curved ridge
between L_inf, N_c and alpha_N; benchmarks/RESULTS.md has the measurements.
""".format(sampling="; ".join(f"{law}: {d}, {ta}" for law, (d, ta) in DEMO_SAMPLING.items()))


def register(subparsers) -> None:
    p = subparsers.add_parser("demo",
                              help="the whole job on the bundled runs (about 1.5 minutes on an idle 2-core CPU)",
                              description=__doc__, epilog=EPILOG, formatter_class=FORMATTER)
    p.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder (default: demo-output)")
    # the demo fixes target_accept (see the epilog) and runs its chains as bayescale fit does
    add_sampler_arguments(p, defaults={"chains": DEMO_CHAINS, "warmup": DEMO_WARMUP, "draws": None},
                          shown={"draws": f"{DEMO_SAMPLING['kaplan_schedule'][0]}; "
                                          f"{DEMO_SAMPLING['kaplan'][0]} with --constant-only; every law's at the end "
                                          "of --help"},
                          settings=("chains", "warmup", "draws"), seed=True)
    p.add_argument("--target-loss", type=positive_float, metavar="L",
                   help="loss the forecasts aim at (default: 90%% of the best in_domain loss of any bundled run)")
    p.add_argument("--irreducible", action="store_true",
                   help="fit the irreducible-loss variant (a floor L_inf per split)")
    p.add_argument("--constant-only", action="store_true",
                   help="fit kaplan to the constant-rate runs only (no held-out schedule)")
    p.add_argument("--strict", action="store_true",
                   help="exit 3 when the fit fails its convergence checks (default: warn and exit 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bayescale.demo import FORECAST_FACTORS, demo_law, demo_sampling, run_demo
    from bayescale.fit import check_settings
    from bayescale.models.law import ExtrapolationWarning

    draws, target_accept = demo_sampling(demo_law(not args.constant_only, args.irreducible))
    draws = draws if args.draws is None else args.draws
    check_settings(args.chains, args.warmup, draws, target_accept)  # before the progress bar starts
    check_output(args.out, folder=True)  # before sampling
    with warnings.catch_warnings():  # the forecasts extrapolate on purpose; said once below
        warnings.simplefilter("ignore", ExtrapolationWarning)
        res = run_demo(args.out, chains=args.chains, warmup=args.warmup, draws=draws, seed=args.seed,
                       target_loss=args.target_loss, irreducible=args.irreducible, schedules=not args.constant_only,
                       progress=not args.quiet)
    note(f"the forecasts extrapolate {' and '.join(f'{f}x' for f in FORECAST_FACTORS)} beyond the largest fitted "
         "size on purpose: their bands include the law's error, which grows with the distance")
    print("Held out (never fitted): the largest size" + ("" if args.constant_only else ", and the WSD schedule")
          + "; new-run bands (calibrated_90: the 5-95% range of 90% coverage that a calibrated band shows on "
          "the same points, whose errors are shared within a run and, through the law, across runs):")
    print(format_table(res.held_out))
    print(f"\nForecasts, target loss {res.target_loss:g} nats (medians; intervals in forecasts.csv):")
    cols = ["params", "min_loss", "critical_batch", "steps", "tokens", "p_reachable"]
    print(format_table(res.forecasts[cols]))
    if res.tracking is not None:
        print(f"\nTracking the held-out size from its first 20% of steps (realized final loss "
              f"{res.tracking.attrs['truth']:.4g}):")
        print(format_table(res.tracking))
        if res.tracking.attrs["alarm"]:
            print(res.tracking.attrs["alarm"])
    print("\n" + res.fit.diagnostics.format())
    note(f"wrote {res.out_dir}/summary.md, figures and posterior.nc")
    return gate_exit_code(res.fit.diagnostics, args.strict)
