"""``bayescale compare``: choose between law forms by PSIS-LOO on the same observations."""

from __future__ import annotations

import argparse
from pathlib import Path

from bayescale.commands.common import (FORMATTER, add_sampler_arguments, check_output, format_table, note, print_json,
                                       sampler_options)
from bayescale.commands.fit import add_input_arguments, add_selection_arguments, read_runs
from bayescale.defaults import PARETO_K_MAX
from bayescale.models.registry import LAWS

MODELS = tuple(LAWS)

EPILOG = """\
examples:
  # every law form on a sweep's curves, 4 chains x 1000 draws each
  bayescale compare --runs sweep/runs.csv

  # a ladder of decaying schedules: the schedule law with and without a loss floor
  bayescale compare --runs runs.csv --models kaplan_schedule,kaplan_schedule_irreducible

  # final losses of a public ladder: Kaplan with an irreducible loss against Chinchilla,
  # one group per dataset, quick budgets, posteriors kept
  bayescale compare --runs final_losses.csv --format gadre2024 --models kaplan_irreducible,chinchilla \\
      --group-by group --chains 2 --warmup 500 --draws 500 --out-dir posteriors/

Prints one row per model, best first: elpd_loo (expected log pointwise predictive
density, higher is better), se, p_loo (effective number of parameters), elpd_diff and
dse (difference to the best and its standard error), weight (stacking) and
pareto_k_bad (points with Pareto k > 0.7, whose LOO estimate is unreliable; a warning
names the fix). Every model is fitted to the same points (the early transient of each
curve is dropped for all of them); a difference smaller than about 2 dse is not
evidence for either model.
"""


def model_list(text: str) -> list[str]:
    """``kaplan,chinchilla`` -> ``["kaplan", "chinchilla"]``, checked against the known models."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or len(names) < 2:
        raise argparse.ArgumentTypeError(
            f"expected two or more of {', '.join(MODELS)} separated by commas, got {text!r}")
    return names


def register(subparsers) -> None:
    p = subparsers.add_parser("compare", help="compare law forms (Kaplan, on LR schedules, with L_inf; Chinchilla) by PSIS-LOO",
                              description=__doc__, epilog=EPILOG, formatter_class=FORMATTER)
    add_input_arguments(p)
    p.add_argument("--models", type=model_list, default=list(MODELS), metavar="M1,M2,...",
                   help=f"models to compare (default: {','.join(MODELS)})")
    add_sampler_arguments(p, each=" per model", seed=True)
    add_selection_arguments(p, ", for every model")
    p.add_argument("--out-dir", type=Path, metavar="DIR", help="also write each posterior to DIR/MODEL.nc")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bayescale.compare import compare_models

    runs = read_runs(args)
    check_output(args.out_dir, "--out-dir", folder=True)  # before sampling: a bad folder would lose every fit
    comparison, fits = compare_models(
        runs, args.models, group_by=None if args.group_by == "none" else args.group_by, seed=args.seed,
        min_step_fraction=args.min_step_fraction, min_step=args.min_step, max_points=args.max_points,
        progress=not args.quiet,
        **sampler_options(args))
    written = {}
    if args.out_dir:
        written = {name: str(f.posterior.save(args.out_dir / f"{name}.nc")) for name, f in fits.items()}
    diagnostics = {name: f.diagnostics.passed for name, f in fits.items()}
    if args.json:
        print_json({"n_points": comparison.n_points, "table": comparison.table, "diagnostics_passed": diagnostics,
                    "posteriors": written})
        return 0
    print(format_table(comparison.table))
    note(f"{comparison.n_points} points per model; elpd_loo higher is better, differences under about 2 dse "
         f"are not evidence; pareto_k_bad counts points with k > {PARETO_K_MAX}")
    for name, passed in diagnostics.items():
        if not passed:
            note(f"{name}: the fit failed its convergence checks (see the warning); its elpd_loo is unreliable")
    for name, path in written.items():
        note(f"{name} posterior written to {path}")
    return 0
