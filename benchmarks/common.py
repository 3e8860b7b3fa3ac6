"""What the benchmark scripts share: their sampler and data options, timed fits of the
bundled sweep in fresh processes, and the section each appends to benchmarks/RESULTS.md.

The scripts run as ``python benchmarks/NAME.py``, so this folder is on the import path and
they import it as ``from common import ...``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from bayescale.defaults import CHAIN_METHODS

#: The file every benchmark appends its dated section to.
RESULTS = Path(__file__).with_name("RESULTS.md")
#: The repository root, which a relative ``--data`` is taken from.
ROOT = Path(__file__).resolve().parent.parent
#: The bundled sweep's run table, which the timing scripts fit.
BUNDLED_RUNS = ROOT / "bayescale" / "data" / "sweep_runs.csv"
#: Where the public run data lies by default, relative to the repository root.
DATA = Path("../shared/data")


def add_data_option(parser: argparse.ArgumentParser, holds: str) -> None:
    """``--data``: the folder of public run data (``holds`` names the subfolders the script
    reads, e.g. "gemstones2025/"); :func:`data_folder` resolves it."""
    parser.add_argument("--data", type=Path, default=DATA,
                        help=f"folder with {holds}, relative to the repository root unless absolute "
                             f"(default: {DATA})")


def data_folder(args: argparse.Namespace) -> Path:
    """The folder ``--data`` names: as given when absolute, else below the repository root."""
    return args.data if args.data.is_absolute() else ROOT / args.data


def add_sampler_options(parser: argparse.ArgumentParser, *, chains: int, draws: int, warmup: int | None = None,
                        seed: bool = True, target_accept: float | None = None, chain_method: str | None = None,
                        help: Mapping[str, str] | None = None) -> None:
    """``--chains``, ``--warmup``, ``--draws``, ``--seed``, ``--target-accept`` and ``--chain-method``
    with the script's defaults; an option whose default is ``None`` (``seed=False``) is not
    offered. ``help`` replaces the help of some, by destination (e.g. ``{"draws": ...}``)
    where a script says more about its setting."""
    texts = {
        "chains": f"NUTS chains (default: {chains})",
        "warmup": f"NUTS warm-up iterations per chain (default: {warmup})",
        "draws": f"NUTS draws per chain (default: {draws})",
        "seed": "random seed (default: 0)",
        "target_accept": f"NUTS target acceptance (default: {target_accept})",
        "chain_method": f"how chains run (default: {chain_method})",
        **(help or {}),
    }
    parser.add_argument("--chains", type=int, default=chains, help=texts["chains"])
    if warmup is not None:
        parser.add_argument("--warmup", type=int, default=warmup, help=texts["warmup"])
    parser.add_argument("--draws", type=int, default=draws, help=texts["draws"])
    if seed:
        parser.add_argument("--seed", type=int, default=0, help=texts["seed"])
    if target_accept is not None:
        parser.add_argument("--target-accept", type=float, default=target_accept, help=texts["target_accept"])
    if chain_method is not None:
        parser.add_argument("--chain-method", default=chain_method, choices=CHAIN_METHODS,
                            help=texts["chain_method"])


def add_append_option(parser: argparse.ArgumentParser) -> None:
    """``--no-append``: print the section only."""
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to RESULTS.md")


def append_results(section: str) -> None:
    """Append ``section`` (a Markdown section that starts with a blank line) and a newline to RESULTS.md."""
    with RESULTS.open("a") as fh:
        fh.write(section + "\n")


def publish(section: str, args: argparse.Namespace) -> None:
    """Print ``section`` and append it to RESULTS.md unless ``--no-append`` was given."""
    print(section)
    if not args.no_append:
        append_results(section)


def markdown_table(df, float_format: str | None = None) -> str:
    """A GitHub-flavoured Markdown table of ``df``'s cells as they are, or with floats
    written by ``float_format`` (e.g. ``"{:.4g}"``)."""
    def cell(v) -> str:
        return float_format.format(v) if float_format and isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def bundled_fit_seconds(args: argparse.Namespace, out: Path, *, python: str = sys.executable,
                        cache: Path | None = None, seed: int | None = None) -> float:
    """Wall time of one ``bayescale fit`` of :data:`BUNDLED_RUNS` in a fresh process, from start
    to exit: ``python``'s install, NUTS settings from ``args`` (``--chains``, ``--warmup``,
    ``--draws``; ``seed`` defaults to ``--seed``), JAX's persistent compilation cache in
    ``cache`` or, without one, none (every ``JAX_`` variable of this process left out)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    if cache is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    command = [python, "-m", "bayescale.cli", "fit", "--runs", str(BUNDLED_RUNS), "--out", str(out),
               "--chains", str(args.chains), "--warmup", str(args.warmup), "--draws", str(args.draws),
               "--seed", str(args.seed if seed is None else seed), "--quiet"]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def timing_table(seconds: Mapping[str, list[float]], label: str, base: str, digits: int = 1) -> pd.DataFrame:
    """One row per condition (its name under ``label``) of repeated timings taken side by side:
    the median, fastest and slowest seconds and the median of the per-repeat ratios to the
    condition ``base``."""
    return pd.DataFrame([{
        label: name, "median s": f"{statistics.median(v):.{digits}f}", "fastest s": f"{min(v):.{digits}f}",
        "slowest s": f"{max(v):.{digits}f}",
        f"median ratio to {base}": f"{statistics.median(x / b for x, b in zip(v, seconds[base])):.2f}",
    } for name, v in seconds.items()])


def bundled_fit_setting(args: argparse.Namespace) -> str:
    """The words for what :func:`bundled_fit_seconds` times, for a section's conditions."""
    runs = pd.read_csv(BUNDLED_RUNS)
    return (f"`bayescale fit` of the bundled sweep ({runs['run'].nunique()} runs, {len(runs)} rows; the default "
            f"law and transient cut) with NUTS {args.chains} chains x {args.draws} draws ({args.warmup} warmup)")


def print_round(repeat: int, repeats: int, seconds: Mapping[str, list[float]], digits: int = 1) -> None:
    """A progress line on stderr with each condition's latest timing, after each round of them."""
    print(f"repeat {repeat + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.{digits}f} s" for k, v in seconds.items()),
          file=sys.stderr)
