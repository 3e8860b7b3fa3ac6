"""Grid expansion, deterministic sharding, skipping finished runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bayescale.trainer import TrainConfig, TrainerError, expand_grid, load_grid, run_sweep, shard_runs
from bayescale.trainer.data import SPLITS
from bayescale.trainer.records import read_table, run_lock
from bayescale.trainer.sweep import estimated_flops, parse_shape, parse_shard

REPO = Path(__file__).resolve().parent.parent
BASE = {"context": 32, "steps": 6, "warmup_steps": 1, "eval_tokens": 256, "threads": 1}


def test_expand_grid_products_blocks_and_dedup() -> None:
    spec = {
        **BASE,
        "grid": [
            {"shape": ["16x1", "32x2"], "batch_tokens": 64},
            {"shape": "16x1", "batch_tokens": [64, 128], "seed": [0, 1]},
        ],
    }
    configs = expand_grid(spec)
    keys = [(c.width, c.depth, c.batch_tokens, c.seed) for c in configs]
    # (16,1,64,0) appears in both blocks and is kept once, at its first position.
    assert keys == [(16, 1, 64, 0), (32, 2, 64, 0), (16, 1, 64, 1), (16, 1, 128, 0), (16, 1, 128, 1)]
    assert len({c.run_id() for c in configs}) == len(configs)
    flat = expand_grid({**BASE, "width": [16, 32], "depth": [1, 2], "batch_tokens": 64})
    assert [(c.width, c.depth) for c in flat] == [(16, 1), (16, 2), (32, 1), (32, 2)]
    assert [(c.width, c.depth) for c in expand_grid({**BASE, "shape": [16, 1], "batch_tokens": 64})] == [(16, 1)]


def test_grid_errors() -> None:
    with pytest.raises(TrainerError, match="unknown setting"):
        expand_grid({**BASE, "width": 16, "depth": 1, "batch_tokens": 64, "widht": 3})
    with pytest.raises(TrainerError, match="both 'shape' and 'width'"):
        expand_grid({**BASE, "shape": "16x1", "width": 16, "batch_tokens": 64})
    with pytest.raises(TrainerError, match="empty list"):
        expand_grid({**BASE, "width": [], "depth": 1, "batch_tokens": 64})
    with pytest.raises(TrainerError, match="bad shape '16-1'"):
        parse_shape("16-1")
    for bad in ("1/1", "a/b", "2", "-1/2"):
        with pytest.raises(TrainerError, match="bad shard"):
            parse_shard(bad)
    assert parse_shard("2/8") == (2, 8)


def test_grid_files(tmp_path: Path) -> None:
    toml = tmp_path / "grid.toml"
    toml.write_text('context = 32\nsteps = 6\n[[grid]]\nshape = ["16x1"]\nbatch_tokens = [64, 128]\n')
    as_json = tmp_path / "grid.json"
    as_json.write_text(json.dumps(load_grid(toml)))
    assert [c.run_id() for c in expand_grid(load_grid(toml))] == [c.run_id() for c in expand_grid(load_grid(as_json))]
    broken = tmp_path / "broken.toml"
    broken.write_text("context = [")
    with pytest.raises(TrainerError, match="cannot parse grid file"):
        load_grid(broken)
    wrong = tmp_path / "grid.yaml"
    wrong.write_text("context: 32")
    with pytest.raises(TrainerError, match=r"must end in \.toml or \.json"):
        load_grid(wrong)


def test_bundled_grid_meets_the_sweep_requirements() -> None:
    """The constant-LR runs span sizes, batches and seeds; the decaying ones reuse their shapes."""
    every = expand_grid(load_grid(Path(__file__).resolve().parent.parent / "bayescale/data/sweep_grid.toml"))
    configs = [c for c in every if c.schedule == "constant"]
    decaying = [c for c in every if c.schedule != "constant"]
    from bayescale.trainer import GPTConfig, analytic_param_counts

    sizes = {analytic_param_counts(GPTConfig(c.width, c.depth, c.heads, c.context)).non_embedding for c in configs}
    assert len(sizes) >= 6 and max(sizes) / min(sizes) >= 10**1.5
    batches_by_size: dict[tuple[int, int], set[int]] = {}
    for c in configs:
        batches_by_size.setdefault((c.width, c.depth), set()).add(c.batch_tokens)
    assert sum(len(b) >= 3 for b in batches_by_size.values()) >= 2
    assert (
        max(
            sum(1 for c in configs if (c.width, c.depth, c.batch_tokens) == k)
            for k in {(c.width, c.depth, c.batch_tokens) for c in configs}
        )
        >= 3
    )
    assert len(configs) == 12 and {c.lr for c in every} == {3e-3}
    assert sorted((c.schedule, c.width, c.depth) for c in decaying) == [
        ("cosine", 20, 2), ("cosine", 48, 2), ("cosine", 80, 3), ("wsd", 32, 2), ("wsd", 64, 2), ("wsd", 80, 3)]
    shapes = {(c.width, c.depth) for c in configs}
    assert all((c.width, c.depth) in shapes and c.batch_tokens == 4096 and c.seed == 0 for c in decaying)
    assert {(c.min_lr_ratio, c.decay_fraction, c.warmup_steps, c.steps) for c in every} == {(0.1, 0.2, 100, 4000)}
    assert all(25 <= len(c.eval_steps()) <= 40 for c in every)


def test_shards_partition_the_grid_deterministically() -> None:
    configs = expand_grid({**BASE, "shape": ["16x1", "24x1", "32x2"], "batch_tokens": [64, 128, 256], "seed": [0, 1]})
    for count in (1, 2, 3, 5):
        shards = [shard_runs(configs, i, count) for i in range(count)]
        ids = [c.run_id() for shard in shards for c in shard]
        assert sorted(ids) == sorted(c.run_id() for c in configs)  # each run in exactly one shard
        assert [c.run_id() for c in shard_runs(list(reversed(configs)), 0, count)] == [
            c.run_id() for c in reversed(shards[0])
        ]  # assignment does not depend on the grid order
        work = [sum(estimated_flops(c) for c in shard) for shard in shards]
        assert max(work) - min(work) <= max(estimated_flops(c) for c in configs)
    with pytest.raises(TrainerError, match=r"outside 0\.\.1"):
        shard_runs(configs, 2, 2)


def test_sweep_skips_finished_runs_and_resumes(tmp_path: Path) -> None:
    configs = expand_grid({**BASE, "shape": ["16x1"], "batch_tokens": [64, 128]})
    first = run_sweep(configs[:1], tmp_path, quiet=True)
    assert first.finished == [configs[0].run_id()] and first.ok
    rows_before = (tmp_path / "runs.csv").read_text().count("\n")
    second = run_sweep(configs, tmp_path, quiet=True)
    assert second.skipped == [configs[0].run_id()] and second.finished == [configs[1].run_id()]
    assert (tmp_path / "runs.csv").read_text().count("\n") > rows_before
    shard0 = run_sweep(configs, tmp_path / "sharded", shard=(0, 2), quiet=True)
    shard1 = run_sweep(configs, tmp_path / "sharded", shard=(1, 2), quiet=True)
    assert sorted(shard0.finished + shard1.finished) == sorted(c.run_id() for c in configs)


def test_sweep_reports_diverged_runs(tmp_path: Path) -> None:
    config = TrainConfig(
        width=16,
        depth=1,
        context=32,
        batch_tokens=64,
        steps=40,
        warmup_steps=0,
        lr=20.0,
        grad_clip=0.0,
        eval_tokens=256,
        threads=1,
    )
    result = run_sweep([config], tmp_path, quiet=True)
    assert result.diverged == [config.run_id()] and not result.ok
    again = run_sweep([config], tmp_path, quiet=True)
    assert again.skipped == [config.run_id()] and not again.ok


def test_a_run_held_by_another_process_is_left_to_it(tmp_path: Path) -> None:
    configs = expand_grid({**BASE, "shape": ["16x1"], "batch_tokens": [64, 128]})
    with run_lock(tmp_path, configs[0].run_id()):
        result = run_sweep(configs, tmp_path, quiet=True)
    assert result.busy == [configs[0].run_id()] and result.finished == [configs[1].run_id()] and result.ok
    assert run_sweep(configs, tmp_path, quiet=True).finished == [configs[0].run_id()]


def test_two_sweeps_into_one_folder_train_each_run_once(tmp_path: Path) -> None:
    """Two `sweep` processes started together on one grid and folder: no duplicate rows."""
    grid = tmp_path / "grid.toml"
    grid.write_text(
        "context = 32\nsteps = 30\nwarmup_steps = 2\neval_tokens = 256\neval_every = 5\n"
        "[[grid]]\nshape = ['16x1', '24x1', '32x1']\nbatch_tokens = [128, 256]\n"
    )
    out = tmp_path / "out"
    command = [sys.executable, "-m", "bayescale.trainer", "sweep", "--grid", str(grid), "--threads", "1"]
    command += ["--quiet", "--json", "--out", str(out)]
    processes = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    summaries = [json.loads(p.communicate(timeout=300)[0]) for p in processes]
    assert [p.returncode for p in processes] == [0, 0]
    configs = expand_grid(load_grid(grid))
    ids = sorted(c.run_id() for c in configs)
    trained = summaries[0]["finished"] + summaries[1]["finished"]
    assert sorted(trained) == ids  # each run trained by exactly one of the two
    for summary in summaries:  # and accounted for by both
        assert sorted(summary["finished"] + summary["skipped"] + summary["busy"]) == ids
    rows = read_table(out)
    keys = [(r["run"], r["step"], r["split"]) for r in rows]
    assert len(keys) == len(set(keys))
    expected = {(c.run_id(), str(s), split) for c in configs for s in c.eval_steps() for split in SPLITS}
    assert set(keys) == expected


def test_bundled_gpu_grid_spans_the_critical_batch() -> None:
    configs = expand_grid(load_grid(REPO / "bayescale/data/gpu_batch_sweep.toml"))
    from bayescale.trainer import GPTConfig, analytic_param_counts
    from bayescale.trainer.sweep import plan

    sizes = {analytic_param_counts(GPTConfig(c.width, c.depth, c.heads, c.context)).non_embedding for c in configs}
    assert len(sizes) == 4 and 1e6 * 0.9 <= min(sizes) and max(sizes) <= 60e6
    batches = sorted({c.batch_tokens for c in configs})
    assert len(batches) == 5 and batches[0] == 2**16 and batches[-1] == 2**21
    assert {c.schedule for c in configs} == {"constant", "cosine"} and len(configs) == 40
    assert all(c.micro_batch_tokens is not None and c.micro_batches() == (64, c.batch_tokens // 32768) for c in configs)
    hours = sum(r.hours for r in plan(configs))
    assert 1 < hours < 50  # a day or two of one GPU at the assumed 25% MFU of an H100
