"""``bayescale fit``: sample the posterior of a scaling-law model from a run table."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from bayescale.commands.common import (FORMATTER, add_runs_arguments, add_sampler_arguments, check_output, format_table,
                                       gate_exit_code, level, note, print_json, read_runs_arguments, sampler_options)
from bayescale.defaults import (DEFAULT_ERROR_LENGTH, DEFAULT_EXTRAPOLATION_ERROR, DEFAULT_MAX_POINTS,
                                DEFAULT_MIN_STEP_FRACTION, LAW_ERROR_SOURCES, RESIDUAL_CORRELATION_HELP,
                                PUBLIC_EXTRAPOLATION_ERROR, RESIDUAL_CORRELATIONS)
from bayescale.models.registry import DESCRIPTIONS, irreducible_variant, names

# Commands import only light modules at the top (the help must not wait for JAX);
# the library is imported in `run`.

EPILOG = """\
examples:
  # all curves of a sweep, one group per evaluation split (the default when the
  # table has a split column), 4 chains x 1000 draws
  bayescale fit --runs sweep/runs.csv --out posterior.nc

  # quick look: 2 chains x 300 draws, no grouping, drop the first 20% of every curve
  bayescale fit --runs runs.csv --chains 2 --warmup 300 --draws 300 \\
      --group-by none --min-step-fraction 0.2 --out quick.nc

  # a table with other column names
  bayescale fit --runs theirs.csv --column-map params=N_no_embed,loss=eval_loss --out p.nc

  # public data through an adapter
  bayescale fit --runs final_losses.csv --format gadre2024 --model chinchilla --out p.nc

  # measure the law's error on the ladder (a second fit of its smaller sizes) instead
  # of assuming it: narrower, checked bands for `bayescale track` beyond the ladder
  bayescale fit --runs sweep/runs.csv --law-error ladder --out posterior.nc

Prints the constants (N_c, alpha_N, S_c, alpha_S, B_star, alpha_B) with 90% intervals
and the convergence checks (R-hat <= 1.01, bulk and tail ESS >= 400, no divergences);
a fit that fails them is still written, with a warning that says what to try
(with --strict it also exits 3, for scripts and CI).

exit codes: 0 written, 2 bad input (nothing sampled), 3 written but failed its
convergence checks (--strict only).
"""

#: Input formats: the run-table schema (None), or the adapter in :mod:`bayescale.runs` for public data.
FORMATS = {"table": None, "gadre2024": "load_gadre2024", "gemstones2025": "load_gemstones2025"}


def format_loader(name: str):
    """The loader of input format ``name``: ``None`` for the run-table schema, else an adapter."""
    from bayescale import runs

    return None if FORMATS[name] is None else getattr(runs, FORMATS[name])


def read_runs(args: argparse.Namespace):
    """The run table of ``--runs`` in ``--format`` (with ``--column-map``, ``--batch-tokens``,
    the row filters and ``--group-by``)."""
    return read_runs_arguments(args, group_columns=[] if args.group_by in ("auto", "none") else [args.group_by],
                               loader=format_loader(args.format))


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    """``--runs`` and its options (:func:`add_runs_arguments`), ``--format`` and ``--group-by``:
    the run table a fit reads."""
    add_runs_arguments(p)
    p.add_argument("--format", choices=sorted(FORMATS), default="table",
                   help="input format: the run-table schema, or an adapter for public data (default: table)")
    p.add_argument("--group-by", default="auto", metavar="COL",
                   help="column whose values get their own constants drawn from a population "
                        "(default: split when the table has several, 'none' for one group)")


def max_points_argument(text: str) -> int | None:
    """An argparse type for ``--max-points``: an integer >= 2, or 0 for every point (``None``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, or 0 for every point, got {text!r}") from None
    if value == 0:
        return None
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected an integer >= 2, or 0 for every point, got {text!r}")
    return value


def add_selection_arguments(p: argparse.ArgumentParser, what: str = "") -> None:
    """``--min-step-fraction``, ``--min-step`` and ``--max-points``: which points every fit sees."""
    p.add_argument("--min-step-fraction", type=float, default=DEFAULT_MIN_STEP_FRACTION,
                   help=f"drop points before this fraction of each run's final step{what} "
                        f"(the early transient; default: {DEFAULT_MIN_STEP_FRACTION})")
    p.add_argument("--min-step", type=float, default=0.0, help="also drop points before this step (default: 0)")
    p.add_argument("--max-points", type=max_points_argument, default=DEFAULT_MAX_POINTS, metavar="K",
                   help="fit at most K points per curve, those nearest to K steps evenly spaced in log-steps: "
                        "curves logged every k steps crowd their end, where hundreds of points slow the fit and "
                        "say little more (docs/model.md, section 3); 0 fits every point "
                        f"(default: {DEFAULT_MAX_POINTS})")


def register(subparsers) -> None:
    p = subparsers.add_parser("fit", help="fit the scaling-law model to a run table (NUTS)",
                              description=__doc__, epilog=EPILOG, formatter_class=FORMATTER)
    add_input_arguments(p)
    p.add_argument("--model", choices=names(), default="kaplan",
                   help="law form: " + "; ".join(f"{n} ({d})" for n, d in DESCRIPTIONS.items())
                        + " (default: kaplan)")
    p.add_argument("--irreducible", action="store_true",
                   help="fit the model's variant with an irreducible loss (kaplan -> kaplan_irreducible)")
    p.add_argument("--batch-prior", choices=("data", "literature"), default="data",
                   help="prior of the critical batch: 'data' (wide, around the fitted batches) or 'literature' "
                        "(Kaplan 2020 / Su 2024: B_* = 2.1e8 tokens, alpha_B = 0.21; for losses in nats per BPE "
                        "token) -- it decides B_crit when every size ran at one batch (default: data)")
    p.add_argument("--residuals", choices=RESIDUAL_CORRELATIONS, default="ar1",
                   help=f"how the residuals along a curve are modelled: {RESIDUAL_CORRELATION_HELP} "
                        "(docs/model.md) (default: ar1)")
    add_sampler_arguments(p, seed=True)
    add_selection_arguments(p)
    p.add_argument("--extrapolation-error", type=float, default=DEFAULT_EXTRAPOLATION_ERROR,
                   help="law-error growth on log loss per unit log-distance outside the fitted data "
                        f"(default: {DEFAULT_EXTRAPOLATION_ERROR}; with --law-error prior)")
    p.add_argument("--law-error", choices=LAW_ERROR_SOURCES, default="prior",
                   help="where the law's error beyond the fitted data comes from: 'prior' (--extrapolation-error per "
                        f"e-fold, its size's part correlated over {DEFAULT_ERROR_LENGTH:g} e-fold of steps along a run), "
                        "'ladder' (measured: the runs in the top third of the log-size span are held out, the "
                        "rest fitted again, and the growth and length that best explain how the held-out curves "
                        "depart from that fit are kept; a second, smaller fit; needs 3+ sizes below the top "
                        f"third) or 'public' ({PUBLIC_EXTRAPOLATION_ERROR:g} per e-fold: the top of the 95%% interval "
                        "measured the same way on the public Gadre 2024 and Gemstones 2025 ladders of 6M-7B-parameter "
                        "language models; for a ladder of that kind too small to measure its own) (docs/model.md "
                        "section 7.2) (default: prior)")
    p.add_argument("--level", type=level, default=0.9, help="interval printed for the constants (default: 0.9)")
    p.add_argument("--out", required=True, type=Path, metavar="POSTERIOR.nc", help="where to write the posterior")
    p.add_argument("--json", action="store_true", help="print the summary and diagnostics as JSON")
    p.add_argument("--strict", action="store_true",
                   help="exit 3 when the fit fails its convergence checks (the posterior is still written; "
                        "default: warn and exit 0)")
    p.set_defaults(func=run)


def _critical_batch_note(posterior) -> str | None:
    """On a ladder trained at one batch per size: how much of the forecast of a 10x larger model
    trained 10x longer moves with the critical batch, and what decided it (``None`` otherwise)."""
    from bayescale.predict import critical_batch_share, single_batch_caveat, single_batch_ladder

    if not single_batch_ladder(posterior):
        return None
    r = posterior.meta.ranges
    N, B, S = 10 * r["params"][1], r["batch_tokens"][1], 10 * r["step"][1]
    shares = [critical_batch_share(posterior, N, B, S, group=g) for g in posterior.groups]
    return single_batch_caveat(posterior, max(shares), f"the loss of a 10x larger model (N={N:.3g}, B={B:g}, S={S:g})")


def run(args: argparse.Namespace) -> int:
    from bayescale.fit import fit
    from bayescale.law_error import describe_record, law_error_record
    from bayescale.models.registry import get_law
    from bayescale.residuals import shape_led_note

    law = irreducible_variant(args.model) if args.irreducible else args.model
    runs = read_runs(args)
    check_output(args.out, example="posterior.nc")  # before sampling: a path that cannot be written would lose the fit
    group_by = None if args.group_by == "none" else args.group_by
    options = dict(group_by=group_by, seed=args.seed, progress=not args.quiet, **sampler_options(args))
    priors = get_law(law).default_priors()
    if args.batch_prior != "data":
        if not hasattr(priors, "critical_batch"):
            raise ValueError(f"--batch-prior applies to laws with a critical batch; {law} has none")
        priors = dataclasses.replace(priors, critical_batch=args.batch_prior)
    priors = dataclasses.replace(priors, residual_correlation=args.residuals)
    result = fit(runs, law=law, min_step_fraction=args.min_step_fraction, min_step=args.min_step,
                 max_points=args.max_points,
                 extrapolation_error=args.extrapolation_error, law_error=args.law_error, priors=priors, **options)
    path = result.posterior.save(args.out)
    summary = result.posterior.summary(args.level)
    batch_note = _critical_batch_note(result.posterior)
    shape_note = shape_led_note(result.posterior)
    if args.json:
        print_json({"posterior": str(path), "seconds": result.seconds, "summary": summary,
                    "diagnostics": {"passed": result.diagnostics.passed, "max_rhat": result.diagnostics.max_rhat,
                                    "min_ess_bulk": result.diagnostics.min_ess_bulk,
                                    "min_ess_tail": result.diagnostics.min_ess_tail,
                                    "divergences": result.diagnostics.divergences,
                                    "left_out": result.diagnostics.left_out},
                    "dropped": result.posterior.meta.dropped, "critical_batch_prior": batch_note,
                    "residuals_note": shape_note,
                    "law_error": law_error_record(result.posterior.meta)})
    else:
        print(format_table(summary))
        print(result.diagnostics.format())
        for reason, count in result.posterior.meta.dropped.items():
            if count:
                note(f"{count} points not fitted ({reason.replace('_', ' ')})")
        if batch_note:
            note(batch_note)
        if shape_note:
            note(shape_note)
        if args.law_error != "prior":
            note(describe_record(law_error_record(result.posterior.meta)))
        note(f"posterior written to {path} ({result.seconds:.1f} s sampling)")
    return gate_exit_code(result.diagnostics, args.strict)
