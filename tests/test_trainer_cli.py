"""``train`` and ``sweep`` subcommands through a minimal argparse harness."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from bayescale.trainer import TrainConfig, TrainerError
from bayescale.trainer.cli import add_sweep_parser, add_train_parser, sweep_spec

TRAIN = [
    "train",
    "--width",
    "16",
    "--depth",
    "1",
    "--context",
    "32",
    "--batch-tokens",
    "128",
    "--steps",
    "8",
    "--warmup-steps",
    "1",
    "--eval-tokens",
    "256",
    "--threads",
    "1",
    "--quiet",
]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="bayescale")
    subparsers = root.add_subparsers(dest="command", required=True)
    add_train_parser(subparsers)
    add_sweep_parser(subparsers)
    return root


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


def test_importing_the_cli_does_not_import_torch() -> None:
    code = "import sys, bayescale.trainer.cli, bayescale.trainer; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "sweep"):
        with pytest.raises(SystemExit) as exit_info:
            parser().parse_args([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "examples:" in text and f"bayescale {command} --" in text


def test_train_command_writes_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([*TRAIN, "--out", str(tmp_path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "finished" and not record["skipped"]
    assert (tmp_path / "runs.csv").exists() and (tmp_path / f"{record['run']}.json").exists()
    assert record["metadata"]["config"]["batch_tokens"] == 128
    # Running it again skips the finished run and still succeeds.
    assert run([*TRAIN, "--out", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--batch-tokens", "100"], "batch_tokens 100 is not a multiple of context 32; use --batch-tokens 96 or 128"),
        (["--heads", "3"], "width 16 is not divisible by heads 3"),
        (["--warmup-steps", "8"], "warmup_steps 8 must be smaller than steps 8"),
        (["--eval-tokens", "16"], "eval_tokens 16 is smaller than context 32"),
        (["--lr", "-1"], "lr must be a positive number, got -1.0"),
        (["--data", "/nonexistent/corpus.txt"], "corpus /nonexistent/corpus.txt does not exist"),
    ],
)
def test_bad_input_raises_value_error(tmp_path: Path, change: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        run([*TRAIN, *change, "--out", str(tmp_path)])
    assert "\n" not in str(info.value)


def test_diverged_run_exits_nonzero(tmp_path: Path) -> None:
    argv = [*TRAIN, "--lr", "20", "--grad-clip", "0", "--warmup-steps", "0", "--steps", "40", "--out", str(tmp_path)]
    assert run(argv) == 1


def test_module_entry_point_prints_one_line_errors(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "bayescale.trainer", *TRAIN, "--batch-tokens", "100", "--out", str(tmp_path)]
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bayescale: error: batch_tokens 100 is not a multiple of context 32; use --batch-tokens 96 or 128"
    ]


def test_sweep_flags_become_a_grid() -> None:
    args = parser().parse_args(
        [
            "sweep",
            "--widths",
            "32,64",
            "--depths",
            "2",
            "--batch-tokens",
            "512,2048",
            "--seeds",
            "0,1",
            "--context",
            "128",
            "--steps",
            "100",
            "--lr",
            "0.003",
            "--threads",
            "1",
            "--out",
            "x",
        ]
    )
    spec = sweep_spec(args)
    assert spec == {
        "width": [32, 64],
        "depth": [2],
        "batch_tokens": [512, 2048],
        "seed": [0, 1],
        "context": [128],
        "steps": [100],
        "lr": [0.003],
        "threads": 1,
    }


def test_sweep_flag_errors(tmp_path: Path) -> None:
    base = ["sweep", "--context", "32", "--batch-tokens", "128", "--steps", "8", "--out", str(tmp_path)]
    with pytest.raises(TrainerError, match="sweep needs --widths and --depths"):
        run(base)
    with pytest.raises(TrainerError, match="--shapes cannot be combined with --widths"):
        run([*base, "--shapes", "16x1", "--widths", "16"])
    grid = tmp_path / "grid.toml"
    grid.write_text("context = 32\nsteps = 8\nbatch_tokens = 128\nshape = ['16x1']\n")
    with pytest.raises(TrainerError, match="--grid cannot be combined with batch_tokens"):
        run(["sweep", "--grid", str(grid), "--batch-tokens", "256", "--out", str(tmp_path)])
    with pytest.raises(TrainerError, match="bad shard '3/3'"):
        run(["sweep", "--grid", str(grid), "--shard", "3/3", "--out", str(tmp_path)])
    with pytest.raises(TrainerError, match="does not exist; check the --grid path"):
        run(["sweep", "--grid", str(tmp_path / "none.toml"), "--out", str(tmp_path)])


def test_sweep_command_runs_a_grid_file(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(
        "context = 32\nsteps = 6\nwarmup_steps = 1\neval_tokens = 256\n"
        "[[grid]]\nshape = ['16x1', '24x1']\nbatch_tokens = [64, 128]\n"
    )
    out = tmp_path / "out"
    assert run(["sweep", "--grid", str(grid), "--threads", "1", "--quiet", "--out", str(out)]) == 0
    assert len(list(out.glob("w*.json"))) == 4


def test_micro_batch_flag_reaches_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([*TRAIN, "--micro-batch-tokens", "64", "--out", str(tmp_path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["metadata"]["batch"]["accumulation_steps"] == 2
    assert record["run"] == TrainConfig(
        width=16, depth=1, context=32, batch_tokens=128, steps=8, warmup_steps=1, eval_tokens=256
    ).run_id()
    with pytest.raises(ValueError, match=r"^micro_batch_tokens 96 does not divide batch_tokens 128 into equal "):
        run([*TRAIN, "--micro-batch-tokens", "96", "--out", str(tmp_path / "bad")])


TINY_GRID = "context = 32\nsteps = 8\nwarmup_steps = 1\neval_tokens = 256\nshape = ['16x1']\nbatch_tokens = [128, 256]\n"


def test_dry_run_lists_runs_and_gpu_hours_without_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(TINY_GRID)
    assert run(["sweep", "--grid", str(grid), "--dry-run", "--peak-flops", "1e6", "--mfu", "0.5", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    # C_token = 6N + 6*L*T*d with N = 12*16^2 + 2*16 + 16 = 3120: 18,720 + 3,072 = 21,792 FLOPs.
    assert [r["flops"] for r in plan["runs"]] == [21_792 * 128 * 8, 21_792 * 256 * 8]
    assert plan["runs"][0]["hours"] == pytest.approx(21_792 * 128 * 8 / (1e6 * 0.5) / 3600)
    assert plan["total_gpu_hours"] == pytest.approx(21_792 * 384 * 8 / 5e5 / 3600)
    assert run(["sweep", "--grid", str(grid), "--dry-run", "--micro-batch-tokens", "64"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "N", "batch", "micro", "steps", "tokens", "FLOPs", "GPU-hours"]
    assert len(lines) == 4 and lines[1].split()[1:4] == ["3,120", "128", "64"]
    assert lines[-1].startswith("total: 2 runs, 6.69e+07 FLOPs, 0.0 GPU-hours at 247.2 TFLOP/s achieved per GPU")
    assert "MFU 0.25 (--mfu)" in lines[-1]
    assert list(tmp_path.iterdir()) == [grid]  # nothing trained, nothing written
    with pytest.raises(TrainerError, match=r"MFU in \(0, 1\]"):
        run(["sweep", "--grid", str(grid), "--dry-run", "--mfu", "2"])
    with pytest.raises(TrainerError, match="sweep needs --out DIR for its runs, or --dry-run"):
        run(["sweep", "--grid", str(grid)])


def test_data_may_override_a_grid_file(tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(TINY_GRID + "data = 'elsewhere.bin'\n")
    args = parser().parse_args(["sweep", "--grid", str(grid), "--data", "corpus.txt", "--out", "x"])
    assert sweep_spec(args)["data"] == "corpus.txt"

#: ``TRAIN`` without its width and depth.
UNSHAPED = ["train", *TRAIN[5:]]


def test_shape_flag_trains_the_same_run_as_width_and_depth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([*TRAIN, "--out", str(tmp_path), "--json"]) == 0
    by_flags = json.loads(capsys.readouterr().out)["run"]
    assert run([*UNSHAPED, "--shape", "16x1", "--out", str(tmp_path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["run"] == by_flags and record["skipped"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*TRAIN, "--shape", "16x1"], "--shape cannot be combined with --width/--depth"),
        ([*UNSHAPED, "--depth", "1"], "--width and --depth, or --shape"),
        ([*UNSHAPED, "--shape", "16by1"], "bad shape"),
    ],
)
def test_shape_flag_bad_input(tmp_path: Path, argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run([*argv, "--out", str(tmp_path)])
