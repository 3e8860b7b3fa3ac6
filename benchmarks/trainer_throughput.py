"""Training throughput of bayescale's trainer against a minimal plain-PyTorch loop.

Both train the same :class:`bayescale.trainer.GPT` on the same corpus with the same
batch, in one process, alternating which goes first in each repeat; the table shows
the median tokens/s over the repeats and their ratio (trainer / plain; >= 1 means the
trainer is at least as fast).

* **trainer**: ``bayescale.trainer.train`` with one evaluation at the first and last
  step; tokens/s is the trainer's own figure (training steps only, excluding each
  session's first step, evaluation and file writes). "trainer e2e" divides by the whole
  session instead (first step, evaluations, CSV/JSON writes included).
* **plain**: the loop a user would write first: ``torch.optim.AdamW`` with default
  settings, random windows indexed from a tensor, forward, backward, step; timed from
  the end of its first step, like the trainer.

CPU mode (default without CUDA): 0.1M, 1M and 3M non-embedding parameters, fp32.
CUDA mode (``--device cuda``, default when a GPU is present): about 10M and 60M
parameters, bf16 autocast, ``torch.compile``, fused AdamW; the plain loop uses bf16
autocast without compilation. MFU uses the trainer's FLOPs convention (6N + 6·L·T·d
per token) and the GPU's dense bf16 peak.

**Batched models** (CPU, ``--batched K``, default 4, 0 skips): K same-shape models
trained together by :class:`bayescale.trainer.batched.BatchedGPT` (stacked weights,
one batched forward/backward, one fused AdamW, per-model clipping) against the same
K models trained one after another with the trainer's step; tokens/s per model.

The tables are printed and appended, with date, machine and conditions, to
``benchmarks/RESULTS.md`` (``--no-append`` to skip).

    python benchmarks/trainer_throughput.py                 # CPU, all threads
    python benchmarks/trainer_throughput.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from bayescale.trainer import GPT, Corpus, GPTConfig, TrainConfig, load_corpus, param_counts, train
from bayescale.trainer.batched import BatchedGPT, build_batched_optimizer, clip_grad_norm_per_model_
from bayescale.trainer.config import default_heads
from bayescale.trainer.training import build_optimizer, peak_flops

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass(frozen=True)
class Case:
    """One model size and batch to measure."""

    label: str
    width: int
    depth: int
    context: int
    batch_tokens: int
    steps: int


CPU_CASES = (
    Case("0.1M", 64, 2, 128, 1024, 120),
    Case("1M", 128, 5, 128, 1024, 40),
    Case("3M", 256, 4, 128, 1024, 20),
)
BATCHED_CASES = (
    Case("25K", 32, 2, 128, 1024, 60),
    Case("0.1M", 64, 2, 128, 1024, 40),
    Case("1M", 128, 5, 128, 1024, 12),
)
CUDA_CASES = (
    Case("10M", 384, 6, 512, 65536, 120),
    Case("60M", 768, 8, 512, 131072, 60),
)


@dataclass(frozen=True)
class Rate:
    """Tokens per wall-clock second and per process CPU-second."""

    wall: float
    cpu: float


class Stopwatch:
    """Wall and process CPU time since ``start()``; CUDA work is synchronized first."""

    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"
        self.wall = self.cpu = 0.0

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def start(self) -> None:
        self._sync()
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rate(self, tokens: int) -> Rate:
        self._sync()
        return Rate(tokens / (time.perf_counter() - self.wall), tokens / (time.process_time() - self.cpu))


def trainer_run(case: Case, corpus: Corpus, device: str, threads: int | None) -> tuple[Rate, float, float | None]:
    """(rate of the training steps, tokens/s end to end, MFU) of one ``train`` call."""
    config = TrainConfig(
        width=case.width,
        depth=case.depth,
        context=case.context,
        batch_tokens=case.batch_tokens,
        steps=case.steps,
        warmup_steps=min(10, case.steps // 2),
        eval_tokens=case.context,
        eval_log_points=1,
        eval_every=case.steps,
        checkpoint_every=10 * case.steps,
        device=device,
        threads=threads,
    )
    with tempfile.TemporaryDirectory() as out:
        timing = train(config, out, quiet=True, corpus=corpus).metadata["timing"]
    end_to_end = case.batch_tokens * case.steps / timing["session_wall_time_s"]
    return Rate(timing["tokens_per_s"], timing["tokens_per_cpu_s"]), end_to_end, timing["mfu"]


def plain_run(case: Case, corpus: Corpus, device: str) -> Rate:
    """Rate of a minimal training loop of the same model and batch, after its first step."""
    torch.manual_seed(0)
    dev = torch.device(device)
    model = GPT(GPTConfig(case.width, case.depth, default_heads(case.width), case.context)).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = torch.from_numpy(np.array(corpus.train))  # a writable copy
    seqs = case.batch_tokens // case.context
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    watch = Stopwatch(device)
    for step in range(case.steps):
        ix = torch.randint(len(data) - case.context - 1, (seqs,))
        xy = torch.stack([data[i : i + case.context + 1] for i in ix.tolist()]).long().to(dev)
        with autocast:
            loss = model(xy[:, :-1], xy[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step == 0:
            watch.start()
    return watch.rate(case.batch_tokens * (case.steps - 1))


def batched_vs_sequential(case: Case, corpus: Corpus, k: int) -> tuple[Rate, Rate]:
    """Rates per model of K models trained one after another, and of K trained batched."""
    config = TrainConfig(
        width=case.width, depth=case.depth, context=case.context, batch_tokens=case.batch_tokens, steps=case.steps
    )
    shape = GPTConfig(case.width, case.depth, config.heads, case.context)
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(GPT(shape))
    seqs = case.batch_tokens // case.context
    span = np.arange(case.context + 1)
    rng = np.random.default_rng(0)
    per_model_tokens = case.batch_tokens * (case.steps - 1)

    def windows(count: int) -> torch.Tensor:
        starts = rng.integers(0, corpus.train.size - case.context, size=count)
        return torch.from_numpy(corpus.train[starts[:, None] + span].astype(np.int64))

    optimizers = [build_optimizer(m, config, torch.device("cpu")) for m in models]
    watch = Stopwatch("cpu")
    for step in range(case.steps):
        for model, optimizer in zip(models, optimizers, strict=True):
            xy = windows(seqs)
            model(xy[:, :-1], xy[:, 1:]).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if step == 0:
            watch.start()
    sequential = watch.rate(per_model_tokens)

    batched = BatchedGPT(models)
    optimizer = build_batched_optimizer(
        batched, config.lr, config.weight_decay, (config.beta1, config.beta2), fused=True
    )
    for step in range(case.steps):
        xy = windows(k * seqs).view(k, seqs, case.context + 1)
        batched(xy[..., :-1], xy[..., 1:]).sum().backward()
        clip_grad_norm_per_model_(batched, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step == 0:
            watch.start()
    return sequential, watch.rate(per_model_tokens)


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, or the platform's description."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="cuda when available with auto (default: auto)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch.get_num_threads())")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats per size (default: 3)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every case's steps (default: 1)")
    parser.add_argument(
        "--batched",
        type=int,
        default=4,
        metavar="K",
        help="CPU: also compare K models trained batched vs one after another (default: 4, 0 skips)",
    )
    parser.add_argument("--no-append", action="store_true", help=f"do not append to {RESULTS.name}")
    args = parser.parse_args()

    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    cases = [
        Case(c.label, c.width, c.depth, c.context, c.batch_tokens, max(4, round(c.steps * args.scale)))
        for c in (CUDA_CASES if device == "cuda" else CPU_CASES)
    ]
    corpus = load_corpus()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    started = time.perf_counter()

    lines = [
        "| size | N (non-emb.) | width×depth | context | batch tokens | steps | trainer tokens/s | plain tokens/s "
        "| ratio | trainer tokens/CPU-s | plain tokens/CPU-s | CPU-time ratio | trainer e2e tokens/s | MFU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for case in cases:
        n = param_counts(GPT(GPTConfig(case.width, case.depth, default_heads(case.width), case.context))).non_embedding
        ours: list[Rate] = []
        plain: list[Rate] = []
        e2e: list[float] = []
        mfus: list[float] = []
        for repeat in range(args.repeats):
            order = ("trainer", "plain") if repeat % 2 == 0 else ("plain", "trainer")
            for which in order:
                if which == "trainer":
                    rate, end_to_end, mfu = trainer_run(case, corpus, device, threads)
                    ours.append(rate)
                    e2e.append(end_to_end)
                    if mfu is not None:
                        mfus.append(mfu)
                else:
                    plain.append(plain_run(case, corpus, device))
        wall = [statistics.median(r.wall for r in rates) for rates in (ours, plain)]
        cpu = [statistics.median(r.cpu for r in rates) for rates in (ours, plain)]
        mfu_text = f"{statistics.median(mfus):.1%}" if mfus else "n/a"
        line = (
            f"| {case.label} | {n:,} | {case.width}×{case.depth} | {case.context} | {case.batch_tokens:,} | "
            f"{case.steps} | {wall[0]:,.0f} | {wall[1]:,.0f} | {wall[0] / wall[1]:.2f} | {cpu[0]:,.0f} | "
            f"{cpu[1]:,.0f} | {cpu[0] / cpu[1]:.2f} | {statistics.median(e2e):,.0f} | {mfu_text} |"
        )
        lines.append(line)
        print(line, flush=True)

    if device == "cpu" and args.batched > 1:
        lines += [
            "",
            f"{args.batched} same-shape models (seeds 0..{args.batched - 1}) trained together by `BatchedGPT` "
            "(stacked weights, one batched forward/backward, fused AdamW, per-model clipping) vs one after another "
            "with the trainer's step (fused AdamW, clipping); tokens per second and per CPU-second per model, "
            "medians:",
            "",
            "| size | width×depth | batch tokens per model | steps | sequential tokens/s | batched tokens/s | "
            "speed-up | sequential tokens/CPU-s | batched tokens/CPU-s | CPU-time speed-up |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        print("\n".join(lines[-4:]), flush=True)
        for base_case in BATCHED_CASES:
            case = Case(
                base_case.label,
                base_case.width,
                base_case.depth,
                base_case.context,
                base_case.batch_tokens,
                max(4, round(base_case.steps * args.scale)),
            )
            results = [batched_vs_sequential(case, corpus, args.batched) for _ in range(args.repeats)]
            wall = [statistics.median(r[i].wall for r in results) for i in (0, 1)]
            cpu = [statistics.median(r[i].cpu for r in results) for i in (0, 1)]
            line = (
                f"| {case.label} | {case.width}×{case.depth} | {case.batch_tokens:,} | {case.steps} | "
                f"{wall[0]:,.0f} | {wall[1]:,.0f} | {wall[1] / wall[0]:.2f} | {cpu[0]:,.0f} | {cpu[1]:,.0f} | "
                f"{cpu[1] / cpu[0]:.2f} |"
            )
            lines.append(line)
            print(line, flush=True)

    elapsed = time.perf_counter() - started
    end_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if device == "cuda":
        name = torch.cuda.get_device_name()
        peak = peak_flops(TrainConfig(width=32, depth=1, context=32, batch_tokens=32, steps=2), torch.device("cuda"))
        machine = f"{name} (dense bf16 peak {peak:.3g} FLOP/s)" if peak else f"{name} (peak unknown)"
        conditions = "bf16 autocast, torch.compile, fused AdamW (trainer); bf16 autocast, eager, default AdamW (plain)"
    else:
        machine = f"{cpu_model()}, {os.cpu_count()} cores"
        conditions = "fp32, eager; trainer: fused AdamW, grad clipping; plain: default AdamW, no clipping"
    header = [
        "",
        f"## Trainer throughput, {device.upper()} ({dt.date.today().isoformat()})",
        "",
        f"`python benchmarks/trainer_throughput.py{' --threads ' + str(args.threads) if args.threads else ''}"
        f"{' --repeats ' + str(args.repeats) if args.repeats != 3 else ''}"
        f"{' --scale ' + str(args.scale) if args.scale != 1.0 else ''}`: machine {machine}; "
        f"torch {torch.__version__}, Python {platform.python_version()}; {threads} thread(s); "
        f"load average {load:.1f} at the start, {end_load:.1f} at the end; {conditions}. Medians of "
        f"{args.repeats} alternating repeats in one process; ratio = trainer / plain (tokens per wall-clock "
        f"second; per process CPU-second, steadier on a shared machine); MFU only where the device peak is known. "
        f"Measured in {elapsed / 60:.1f} min.",
        "",
    ]
    if device == "cpu":
        lines.append("")
        lines.append(
            "CUDA figures (about 10M and 60M parameters, bf16, compiled): not measured here "
            "(no GPU on this machine); run `python benchmarks/trainer_throughput.py --device cuda` on one."
        )
    text = "\n".join(header + lines) + "\n"
    if not args.no_append:
        with open(RESULTS, "a") as handle:
            if RESULTS.stat().st_size == 0:
                handle.write("# Benchmark results\n")
            handle.write(text)
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
