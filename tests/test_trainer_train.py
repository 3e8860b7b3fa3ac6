"""The training loop: run table, metadata, resume after a crash, divergence, bad input."""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from bayescale.trainer import (
    DiskFullError,
    GPTConfig,
    RunBusyError,
    TrainConfig,
    TrainerError,
    analytic_param_counts,
    train,
)
from bayescale.runs import load_runs
from bayescale.schedules import Schedule, table_features
from bayescale.trainer.records import COLUMNS, FINAL_STATUSES, LAYOUTS, read_table, run_lock
from bayescale.trainer.training import checkpoint_path

REPO = Path(__file__).resolve().parent.parent


def tiny(**overrides: Any) -> TrainConfig:
    """A model that trains in about a second on one CPU thread."""
    values: dict[str, Any] = dict(
        width=32,
        depth=2,
        context=32,
        batch_tokens=256,
        steps=30,
        warmup_steps=3,
        eval_tokens=512,
        eval_every=5,
        threads=1,
        checkpoint_every=10,
    )
    values.update(overrides)
    return TrainConfig(**values)


def read_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "runs.csv", newline="") as handle:
        return list(csv.DictReader(handle))


class Crash(Exception):
    """Raised from the step hook to kill a run mid-way."""


def crash_at(step: int):
    def hook(done: int) -> None:
        if done == step:
            raise Crash(f"killed at step {done}")

    return hook


def test_short_run_writes_valid_table_and_loss_falls(tmp_path: Path) -> None:
    config = tiny()
    result = train(config, tmp_path, quiet=True)
    assert result.status == "finished" and not result.skipped
    with open(tmp_path / "runs.csv") as handle:
        assert handle.readline().strip().split(",") == list(COLUMNS)
    assert list(COLUMNS[:11]) == [
        "run",
        "params",
        "batch_tokens",
        "step",
        "loss",
        "tokens",
        "split",
        "lr",
        "seed",
        "params_total",
        "context",
    ]
    rows = read_rows(tmp_path)
    counts = analytic_param_counts(GPTConfig(32, 2, 1, 32))
    steps = config.eval_steps()
    assert steps[0] == 1 and steps[-1] == 30 and len(steps) >= 10
    for split in ("in_domain", "out_of_domain"):
        curve = [r for r in rows if r["split"] == split]
        assert [int(r["step"]) for r in curve] == steps
        for r in curve:
            assert r["run"] == config.run_id()
            assert int(r["params"]) == counts.non_embedding and int(r["params_total"]) == counts.total
            assert int(r["batch_tokens"]) == 256 and int(r["tokens"]) == 256 * int(r["step"])
            assert float(r["lr"]) == config.lr and int(r["seed"]) == 0 and int(r["context"]) == 32
            assert int(r["vocab_size"]) == 256  # byte-level: the losses are nats per byte
            assert math.isfinite(float(r["loss"])) and float(r["loss"]) > 0
        losses = [float(r["loss"]) for r in curve]
        assert losses[0] > math.log(256) - 0.2  # starts near a uniform guess
        assert losses[-1] < losses[0] - 1.0  # and learns
    meta = json.loads((tmp_path / f"{config.run_id()}.json").read_text())
    assert meta["status"] == "finished" and meta["step"] == 30
    assert meta["model"]["params_non_embedding"] == counts.non_embedding
    assert meta["model"]["params_total"] == counts.total
    assert meta["flops"]["per_token"] == 6 * counts.non_embedding + 6 * 2 * 32 * 32
    assert "Kaplan" in meta["flops"]["convention"]
    assert len(meta["corpus"]["fingerprint"]) == 64
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["config"]["seed"] == 0 and meta["config"]["warmup_steps"] == 3
    assert meta["timing"]["tokens_per_s"] > 0 and meta["timing"]["mfu"] is None
    assert meta["final_loss"]["in_domain"] == pytest.approx(float(rows[-2]["loss"]))
    assert not checkpoint_path(tmp_path, config.run_id()).exists()


def test_table_passes_the_library_validator(tmp_path: Path) -> None:
    runs = pytest.importorskip("bayescale.runs")
    train(tiny(steps=12, eval_every=4), tmp_path, quiet=True)
    train(tiny(steps=12, eval_every=4, seed=1), tmp_path, quiet=True)
    table = runs.load_runs(tmp_path / "runs.csv")
    assert len(table) == len(read_rows(tmp_path))


@pytest.mark.parametrize("schedule", ["cosine", "wsd"])
def test_rows_record_the_learning_rate_of_the_last_step_and_the_schedule(tmp_path: Path, schedule: str) -> None:
    """Row ``step=S`` carries the rate of 0-based step S-1, as bayescale.schedules computes it
    from the specification the row also carries; the schedule-aware laws read it back."""
    config = tiny(steps=20, eval_every=4, schedule=schedule, min_lr_ratio=0.2, decay_fraction=0.3)
    train(config, tmp_path, quiet=True)
    rows = read_rows(tmp_path)
    expected = Schedule(schedule, warmup_steps=3, final_lr_fraction=0.2, decay_fraction=0.3).relative_rates(20)
    for r in rows:
        assert float(r["learning_rate"]) == expected[int(r["step"]) - 1] * config.lr
        assert (r["schedule"], r["warmup_steps"], r["final_lr_fraction"], r["decay_fraction"], r["total_steps"]) == (
            schedule, "3", "0.2", "0.3", "20")
    assert float(rows[-1]["learning_rate"]) == pytest.approx(0.2 * config.lr)  # the decay ends at the floor
    assert len({r["learning_rate"] for r in rows}) > 3
    table = load_runs(tmp_path / "runs.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ScheduleWarning: nothing is assumed
        from_rates = table_features(table)
        from_spec = table_features(table.drop(columns="learning_rate"))
    # the same schedule, read from the logged rates (linear between the logged steps) or the specification
    np.testing.assert_allclose(from_rates["log_lr_area"], from_spec["log_lr_area"], rtol=5e-3)


def test_identical_runs_are_deterministic(tmp_path: Path) -> None:
    train(tiny(steps=12), tmp_path / "a", quiet=True)
    train(tiny(steps=12), tmp_path / "b", quiet=True)
    assert (tmp_path / "a" / "runs.csv").read_bytes() == (tmp_path / "b" / "runs.csv").read_bytes()


@pytest.mark.parametrize("micro_batch_tokens", [None, 64], ids=["one-pass", "4-micro-batches"])
def test_resume_after_crash_reproduces_the_uninterrupted_rows(tmp_path: Path, micro_batch_tokens: int | None) -> None:
    config = tiny(micro_batch_tokens=micro_batch_tokens)
    train(config, tmp_path / "reference", quiet=True)
    out = tmp_path / "crashed"
    with pytest.raises(Crash):
        train(config, out, quiet=True, on_step=crash_at(27))
    # Rows past the checkpoint at step 20 are on disk (they must not be duplicated).
    assert max(int(r["step"]) for r in read_rows(out)) > 20
    meta = json.loads((out / f"{config.run_id()}.json").read_text())
    assert meta["status"] == "failed" and "killed at step 27" in meta["error"]
    assert torch.load(checkpoint_path(out, config.run_id()), weights_only=True)["step"] == 20
    # A crash in the middle of an append leaves a cut line; it must go too.
    with open(out / "runs.csv", "a") as handle:
        handle.write(f"{config.run_id()},12345,256,26,4.1")
    result = train(config, out, quiet=True)
    assert result.status == "finished"
    assert result.metadata["sessions"] == 2 and result.metadata["resumed_from_step"] == 20
    assert (out / "runs.csv").read_bytes() == (tmp_path / "reference" / "runs.csv").read_bytes()


def test_resume_after_sigkill(tmp_path: Path) -> None:
    """Kill a real training process with SIGKILL mid-run, resume it, compare."""
    config = tiny(width=16, depth=1, steps=150, eval_every=10, checkpoint_every=20)
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "bayescale.trainer",
        "train",
        "--width",
        "16",
        "--depth",
        "1",
        "--context",
        "32",
        "--batch-tokens",
        "256",
        "--steps",
        "150",
        "--warmup-steps",
        "3",
        "--eval-tokens",
        "512",
        "--eval-every",
        "10",
        "--threads",
        "1",
        "--checkpoint-every",
        "20",
        "--quiet",
        "--out",
        str(out),
    ]
    process = subprocess.Popen(command, cwd=REPO)
    deadline = time.monotonic() + 120
    killed_after = 0
    while time.monotonic() < deadline and process.poll() is None:
        if (out / "runs.csv").exists():
            steps = [int(r["step"]) for r in read_table(out)]  # complete lines only
            if steps and 30 <= max(steps) < 140:
                process.send_signal(signal.SIGKILL)
                killed_after = max(steps)
                break
        time.sleep(0.02)
    process.wait()
    assert killed_after, "the run ended before it could be killed; make it longer"
    assert process.returncode == -signal.SIGKILL
    train(config, tmp_path / "reference", quiet=True)
    result = train(config, out, quiet=True)
    assert result.metadata["sessions"] == 2
    assert (out / "runs.csv").read_bytes() == (tmp_path / "reference" / "runs.csv").read_bytes()


def test_finished_run_is_skipped(tmp_path: Path) -> None:
    config = tiny(steps=10)
    train(config, tmp_path, quiet=True)
    before = (tmp_path / "runs.csv").read_bytes()
    again = train(config, tmp_path, quiet=True)
    assert again.skipped and again.status == "finished"
    assert (tmp_path / "runs.csv").read_bytes() == before


def test_divergence_stops_the_run_and_is_recorded(tmp_path: Path) -> None:
    config = tiny(lr=20.0, grad_clip=0.0, steps=50, warmup_steps=0)
    result = train(config, tmp_path, quiet=True)
    assert result.status == "diverged"
    meta = json.loads((tmp_path / f"{config.run_id()}.json").read_text())
    assert meta["status"] == "diverged" and meta["status"] in FINAL_STATUSES
    assert 1 <= meta["divergence"]["step"] < 50
    assert "training loss" in meta["divergence"]["reason"]
    rows = read_rows(tmp_path)
    assert all(int(r["step"]) <= meta["divergence"]["step"] for r in rows)


def test_full_disk_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(DiskFullError, match=r"no space left on device while writing .*free disk space"):
        train(tiny(steps=5), tmp_path, quiet=True)


def test_keep_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    config = tiny(steps=10, keep_checkpoint=True)
    train(config, tmp_path, quiet=True)
    state = torch.load(checkpoint_path(tmp_path, config.run_id()), weights_only=True)
    assert state["step"] == 10 and state["config"] == config.result_dict()
    assert {"model", "optimizer", "rng", "clock"} <= set(state)


def test_missing_corpus_and_no_cuda(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="does not exist"):
        train(tiny(data=str(tmp_path / "missing.txt")), tmp_path, quiet=True)
    (tmp_path / "small.txt").write_text("tiny corpus\n" * 10)
    with pytest.raises(TrainerError, match=r"too small|fewer than"):
        train(tiny(data=str(tmp_path / "small.txt")), tmp_path, quiet=True)
    if not torch.cuda.is_available():
        with pytest.raises(TrainerError, match="no CUDA GPU is available; use --device cpu"):
            train(tiny(device="cuda"), tmp_path, quiet=True)


def test_user_text_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"line {i}: the cat sat on the mat\n" for i in range(2000)))
    config = tiny(steps=20, data=str(corpus))
    result = train(config, tmp_path / "out", quiet=True)
    assert result.status == "finished"
    assert result.metadata["corpus"]["name"] == "text"
    assert result.final_loss["in_domain"] < math.log(256) - 1.5


def test_pretokenized_bin_corpus(tmp_path: Path) -> None:
    tokens = (np.arange(40_000) * 7 % 1000).astype(np.uint16)  # a learnable cycle
    tokens.tofile(tmp_path / "tokens.bin")
    config = tiny(steps=10, data=str(tmp_path / "tokens.bin"))
    result = train(config, tmp_path / "out", quiet=True)
    assert result.metadata["model"]["vocab_size"] == 1000
    rows = read_rows(tmp_path / "out")
    assert {r["split"] for r in rows} == {"in_domain"} and {r["vocab_size"] for r in rows} == {"1000"}


def test_full_disk_while_checkpointing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace

    def replace(src: str, dst: str | Path) -> None:
        if str(dst).endswith(".pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    config = tiny(steps=20, checkpoint_every=10)
    with pytest.raises(DiskFullError, match=r"writing .*checkpoints.*\.pt; free disk space"):
        train(config, tmp_path, quiet=True)
    meta = json.loads((tmp_path / f"{config.run_id()}.json").read_text())
    assert meta["status"] == "failed" and "no space left" in meta["error"]
    assert not list((tmp_path / "checkpoints").glob("*"))  # no temporary file left behind


def final_parameters(config: TrainConfig, out: Path) -> dict[str, torch.Tensor]:
    """Train ``config`` into ``out`` keeping its last checkpoint; return the model weights."""
    train(config, out, quiet=True)
    return torch.load(checkpoint_path(out, config.run_id()), weights_only=True)["model"]


def test_accumulated_micro_batches_match_the_full_batch(tmp_path: Path) -> None:
    """4 micro-batches of 64 tokens, each loss scaled by 1/4, give the 256-token step's weights."""
    whole = tiny(steps=6, keep_checkpoint=True)
    split = tiny(steps=6, keep_checkpoint=True, micro_batch_tokens=64)
    assert split.run_id() == whole.run_id()
    expected = final_parameters(whole, tmp_path / "whole")
    found = final_parameters(split, tmp_path / "split")
    assert expected.keys() == found.keys()
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-6)
    assert any(not torch.equal(found[k], expected[k]) for k in expected)  # really a different summation
    meta = json.loads((tmp_path / "split" / f"{split.run_id()}.json").read_text())
    assert meta["batch"] == {"batch_tokens": 256, "micro_batch_tokens": 64, "accumulation_steps": 4, "processes": 1}
    assert meta["config"]["micro_batch_tokens"] == 64
    rows = read_rows(tmp_path / "split")
    assert {(r["batch_tokens"], r["micro_batch_tokens"]) for r in rows} == {("256", "64")}
    assert {r["micro_batch_tokens"] for r in read_rows(tmp_path / "whole")} == {"256"}


@pytest.mark.parametrize("columns", LAYOUTS[1:], ids=["before-vocab-size", "before-schedule-columns",
                                                      "before-micro-batches"])
def test_rows_keep_the_layout_of_an_older_table(tmp_path: Path, columns: tuple[str, ...]) -> None:
    """A table written before the newer columns existed gets rows without them."""
    (tmp_path / "runs.csv").write_text(",".join(columns) + "\n")
    config = tiny(steps=10, checkpoint_every=5)
    with pytest.raises(Crash):
        train(config, tmp_path, quiet=True, on_step=crash_at(8))  # rows past step 5 are rewritten on resume
    train(config, tmp_path, quiet=True)
    lines = (tmp_path / "runs.csv").read_text().splitlines()
    assert lines[0] == ",".join(columns)
    assert all(line.count(",") == len(columns) - 1 for line in lines)
    assert [int(r["step"]) for r in read_table(tmp_path) if r["split"] == "in_domain"] == config.eval_steps()


def test_truncated_checkpoint_names_the_file_and_the_fix(tmp_path: Path) -> None:
    config = tiny(steps=20, checkpoint_every=10)
    with pytest.raises(Crash):
        train(config, tmp_path, quiet=True, on_step=crash_at(15))
    path = checkpoint_path(tmp_path, config.run_id())
    data = path.read_bytes()
    for size in (0, 100, len(data) // 2, len(data) - 10):  # EOFError, RuntimeError, OSError in torch.load
        path.write_bytes(data[:size])
        with pytest.raises(TrainerError) as info:
            train(config, tmp_path, quiet=True)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"checkpoint {path} is unreadable (")
        assert message.endswith(f"delete it to restart {config.run_id()} from step 0, or restore it from a copy")
    torch.save({"step": 10}, path)  # readable, but not one of ours
    with pytest.raises(TrainerError, match=r"checkpoint .* lacks clock, config, model, .*; delete it to restart"):
        train(config, tmp_path, quiet=True)
    path.unlink()  # the fix named in the message
    assert train(config, tmp_path, quiet=True).status == "finished"


def test_a_run_held_by_another_process_is_refused(tmp_path: Path) -> None:
    config = tiny(steps=4)
    with run_lock(tmp_path, config.run_id()):  # flock conflicts between open files, even in one process
        with pytest.raises(RunBusyError, match=r"being trained by another process .*; wait for it to finish"):
            train(config, tmp_path, quiet=True)
    assert not (tmp_path / "runs.csv").exists()
    assert train(config, tmp_path, quiet=True).status == "finished"  # released with its file
