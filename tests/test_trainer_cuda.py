"""CUDA and multi-process paths: bf16 + torch.compile on a GPU, DDP under torchrun."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bayescale.trainer import TrainConfig, train
from bayescale.trainer.training import checkpoint_path

REPO = Path(__file__).resolve().parent.parent
#: ``torchrun`` with two ranks on this machine (gloo on CPU).
TORCHRUN_TWO_CPU_RANKS = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")


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
        *TORCHRUN_TWO_CPU_RANKS,
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


DDP_ACCUMULATION_SCRIPT = '''
"""Under torchrun: count gradient all-reduces of an accumulated step, then train a run."""
import contextlib
import json
import sys

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from bayescale.trainer import GPT, GPTConfig, TrainConfig, train
from bayescale.trainer.training import _accumulate_gradients

out, config = sys.argv[1], TrainConfig(**json.loads(sys.argv[2]))
dist.init_process_group("gloo")
torch.manual_seed(0)
model = DistributedDataParallel(GPT(GPTConfig(16, 1, 1, 32)))
reduces = []


def counting_hook(group, bucket):
    reduces.append(bucket.index())
    return default_hooks.allreduce_hook(group, bucket)


model.register_comm_hook(dist.group.WORLD, counting_hook)
tokens = torch.randint(0, 256, (6, 33))
_accumulate_gradients(model, model, [(tokens[:, :-1], tokens[:, 1:])], contextlib.nullcontext)
one_pass = len(reduces)
reduces.clear()
micro = [(part[:, :-1], part[:, 1:]) for part in tokens.split(2)]
_accumulate_gradients(model, model, micro, contextlib.nullcontext)
counts = {"one_pass": one_pass, "three_micro_batches": len(reduces)}
if dist.get_rank() == 0:
    with open(f"{out}/reduces.json", "w") as handle:
        json.dump(counts, handle)
train(config, out, quiet=True)  # joins the process group set up above
dist.destroy_process_group()
'''


def test_ddp_accumulation_matches_one_process_with_the_whole_batch(tmp_path: Path) -> None:
    """Two gloo ranks x 2 micro-batches each = one process with the 8-sequence batch.

    Also checks that an accumulated step all-reduces the gradients once, in the last
    micro-batch's backward pass (``no_sync`` before it), by counting the calls of a
    DDP communication hook.
    """
    base = dict(
        width=16,
        depth=1,
        context=32,
        batch_tokens=256,
        steps=6,
        warmup_steps=2,
        eval_tokens=256,
        eval_every=3,
        threads=1,
        keep_checkpoint=True,
    )
    split = TrainConfig(**base, micro_batch_tokens=64)  # 4 sequences per rank, 2 per pass
    script = tmp_path / "ddp_accumulation.py"
    script.write_text(DDP_ACCUMULATION_SCRIPT)
    out = tmp_path / "ddp"
    out.mkdir()
    command = [
        *TORCHRUN_TWO_CPU_RANKS,
        str(script),
        str(out),
        json.dumps(split.to_dict()),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = json.loads((out / "reduces.json").read_text())
    assert counts["one_pass"] >= 1 and counts["three_micro_batches"] == counts["one_pass"]
    meta = json.loads((out / f"{split.run_id()}.json").read_text())
    assert meta["batch"] == {"batch_tokens": 256, "micro_batch_tokens": 64, "accumulation_steps": 2, "processes": 2}

    whole = TrainConfig(**base)
    assert whole.run_id() == split.run_id()
    train(whole, tmp_path / "single", quiet=True)
    found = torch.load(checkpoint_path(out, split.run_id()), weights_only=True)["model"]
    expected = torch.load(checkpoint_path(tmp_path / "single", whole.run_id()), weights_only=True)["model"]
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-6)
