"""``bayescale track``: update a live run's forecast from its own first checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from bayescale.commands.common import (add_sampler_arguments, add_schedule_arguments, check_output, column_map,
                                       format_table, level, note, positive_float, posterior_command, print_json,
                                       read_schedule, sampler_options)
from bayescale.defaults import TRACK_METHODS

EPILOG = """\
examples:
  # a 7B run planned for 100000 steps with a cosine decay, tracked from its first checkpoints
  bayescale track --posterior ladder.nc --partial live.csv --total-steps 100000 \\
      --schedule cosine --warmup-steps 2000 --final-lr-fraction 0.1 --target-loss 2.05 --out track/

  # the planned schedule as logged by the trainer (step,learning_rate up to the last step)
  bayescale track --posterior ladder.nc --partial live.csv --total-steps 100000 \\
      --schedule-file schedule.csv --out track/ --json

  # always refit the ladder with the live run added, on a small NUTS budget
  bayescale track --posterior ladder.nc --partial live.csv --total-steps 100000 \\
      --method refit --chains 2 --warmup 400 --draws 400 --out track/

The partial file is a run table of one run (any size; usually far above the ladder),
read like --runs elsewhere (--column-map renames its columns). The ladder's posterior is
updated by the run's own checkpoints: each posterior draw is weighted by how well it,
with the run's own offset and the law's error integrated out, explains them, and the
rest of the run is forecast from the updated draws. Log checkpoints at any spacing: the
fit's AR(1) noise is read in log-steps (neighbours closer than the fitted curves' spacing
are strongly correlated), so a densely logged run is not taken for more evidence than its
curve holds (docs/model.md, section 7.4). When that rests on few effective
draws (under 100, or a tenth of the draws), --method auto refits instead: the ladder's
fitted points (stored in the posterior) and the partial run as one more run, with the
ladder fit's priors and sampler settings, the rest of the run forecast as that fitted
run's; the output says which method was used. Writes OUT/forecast.csv (step, median,
lower, upper; level when several), OUT/ladder.csv (the ladder alone) and OUT/track.png;
says ALARM when the latest checkpoints left the ladder's 90% band.
"""

REFIT_HELP = """NUTS settings of the joint refit (--method refit, or auto when it refits); each one
left out is the ladder fit's, as its posterior records it."""


def register(subparsers) -> None:
    p = posterior_command(subparsers, "track", "update a live run's forecast from its first checkpoints",
                          __doc__, EPILOG)
    p.add_argument("--partial", required=True, type=Path, metavar="PARTIAL.csv",
                   help="run table of the live run's checkpoints so far (one run)")
    p.add_argument("--column-map", type=column_map, metavar="SCHEMA=COLUMN,...",
                   help="rename the partial file's columns onto the schema, e.g. loss=eval_loss")
    p.add_argument("--total-steps", required=True, type=positive_float, metavar="T",
                   help="the run's planned last step")
    p.add_argument("--target-loss", type=positive_float, metavar="L",
                   help="also give the probability of a loss <= L at step T, before and after the update")
    p.add_argument("--level", type=level, action="append", metavar="P",
                   help="central interval probability; repeat for several (default: 0.9)")
    p.add_argument("--points", type=int, default=64, help="forecast steps from the last checkpoint to T (default: 64)")
    p.add_argument("--group", help="which group (e.g. evaluation split) when the posterior has several")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default: 0)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for forecast.csv and track.png")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--method", choices=TRACK_METHODS, default="auto",
                   help="reweight the ladder's posterior draws by the partial curve, refit the ladder with the "
                        "partial run added (NUTS, slower), or auto: reweight, and refit when the reweighting rests "
                        "on too few effective draws (default: auto)")
    add_schedule_arguments(p)
    add_sampler_arguments(p.add_argument_group("joint refit", REFIT_HELP), inherited="the ladder fit's")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bayescale.law_error import describe_record, law_error_record
    from bayescale.plots import plot_track
    from bayescale.posterior import Posterior
    from bayescale.runs import load_runs, read_table
    from bayescale.track import check_step_order, track

    check_output(args.out, folder=True)
    schedule = read_schedule(args)
    posterior = Posterior.load(args.posterior)
    group_by = posterior.meta.group_by
    partial = load_runs(args.partial, columns=args.column_map, group_columns=[group_by] if group_by else [])
    raw = read_table(args.partial).rename(columns={v: k for k, v in (args.column_map or {}).items()})
    check_step_order(raw, group_by)  # loading sorts the rows; a file out of order is a mistake here
    levels = tuple(args.level or (0.9,))
    df = track(posterior, partial, args.total_steps, schedule=schedule, levels=levels, target_loss=args.target_loss,
               group=args.group, points=args.points, seed=args.seed, method=args.method,
               sampler=sampler_options(args), progress=not args.quiet)
    args.out.mkdir(parents=True, exist_ok=True)
    contract = ["step", "median", "lower", "upper", *(["level"] if len(levels) > 1 else [])]
    df[contract].to_csv(args.out / "forecast.csv", index=False)
    ladder = df[["step", "ladder_median", "ladder_lower", "ladder_upper", *contract[4:]]]
    ladder.rename(columns=lambda c: c.removeprefix("ladder_")).to_csv(args.out / "ladder.csv", index=False)
    plot_track(df).savefig(args.out / "track.png", dpi=110)
    attrs = df.attrs
    how = (f"the update rests on {attrs['effective_draws']:.0f} effective draws" if attrs["refit"] is None
           else "updated by a joint refit")
    lines = [f"N={attrs['params']:.4g}, B={attrs['batch_tokens']:g}, {attrs['schedule']}: "
             f"{len(attrs['observed'])} checkpoints to step {attrs['observed']['step'].iloc[-1]:g} of "
             f"{attrs['total_steps']:g}; {how}", *([attrs["refit"]] if attrs["refit"] else []),
             describe_record(law_error_record(posterior.meta))]
    final = df[df["step"] == df["step"].max()].iloc[0]
    lines.append(f"loss at step {attrs['total_steps']:g}: {final['median']:.4g} [{final['lower']:.4g}, "
                 f"{final['upper']:.4g}] ({levels[0]:.0%}); ladder alone: {final['ladder_median']:.4g} "
                 f"[{final['ladder_lower']:.4g}, {final['ladder_upper']:.4g}]")
    if args.target_loss is not None:
        lines.append(f"P(loss <= {args.target_loss:g} at step {attrs['total_steps']:g}): "
                     f"{attrs['p_target_before']:.3g} before the update, {attrs['p_target_after']:.3g} after")
    if attrs["alarm"]:
        lines.append(attrs["alarm"])
    note(f"wrote forecast.csv, ladder.csv and track.png to {args.out}")
    if args.json:
        print_json({"params": attrs["params"], "batch_tokens": attrs["batch_tokens"], "schedule": attrs["schedule"],
                    "total_steps": attrs["total_steps"], "method": attrs["method"], "refit": attrs["refit"],
                    "effective_draws": attrs["effective_draws"], "law_error": law_error_record(posterior.meta),
                    "alarm": attrs["alarm"], "p_target_before": attrs.get("p_target_before"),
                    "p_target_after": attrs.get("p_target_after"), "observed": attrs["observed"],
                    "forecast": df})
    else:
        print("\n".join(lines))
        print(format_table(df[contract].tail(5)))
    return 0
