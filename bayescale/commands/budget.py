"""``bayescale budget``: which model size, batch and steps for a FLOP budget, with known risk."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from bayescale.commands.common import (add_hardware_arguments, add_schedule_arguments, add_search_arguments,
                                       check_output, extrapolation_note, format_table, level, note, positive_float,
                                       posterior_command, print_json, read_schedule, read_search_space,
                                       read_speed)
from bayescale.defaults import DEFAULT_RISK, SCHEDULE_KINDS

EPILOG = """\
examples:
  # the size, batch and steps whose final loss is lowest at the 90% risk level
  bayescale budget --posterior p.nc --flops 1e18

  # the best chance of reaching 2.1 nats, at most 20000 steps, batches of 2^17..2^20 tokens;
  # also the least compute that reaches it with probability 0.95
  bayescale budget --posterior p.nc --flops 1e18 --target-loss 2.1 --probability 0.95 \\
      --max-steps 20000 --batch-tokens 2**17 --batch-tokens 2**18 --batch-tokens 2**19 --batch-tokens 2**20

  # a wall-clock limit of 24 hours at 1.5M tokens/s measured on a 124M model (every size
  # gets that FLOP rate), attention FLOPs counted, tables to a folder
  bayescale budget --posterior p.nc --flops 3e19 --max-hours 24 --tokens-per-second 1.5e6 \\
      --throughput-params 1.24e8 --attention-flops-per-token 6*24*2048*1024 --out budget/

  # every candidate trained with a cosine decay (schedule-aware posterior), and the chosen
  # N, B, S compared under cosine and WSD
  bayescale budget --posterior p.nc --flops 1e18 --target-loss 2.1 --schedule cosine \
      --warmup-steps 500 --compare-schedules cosine,wsd

Compute is C = (6 N + a) B S FLOPs (a = --attention-flops-per-token, default 0). Every
candidate spends the budget unless --max-steps, --max-tokens or the wall-clock limit
(--max-hours) stops it first.
Candidates are ranked by P(final loss <= target) with --target-loss, else by the
--risk quantile of the final loss (the new-run predictive: parameter uncertainty, seed
noise and the law's error, which grows with the extrapolation). The point-estimate
choice (lowest median of the law's curve) is printed next to the risk-aware one, with
its own probability and how far each lies beyond the fitted data (a warning above x10
on any axis); then the frontier (risk-aware choice at budgets from C/100 to 100 C).
Every candidate has a model shape, WIDTHxDEPTH under the trainer's conventions, which
`bayescale train --shape` takes as it is.
"""


def _schedule_list(text: str) -> list[str]:
    """``cosine,wsd`` -> ``["cosine", "wsd"]``; each a schedule shape."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in SCHEDULE_KINDS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"expected schedules from {', '.join(SCHEDULE_KINDS)} separated by commas, "
                                         f"got {text!r}")
    return kinds


def register(subparsers) -> None:
    p = posterior_command(subparsers, "budget", "risk-aware choice of model size, batch and steps for a FLOP budget",
                          __doc__, EPILOG)
    p.add_argument("--flops", required=True, type=positive_float, metavar="C",
                   help="compute budget in FLOPs (at most 1e35)")
    p.add_argument("--target-loss", type=positive_float, metavar="L",
                   help="rank by the probability of a final loss <= L nats (and find the least compute for it)")
    p.add_argument("--risk", type=level, default=DEFAULT_RISK, metavar="Q",
                   help=f"quantile of the final loss to minimise; with --target-loss it breaks ties "
                        f"(default: {DEFAULT_RISK})")
    p.add_argument("--probability", type=level, default=0.9, metavar="P",
                   help="with --target-loss: find the least compute that reaches it with this probability "
                        "(default: 0.9)")
    p.add_argument("--max-flops", type=positive_float, metavar="C",
                   help="largest compute the least-compute search tries (default: 1e6 x --flops, at most 1e35)")
    add_search_arguments(p)
    add_schedule_arguments(p)
    add_hardware_arguments(p)
    p.add_argument("--compare-schedules", type=_schedule_list, metavar="A,B,...",
                   help=f"compare schedules ({', '.join(SCHEDULE_KINDS)}) at the risk-aware choice's N, B and S: "
                        "final-loss bands and P(target) under each, with the warm-up and fractions given above")
    p.add_argument("--group", help="which group to plan for when the posterior has several")
    p.add_argument("--seed", type=int, default=0, help="seed of the new-run noise draws (default: 0)")
    p.add_argument("--top", type=int, default=10, help="candidates printed (default: 10)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write candidates.csv, frontier.csv and frontier.png here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


COLUMNS = ["params", "shape", "batch_tokens", "steps", "tokens", "flops", "limit", "extrapolation", "median",
           "lower_90", "upper_90", "loss_q"]


def run(args: argparse.Namespace) -> int:
    from bayescale.budget import (MAX_FLOPS, UnreachableTarget, check_flops, compare_schedules, compute_frontier,
                                  frontier_budgets, least_compute, plan_budget)
    from bayescale.hardware import time_text
    from bayescale.law_error import law_error_caveat
    from bayescale.models.law import ExtrapolationWarning
    from bayescale.plots import plot_frontier
    from bayescale.posterior import Posterior
    from bayescale.predict import law_error_share

    check_output(args.out, folder=True)  # before the search, which takes a while
    check_flops("flops", args.flops)
    if args.max_flops is not None:
        check_flops("max_flops", args.max_flops)
    space = read_search_space(args)
    speed = read_speed(args)
    if args.compare_schedules and args.schedule_file is not None:
        raise ValueError("--compare-schedules compares shapes; leave out --schedule-file")
    posterior = Posterior.load(args.posterior)
    common = dict(space=space, group=args.group, seed=args.seed)
    with warnings.catch_warnings():  # said once, below, for each choice
        warnings.simplefilter("ignore", ExtrapolationWarning)
        plan = plan_budget(posterior, args.flops, target_loss=args.target_loss, risk=args.risk, **common)
    frontier = compute_frontier(posterior, frontier_budgets(args.flops),
                                risk=args.risk, target_loss=args.target_loss, progress=not args.quiet, **common)
    cheapest, unreachable = None, None
    if args.target_loss is not None:
        try:
            cheapest = least_compute(posterior, args.target_loss, args.probability,
                                     max_flops=args.max_flops or min(1e6 * args.flops, MAX_FLOPS),
                                     progress=not args.quiet, **common)
        except UnreachableTarget as err:  # the plan above still answers the question asked
            unreachable = str(err)
    columns = COLUMNS + (["p_target"] if args.target_loss is not None else [])
    summary = plan.summary()[["choice", *columns, "point_loss"]]
    law_share = law_error_share(posterior, plan.choice["params"], plan.choice["batch_tokens"], plan.choice["steps"],
                                schedule=space.schedule, group=args.group, seed=args.seed)
    schedules = None
    if args.compare_schedules:
        choice = plan.choice
        schedules = compare_schedules(posterior, choice["params"], choice["batch_tokens"], choice["steps"],
                                      {k: read_schedule(args, kind=k) for k in args.compare_schedules},
                                      target_loss=args.target_loss, group=args.group, seed=args.seed)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        plan.table.to_csv(args.out / "candidates.csv", index=False)
        frontier.to_csv(args.out / "frontier.csv", index=False)
        if schedules is not None:
            schedules.to_csv(args.out / "schedules.csv", index=False)
        plot_frontier(frontier, plan=plan).savefig(args.out / "frontier.png", dpi=110)
        note(f"wrote candidates.csv, frontier.csv and frontier.png to {args.out}")
    if args.json:
        print_json({"flops": args.flops, "criterion": plan.criterion, "risk": args.risk,
                    "target_loss": args.target_loss,
                    "schedule": space.schedule.describe() if space.schedule else "constant",
                    "schedules": schedules,
                    "n_candidates": len(plan.table), "n_draws": plan.n_draws, "choices": summary,
                    "extrapolation": {name: {"description": ext.describe(), "factors": ext.factors}
                                      for name, ext in plan.extrapolation.items()},
                    "law_error_share": law_share, "time": time_text(plan.choice["flops"], speed),
                    "least_compute": None if cheapest is None else cheapest.to_dict(), "unreachable": unreachable,
                    "frontier": frontier[["budget", *columns]], "candidates": plan.table.head(args.top)})
        return 0
    compute = f"(6N + {space.attention_flops_per_token:.3g}) B S" if space.attention_flops_per_token else "6 N B S"
    trained = f"; every run {space.schedule.describe()}" if space.schedule else ""
    print(f"budget {args.flops:.3g} FLOPs (C = {compute}): {len(plan.table)} "
          f"candidates x {plan.n_draws} draws, ranked by {plan.criterion}{trained}")
    print(format_table(summary))
    for name, ext in plan.extrapolation.items():
        note(extrapolation_note(f"{name} choice", ext.describe(), ext.factors))
    if law_share > 0.0:
        note(law_error_caveat(posterior, law_share, "the risk-aware choice's final loss"))
    print(f"time of the risk-aware choice: {time_text(plan.choice['flops'], speed)}")
    if args.target_loss is not None:
        p_risk, p_point = plan.choice["p_target"], plan.point_choice["p_target"]
        print(f"P(loss <= {args.target_loss:g}): risk-aware {p_risk:.3g}, point estimate {p_point:.3g}")
        if cheapest is not None:
            print(f"least compute reaching {args.target_loss:g} nats with probability {args.probability:g}: "
                  f"{cheapest['budget']:.3g} FLOPs (N={cheapest['params']:.3g}, B={cheapest['batch_tokens']:g}, "
                  f"S={cheapest['steps']:.4g}, P={cheapest['p_target']:.3g})")
        else:
            note(unreachable)
    if schedules is not None:
        print(f"\nschedules at the risk-aware choice (N={plan.choice['params']:.3g}, "
              f"B={plan.choice['batch_tokens']:g}, S={plan.choice['steps']:.4g}):")
        print(format_table(schedules))
    print("\nfrontier (risk-aware choice per budget):")
    print(format_table(frontier[["budget", *columns]]))
    print(f"\ntop {min(args.top, len(plan.table))} candidates:")
    print(format_table(plan.table[columns].head(args.top)))
    return 0
