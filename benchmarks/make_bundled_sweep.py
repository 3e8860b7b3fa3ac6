"""Train the bundled CPU sweep and package it as ``bayescale/data/sweep_runs.{csv,json}``.

Usage (from the repository root; about 40-50 minutes on one CPU thread)::

    python benchmarks/make_bundled_sweep.py                 # train (resumable), then package
    python benchmarks/make_bundled_sweep.py --shard 0/2 &   # or split it over two cores ...
    python benchmarks/make_bundled_sweep.py --shard 1/2     # ... (each shard packages when done)
    python benchmarks/make_bundled_sweep.py --collect-only  # package what OUT holds

The grid is ``bayescale/data/sweep_grid.toml``; training is the same as::

    bayescale sweep --grid bayescale/data/sweep_grid.toml --threads 1 --out build/bundled-sweep

Packaging keeps the rows of the grid's runs from ``OUT/runs.csv`` (sorted by grid
order, step, split) and writes ``sweep_runs.json`` with the grid, the commands, the
corpus fingerprint, the machine, library versions, and wall times (total and per run).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from bayescale.environment import cpu_model
from bayescale.trainer import expand_grid, load_grid, run_sweep
from bayescale.trainer.records import COLUMNS, atomic_write_bytes, read_json, read_table
from bayescale.trainer.sweep import parse_shard

ROOT = Path(__file__).resolve().parent.parent
GRID = Path("bayescale/data/sweep_grid.toml")
DEST = Path("bayescale/data")
SESSIONS = "bundled_sweep_sessions{}.json"  # one log per shard: "" or "-0of2", "-1of2", ...


def packaged_runs(dest: Path) -> set[str]:
    """Run ids of the sweep already packaged in ``dest/sweep_runs.csv`` (none without the file)."""
    try:
        with open(dest / "sweep_runs.csv", newline="") as handle:
            return {row["run"] for row in csv.DictReader(handle)}
    except FileNotFoundError:
        return set()


def train_grid(
    grid: Path, out: Path, threads: int, shard: tuple[int, int] = (0, 1), skip: Collection[str] = ()
) -> None:
    """Run (or resume) one shard of the grid's runs not in ``skip`` (those packaged already) and
    log this session's wall time in ``OUT``."""
    spec = load_grid(grid)
    spec["threads"] = threads
    configs = [c for c in expand_grid(spec) if c.run_id() not in skip]
    started = time.time()
    result = run_sweep(configs, out, shard=shard)
    sessions_path = out / SESSIONS.format("" if shard == (0, 1) else f"-{shard[0]}of{shard[1]}")
    sessions = read_json(sessions_path) or {"sessions": []}
    sessions["sessions"].append(
        {
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "started_unix": started,
            "wall_time_s": time.time() - started,
            "finished": result.finished,
            "diverged": result.diverged,
            "skipped": result.skipped,
        }
    )
    atomic_write_bytes(sessions_path, (json.dumps(sessions, indent=2) + "\n").encode())


def collect(grid: Path, out: Path, dest: Path, threads: int, note: str | None = None) -> dict[str, Any]:
    """Write ``dest/sweep_runs.csv`` and ``dest/sweep_runs.json`` from ``out``."""
    spec = load_grid(grid)
    configs = expand_grid(spec)
    order = {c.run_id(): i for i, c in enumerate(configs)}
    metas = {run: read_json(out / f"{run}.json") for run in order}
    missing = [run for run, meta in metas.items() if meta is None or meta.get("status") != "finished"]
    if missing:
        raise SystemExit(f"{len(missing)} runs are not finished in {out}: {missing}; run without --collect-only")
    rows = [r for r in read_table(out) if r["run"] in order]
    rows.sort(key=lambda r: (order[r["run"]], int(r["step"]), r["split"]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(dest / "sweep_runs.csv", buffer.getvalue().encode())

    fingerprints = {m["corpus"]["fingerprint"] for m in metas.values()}
    if len(fingerprints) != 1:
        raise SystemExit(f"runs disagree on the corpus fingerprint: {sorted(fingerprints)}")
    first = next(iter(metas.values()))
    sessions = [s for path in sorted(out.glob(SESSIONS.format("*"))) for s in read_json(path)["sessions"]]
    record = {
        "description": (
            "CPU sweep of byte-level GPT decoders trained by bayescale.trainer on the Python "
            "standard library; one row per evaluation step and split (in_domain: held-out "
            "stdlib files, out_of_domain: pydoc topic prose); loss in nats per byte."
        ),
        "conditions": note,
        "grid_file": _relative(grid),
        "grid": spec,
        "commands": [
            "python benchmarks/make_bundled_sweep.py",
            f"bayescale sweep --grid {_relative(grid)} --threads {threads} --out build/bundled-sweep",
        ],
        "rows": len(rows),
        "runs": len(order),
        # The stdlib folder differs between machines; the fingerprint identifies the tokens.
        "corpus": {**first["corpus"], "source": f"Python {first['versions']['python']} standard library"},
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "threads": threads,
            "platform": platform.platform(terse=True),
        },
        "versions": first["versions"],
        "git": first["git"],
        "flops_convention": first["flops"]["convention"],
        # shards run side by side: the sweep took as long as its slowest shard
        "total_wall_time_s": _sweep_wall_time(sessions),
        "total_core_time_s": sum(s["wall_time_s"] for s in sessions),
        "sessions": sessions,
        "per_run": [
            {
                "run": run,
                "width": meta["model"]["width"],
                "depth": meta["model"]["depth"],
                "heads": meta["model"]["heads"],
                "params": meta["model"]["params_non_embedding"],
                "params_total": meta["model"]["params_total"],
                "batch_tokens": meta["config"]["batch_tokens"],
                "steps": meta["config"]["steps"],
                "seed": meta["config"]["seed"],
                "flops_per_token": meta["flops"]["per_token"],
                "final_loss": meta["final_loss"],
                "wall_time_s": meta["timing"]["wall_time_s"],
                "train_time_s": meta["timing"]["train_time_s"],
                "eval_time_s": meta["timing"]["eval_time_s"],
                "tokens_per_s": meta["timing"]["tokens_per_s"],
                "started_at": meta["started_at"],
                "finished_at": meta["finished_at"],
            }
            for run, meta in metas.items()
        ],
    }
    atomic_write_bytes(dest / "sweep_runs.json", (json.dumps(record, indent=2) + "\n").encode())
    return record


def _sweep_wall_time(sessions: list[dict[str, Any]]) -> float:
    """Wall time from the first session's start to the last one's end."""
    if not sessions:
        return 0.0
    return max(s["started_unix"] + s["wall_time_s"] for s in sessions) - min(s["started_unix"] for s in sessions)


def _relative(path: Path) -> str:
    """``path`` relative to the repository root when inside it, else its file name."""
    resolved = path.resolve()
    return resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else resolved.name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--grid", type=Path, default=ROOT / GRID, help="grid file (default: %(default)s)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "build" / "bundled-sweep",
        help="working folder of the sweep (default: build/bundled-sweep, git-ignored)",
    )
    parser.add_argument("--dest", type=Path, default=ROOT / DEST, help="where the packaged files go")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for training (default: 1)")
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="I/N",
                        help="train shard I of N (compute-balanced, as `bayescale sweep --shard`); default 0/1")
    parser.add_argument("--collect-only", action="store_true", help="only package the finished runs in --out")
    parser.add_argument("--note", help="free-text conditions recorded in sweep_runs.json (e.g. other load)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.collect_only:
        train_grid(args.grid, args.out, args.threads, args.shard, skip=packaged_runs(args.dest))
        if args.shard != (0, 1):
            print(f"shard {args.shard[0]}/{args.shard[1]} done; package with --collect-only when all shards are")
            return
    record = collect(args.grid, args.out, args.dest, args.threads, args.note)
    print(
        f"wrote {record['rows']} rows of {record['runs']} runs to {args.dest / 'sweep_runs.csv'} "
        f"(sweep wall time {record['total_wall_time_s'] / 60:.1f} min)"
    )


if __name__ == "__main__":
    main()
