"""``bayescale predict``: credible bands for a model you have not trained."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from bayescale.commands.common import (add_schedule_arguments, check_output, extrapolation_note, format_table, level,
                                       note, positive_float, posterior_command, print_json, read_schedule)
from bayescale.defaults import MODES

EPILOG = """\
examples:
  # 90% new-run band of the loss of a 50M model at 2^18 tokens per step, 64 log-spaced
  # steps ending exactly at step 20000, as CSV (step,median,lower,upper)
  bayescale predict --posterior p.nc --params 5e7 --batch-tokens 2**18 --steps 20000 --out traj.csv

  # two levels (adds a level column), the law's mean curve only, one evaluation split
  bayescale predict --posterior p.nc --params 5e7 --batch-tokens 262144 --steps 20000 \\
      --level 0.5 --level 0.9 --mode mean --group in_domain

  # steps and tokens to reach a loss of 1.1 nats (and their minima, B_crit there)
  bayescale predict --posterior p.nc --params 5e7 --batch-tokens 262144 --until-loss 1.1 --json

  # a cosine run of 20000 steps (decay to a tenth, 500 warm-up steps), with a posterior of
  # the schedule-aware law (bayescale fit --model kaplan_schedule)
  bayescale predict --posterior p.nc --params 5e7 --batch-tokens 2**18 --steps 20000 \
      --schedule cosine --warmup-steps 500 --final-lr-fraction 0.1

Modes: new_run (default) is what a run you train will show: parameter uncertainty,
seed and evaluation noise, and the law's own error, which grows with the distance of
the request from the fitted sizes, steps and batches. mean is the law's curve with
parameter uncertainty only. The extrapolation distance is reported on stderr.
"""


def register(subparsers) -> None:
    p = posterior_command(subparsers, "predict", "bands for a trajectory, or steps/tokens to reach a loss",
                          __doc__, EPILOG)
    p.add_argument("--params", required=True, type=positive_float, metavar="N",
                   help="non-embedding parameters of the model to forecast")
    p.add_argument("--batch-tokens", required=True, type=positive_float, metavar="B", help="tokens per optimizer step")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--steps", type=positive_float, metavar="S", help="trajectory up to this step")
    what.add_argument("--until-loss", type=positive_float, metavar="L", help="steps and tokens to reach this loss")
    p.add_argument("--level", type=level, action="append", metavar="P",
                   help="central interval probability; repeat for several (default: 0.9)")
    p.add_argument("--points", type=int, default=64, help="steps in the log-spaced trajectory grid (default: 64)")
    p.add_argument("--mode", choices=MODES, default="new_run", help="predictive mode (default: new_run)")
    p.add_argument("--group", help="which group (e.g. evaluation split) to forecast when the posterior has several")
    p.add_argument("--seed", type=int, default=0, help="seed of the new-run noise draws (default: 0)")
    p.add_argument("--out", type=Path, metavar="CSV", help="write the table as CSV here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_schedule_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bayescale.models.law import ExtrapolationWarning
    from bayescale.posterior import Posterior
    from bayescale.law_error import law_error_caveat
    from bayescale.predict import (critical_batch_share, law_error_share, predict_min_loss, predict_steps_to_loss,
                                   predict_trajectory, single_batch_caveat, single_batch_ladder)

    check_output(args.out, example="bands.csv")
    schedule = read_schedule(args)
    posterior = Posterior.load(args.posterior)
    levels = tuple(args.level or (0.9,))
    common = dict(levels=levels, mode=args.mode, group=args.group, seed=args.seed)
    with warnings.catch_warnings():  # said once, below, with the minimum loss
        warnings.simplefilter("ignore", ExtrapolationWarning)
        if args.steps is not None:
            table = predict_trajectory(posterior, args.params, args.batch_tokens, args.steps, points=args.points,
                                       schedule=schedule, **common)
        else:
            table = predict_steps_to_loss(posterior, args.params, args.batch_tokens, args.until_loss,
                                          schedule=schedule, **common)
        floor = predict_min_loss(posterior, args.params, **common)
    if args.until_loss is not None and table["p_reachable"].iloc[0] == 0.0:
        raise ValueError(f"--until-loss {args.until_loss:g} is out of reach for N={args.params:.4g}: no posterior draw "
                         f"gets below its minimum reachable loss, {floor['median'].iloc[0]:.4g} "
                         f"[{floor['lower'].iloc[0]:.4g}, {floor['upper'].iloc[0]:.4g}] ({levels[0]:.0%}); "
                         "raise --until-loss or --params")
    bands = table[["median", "lower", "upper"]].abs()
    if args.steps is not None and not (bands < float("inf")).all().all():
        raise ValueError(f"the forecast is not finite at some steps up to {args.steps:g}; "
                         "lower --steps, or check --params and --batch-tokens")
    far = extrapolation_note(f"N={args.params:.4g}", table.attrs["extrapolation"], table.attrs["extrapolation_factors"])
    note(f"{far}; minimum reachable loss "
         f"{floor['median'].iloc[0]:.4g} [{floor['lower'].iloc[0]:.4g}, {floor['upper'].iloc[0]:.4g}] "
         f"({levels[0]:.0%})" + (f"; schedule: {schedule.describe()}" if schedule else ""))
    share = None
    if single_batch_ladder(posterior) and args.steps is not None:
        share = critical_batch_share(posterior, args.params, args.batch_tokens, args.steps, schedule=schedule,
                                     group=args.group, seed=args.seed)
        note(single_batch_caveat(posterior, share, f"this forecast at step {args.steps:g}"))
    law_share = None
    if args.steps is not None and args.mode == "new_run":
        law_share = law_error_share(posterior, args.params, args.batch_tokens, args.steps, schedule=schedule,
                                    group=args.group, seed=args.seed)
        if law_share > 0.0:
            note(law_error_caveat(posterior, law_share, f"this forecast at step {args.steps:g}"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        note(f"wrote {args.out}")
    if args.json:
        print_json({"params": args.params, "batch_tokens": args.batch_tokens, "mode": args.mode,
                    "schedule": schedule.describe() if schedule else "constant",
                    "extrapolation": table.attrs["extrapolation"], "critical_batch_share": share,
                    "law_error_share": law_share,
                    "min_loss": floor, "bands": table})
    elif not args.out:
        print(format_table(table))
    return 0
