"""Train the bundled CPU sweep and package it as ``bayescale/data/sweep_runs.{csv,json}``.

Usage (from the repository root; all 18 runs take about an hour on one CPU thread)::

    python benchmarks/make_bundled_sweep.py                 # train (resumable), then package
    python benchmarks/make_bundled_sweep.py --shard 0/2 &   # or split it over two cores ...
    python benchmarks/make_bundled_sweep.py --shard 1/2     # ...
    python benchmarks/make_bundled_sweep.py --collect-only  # ... and package when both are done

The grid is ``bayescale/data/sweep_grid.toml``; training is the same as::

    bayescale sweep --grid bayescale/data/sweep_grid.toml --threads 1 --out build/bundled-sweep

except that runs already packaged in ``bayescale/data/sweep_runs.csv`` are not trained
again: a grid that gains runs trains only those.

Packaging keeps the rows of the grid's runs, from ``OUT/runs.csv`` for the runs trained
there and from the packaged files for the others (:func:`collect`), sorted by grid
order, step, split, and writes ``sweep_runs.json`` with the grid, the commands, the
corpus fingerprint, the machine, the sessions that trained the runs and their wall times
(total and per run, with each run's library versions and commit).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from bayescale.environment import cpu_model
from bayescale.trainer import TrainConfig, expand_grid, load_grid, run_sweep
from bayescale.trainer.records import COLUMNS, atomic_write_bytes, csv_value, read_json, read_table
from bayescale.trainer.sweep import parse_shard

ROOT = Path(__file__).resolve().parent.parent
GRID = Path("bayescale/data/sweep_grid.toml")
DEST = Path("bayescale/data")
SESSIONS = "bundled_sweep_sessions{}.json"  # one log per shard: "" or "-0of2", "-1of2", ...


def packaged_runs(dest: Path) -> set[str]:
    """Run ids of the sweep already packaged in ``dest``: with rows in ``sweep_runs.csv`` and a
    record in ``sweep_runs.json`` (none without the files)."""
    rows, record = _packaged(dest)
    return {r["run"] for r in rows} & {m["run"] for m in record.get("per_run", [])}


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
    """Write ``dest/sweep_runs.csv`` and ``dest/sweep_runs.json`` from ``out`` and what ``dest``
    already holds.

    A grid run finished in ``out`` is taken from there; one that ``out`` lacks but the
    packaged files hold is carried over (its rows unchanged, its ``per_run`` record and
    sessions kept). Carried rows written before a column of
    :data:`~bayescale.trainer.records.COLUMNS` existed get it filled in from the run's
    configuration, as the trainer writes it today (:func:`_fill_row`); the runs filled so
    are listed under ``filled_columns``. The record names the machine of this packaging
    (``threads`` as given) when it trained some run, else it keeps the machine recorded
    before. Packaging again gives the same files.
    """
    spec = load_grid(grid)
    configs = {c.run_id(): c for c in expand_grid(spec)}
    order = {run: i for i, run in enumerate(configs)}
    metas = {run: read_json(out / f"{run}.json") for run in order}
    trained = {run: meta for run, meta in metas.items() if meta is not None and meta.get("status") == "finished"}
    old_rows, old_record = _packaged(dest)
    old_runs = packaged_runs(dest)
    missing = [run for run in order if run not in trained and run not in old_runs]
    if missing:
        raise SystemExit(f"{len(missing)} runs are neither finished in {out} nor packaged in {dest}: {missing}; "
                         "run without --collect-only")
    filled = set(old_record.get("filled_columns", {}).get("runs", []))
    rows = [r for r in read_table(out) if r["run"] in trained]
    for row in old_rows:
        if row["run"] in order and row["run"] not in trained:
            complete = _fill_row(row, configs[row["run"]], old_record["corpus"]["vocab_size"])
            if complete != row:
                filled.add(row["run"])
            rows.append(complete)
    rows.sort(key=lambda r: (order[r["run"]], int(r["step"]), r["split"]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)

    old_meta = {m["run"]: m for m in old_record.get("per_run", [])}
    per_run = [_run_record(run, trained[run]) if run in trained
               else _carried_record(old_meta[run], old_record, configs[run]) for run in order]
    fingerprints = {m["corpus"]["fingerprint"] for m in trained.values()}
    if old_record:
        fingerprints.add(old_record["corpus"]["fingerprint"])
    if len(fingerprints) != 1:
        raise SystemExit(f"runs disagree on the corpus fingerprint: {sorted(fingerprints)}")
    first = next(iter(trained.values()), None)
    corpus = (old_record["corpus"] if first is None else
              {**first["corpus"], "source": f"Python {first['versions']['python']} standard library"})
    logged = [s for path in sorted(out.glob(SESSIONS.format("*"))) for s in read_json(path)["sessions"]]
    machine = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "threads": threads,
               "platform": platform.platform(terse=True)}
    if not trained and old_record.get("machine"):
        machine = old_record["machine"]  # nothing trained here: the machine that trained the runs stays
    sessions = [*old_record.get("sessions", []), *(s for s in logged if s not in old_record.get("sessions", []))]
    record = {
        "description": (
            "CPU sweep of byte-level GPT decoders trained by bayescale.trainer on the Python "
            "standard library; one row per evaluation step and split (in_domain: held-out "
            "stdlib files, out_of_domain: pydoc topic prose); loss in nats per byte; learning "
            "rate constant after warm-up, or decaying on a cosine or WSD schedule (column schedule)."
        ),
        "conditions": note if note is not None else old_record.get("conditions"),
        "grid_file": _relative(grid),
        "grid": spec,
        "commands": [
            "python benchmarks/make_bundled_sweep.py",
            f"bayescale sweep --grid {_relative(grid)} --threads {machine['threads']} --out build/bundled-sweep",
        ],
        "rows": len(rows),
        "runs": len(order),
        # The stdlib folder differs between machines; the fingerprint identifies the tokens.
        "corpus": corpus,
        "machine": machine,
        "flops_convention": first["flops"]["convention"] if first else old_record["flops_convention"],
        # shards run side by side: the sweep took as long as some shard was training
        "total_wall_time_s": _sweep_wall_time(sessions),
        "total_core_time_s": sum(s["wall_time_s"] for s in sessions),
        "sessions": sessions,
        "per_run": per_run,
    }
    if filled:
        record["filled_columns"] = {
            "runs": [run for run in order if run in filled],
            "how": ("packaged before these columns existed; micro_batch_tokens = batch_tokens (one pass per "
                    "step, the only way the trainer ran then), learning_rate and the schedule's specification "
                    "from the run's configuration (TrainConfig.learning_rates, schedule_columns), vocab_size "
                    "from the corpus record, as the trainer writes them; the other cells are the rows as "
                    "trained"),
        }
    atomic_write_bytes(dest / "sweep_runs.csv", buffer.getvalue().encode())
    atomic_write_bytes(dest / "sweep_runs.json", (json.dumps(record, indent=2) + "\n").encode())
    return record


def _packaged(dest: Path) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The rows and the record of the sweep packaged in ``dest`` (empty without the files)."""
    try:
        with open(dest / "sweep_runs.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        return [], {}
    return rows, read_json(dest / "sweep_runs.json") or {}


def _fill_row(row: dict[str, str], config: TrainConfig, vocab_size: int) -> dict[str, str]:
    """``row`` with the :data:`COLUMNS` it lacks, as the trainer writes them for ``config`` on a
    corpus of ``vocab_size`` tokens (deterministic: they follow from the configuration, the
    corpus and the step)."""
    step = int(row["step"])
    values = {
        "micro_batch_tokens": config.batch_tokens,  # these runs took one pass per step
        "learning_rate": float(config.learning_rates()[step - 1]),
        "vocab_size": vocab_size,
        **config.schedule_columns(),
    }
    return {column: row[column] if column in row else str(csv_value(values[column])) for column in COLUMNS}


def _run_record(run: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The ``per_run`` entry of a run trained in ``OUT`` (from its metadata)."""
    return {
        "run": run,
        "width": meta["model"]["width"],
        "depth": meta["model"]["depth"],
        "heads": meta["model"]["heads"],
        "params": meta["model"]["params_non_embedding"],
        "params_total": meta["model"]["params_total"],
        "batch_tokens": meta["config"]["batch_tokens"],
        "steps": meta["config"]["steps"],
        "seed": meta["config"]["seed"],
        "schedule": meta["config"]["schedule"],
        "flops_per_token": meta["flops"]["per_token"],
        "final_loss": meta["final_loss"],
        "wall_time_s": meta["timing"]["wall_time_s"],
        "train_time_s": meta["timing"]["train_time_s"],
        "eval_time_s": meta["timing"]["eval_time_s"],
        "tokens_per_s": meta["timing"]["tokens_per_s"],
        "started_at": meta["started_at"],
        "finished_at": meta["finished_at"],
        "versions": meta["versions"],
        "git": meta["git"],
    }


def _carried_record(entry: dict[str, Any], old_record: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
    """A packaged ``per_run`` entry, with the schedule, versions and commit that records from
    before they were kept per run lack (the versions and commit were then the packaging's,
    one sweep)."""
    known = {"schedule": config.schedule, "versions": old_record.get("versions"), "git": old_record.get("git")}
    return {**entry, **{k: v for k, v in known.items() if k not in entry}}


def _sweep_wall_time(sessions: list[dict[str, Any]]) -> float:
    """Seconds during which at least one session was training (the union of their intervals:
    shards side by side count once, sweeps months apart add up)."""
    total, end = 0.0, -math.inf
    for start, stop in sorted((s["started_unix"], s["started_unix"] + s["wall_time_s"]) for s in sessions):
        total += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return total


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
