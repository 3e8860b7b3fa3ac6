"""``bayescale report``: figures and one self-contained HTML page for a posterior."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from bayescale.commands.common import (add_hardware_arguments, add_runs_arguments, add_schedule_arguments,
                                       add_search_arguments, check_output, level, note, positive_float,
                                       posterior_command, read_hardware, read_runs_arguments, read_search_space,
                                       read_speed)
from bayescale.defaults import DEFAULT_RISK

EPILOG = """\
examples:
  # diagnostics, constants, forecasts and figures: report/report.html plus one PNG per figure
  bayescale report --posterior p.nc --out report/

  # the recommended run for 1e18 FLOPs (target 2.1 nats) first, its hours on 8 A100s at 40% MFU,
  # and a calibration section (realized runs)
  bayescale report --posterior p.nc --out report/ --flops 1e18 --target-loss 2.1 \\
      --gpus 8 --peak-flops 312e12 --mfu 0.4 --runs realized.csv

  # the recommendation within budget's limits: at most 20000 steps and 1e11 tokens
  bayescale report --posterior p.nc --out report/ --flops 1e18 --max-steps 20000 --max-tokens 1e11

The page opens with the decision: with --flops, the recommended model size, batch,
steps and schedule (searched within the search-space options, as `bayescale budget`
searches), its probability of reaching --target-loss and band of final loss,
the point-estimate alternative, how far the run lies beyond the fitted data, its hours
on the stated hardware and the convergence gate; a red banner above everything when
the gate fails. The diagnostics, rank plots and pair plots are collapsed at the end.
The HTML page embeds its images (base64 PNG) and needs no network, CSS or JavaScript
files: open it in any browser or send it as one file.
"""


def register(subparsers) -> None:
    p = posterior_command(subparsers, "report", "figures and a self-contained HTML summary of a posterior",
                          __doc__, EPILOG)
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for report.html and the figures")
    p.add_argument("--level", type=level, default=0.9, help="central interval of tables and bands (default: 0.9)")
    add_runs_arguments(p, "REALIZED_FILE", example="loss=eval_loss", required=False,
                       help="realized runs: add a calibration section")
    p.add_argument("--flops", type=positive_float, metavar="C",
                   help="a FLOP budget: recommend a run for it first and add a budgeting section")
    p.add_argument("--target-loss", type=positive_float, metavar="L", help="target loss of the budgeting section")
    p.add_argument("--risk", type=level, default=DEFAULT_RISK, help=f"risk quantile of the budgeting section "
                                                                      f"(default: {DEFAULT_RISK})")
    p.add_argument("--group", help="group of the budgeting section when the posterior has several")
    p.add_argument("--seed", type=int, default=0, help="seed of the new-run noise draws (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_search_arguments(p, "Limits of the recommended run's search, with --flops, as in bayescale budget; sizes\n"
                            "and batches are budget's defaults (--max-params and --batch-tokens filter the\n"
                            "realized runs here).", grid=False)
    add_schedule_arguments(p)
    add_hardware_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bayescale.budget import SearchSpace
    from bayescale.posterior import Posterior
    from bayescale.report import write_report

    if args.target_loss is not None and args.flops is None:
        raise ValueError("--target-loss belongs to the budgeting section; give --flops too")
    hardware = read_hardware(args)
    if hardware is not None and args.flops is None:
        raise ValueError("--gpus, --peak-flops and --mfu give the hours of the recommended run; give --flops too")
    space = read_search_space(args, grid=False)
    if args.flops is None and dataclasses.replace(space, schedule=None) != SearchSpace():
        raise ValueError("the search-space options limit the recommended run; give --flops too")
    check_output(args.out, folder=True)
    posterior = Posterior.load(args.posterior)
    group_by = posterior.meta.group_by
    runs = read_runs_arguments(args, group_columns=[group_by] if group_by else [])
    path = write_report(posterior, args.out, level=args.level, runs=runs, flops=args.flops,
                        target_loss=args.target_loss, risk=args.risk, group=args.group, seed=args.seed,
                        progress=not args.quiet, space=space, hardware=read_speed(args))
    note(f"wrote {path} and its figures (PNG) to {args.out}")
    print(path)
    return 0
