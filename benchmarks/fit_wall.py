"""Wall time of ``bayescale fit`` on the bundled sweep, for this install and for baselines.

A change that speeds up or slows down a fit is measured against the install it replaces:
give each baseline's Python (e.g. the virtual environment of a checkout of the previous
commit, ``--baseline old=../old/.venv/bin/python``). Each fit runs ``python -m bayescale.cli
fit`` of ``bayescale/data/sweep_runs.csv`` in a fresh process, without JAX's persistent
compilation cache (a small fit is mostly compiling, and a warm cache would hide it), timed
from start to exit. The installs alternate ``--repeats`` times, so that a burst of load on a
shared machine hits all alike. Prints the median, fastest and slowest wall time of each and
the median of the per-repeat ratios to the first baseline (to this install when there is
none), and appends the table to benchmarks/RESULTS.md.

Run: ``python benchmarks/fit_wall.py [--baseline NAME=PYTHON ...] [--repeats 3]
[--chains 2 --warmup 300 --draws 300]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

from common import (add_append_option, add_sampler_options, bundled_fit_seconds, bundled_fit_setting, markdown_table,
                    print_round, publish, timing_table)

from bayescale.environment import conditions

THIS = "this install"


def baseline(text: str) -> tuple[str, str]:
    """``NAME=PYTHON`` of ``--baseline``."""
    name, sep, python = text.partition("=")
    if not sep or not name or not python:
        raise argparse.ArgumentTypeError(f"--baseline {text!r}: give NAME=PYTHON, e.g. old=../old/.venv/bin/python")
    if not Path(python).is_file():
        raise argparse.ArgumentTypeError(f"--baseline {text!r}: {python} is not a file")
    return name, python


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sampler_options(ap, chains=2, warmup=300, draws=300)
    ap.add_argument("--baseline", type=baseline, action="append", default=[], metavar="NAME=PYTHON",
                    help="another install's Python to time the same fit with; repeat for several")
    ap.add_argument("--repeats", type=int, default=3, help="fits per install (default: 3)")
    add_append_option(ap)
    args = ap.parse_args()
    installs = dict(args.baseline) | {THIS: sys.executable}
    seconds: dict[str, list[float]] = {name: [] for name in installs}
    with tempfile.TemporaryDirectory(prefix="bayescale-fit-wall-") as tmp:
        for repeat in range(args.repeats):
            for name, python in installs.items():
                seconds[name].append(bundled_fit_seconds(args, Path(tmp) / "p.nc", python=python))
            print_round(repeat, args.repeats, seconds)
    table = timing_table(seconds, "install", next(iter(installs)))
    text = "\n".join([
        f"\n## fit_wall — `bayescale fit` of the bundled sweep, by install — {dt.date.today().isoformat()}\n",
        f"Machine: {conditions()}. {bundled_fit_setting(args)}, seed {args.seed}, each fit in a fresh process "
        f"without a compilation cache, "
        f"timed from start to exit; the installs alternated {args.repeats} times.\n",
        markdown_table(table),
    ])
    publish(text, args)


if __name__ == "__main__":
    main()
