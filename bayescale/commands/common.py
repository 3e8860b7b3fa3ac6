"""Argument types and output helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

# NumPy and pandas are imported where they are used, so that `bayescale --help` stays fast.
if TYPE_CHECKING:
    import pandas as pd

    from bayescale.diagnostics import Diagnostics
    from bayescale.hardware import Hardware, Throughput

FORMATTER = argparse.RawDescriptionHelpFormatter


def _number(text: str, expected: str) -> float:
    """A finite number from ``text``, which may be ``1e9`` or a power such as ``2**19``."""
    base, _, exponent = text.partition("**")
    try:
        value = float(base) ** float(exponent) if exponent else float(text)
    except (ValueError, OverflowError) as err:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from err
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type for a positive number; accepts ``1e9`` and ``2**19``."""
    value = _number(text, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """An argparse type for a number >= 0; accepts ``0``, ``1e9`` and ``2**19``."""
    value = _number(text, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def level(text: str) -> float:
    """An argparse type for an interval probability in (0, 1)."""
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a probability such as 0.9, got {text!r}") from err
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"a level must be in (0, 1), e.g. 0.9; got {text!r}")
    return value


def column_map(text: str) -> dict[str, str]:
    """``params=N_no_embed,loss=eval_loss`` -> ``{"params": "N_no_embed", "loss": "eval_loss"}``."""
    pairs = [p for p in text.split(",") if p.strip()]
    try:
        return dict((k.strip(), v.strip()) for k, v in (p.split("=", 1) for p in pairs))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected schema=column pairs such as params=N_no_embed, got {text!r}") from err


def check_output(path: Path | None, option: str = "--out", folder: bool = False, example: str = "out") -> None:
    """Raise ``ValueError`` unless ``path`` can be written; commands call it before any work.

    A file path (``folder=False``) may not be an existing folder or a read-only file; a
    folder path may not be an existing file. The nearest existing folder at or above the
    place to write must be a folder in which a file can be created (tested by creating
    and removing one, which also holds for a user that bypasses permission bits).
    Missing folders below it are created by the command when it writes. ``example`` is
    the file name suggested inside a folder given for a file.
    """
    if path is None:
        return
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: is a file, not a folder; give a folder path, e.g. {path.with_suffix('')}_out")
    if not folder and path.is_dir():
        raise ValueError(f"{option} {path}: is an existing folder; give a file path, e.g. {path / example}")
    if not folder and path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{option} {path}: the file is read-only; choose another {option} or make it writable")
    place = path if folder else path.parent
    while not place.exists() and place != place.parent:
        place = place.parent
    if not place.is_dir():
        raise ValueError(f"{option} {path}: {place} is a file, not a folder; choose another {option}")
    try:
        handle, probe = tempfile.mkstemp(dir=place, prefix=".bayescale-write-test-")
    except OSError as err:
        raise ValueError(f"{option} {path}: cannot write in {place} ({err.strerror or err}); "
                         f"choose a writable {option}") from err
    os.close(handle)
    os.unlink(probe)


def add_runs_arguments(parser: argparse.ArgumentParser, metavar: str = "FILE", what: str = "run table",
                       example: str = "params=N_no_embed", required: bool = True, help: str | None = None) -> None:
    """``--runs`` (a table in the run-table schema) and the options every command that reads
    one shares: ``--column-map`` (renames onto the schema), ``--batch-tokens`` and
    ``--context`` (a batch the file does not give in tokens), ``--max-params`` and
    ``--where`` (keep some rows, e.g. a held-out split). :func:`read_runs_arguments`
    applies them."""
    parser.add_argument("--runs", required=required, type=Path, metavar=metavar,
                        help=help or f"{what} (CSV, Parquet or JSON lines) in the run-table schema")
    parser.add_argument("--column-map", type=column_map, metavar="SCHEMA=COLUMN,...",
                        help=f"rename the file's columns onto the schema, e.g. {example}")
    parser.add_argument("--batch-tokens", type=positive_float, metavar="B",
                        help="tokens per optimizer step of every run, for a file without a batch_tokens column")
    parser.add_argument("--context", type=positive_float, metavar="T",
                        help="tokens per sequence: batch_tokens = batch_sequences x T for a file that gives "
                             "its batch in sequences (map it: --column-map batch_sequences=COL)")
    parser.add_argument("--max-params", type=positive_float, metavar="N", help="keep only rows with params <= N")
    parser.add_argument("--where", metavar="EXPR",
                        help="keep only rows where EXPR holds (pandas query syntax), "
                             "e.g. \"params < 1e6 and split == 'in_domain'\"")


def read_runs_arguments(args: argparse.Namespace, group_columns: list[str] | tuple[str, ...] = (),
                        loader=None) -> pd.DataFrame | None:
    """The run table of :func:`add_runs_arguments`' options (``None`` without ``--runs``).

    ``loader`` is an adapter for public data (``bayescale.runs.load_gadre2024``), which maps
    its own columns and batch: ``--column-map``, ``--batch-tokens`` and ``--context`` are
    refused with it; the row filters apply to every format.
    """
    from bayescale.runs import load_runs, select_runs

    if args.runs is None:
        return None
    if loader is None:
        runs = load_runs(args.runs, columns=args.column_map, group_columns=list(group_columns),
                         batch_tokens=args.batch_tokens, context=args.context)
    else:
        given = [name for name, value in (("--column-map", args.column_map), ("--batch-tokens", args.batch_tokens),
                                          ("--context", args.context)) if value]
        if given:
            raise ValueError(f"{', '.join(given)} applies to --format table only; adapters map their own columns")
        runs = loader(args.runs)
    return select_runs(runs, max_params=args.max_params, where=args.where, source=str(args.runs))


def fraction(text: str) -> float:
    """An argparse type for a number in [0, 1]."""
    value = _number(text, "a fraction in [0, 1]")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text!r}")
    return value


def whole_number(text: str) -> int:
    """An argparse type for an integer >= 0."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from err
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


SCHEDULE_HELP = """The run's learning-rate schedule (forecast by schedule-aware laws, --model kaplan_schedule;
other laws forecast a constant rate only): a shape stretched to the run's planned last
step, --schedule constant|cosine|wsd|linear with --warmup-steps, --final-lr-fraction
(final rate / peak rate) and --decay-fraction (share of the steps in the WSD decay), or
an explicit --schedule-file (CSV with step,learning_rate). Default: constant."""


def add_schedule_arguments(parser: argparse.ArgumentParser) -> None:
    """``--schedule``, ``--warmup-steps``, ``--final-lr-fraction``, ``--decay-fraction``, ``--schedule-file``."""
    from bayescale.defaults import SCHEDULE_KINDS

    group = parser.add_argument_group("learning-rate schedule", SCHEDULE_HELP)
    group.add_argument("--schedule", choices=SCHEDULE_KINDS, help="schedule shape (default: constant)")
    group.add_argument("--warmup-steps", type=whole_number, metavar="W", help="linear warm-up steps (default: 0)")
    group.add_argument("--final-lr-fraction", type=fraction, metavar="F",
                       help="final rate / peak rate of cosine, wsd and linear (default: 0.1)")
    group.add_argument("--decay-fraction", type=fraction, metavar="F",
                       help="share of the steps in the wsd decay (default: 0.2)")
    group.add_argument("--schedule-file", type=Path, metavar="CSV", help="explicit schedule: CSV with step,learning_rate")


def read_schedule(args: argparse.Namespace, kind: str | None = None):
    """The :class:`~bayescale.schedules.Schedule` the schedule options give (``kind`` overrides
    ``--schedule``), or ``None`` when none is given; ``ValueError`` on contradictory options."""
    from bayescale.schedules import Schedule

    kind = kind or args.schedule
    shape = {name: getattr(args, name) for name in ("warmup_steps", "final_lr_fraction", "decay_fraction")
             if getattr(args, name) is not None}
    if args.schedule_file is not None:
        if kind or shape:
            raise ValueError("--schedule-file gives the whole schedule; leave out --schedule, --warmup-steps, "
                             "--final-lr-fraction and --decay-fraction")
        return Schedule.from_file(args.schedule_file)
    if kind is None:
        if shape:
            raise ValueError(f"--{next(iter(shape)).replace('_', '-')} shapes a schedule; give --schedule too "
                             "(e.g. --schedule cosine)")
        return None
    return Schedule(kind, **shape)


HARDWARE_HELP = """The hours of the recommended run: its FLOPs / (GPUs x peak FLOP/s x MFU), the
estimate of `bayescale sweep --dry-run`; wall-clock time assumes the run splits evenly
over its GPUs."""
#: Destinations of the hardware options, for commands that accept them only with others.
HARDWARE_OPTIONS = ("gpus", "peak_flops", "mfu")


def add_hardware_arguments(parser: argparse.ArgumentParser) -> None:
    """``--gpus``, ``--peak-flops`` and ``--mfu``: the hardware whose hours a command states."""
    from bayescale.defaults import PLAN_MFU, PLAN_PEAK_FLOPS

    group = parser.add_argument_group("hardware", HARDWARE_HELP)
    group.add_argument("--gpus", type=whole_number, metavar="G", help="GPUs the run trains on (default: 1)")
    group.add_argument("--peak-flops", type=positive_float, metavar="F",
                       help=f"peak FLOP/s of one GPU (default: {PLAN_PEAK_FLOPS:.3g}, an H100's dense bf16 peak)")
    group.add_argument("--mfu", type=fraction, metavar="U",
                       help=f"model FLOPs utilisation, in (0, 1] (default: {PLAN_MFU:g})")


def read_hardware(args: argparse.Namespace) -> Hardware | None:
    """The :class:`~bayescale.hardware.Hardware` the options of :func:`add_hardware_arguments`
    give (its defaults for those left out), or ``None`` when none is given."""
    from bayescale.hardware import Hardware

    given = {name: getattr(args, name) for name in HARDWARE_OPTIONS if getattr(args, name) is not None}
    return Hardware(**given) if given else None


def flop_product(text: str) -> float:
    """``6*24*2048*1024`` -> 301989888.0; also a plain number (0 for none) or ``2**19``."""
    if "**" in text or "*" not in text:
        return nonnegative_float(text)
    return float(math.prod(positive_float(factor) for factor in text.split("*")))


def add_search_arguments(parser: argparse.ArgumentParser, description: str | None = None, grid: bool = True) -> None:
    """The limits and grids of a budget's candidate search (``--min-params`` ... ``--params-per-decade``);
    without the size limits and the batch grid when ``grid`` is false, for a command whose
    ``--max-params`` and ``--batch-tokens`` describe a run table. :func:`read_search_space`
    reads them, with the schedule options."""
    limits = parser.add_argument_group("search space", description)
    if grid:
        limits.add_argument("--min-params", type=positive_float, metavar="N",
                            help="smallest model (default: smallest fitted)")
        limits.add_argument("--max-params", type=positive_float, metavar="N",
                            help="largest model (default: the largest that trains --min-steps)")
        limits.add_argument("--batch-tokens", type=positive_float, action="append", metavar="B",
                            help="a batch choice in tokens; repeat (default: powers of two from 1/4 of the smallest "
                                 "to 16x the largest fitted batch)")
    limits.add_argument("--min-steps", type=positive_float, default=100.0, metavar="S",
                        help="fewest steps a run may take (default: 100)")
    limits.add_argument("--max-steps", type=positive_float, metavar="S", help="most steps a run may take")
    limits.add_argument("--max-tokens", type=positive_float, metavar="E",
                        help="most tokens a run may see (e.g. the dataset size)")
    limits.add_argument("--max-hours", type=positive_float, metavar="H",
                        help="wall-clock limit per run, at the FLOP rate of --tokens-per-second and "
                             "--throughput-params or, without them, of the hardware (--gpus, --peak-flops, --mfu): "
                             "it caps every candidate's compute at rate x hours, since at one FLOP rate a run's time "
                             "is its compute, whatever its size")
    limits.add_argument("--tokens-per-second", type=positive_float, metavar="R",
                        help="training throughput measured on a model of --throughput-params non-embedding "
                             "parameters; with --max-hours it gives the FLOP rate R x (6 N + attention FLOPs per "
                             "token)")
    limits.add_argument("--throughput-params", type=positive_float, metavar="N",
                        help="the model size --tokens-per-second was measured on")
    limits.add_argument("--attention-flops-per-token", type=flop_product, default=0.0, metavar="A",
                        help="training attention FLOPs per token added to 6N, e.g. 6*n_layer*n_ctx*d_attn "
                             "(default: 0)")
    limits.add_argument("--params-per-decade", type=int, default=8, metavar="K",
                        help="model sizes per decade (default: 8)")


def read_search_space(args: argparse.Namespace, grid: bool = True):
    """The :class:`~bayescale.budget.SearchSpace` of :func:`add_search_arguments`'s options (with
    the same ``grid``) and the schedule options (:func:`read_schedule`); a wall-clock limit
    becomes the compute a run may spend at its FLOP rate (the measured throughput's, or the
    hardware options' of :func:`add_hardware_arguments`). Raises ``ValueError`` for a
    throughput without its model size or its limit, or a limit without a rate."""
    from bayescale.budget import SearchSpace

    sizes = (args.min_params, args.max_params, tuple(args.batch_tokens or ()) or None) if grid else (None,) * 3
    return SearchSpace(min_params=sizes[0], max_params=sizes[1], batch_tokens=sizes[2],
                       min_steps=args.min_steps, max_steps=args.max_steps, max_tokens=args.max_tokens,
                       max_run_flops=wall_clock_flops(args),
                       attention_flops_per_token=args.attention_flops_per_token,
                       params_per_decade=args.params_per_decade, schedule=read_schedule(args))


def read_speed(args: argparse.Namespace) -> Hardware | Throughput | None:
    """How fast runs train: the :class:`~bayescale.hardware.Throughput` measured with
    ``--tokens-per-second`` on a model of ``--throughput-params`` when given, else
    :func:`read_hardware`'s hardware (``None`` without either)."""
    from bayescale.hardware import Throughput

    measured = (args.tokens_per_second, args.throughput_params)
    if any(v is not None for v in measured) and (None in measured or args.max_hours is None):
        raise ValueError("--tokens-per-second, --throughput-params and --max-hours go together: the throughput "
                         "measured on a model of that size gives the FLOP rate of the wall-clock limit")
    if args.tokens_per_second is None:
        return read_hardware(args)
    return Throughput(args.tokens_per_second, args.throughput_params,
                      6 * args.throughput_params + args.attention_flops_per_token)


def wall_clock_flops(args: argparse.Namespace) -> float | None:
    """The compute one run may spend within ``--max-hours``: the hours times the FLOP rate of
    :func:`read_speed`; ``None`` without a limit."""
    from bayescale.hardware import SECONDS_PER_HOUR

    speed = read_speed(args)
    if args.max_hours is None:
        return None
    if speed is None:
        raise ValueError("--max-hours needs a FLOP rate: --tokens-per-second R --throughput-params N (measured), "
                         "or the hardware (--gpus, --peak-flops, --mfu)")
    return speed.flops_per_second * args.max_hours * SECONDS_PER_HOUR


def add_sampler_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                          inherited: str | None = None, *, defaults: Mapping[str, Any] | None = None,
                          shown: Mapping[str, str] | None = None, settings: Collection[str] | None = None,
                          each: str = "", seed: bool = False) -> None:
    """``--chains``, ``--warmup``, ``--draws``, ``--target-accept``, ``--chain-method`` and
    ``--quiet``: the NUTS settings of a fit, with ``bayescale fit``'s defaults, or none where
    ``inherited`` names where they come from instead (e.g. "the ladder fit's");
    :func:`sampler_options` reads them.

    ``defaults`` overrides some of those defaults by setting name (``chains``, ``warmup``,
    ``draws``, ``target_accept``, ``chain_method``); a default of ``None`` leaves the value
    to the command, whose help then shows ``shown[name]`` (e.g. one that depends on another
    option). ``settings`` keeps only the named settings' options, for a command that fixes
    the others; ``each`` ends the help of ``--chains`` (e.g. " per model"); ``seed`` adds
    ``--seed`` (default: 0) after the others.
    """
    from bayescale.defaults import CHAIN_METHODS, SAMPLER_DEFAULTS, SAMPLER_SETTINGS

    values = {**({} if inherited else SAMPLER_DEFAULTS), **(defaults or {})}
    kept = SAMPLER_SETTINGS if settings is None else tuple(settings)
    unknown = [name for name in [*kept, *values] if name not in SAMPLER_SETTINGS]
    if unknown:
        raise ValueError(f"unknown sampler setting(s) {', '.join(unknown)}; choose from {', '.join(SAMPLER_SETTINGS)}")

    def shown_default(name: str) -> str:
        text = (shown or {}).get(name)
        return f"default: {text or (inherited if values.get(name) is None else values[name])}"

    options = {
        "chains": dict(type=int, help=f"NUTS chains{each} ({shown_default('chains')})"),
        "warmup": dict(type=int, help=f"warmup iterations per chain ({shown_default('warmup')})"),
        "draws": dict(type=int, help=f"kept draws per chain ({shown_default('draws')})"),
        "target_accept": dict(type=float, help="NUTS target acceptance; raise towards 0.95 if there are divergences "
                                                f"({shown_default('target_accept')})"),
        "chain_method": dict(choices=CHAIN_METHODS, help="how chains run: parallel uses one CPU device per chain "
                                                         f"({shown_default('chain_method')})"),
    }
    for name, spec in options.items():
        if name in kept:
            parser.add_argument(f"--{name.replace('_', '-')}", default=values.get(name), **spec)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    if seed:
        parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def sampler_options(args: argparse.Namespace) -> dict[str, Any]:
    """The NUTS settings given by :func:`add_sampler_arguments`' options (those left out, or not
    offered, omitted), as keyword arguments of :func:`bayescale.fit.fit`."""
    from bayescale.defaults import SAMPLER_SETTINGS

    return {name: getattr(args, name) for name in SAMPLER_SETTINGS if getattr(args, name, None) is not None}


def posterior_command(subparsers, name: str, help: str, module_doc: str, epilog: str) -> argparse.ArgumentParser:
    """The parser of a command that reads a posterior: its help page and ``--posterior``."""
    parser = subparsers.add_parser(name, help=help, description=module_doc, epilog=epilog, formatter_class=FORMATTER)
    parser.add_argument("--posterior", required=True, type=Path, metavar="P.nc",
                        help="posterior written by `bayescale fit --out`")
    return parser


def to_jsonable(obj: Any) -> Any:
    """DataFrames to records, NumPy scalars and non-finite floats to JSON-safe values."""
    import numpy as np
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        return [to_jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def print_json(obj: Any) -> None:
    json.dump(to_jsonable(obj), sys.stdout, indent=2)
    sys.stdout.write("\n")


def format_table(df: pd.DataFrame) -> str:
    return df.to_string(index=False, float_format=lambda v: f"{v:.6g}")


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr so stdout stays machine-readable."""
    print(f"bayescale: {message}", file=sys.stderr)


def extrapolation_note(what: str, description: str, factors: dict[str, float]) -> str:
    """``what: description`` of how far a forecast lies beyond the fitted data, prefixed
    ``warning:`` and naming the threshold when one of the per-axis ``factors`` exceeds
    :data:`~bayescale.defaults.EXTRAPOLATION_WARN_FACTOR`."""
    from bayescale.defaults import EXTRAPOLATION_WARN_FACTOR

    far = max(factors.values()) > EXTRAPOLATION_WARN_FACTOR
    return (f"{'warning: ' if far else ''}{what}: {description}"
            f"{f' (forecasts warn above x{EXTRAPOLATION_WARN_FACTOR:g})' if far else ''}")


#: Exit code of ``fit --strict`` and ``demo --strict`` when the convergence gate fails.
EXIT_GATE_FAILED = 3


def gate_exit_code(diagnostics: Diagnostics, strict: bool) -> int:
    """0, or :data:`EXIT_GATE_FAILED` when ``strict`` and ``diagnostics`` fail the gate
    (the warning that names the fix has already been printed)."""
    return EXIT_GATE_FAILED if strict and not diagnostics.passed else 0
