"""The demo's convergence gate and wall time over seeds.

Runs ``bayescale demo --seed S`` for each seed in a fresh process (as ``make demo``
does once the virtual environment exists), times the whole command, and reads the
gate's figures back from the posterior it wrote: R-hat max, bulk and tail ESS minima,
divergences, and the margin (smallest ESS over the gate's threshold of 400; the target
is at least 1.5). Also prints the held-out figures (the held-out size and the held-out
schedule, per split), which move with the seed only by Monte Carlo noise.

Prints a table and appends it, with the date, machine and library versions, to
benchmarks/RESULTS.md. Run: ``python benchmarks/demo_gate.py [--seeds 0,1,2]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import append_results, markdown_table

from bayescale import Posterior
from bayescale.diagnostics import ESS_MIN, diagnose
from bayescale.environment import conditions



def _demo_command(out: Path, seed: int) -> list[str]:
    script = shutil.which("bayescale", path=str(Path(sys.executable).parent))
    base = [script] if script else [sys.executable, "-m", "bayescale.cli"]
    return [*base, "demo", "--out", str(out), "--seed", str(seed), "--quiet"]


def run_seed(seed: int, work: Path) -> dict:
    """Run the demo once; its wall time, gate figures and held-out errors."""
    out = work / f"seed{seed}"
    start = time.perf_counter()
    subprocess.run(_demo_command(out, seed), check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    post = Posterior.load(out / "posterior.nc")
    d = diagnose(post.idata, post.constant_names())
    held = pd.read_csv(out / "held_out.csv")
    held.index = held["held_out"] + "_" + held["split"]  # the held-out size, and the held-out schedule
    settings = post.meta.settings
    return {"seed": seed, "wall_s": wall, "sampling_s": settings["sampling_seconds"],
            "r_hat_max": d.max_rhat, "ess_bulk_min": d.min_ess_bulk, "ess_tail_min": d.min_ess_tail,
            "divergences": d.divergences, "gate": "PASS" if d.passed else "FAIL",
            "ess_margin": min(d.min_ess_bulk, d.min_ess_tail) / ESS_MIN,
            **{f"err_{row}": held.loc[row, "median_abs_rel_error"] for row in held.index},
            **{f"cov90_{row}": held.loc[row, "coverage_90"] for row in held.index}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated demo seeds (default: 0,1,2)")
    parser.add_argument("--label", default="", help="a note on the conditions, added to RESULTS.md")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    where = conditions()
    with tempfile.TemporaryDirectory() as tmp:
        table = pd.DataFrame([run_seed(seed, Path(tmp)) for seed in seeds])
    print(table.to_string(index=False))
    median_wall = float(table["wall_s"].median())
    print(f"median wall {median_wall:.1f} s; smallest ESS margin {table['ess_margin'].min():.2f}x")
    append_results(f"\n## demo gate over seeds ({dt.date.today().isoformat()})\n\n"
                   f"`python benchmarks/demo_gate.py --seeds {args.seeds}`: `bayescale demo --seed S` in a fresh "
                   f"process each, wall time of the whole command. Machine: {where}."
                   f"{' ' + args.label if args.label else ''}\n\n{markdown_table(table, '{:.4g}')}\n\n"
                   f"Median wall {median_wall:.1f} s; smallest ESS margin {table['ess_margin'].min():.2f}x "
                   f"(target 1.5x over {ESS_MIN}).")


if __name__ == "__main__":
    main()
