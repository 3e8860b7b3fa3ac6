"""Start-up time of ``import bayescale`` and of ``bayescale --help``.

Each is run ``--repeats`` times in a fresh Python process (alternating, so a burst of
load on a shared machine hits both alike) and timed from process start to exit; the
table shows the median, the fastest and the slowest run, and which heavy libraries the
command leaves imported (JAX, NumPyro, ArviZ, matplotlib, SciPy, pandas, PyTorch).

Prints a table and appends it, with the date, machine and versions, to
benchmarks/RESULTS.md. Run: ``python benchmarks/startup.py [--repeats 5] [--label TEXT]``.
For where the time goes, run ``python -X importtime -c "import bayescale"``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import add_append_option, publish

from bayescale.environment import conditions
HEAVY = ("jax", "numpyro", "arviz", "matplotlib", "scipy", "pandas", "torch")

#: Python statements timed in a fresh interpreter each.
IMPORT = "import bayescale"
HELP = ("import sys\nfrom bayescale.cli import main\nsys.argv = ['bayescale', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _help_command() -> list[str]:
    """The installed ``bayescale`` script next to this interpreter, else the same entry point via ``-c``."""
    script = shutil.which("bayescale", path=str(Path(sys.executable).parent))
    return [script, "--help"] if script else [sys.executable, "-c", HELP]


def _seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _heavy_modules(code: str) -> str:
    """The heavy top-level packages that ``code`` leaves in ``sys.modules`` (run in a fresh process)."""
    probe = (f"import sys\n{code}\n"
             f"print('\\n' + ' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return ", ".join(out.splitlines()[-1].split()) or "none"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="runs of each command (median reported)")
    ap.add_argument("--label", default="", help="a note for the section header (e.g. the commit measured)")
    add_append_option(ap)
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")

    commands = {
        "`import bayescale`": ([sys.executable, "-c", IMPORT], IMPORT, 1.5),
        "`bayescale --help`": (_help_command(), HELP, 1.0),
    }
    for command, _, _ in commands.values():  # warm the file cache once
        _seconds(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, (command, _, _) in commands.items():
            times[name].append(_seconds(command))
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    rows = []
    for name, (_, code, target) in commands.items():
        t = times[name]
        rows.append(f"| {name} | {statistics.median(t):.2f} | {min(t):.2f} | {max(t):.2f} | <= {target} | "
                    f"{_heavy_modules(code)} |")
    label = f" ({args.label})" if args.label else ""
    header = (f"\n## startup{label} — {dt.date.today().isoformat()}\n\n"
              f"`python benchmarks/startup.py --repeats {args.repeats}`: {conditions()}; "
              f"load average {load_end:.2f} at the end. Wall time of a fresh process "
              f"from start to exit, {args.repeats} runs each (alternating, after one warm-up run each).\n\n"
              "| command | median (s) | fastest (s) | slowest (s) | target (s) | heavy modules imported |\n"
              "|---|---|---|---|---|---|\n")
    table = header + "\n".join(rows)
    publish(table, args)


if __name__ == "__main__":
    main()
