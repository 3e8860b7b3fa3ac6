"""How much of a fit is compiling, and what JAX's persistent compilation cache saves on a refit.

A small fit spends most of its wall time in XLA compiling the sampler, the starting-point
search and the pointwise log-likelihood, not sampling. JAX can keep compiled programs on
disk (``JAX_COMPILATION_CACHE_DIR``); bayescale leaves that setting to the user. This
script fits the bundled sweep with ``bayescale fit`` in a fresh process per fit, under
four conditions, alternating them ``--repeats`` times so that a burst of load on a shared
machine hits all alike:

- ``no cache``: the setting unset, as installed;
- ``cold cache``: an empty cache folder (compiles and writes the programs);
- ``warm cache, same fit``: the same command again with that folder;
- ``warm cache, other seed``: the same runs and settings with another ``--seed``.

The fitted runs are compiled into the programs as constants, so a cache serves a refit
of the same table (a rerun, another seed), not a fit of other runs. Prints the median,
fastest and slowest wall time of each condition and the median ratio to ``no cache``
(each repeat's ratio, then the median), and appends the table to benchmarks/RESULTS.md.

Run: ``python benchmarks/compile_cache.py [--repeats 3] [--chains 2 --warmup 300 --draws 300]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

from common import (add_append_option, add_sampler_options, bundled_fit_seconds, bundled_fit_setting, markdown_table,
                    print_round, publish, timing_table)

from bayescale.environment import conditions

CONDITIONS = ("no cache", "cold cache", "warm cache, same fit", "warm cache, other seed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sampler_options(ap, chains=2, warmup=300, draws=300)
    ap.add_argument("--repeats", type=int, default=3, help="fits per condition (default: 3)")
    add_append_option(ap)
    args = ap.parse_args()
    seconds: dict[str, list[float]] = {name: [] for name in CONDITIONS}
    with tempfile.TemporaryDirectory(prefix="bayescale-compile-cache-") as tmp:
        for repeat in range(args.repeats):
            cache = Path(tmp) / f"cache{repeat}"
            out = Path(tmp) / "p.nc"
            seconds["no cache"].append(bundled_fit_seconds(args, out))
            seconds["cold cache"].append(bundled_fit_seconds(args, out, cache=cache))
            seconds["warm cache, same fit"].append(bundled_fit_seconds(args, out, cache=cache))
            seconds["warm cache, other seed"].append(bundled_fit_seconds(args, out, cache=cache, seed=args.seed + 1))
            print_round(repeat, args.repeats, seconds)
    table = timing_table(seconds, "condition", "no cache")
    text = "\n".join([
        f"\n## compile_cache — JAX's persistent compilation cache on a refit — {dt.date.today().isoformat()}\n",
        f"Machine: {conditions()}. {bundled_fit_setting(args)}, each fit in a fresh process timed from start to "
        f"exit, the four "
        f"conditions alternated {args.repeats} times; the cache with JAX's default thresholds, a new folder "
        f"per repeat.\n",
        markdown_table(table),
    ])
    publish(text, args)


if __name__ == "__main__":
    main()
