"""Run configuration: validation, run ids, evaluation steps, learning-rate schedules."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import pytest
from bayescale.schedules import Schedule
from bayescale.trainer import TrainConfig, TrainerError, expand_grid, load_grid
from bayescale.trainer.config import SCHEDULES, eval_steps
from bayescale.trainer.sizing import analytic_param_counts, shape_for_params

DATA = Path(__file__).resolve().parent.parent / "bayescale" / "data"


def config(**overrides: object) -> TrainConfig:
    values: dict[str, object] = dict(width=64, depth=2, context=128, batch_tokens=1024, steps=1000)
    values.update(overrides)
    return TrainConfig(**values)


def test_defaults_are_resolved() -> None:
    c = config()
    assert c.heads == 2 and c.warmup_steps == 100 and c.batch_seqs == 8
    assert config(steps=50).warmup_steps == 5


def test_run_id_is_deterministic_and_names_the_run() -> None:
    c = config(lr=3e-3, seed=4)
    assert c.run_id() == config(lr=3e-3, seed=4).run_id()
    assert c.run_id().startswith("w64-d2-h2-ctx128-b1024-s1000-lr3e-03-constant-seed4-")
    # Settings that change the numbers change the id; speed settings do not.
    assert config(eval_tokens=4096).run_id() != config().run_id()
    assert config(weight_decay=0.0).run_id() != config().run_id()
    assert config(threads=1, device="cpu", checkpoint_every=7, compile="off").run_id() == config().run_id()


def test_run_ids_of_existing_configs_are_pinned() -> None:
    """Run ids key resume, skipping and sharding: new fields must not move old ids."""
    assert config(steps=3000).run_id() == "w64-d2-h2-ctx128-b1024-s3000-lr3e-03-constant-seed0-a19be1"
    tiny = TrainConfig(
        width=32, depth=2, context=32, batch_tokens=256, steps=12, warmup_steps=3, eval_tokens=512, eval_every=4
    )
    assert tiny.run_id() == "w32-d2-h1-ctx32-b256-s12-lr3e-03-constant-seed0-cc579e"
    # micro_batch_tokens is a speed setting: same id, same checkpoint identity.
    split = TrainConfig(**{**tiny.to_dict(), "micro_batch_tokens": 64})
    assert split.run_id() == tiny.run_id() and split.result_dict() == tiny.result_dict()
    # The bundled sweep's grid still names exactly the runs of its table.
    ids = [c.run_id() for c in expand_grid(load_grid(DATA / "sweep_grid.toml"))]
    with open(DATA / "sweep_runs.csv", newline="") as handle:
        assert set(ids) == {row["run"] for row in csv.DictReader(handle)} and len(ids) == 18


def test_micro_batches_split_the_batch_per_process() -> None:
    c = config(batch_tokens=4096, context=128)  # 32 sequences
    assert c.micro_batches() == (32, 1) and c.micro_batches(4) == (8, 1)
    assert config(batch_tokens=4096, micro_batch_tokens=1024).micro_batches() == (8, 4)
    assert config(batch_tokens=4096, micro_batch_tokens=1024).micro_batches(2) == (8, 2)
    # A micro-batch at least as large as a process's share is one pass per step.
    assert config(batch_tokens=4096, micro_batch_tokens=4096).micro_batches(4) == (8, 1)
    assert config(batch_tokens=1024, micro_batch_tokens=65536).micro_batches() == (8, 1)
    with pytest.raises(TrainerError, match="batch of 32 sequences does not split over 3 processes"):
        c.micro_batches(3)
    with pytest.raises(
        TrainerError,
        match=r"^batch_tokens 3072 over 2 processes is 1536 tokens per process, which micro_batch_tokens 1024 "
        r"does not divide; use --micro-batch-tokens 768 or 1536$",
    ):
        config(batch_tokens=3072, micro_batch_tokens=1024).micro_batches(2)


def test_from_dict_rejects_unknown_keys() -> None:
    assert TrainConfig.from_dict(config().to_dict()) == config()
    with pytest.raises(TrainerError, match=r"unknown setting\(s\) \['widht'\]"):
        TrainConfig.from_dict({"widht": 3})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_tokens": 1000}, "batch_tokens 1000 is not a multiple of context 128; use --batch-tokens 896 or 1024"),
        ({"width": 64, "heads": 3}, "width 64 is not divisible by heads 3"),
        ({"steps": 0}, "steps must be a positive integer, got 0"),
        ({"warmup_steps": 1000}, "warmup_steps 1000 must be smaller than steps 1000"),
        ({"schedule": "onecycle"}, "unknown schedule 'onecycle'; choose one of constant, cosine, wsd, linear"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"lr": float("nan")}, "lr must be a positive number, got nan"),
        ({"beta2": 1.0}, "AdamW betas must be below 1"),
        ({"min_lr_ratio": 2.0}, r"min_lr_ratio must lie in \[0, 1\]"),
        ({"decay_fraction": 0.0}, r"decay_fraction must lie in \(0, 1\], got 0.0"),
        ({"eval_tokens": 64}, "eval_tokens 64 is smaller than context 128"),
        ({"threads": 0}, "threads must be a positive integer, got 0"),
        ({"max_loss_factor": 1.0}, "max_loss_factor must be a number above 1"),
        ({"micro_batch_tokens": 0}, "micro_batch_tokens must be a positive integer, got 0"),
        (
            {"micro_batch_tokens": 200},
            "micro_batch_tokens 200 is not a multiple of context 128; use --micro-batch-tokens 128 or 256",
        ),
        (
            {"micro_batch_tokens": 384},
            "micro_batch_tokens 384 does not divide batch_tokens 1024 into equal micro-batches; "
            "use --micro-batch-tokens 256 or 512",
        ),
    ],
)
def test_validation_messages(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(TrainerError, match=message):
        config(**overrides)


def test_eval_steps_are_log_spaced_plus_regular() -> None:
    steps = eval_steps(3000, 24, 300)
    assert steps[0] == 1 and steps[-1] == 3000 and steps == sorted(set(steps))
    assert {300 * k for k in range(1, 11)} <= set(steps)
    assert 25 <= len(steps) <= 40
    assert eval_steps(5, 24) == [1, 2, 3, 4, 5]
    assert config(steps=1000).eval_steps() == eval_steps(1000, 24, 100)


def test_constant_schedule_with_warmup() -> None:
    c = config(lr=1e-3, warmup_steps=10)
    assert c.lr_at(0) == pytest.approx(1e-4)
    assert c.lr_at(9) == pytest.approx(1e-3)
    assert {c.lr_at(s) for s in range(10, 1000)} == {1e-3}


def test_cosine_schedule() -> None:
    c = config(lr=1e-3, warmup_steps=100, schedule="cosine", min_lr_ratio=0.1)
    assert c.lr_at(100) == pytest.approx(1e-3)
    mid = 100 + (999 - 100) / 2
    assert c.lr_at(int(mid)) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 449 / 899))))
    assert c.lr_at(999) == pytest.approx(1e-4)
    lrs = [c.lr_at(s) for s in range(100, 1000)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))


def test_wsd_schedule() -> None:
    c = config(lr=1e-3, warmup_steps=100, schedule="wsd", decay_fraction=0.2, min_lr_ratio=0.0)
    assert {c.lr_at(s) for s in range(100, 800)} == {1e-3}
    assert c.lr_at(800) == pytest.approx(1e-3 * (1 - 1 / 200))
    assert c.lr_at(899) == pytest.approx(0.5e-3)
    assert c.lr_at(999) == pytest.approx(0.0)


def test_linear_schedule() -> None:
    c = config(lr=1e-3, warmup_steps=100, schedule="linear", min_lr_ratio=0.1)
    assert c.lr_at(100) == pytest.approx(1e-3)
    assert c.lr_at(550) == pytest.approx(1e-3 * (1 - 0.9 * 450 / 899))
    assert c.lr_at(999) == pytest.approx(1e-4)


def test_the_trainer_and_the_laws_share_one_schedule() -> None:
    """The trainer's choices are bayescale.schedules' shapes, and its rates are Schedule's."""
    for kind in SCHEDULES:
        c = config(lr=2e-3, warmup_steps=50, schedule=kind, min_lr_ratio=0.05, decay_fraction=0.3)
        assert c.lr_schedule() == Schedule(kind, warmup_steps=50, final_lr_fraction=0.05, decay_fraction=0.3)
        assert (c.learning_rates() == c.lr_schedule().relative_rates(1000) * 2e-3).all()
        assert c.lr_at(700) == c.learning_rates()[700]


@pytest.mark.parametrize("params", [1e4, 3e5, 1e7, 1e9, 7e10])
def test_shape_for_params_lands_near_the_size(params):
    shape = shape_for_params(params)
    assert analytic_param_counts(shape).non_embedding == pytest.approx(params, rel=0.035)
    assert shape.width % shape.heads == 0
    if params >= 1e7:  # deep enough for the aspect ratio to bind
        assert 32 <= shape.width / shape.depth <= 128
