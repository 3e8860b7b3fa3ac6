"""Memory and time of ``calibrate`` as the realized table grows (a W&B export logs thousands of steps).

A posterior is fitted on the bundled sweep (``kaplan_schedule``, 2 chains x 2,000 draws, as
``bayescale demo`` fits it; or ``--posterior PATH``). The realized tables are the bundled
curves (18 runs x 2 evaluation splits) interpolated linearly in steps to ``K`` evenly spaced
steps per curve, for each ``K`` of ``--points-per-curve``: 36 K points. Each table is scored
by :func:`bayescale.calibrate` in its own process, which reports its peak resident memory
after the call (``ru_maxrss``) less its resident memory just before it (the posterior and
table loaded, the libraries imported): the memory the call added at its peak, a lower bound
where the call stays under the loading's own peak. And the call's wall seconds.

What it shows: how the memory the call adds grows with the number of points, as the ratio of
the largest table's to the smallest's, measured in one run.

Prints a table and appends it, with the date, machine and conditions, to
benchmarks/RESULTS.md. Run: ``python benchmarks/calibrate_memory.py [--points-per-curve 100 1000 3000]
[--posterior PATH] [--label TEXT]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import add_append_option, markdown_table, publish

from bayescale.environment import conditions

#: Columns that are constant along one curve (run and evaluation split) of the bundled sweep.
PER_STEP = ("step", "loss", "tokens", "learning_rate")


def interpolated_table(per_curve: int) -> pd.DataFrame:
    """The bundled curves, each interpolated linearly to ``per_curve`` evenly spaced steps."""
    from bayescale.demo import bundled_runs

    runs = bundled_runs()
    parts = []
    for _, curve in runs.groupby(["run", "split"], sort=False):
        curve = curve.sort_values("step")
        steps = np.unique(np.rint(np.linspace(curve["step"].min(), curve["step"].max(), per_curve)))
        rows = pd.DataFrame({c: curve[c].iloc[0] for c in curve.columns if c not in PER_STEP}, index=range(len(steps)))
        rows["step"] = steps
        for column in ("loss", "learning_rate"):
            rows[column] = np.interp(steps, curve["step"], curve[column])
        rows["tokens"] = steps * rows["batch_tokens"]
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """This process's resident memory now, in MB (``VmRSS`` of /proc/self/status; Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(table_path: str, posterior_path: str) -> None:
    """Score one table in this process; print one JSON line of memory and seconds."""
    from bayescale import Posterior, calibrate
    from bayescale.runs import load_runs

    posterior = Posterior.load(posterior_path)
    runs = load_runs(table_path)
    before = current_rss_mb()
    start = time.perf_counter()
    result = calibrate(posterior, runs)
    seconds = time.perf_counter() - start
    coverage = result.coverage_table()
    print(json.dumps({"points": len(result.points), "draws": posterior.n_draws, "before_mb": before,
                      "peak_mb": peak_rss_mb(), "seconds": seconds,
                      "coverage_90": float(coverage.loc[0, "90%"])}))


def fitted_posterior(folder: Path) -> Path:
    """Fit the bundled sweep as the demo does (all sizes) and save the posterior in ``folder``."""
    from bayescale import fit
    from bayescale.demo import bundled_runs

    result = fit(bundled_runs(), law="kaplan_schedule", group_by="split", chains=2, warmup=500, draws=2000,
                 target_accept=0.9, progress=False, warn=False)
    path = folder / "posterior.nc"
    result.posterior.save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points-per-curve", type=int, nargs="+", default=[100, 1000, 3000],
                    help="steps per curve of each realized table (36 curves; default: 100 1000 3000)")
    ap.add_argument("--posterior", type=Path, help="a saved posterior (default: fit the bundled sweep, about 1 min)")
    ap.add_argument("--child", nargs=2, metavar=("TABLE", "POSTERIOR"), help=argparse.SUPPRESS)
    ap.add_argument("--label", default="", help="a phrase on the code measured, put in the section's first line")
    add_append_option(ap)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    at_start = conditions()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        posterior = args.posterior or fitted_posterior(folder)
        rows = []
        for per_curve in args.points_per_curve:
            table = folder / f"realized_{per_curve}.csv"
            interpolated_table(per_curve).to_csv(table, index=False)
            out = subprocess.run([sys.executable, __file__, "--child", str(table), str(posterior)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                rows.append({"points per curve": per_curve, "result": out.stderr.strip().splitlines()[-1]})
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"points per curve": per_curve, "points": r["points"], "draws": r["draws"],
                         "MB before": round(r["before_mb"]), "peak MB": round(r["peak_mb"]),
                         "added MB": round(r["peak_mb"] - r["before_mb"]), "seconds": round(r["seconds"], 1),
                         "coverage 90%": round(r["coverage_90"], 3)})
    table = pd.DataFrame(rows)
    lines = [f"\n## calibrate memory — {dt.date.today().isoformat()}\n",
             *([f"{args.label}.\n"] if args.label else []),
             f"`python benchmarks/calibrate_memory.py --points-per-curve {' '.join(map(str, args.points_per_curve))}`. "
             f"Machine: {at_start}. Posterior: "
             + ("given" if args.posterior else "the bundled sweep, kaplan_schedule, 2 chains x 2,000 draws") + ".\n",
             markdown_table(table)]
    if "added MB" in table and table["added MB"].notna().all() and len(table) > 1:
        first, last = table.iloc[0], table.iloc[-1]
        lines.append(f"\nMemory added by the call: {last['added MB'] / max(first['added MB'], 1):.1f}x for "
                     f"{last['points'] / first['points']:.0f}x the points.")
    publish("\n".join(lines), args)


if __name__ == "__main__":
    main()
