"""CUDA and multi-process paths: bf16 + torch.compile on a GPU, DDP under torchrun."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bayescale.trainer import TrainConfig, train

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_run_with_bf16_and_compile(tmp_path: Path) -> None:
    config = TrainConfig(
        width=64,
        depth=2,
        context=64,
        batch_tokens=2048,
        steps=40,
        warmup_steps=4,
        eval_tokens=1024,
        device="cuda",
        peak_flops=1e12,
    )
    result = train(config, tmp_path, quiet=True)
    assert result.status == "finished"
    device = result.metadata["device"]
    assert device["type"] == "cuda" and device["precision"] == "bf16" and device["compiled"]
    assert result.metadata["timing"]["mfu"] > 0
    with open(tmp_path / "runs.csv") as handle:
        losses = [float(r["loss"]) for r in csv.DictReader(handle) if r["split"] == "in_domain"]
    assert losses[-1] < losses[0] - 1.0


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "runs.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_ddp_on_cpu_matches_a_single_process(tmp_path: Path) -> None:
    """Two gloo processes under torchrun split the batch; rank 0 alone writes the same curve."""
    flags = [
        "--width",
        "16",
        "--depth",
        "1",
        "--context",
        "32",
        "--batch-tokens",
        "128",
        "--steps",
        "12",
        "--warmup-steps",
        "2",
        "--eval-tokens",
        "256",
        "--eval-every",
        "4",
        "--threads",
        "1",
        "--quiet",
    ]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "bayescale.trainer",
        "train",
        *flags,
        "--out",
        str(tmp_path / "ddp"),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    config = TrainConfig(
        width=16,
        depth=1,
        context=32,
        batch_tokens=128,
        steps=12,
        warmup_steps=2,
        eval_tokens=256,
        eval_every=4,
        threads=1,
    )
    train(config, tmp_path / "single", quiet=True)
    ddp, single = _rows(tmp_path / "ddp"), _rows(tmp_path / "single")
    assert [(r["run"], r["step"], r["split"]) for r in ddp] == [(r["run"], r["step"], r["split"]) for r in single]
    for a, b in zip(ddp, single, strict=True):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), abs=1e-4)
