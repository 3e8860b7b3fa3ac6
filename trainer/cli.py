"""``bayescale train`` and ``bayescale sweep``: argparse wiring for the trainer.

The main command line calls :func:`add_train_parser` and :func:`add_sweep_parser`
with its subparsers; each subcommand sets ``func`` to a function that takes the
parsed namespace and returns an exit code. Importing this module does not import
torch: the run functions import the training loop when they run.

Exit codes: 0 success (including runs skipped because they had already ended);
1 a run diverged (the reason is in ``OUT/<run>.json``). Bad input raises
:class:`~.config.TrainerError` (a ``ValueError``) with a one-line message.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from .config import COMPILE_MODES, DEVICES, PRECISIONS, SCHEDULES, SPEED_FIELDS, TrainConfig, TrainerError
from .sweep import PLAN_MFU, PLAN_PEAK_FLOPS, parse_shape

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

TRAIN_EPILOG = """\
examples:
  # a 0.1M-parameter byte-level model on the Python standard library, CPU
  bayescale train --width 64 --depth 2 --context 128 --batch-tokens 1024 \\
      --steps 3000 --out runs/

  # the shape bayescale budget proposed for its risk-aware choice (its shape column)
  bayescale train --shape 376x6 --context 128 --batch-tokens 8192 --steps 12000 --out runs/

  # your own text, cosine schedule, evaluate 16K tokens per split
  bayescale train --width 128 --depth 4 --context 256 --batch-tokens 4096 \\
      --steps 5000 --schedule cosine --data corpus.txt --eval-tokens 16384 --out runs/

  # 4 GPUs with DDP (bf16 autocast and torch.compile are on by default on CUDA);
  # each GPU runs its 65,536 tokens of a step as two passes of 32,768
  torchrun --nproc_per_node 4 -m bayescale.trainer train --width 512 --depth 8 \\
      --context 512 --batch-tokens 262144 --micro-batch-tokens 32768 --steps 10000 \\
      --device cuda --out runs/

Appends one row per evaluation and split to OUT/runs.csv (run, params, batch_tokens,
step, loss, tokens, split, lr, seed, params_total, context, schedule, warmup_steps,
micro_batch_tokens, learning_rate, final_lr_fraction, decay_fraction, total_steps,
vocab_size; learning_rate is the rate of the last optimizer step taken) and writes
OUT/<run>.json. Run the same command again to resume a killed run from
OUT/checkpoints/<run>.pt; a run that already ended is not trained again.
"""

SWEEP_EPILOG = """\
examples:
  # widths x depths x batches x seeds, 16 runs
  bayescale sweep --widths 32,64 --depths 2 --batch-tokens 512,2048 --seeds 0,1 \\
      --context 128 --steps 2000 --out sweep/

  # width and depth together, from a grid file, shard 0 of 4 (e.g. a SLURM array)
  bayescale sweep --grid sweep_grid.toml --shard 0/4 --out sweep/

  # list the runs of the GPU batch sweep with their estimated GPU-hours, train nothing
  bayescale sweep --grid bayescale/data/gpu_batch_sweep.toml --dry-run --mfu 0.3

grid file (TOML; JSON with the same structure works too):
  context = 128            # top-level keys: defaults for every run
  steps = 2000
  [[grid]]                 # each block: Cartesian product of its list values
  shape = ["32x2", "64x3", "128x4"]
  batch_tokens = [256, 1024, 4096]

Finished and diverged runs in OUT are skipped, interrupted ones resume. Each run
belongs to exactly one shard i/n (0 <= i < n). Sweeps may share OUT: each run is
trained by one process, the others count it as busy. With --grid, only --data and the
speed options (--device, --threads, --micro-batch-tokens, ...) may be given as flags.
"""


def _help(name: str, text: str) -> str:
    default = _DEFAULTS.get(name)
    return f"{text} (default: {default})" if default is not None else text


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def _float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _add_training_options(parser: argparse.ArgumentParser, out_required: bool = True) -> None:
    """Options shared by ``train`` and ``sweep`` (one value each)."""
    group = parser.add_argument_group("training")
    group.add_argument("--warmup-steps", type=int, help="linear warm-up steps (default: min(100, steps // 10))")
    group.add_argument("--schedule", choices=SCHEDULES, help=_help("schedule", "learning-rate schedule after warm-up"))
    group.add_argument(
        "--min-lr-ratio", type=float, help=_help("min_lr_ratio", "final lr / peak lr for cosine, linear and wsd")
    )
    group.add_argument(
        "--decay-fraction", type=float, help=_help("decay_fraction", "fraction of steps in the wsd decay")
    )
    group.add_argument(
        "--weight-decay", type=float, help=_help("weight_decay", "AdamW decoupled weight decay on matrices")
    )
    group.add_argument("--grad-clip", type=float, help=_help("grad_clip", "max global gradient norm, 0 disables"))
    group.add_argument(
        "--max-loss-factor",
        type=float,
        help=_help("max_loss_factor", "diverged when the train loss exceeds this times ln(vocab)"),
    )
    data = parser.add_argument_group("data and evaluation")
    data.add_argument(
        "--data",
        metavar="PATH",
        help="text file, folder of text files, or uint16 .bin tokens (default: the Python standard library)",
    )
    data.add_argument("--eval-tokens", type=int, help=_help("eval_tokens", "tokens per evaluation split"))
    data.add_argument(
        "--eval-points",
        type=int,
        dest="eval_log_points",
        metavar="N",
        help=_help("eval_log_points", "log-spaced evaluation steps"),
    )
    data.add_argument("--eval-every", type=int, help="also evaluate every this many steps (default: steps // 10)")
    speed = parser.add_argument_group("hardware and output")
    speed.add_argument("--device", choices=DEVICES, help=_help("device", "where to train"))
    speed.add_argument(
        "--precision", choices=PRECISIONS, help=_help("precision", "auto = bf16 autocast on CUDA, fp32 on CPU")
    )
    speed.add_argument(
        "--compile", choices=COMPILE_MODES, help=_help("compile", "torch.compile; auto = on for CUDA, off for CPU")
    )
    speed.add_argument("--threads", type=int, help="CPU threads (default: torch.get_num_threads())")
    speed.add_argument(
        "--micro-batch-tokens",
        type=int,
        metavar="TOKENS",
        help="at most this many tokens per forward/backward on one device; a larger share of the batch is "
        "split into equal micro-batches with accumulated gradients (default: the whole share; not in run ids)",
    )
    speed.add_argument("--checkpoint-every", type=int, help=_help("checkpoint_every", "steps between checkpoints"))
    speed.add_argument(
        "--keep-checkpoint", action="store_true", default=None, help="keep OUT/checkpoints/<run>.pt after the run ends"
    )
    speed.add_argument("--peak-flops", type=float, help="peak FLOP/s of one device for MFU (default: known GPUs only)")
    speed.add_argument(
        "--out",
        required=out_required,
        metavar="DIR",
        help="output folder (runs.csv, <run>.json, checkpoints/)" + ("" if out_required else "; not for --dry-run"),
    )
    speed.add_argument("--quiet", action="store_true", help="no progress bars or summaries")
    speed.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


_SHARED = (
    "warmup_steps",
    "schedule",
    "min_lr_ratio",
    "decay_fraction",
    "weight_decay",
    "grad_clip",
    "max_loss_factor",
    "data",
    "eval_tokens",
    "eval_log_points",
    "eval_every",
    "precision",
    *SPEED_FIELDS,
)
#: Flags that may override a grid file: the speed settings, and the corpus (the same
#: grid on other data; the data path enters the run ids).
GRID_OVERRIDES = (*SPEED_FIELDS, "data")


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to an argparse ``_SubParsersAction``."""
    parser = subparsers.add_parser(
        "train",
        help="train one GPT and record its evaluation-loss curve",
        description="Train one decoder-only transformer and append its evaluation losses to OUT/runs.csv.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model = parser.add_argument_group("model and batch")
    model.add_argument("--width", type=int, help="residual width d (or --shape)")
    model.add_argument("--depth", type=int, help="transformer blocks L (or --shape)")
    model.add_argument("--shape", metavar="WIDTHxDEPTH",
                       help="width and depth in one, e.g. 376x6 (the shape column of bayescale budget)")
    model.add_argument("--heads", type=int, help="attention heads (default: head width about 32)")
    model.add_argument("--context", type=int, required=True, help="sequence length T in tokens")
    model.add_argument("--batch-tokens", type=int, required=True, help="tokens per optimizer step, a multiple of T")
    model.add_argument("--steps", type=int, required=True, help="optimizer steps S")
    model.add_argument("--lr", type=float, help=_help("lr", "peak AdamW learning rate"))
    model.add_argument("--seed", type=int, help=_help("seed", "initialisation and batch-order seed"))
    _add_training_options(parser)
    parser.set_defaults(func=run_train)
    return parser


def add_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to an argparse ``_SubParsersAction``."""
    parser = subparsers.add_parser(
        "sweep",
        help="train a grid of runs (resumable, shardable)",
        description="Train every run of a grid into one output folder; lists are comma-separated.",
        epilog=SWEEP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grid = parser.add_argument_group("grid (flags, or --grid FILE)")
    grid.add_argument("--grid", metavar="FILE", help="TOML or JSON grid file (see below)")
    grid.add_argument("--widths", type=_int_list, help="widths, e.g. 32,64")
    grid.add_argument("--depths", type=_int_list, help="depths, e.g. 2,4")
    grid.add_argument("--shapes", type=_str_list, help="WIDTHxDEPTH pairs instead of widths x depths, e.g. 32x2,64x3")
    grid.add_argument("--heads", type=_int_list, help="attention heads (default: head width about 32)")
    grid.add_argument("--context", type=_int_list, help="sequence lengths, e.g. 128")
    grid.add_argument("--batch-tokens", type=_int_list, help="tokens per step, e.g. 512,2048")
    grid.add_argument("--steps", type=_int_list, help="optimizer steps, e.g. 2000")
    grid.add_argument("--lr", type=_float_list, help=_help("lr", "peak learning rates, e.g. 1e-3,3e-3"))
    grid.add_argument("--seeds", type=_int_list, help=_help("seed", "seeds, e.g. 0,1,2"))
    grid.add_argument("--shard", default="0/1", help="run only shard i of n, e.g. 2/8 (default: 0/1, all runs)")
    plan = parser.add_argument_group("plan without training")
    plan.add_argument(
        "--dry-run",
        action="store_true",
        help="print the runs with their estimated GPU-hours and the total, train nothing",
    )
    plan.add_argument(
        "--mfu",
        type=float,
        default=PLAN_MFU,
        help=f"model FLOPs utilisation the estimate assumes; achieved FLOP/s = --peak-flops (default "
        f"{PLAN_PEAK_FLOPS:.3g}, an H100's dense bf16 peak) times this (default: {PLAN_MFU})",
    )
    _add_training_options(parser, out_required=False)
    parser.set_defaults(func=run_sweep)
    return parser


_GRID_FLAGS = {
    "widths": "width",
    "depths": "depth",
    "shapes": "shape",
    "heads": "heads",
    "context": "context",
    "batch_tokens": "batch_tokens",
    "steps": "steps",
    "lr": "lr",
    "seeds": "seed",
}


def sweep_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The grid spec of a parsed ``sweep`` command (from ``--grid`` or the flags)."""
    from .sweep import load_grid

    flags = {key: getattr(args, attr) for attr, key in _GRID_FLAGS.items() if getattr(args, attr) is not None}
    shared = _given(args, _SHARED)
    if args.grid is not None:
        extra = sorted(set(flags) | (set(shared) - set(GRID_OVERRIDES)))
        if extra:
            raise TrainerError(
                f"--grid cannot be combined with {', '.join(extra)}; put them in {args.grid} "
                f"(only {', '.join(GRID_OVERRIDES)} may override a grid file)"
            )
        spec = load_grid(args.grid)
        for name, value in shared.items():
            spec[name] = value
            for block in spec.get("grid", []):
                block.pop(name, None)
        return spec
    if "shape" in flags and ("width" in flags or "depth" in flags):
        raise TrainerError("--shapes cannot be combined with --widths/--depths; use one or the other")
    missing = [
        f"--{a.replace('_', '-')}"
        for a, k in _GRID_FLAGS.items()
        if k in ("context", "batch_tokens", "steps") and k not in flags
    ]
    if "shape" not in flags and not ("width" in flags and "depth" in flags):
        missing.insert(0, "--widths and --depths (or --shapes)")
    if missing:
        raise TrainerError(f"sweep needs {', '.join(missing)}, or a grid file with --grid FILE")
    return {**shared, **flags}


def run_train(args: argparse.Namespace) -> int:
    """Run ``bayescale train``; 0 when the run finished, 1 when it diverged."""
    if args.shape is not None:
        if args.width is not None or args.depth is not None:
            raise TrainerError("--shape cannot be combined with --width/--depth; use one or the other")
        args.width, args.depth = parse_shape(args.shape)
    elif args.width is None or args.depth is None:
        raise TrainerError("give the model's shape: --width and --depth, or --shape WIDTHxDEPTH")
    values = {
        name: getattr(args, name)
        for name in ("width", "depth", "heads", "context", "batch_tokens", "steps", "lr", "seed")
        if getattr(args, name) is not None
    }
    config = TrainConfig(**values, **_given(args, _SHARED))
    from .training import train

    result = train(config, args.out, quiet=args.quiet)
    if args.json:
        print(
            json.dumps(
                {"run": result.run, "status": result.status, "skipped": result.skipped, "metadata": result.metadata},
                indent=2,
            )
        )
    elif not args.quiet:
        _report(result.run, result.status, result.skipped, result.final_loss, result.metadata, args.out)
    return 0 if result.status == "finished" else 1


def _report(run: str, status: str, skipped: bool, losses: dict[str, float], metadata: dict[str, Any], out: str) -> None:
    """One or two summary lines on stderr."""
    if skipped:
        print(
            f"{run} already {status} in {out}; delete {out}/{run}.json and its rows to train it again", file=sys.stderr
        )
        return
    timing = metadata.get("timing", {})
    loss_text = ", ".join(f"{k} {v:.4f}" for k, v in losses.items())
    speed = f" {timing['tokens_per_s']:.0f} tokens/s" if timing.get("tokens_per_s") else ""
    print(f"{status} {run}: {loss_text}{speed}", file=sys.stderr)
    if status == "diverged":
        divergence = metadata["divergence"]
        print(f"diverged at step {divergence['step']}: {divergence['reason']}", file=sys.stderr)


def run_sweep(args: argparse.Namespace) -> int:
    """Run ``bayescale sweep``; 0 when no run of the shard diverged, else 1.

    Runs that another process sharing ``--out`` is training count as busy, not as
    failures: that process records them.
    """
    from .sweep import expand_grid, parse_shard, shard_runs
    from .sweep import run_sweep as sweep

    shard = parse_shard(args.shard)
    configs = expand_grid(sweep_spec(args))
    if args.dry_run:
        return _print_plan(shard_runs(configs, *shard), args)
    if args.out is None:
        raise TrainerError("sweep needs --out DIR for its runs, or --dry-run to only list them")
    result = sweep(configs, args.out, shard=shard, quiet=args.quiet)
    summary = {
        "finished": result.finished,
        "diverged": result.diverged,
        "skipped": result.skipped,
        "busy": result.busy,
        "wall_time_s": result.wall_time_s,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        busy = f", {len(result.busy)} busy (trained by another process)" if result.busy else ""
        print(
            f"sweep shard {args.shard}: {len(result.finished)} finished, {len(result.diverged)} diverged, "
            f"{len(result.skipped)} skipped{busy} in {result.wall_time_s:.0f} s",
            file=sys.stderr,
        )
    return 0 if result.ok else 1


def _print_plan(configs: list[TrainConfig], args: argparse.Namespace) -> int:
    """Print the runs of ``configs`` with their estimated GPU-hours and the total (``--dry-run``)."""
    from dataclasses import asdict

    from .sweep import plan

    peak = args.peak_flops if args.peak_flops is not None else PLAN_PEAK_FLOPS
    runs = plan(configs, peak, args.mfu)
    total_flops = sum(r.flops for r in runs)
    total_hours = sum(r.hours for r in runs)
    assumption = (
        f"{peak * args.mfu / 1e12:.4g} TFLOP/s achieved per GPU = peak {peak / 1e12:.4g} TFLOP/s (--peak-flops) "
        f"x MFU {args.mfu:g} (--mfu); FLOPs = (6N + 6*layers*context*width) x tokens, training only"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "runs": [asdict(r) for r in runs],
                    "total_flops": total_flops,
                    "total_gpu_hours": total_hours,
                    "peak_flops": peak,
                    "mfu": args.mfu,
                    "assumption": assumption,
                },
                indent=2,
            )
        )
        return 0
    width = max([len("run"), *(len(r.run) for r in runs)])
    print(
        f"{'run':<{width}} {'N':>11} {'batch':>10} {'micro':>8} {'steps':>7} {'tokens':>9} {'FLOPs':>9} "
        f"{'GPU-hours':>9}"
    )
    for r in runs:
        print(
            f"{r.run:<{width}} {r.params:>11,} {r.batch_tokens:>10,} {r.micro_batch_tokens:>8,} {r.steps:>7,} "
            f"{r.tokens:>9.3g} {r.flops:>9.3g} {r.hours:>9.3f}"
        )
    print(f"total: {len(runs)} runs, {total_flops:.3g} FLOPs, {total_hours:.1f} GPU-hours at {assumption}")
    return 0
