"""Grids of training runs: expansion, sharding, and a resumable sweep.

A grid is a dict (from flags, or a TOML/JSON file). Top-level keys other than
``grid`` are defaults for every run; ``grid`` is a list of blocks (TOML
``[[grid]]`` tables). Within a block, merged over the defaults, every list-valued
key is an axis and the runs are the Cartesian product of the axes, in the order the
keys appear. Keys are :class:`~.config.TrainConfig` fields, plus ``shape``: a list of
``"WxD"`` strings (or ``[W, D]`` pairs) that sets width and depth together. A file
without ``grid`` is a single block. Example (``sweep_grid.toml``)::

    context = 128
    steps = 2000
    lr = 3e-3

    [[grid]]                  # six sizes at the middle batch
    shape = ["32x2", "48x2", "64x3", "96x3", "128x4", "160x4"]
    batch_tokens = 1024

    [[grid]]                  # batch sweep at two sizes
    shape = ["48x2", "96x3"]
    batch_tokens = [256, 4096]

Runs are deduplicated by run id, keeping the first occurrence.

Sharding (``--shard i/n``, 0 <= i < n): runs are taken in order of estimated
training compute (FLOPs per token × B × S, largest first, ties by run id) and each
goes to the shard with the least compute so far (lowest index on ties), the
longest-processing-time rule: each run belongs to exactly one shard, the assignment
does not depend on the order of the grid, and the busiest and idlest shards differ
by at most one run's compute. A shard runs its runs in grid order.

Sweeps may share an output folder (shards, or the same command started twice): each
run is trained by the one process that holds its lock (see :mod:`.records`); the
others record it as busy and go on to the next run.

Planning (``bayescale sweep --dry-run``): :func:`plan` estimates each run's
accelerator time as its training compute over an assumed achieved FLOP/s, peak ×
MFU, without loading data or torch.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayescale.defaults import PLAN_MFU, PLAN_PEAK_FLOPS
from bayescale.hardware import Hardware

from .config import RunBusyError, TrainConfig, TrainerError
from .records import FINAL_STATUSES, read_json
from .sizing import GPTConfig, analytic_param_counts, flops_per_token



@dataclass
class SweepResult:
    """Outcome of :func:`run_sweep`: run ids by status, in the order they ran.

    ``busy`` runs were being trained by another process sharing the output folder;
    that process records them.
    """

    finished: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no run of the shard has diverged (now or earlier)."""
        return not self.diverged


def parse_shape(value: str | Sequence[int]) -> tuple[int, int]:
    """``"64x2"`` or ``[64, 2]`` -> (width, depth)."""
    if isinstance(value, str):
        parts = value.lower().split("x")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            return int(parts[0]), int(parts[1])
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise TrainerError(f"bad shape {value!r}; write WIDTHxDEPTH, e.g. 64x2")


def parse_shard(value: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    parts = value.split("/")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        index, count = int(parts[0]), int(parts[1])
        if 0 <= index < count:
            return index, count
    raise TrainerError(f"bad shard {value!r}; write i/n with 0 <= i < n, e.g. --shard 0/4")


def _blocks(spec: dict[str, Any]) -> list[dict[str, Any]]:
    defaults = {k: v for k, v in spec.items() if k != "grid"}
    blocks = spec.get("grid")
    if blocks is None:
        return [defaults]
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise TrainerError("'grid' must be a list of tables ([[grid]] in TOML, a list of objects in JSON)")
    return [{**defaults, **block} for block in blocks]


def expand_grid(spec: dict[str, Any]) -> list[TrainConfig]:
    """All runs of a grid spec (see the module docstring), deduplicated by run id."""
    configs: dict[str, TrainConfig] = {}
    for block in _blocks(spec):
        if "shape" in block and ({"width", "depth"} & block.keys()):
            raise TrainerError("a grid block sets both 'shape' and 'width'/'depth'; use one or the other")
        axes = {key: _axis(key, value) for key, value in block.items()}
        for key, values in axes.items():
            if not values:
                raise TrainerError(f"grid key {key!r} has an empty list; give at least one value")
        for combo in itertools.product(*axes.values()):
            values = dict(zip(axes.keys(), combo, strict=True))
            if "shape" in values:
                values["width"], values["depth"] = parse_shape(values.pop("shape"))
            config = TrainConfig.from_dict(values)
            configs.setdefault(config.run_id(), config)
    return list(configs.values())


def _axis(key: str, value: Any) -> list[Any]:
    """Values of one grid key: a list is an axis, a scalar a fixed value.

    ``shape`` is an axis when it is a list of shapes, and a fixed value when it is a
    single ``[W, D]`` pair.
    """
    if not isinstance(value, list):
        return [value]
    if key == "shape" and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [value]
    return value


def load_grid(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a grid spec from a ``.toml`` or ``.json`` file."""
    source = Path(path)
    try:
        text = source.read_bytes()
    except FileNotFoundError as exc:
        raise TrainerError(f"grid file {source} does not exist; check the --grid path") from exc
    try:
        if source.suffix == ".toml":
            return tomllib.loads(text.decode())
        if source.suffix == ".json":
            spec = json.loads(text)
            if not isinstance(spec, dict):
                raise TrainerError(f"grid file {source} must hold a JSON object")
            return spec
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise TrainerError(f"cannot parse grid file {source}: {exc}") from exc
    raise TrainerError(f"grid file {source} must end in .toml or .json")


def estimated_flops(config: TrainConfig, vocab_size: int = 256) -> int:
    """Training compute of a run, C = C_token·B·S (see :func:`~.sizing.flops_per_token`)."""
    shape = GPTConfig(config.width, config.depth, config.heads, config.context, vocab_size)
    return flops_per_token(shape) * config.batch_tokens * config.steps


def shard_runs(configs: Sequence[TrainConfig], index: int, count: int) -> list[TrainConfig]:
    """Runs of shard ``index`` of ``count`` (see the module docstring), in grid order."""
    if not 0 <= index < count:
        raise TrainerError(
            f"shard index {index} is outside 0..{count - 1}; use --shard i/{count} with 0 <= i < {count}"
        )
    ranked = sorted(configs, key=lambda c: (-estimated_flops(c), c.run_id()))
    load = [0] * count
    chosen = set()
    for config in ranked:
        target = min(range(count), key=lambda k: (load[k], k))
        load[target] += estimated_flops(config)
        if target == index:
            chosen.add(config.run_id())
    return [c for c in configs if c.run_id() in chosen]


def run_sweep(
    configs: Iterable[TrainConfig],
    out_dir: str | os.PathLike[str],
    *,
    shard: tuple[int, int] = (0, 1),
    quiet: bool = False,
) -> SweepResult:
    """Train the runs of one shard of a grid into ``out_dir``, skipping ended runs.

    A run whose ``OUT/<run>.json`` says ``finished`` or ``diverged`` is skipped (a
    diverged one still counts in ``SweepResult.diverged``); an interrupted run resumes
    from its checkpoint; a run that another process is training is left to it
    (``SweepResult.busy``). Each corpus is loaded once.

    Raises:
        TrainerError: from :func:`~.training.train` (for example a full disk).
    """
    from tqdm import tqdm

    from .data import load_corpus
    from .training import train

    runs = shard_runs(list(configs), *shard)
    out = Path(out_dir)
    result = SweepResult()
    started = time.perf_counter()
    corpora: dict[str | None, Any] = {}
    bar = tqdm(runs, desc="sweep", unit="run", disable=quiet or not sys.stderr.isatty())
    for config in bar:
        run = config.run_id()
        previous = read_json(out / f"{run}.json")
        if previous is not None and previous.get("status") in FINAL_STATUSES:
            result.skipped.append(run)
            if previous["status"] == "diverged":
                result.diverged.append(run)
            continue
        if config.data not in corpora:
            corpora[config.data] = load_corpus(config.data)
        try:
            outcome = train(config, out, quiet=quiet, corpus=corpora[config.data])
        except RunBusyError:
            result.busy.append(run)
            if not quiet:
                tqdm.write(f"busy {run}: another process is training it", file=sys.stderr)
            continue
        if outcome.skipped:  # another process ended it after the check above
            result.skipped.append(run)
            if outcome.status == "diverged":
                result.diverged.append(run)
            continue
        (result.finished if outcome.status == "finished" else result.diverged).append(run)
        if not quiet:
            timing = outcome.metadata.get("timing", {})
            losses = ", ".join(f"{k} {v:.4f}" for k, v in outcome.final_loss.items())
            tqdm.write(
                f"{outcome.status} {run}: {losses} ({timing.get('session_wall_time_s', 0.0):.0f} s)",
                file=sys.stderr,
            )
    bar.close()
    result.wall_time_s = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class PlannedRun:
    """One run of :func:`plan`: its size, batch split, tokens, compute and time."""

    run: str
    params: int
    batch_tokens: int
    micro_batch_tokens: int
    steps: int
    tokens: int
    flops: int
    hours: float


def plan(configs: Sequence[TrainConfig], peak_flops: float = PLAN_PEAK_FLOPS, mfu: float = PLAN_MFU) -> list[PlannedRun]:
    """Estimated device-hours of each run: C / (peak_flops × mfu) / 3600
    (:meth:`bayescale.hardware.Hardware.gpu_hours`).

    C = (6·N + 6·L·T·d)·B·S (:func:`estimated_flops`): training only, without the
    evaluations and the output layer (6·V·d per token: 2.5% of C for the
    1M-parameter byte-level model of ``gpu_batch_sweep.toml``, less for larger
    ones; a 50K-token vocabulary would cost more than 6·N at that size). Device-hours
    do not depend on how many devices share a run. ``micro_batch_tokens`` is the
    pass of one device (:meth:`~.config.TrainConfig.micro_batches`).
    """
    try:
        hardware = Hardware(peak_flops=peak_flops, mfu=mfu)
    except ValueError as err:
        raise TrainerError(str(err)) from err
    planned = []
    for config in configs:
        micro_seqs, _ = config.micro_batches()
        shape = GPTConfig(config.width, config.depth, config.heads, config.context)
        flops = estimated_flops(config)
        planned.append(
            PlannedRun(
                run=config.run_id(),
                params=analytic_param_counts(shape).non_embedding,
                batch_tokens=config.batch_tokens,
                micro_batch_tokens=micro_seqs * config.context,
                steps=config.steps,
                tokens=config.batch_tokens * config.steps,
                flops=flops,
                hours=hardware.gpu_hours(flops),
            )
        )
    return planned
