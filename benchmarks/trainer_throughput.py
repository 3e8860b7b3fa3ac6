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
autocast without compilation. The 60M model's 131,072-token batch runs as two
65,536-token micro-batches in both loops, so it fits a 40 GB GPU. MFU uses the
trainer's FLOPs convention (6N + 6·L·T·d per token) and the GPU's dense bf16 peak
(:data:`bayescale.trainer.sizing.PEAK_FLOPS_BF16`, or ``--peak-flops``).

**Gradient accumulation** (``--accumulation K``, default 4, 0 skips): the trainer at
one optimizer batch, as one pass per step and as K micro-batches of batch/K tokens
(``micro_batch_tokens``), alternating; the ratio (accumulated / one pass) is the
price of the smaller passes, which buy memory on a GPU. On CPU at 0.1M and 1M
parameters with 4,096-token batches; on CUDA at the CUDA sizes.

**Batched models** (CPU, ``--batched K``, default 4, 0 skips): K same-shape models
trained together by :class:`bayescale.trainer.batched.BatchedGPT` (stacked weights,
one batched forward/backward, one fused AdamW, per-model clipping) against the same
K models trained one after another with the trainer's step; tokens/s per model.

The tables are printed and appended, with date, machine and conditions, to
``benchmarks/RESULTS.md`` (``--no-append`` to skip). ``--parts`` picks the tables.

    python benchmarks/trainer_throughput.py                 # CPU, all threads
    python benchmarks/trainer_throughput.py --threads 1 --repeats 5
    python benchmarks/trainer_throughput.py --threads 1 --parts accumulation
    python benchmarks/trainer_throughput.py --device cuda   # MFU at 10M and 60M
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from common import RESULTS, add_append_option, append_results
from bayescale.environment import cpu_model
from bayescale.trainer import GPT, Corpus, GPTConfig, TrainConfig, load_corpus, param_counts, train
from bayescale.trainer.batched import BatchedGPT, build_batched_optimizer, clip_grad_norm_per_model_
from bayescale.trainer.config import default_heads
from bayescale.trainer.training import build_optimizer, peak_flops

PARTS = ("plain", "batched", "accumulation")


@dataclass(frozen=True)
class Case:
    """One model size and batch to measure; ``micro_batch_tokens`` splits each step."""

    label: str
    width: int
    depth: int
    context: int
    batch_tokens: int
    steps: int
    micro_batch_tokens: int | None = None

    def scaled(self, scale: float) -> Case:
        """The same case with ``scale`` times the steps (at least 4)."""
        return replace(self, steps=max(4, round(self.steps * scale)))


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
    Case("60M", 768, 8, 512, 131072, 60, micro_batch_tokens=65536),
)
ACCUMULATION_CPU_CASES = (
    Case("0.1M", 64, 2, 128, 4096, 30),
    Case("1M", 128, 5, 128, 4096, 10),
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


def trainer_run(
    case: Case, corpus: Corpus, device: str, threads: int | None, peak: float | None
) -> tuple[Rate, float, float | None]:
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
        peak_flops=peak,
        micro_batch_tokens=case.micro_batch_tokens,
    )
    with tempfile.TemporaryDirectory() as out:
        timing = train(config, out, quiet=True, corpus=corpus).metadata["timing"]
    end_to_end = case.batch_tokens * case.steps / timing["session_wall_time_s"]
    return Rate(timing["tokens_per_s"], timing["tokens_per_cpu_s"]), end_to_end, timing["mfu"]


def plain_run(case: Case, corpus: Corpus, device: str) -> Rate:
    """Rate of a minimal training loop of the same model and batch, after its first step.

    With ``case.micro_batch_tokens`` each step accumulates batch/micro micro-batches,
    each loss divided by their number (nanoGPT's loop).
    """
    torch.manual_seed(0)
    dev = torch.device(device)
    model = GPT(GPTConfig(case.width, case.depth, default_heads(case.width), case.context)).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = torch.from_numpy(np.array(corpus.train))  # a writable copy
    micro_seqs = (case.micro_batch_tokens or case.batch_tokens) // case.context
    passes = case.batch_tokens // case.context // micro_seqs
    watch = Stopwatch(device)
    for step in range(case.steps):
        optimizer.zero_grad(set_to_none=True)
        for _ in range(passes):
            ix = torch.randint(len(data) - case.context - 1, (micro_seqs,))
            xy = torch.stack([data[i : i + case.context + 1] for i in ix.tolist()]).long().to(dev)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                loss = model(xy[:, :-1], xy[:, 1:])
            (loss / passes).backward()
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


def non_embedding(case: Case) -> int:
    """N of the case's model."""
    return param_counts(GPT(GPTConfig(case.width, case.depth, default_heads(case.width), case.context))).non_embedding


def trainer_vs_plain(
    cases: list[Case], corpus: Corpus, device: str, threads: int, peak: float | None, repeats: int
) -> list[str]:
    """The trainer against the plain loop, alternating which goes first; table lines."""
    lines = [
        "The trainer against a plain PyTorch loop of the same model and batch; ratio = trainer / plain:",
        "",
        "| size | N (non-emb.) | width×depth | context | batch tokens | steps | trainer tokens/s | plain tokens/s "
        "| ratio | trainer tokens/CPU-s | plain tokens/CPU-s | CPU-time ratio | trainer e2e tokens/s | MFU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for case in cases:
        ours: list[Rate] = []
        plain: list[Rate] = []
        e2e: list[float] = []
        mfus: list[float] = []
        for repeat in range(repeats):
            order = ("trainer", "plain") if repeat % 2 == 0 else ("plain", "trainer")
            for which in order:
                if which == "trainer":
                    rate, end_to_end, mfu = trainer_run(case, corpus, device, threads, peak)
                    ours.append(rate)
                    e2e.append(end_to_end)
                    if mfu is not None:
                        mfus.append(mfu)
                else:
                    plain.append(plain_run(case, corpus, device))
        wall = [statistics.median(r.wall for r in rates) for rates in (ours, plain)]
        cpu = [statistics.median(r.cpu for r in rates) for rates in (ours, plain)]
        mfu_text = f"{statistics.median(mfus):.1%}" if mfus else "n/a"
        batch = f"{case.batch_tokens:,}"
        if case.micro_batch_tokens:
            batch += f" ({case.batch_tokens // case.micro_batch_tokens}×{case.micro_batch_tokens:,})"
        line = (
            f"| {case.label} | {non_embedding(case):,} | {case.width}×{case.depth} | {case.context} | {batch} | "
            f"{case.steps} | {wall[0]:,.0f} | {wall[1]:,.0f} | {wall[0] / wall[1]:.2f} | {cpu[0]:,.0f} | "
            f"{cpu[1]:,.0f} | {cpu[0] / cpu[1]:.2f} | {statistics.median(e2e):,.0f} | {mfu_text} |"
        )
        lines.append(line)
        print(line, flush=True)
    return lines


def batched_table(cases: list[Case], corpus: Corpus, k: int, repeats: int) -> list[str]:
    """K models batched against one after another (CPU); table lines."""
    lines = [
        f"{k} same-shape models (seeds 0..{k - 1}) trained together by `BatchedGPT` "
        "(stacked weights, one batched forward/backward, fused AdamW, per-model clipping) vs one after another "
        "with the trainer's step (fused AdamW, clipping); tokens per second and per CPU-second per model, "
        "medians:",
        "",
        "| size | width×depth | batch tokens per model | steps | sequential tokens/s | batched tokens/s | "
        "speed-up | sequential tokens/CPU-s | batched tokens/CPU-s | CPU-time speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for case in cases:
        results = [batched_vs_sequential(case, corpus, k) for _ in range(repeats)]
        wall = [statistics.median(r[i].wall for r in results) for i in (0, 1)]
        cpu = [statistics.median(r[i].cpu for r in results) for i in (0, 1)]
        line = (
            f"| {case.label} | {case.width}×{case.depth} | {case.batch_tokens:,} | {case.steps} | "
            f"{wall[0]:,.0f} | {wall[1]:,.0f} | {wall[1] / wall[0]:.2f} | {cpu[0]:,.0f} | {cpu[1]:,.0f} | "
            f"{cpu[1] / cpu[0]:.2f} |"
        )
        lines.append(line)
        print(line, flush=True)
    return lines


def accumulation_table(
    cases: list[Case], corpus: Corpus, device: str, threads: int, peak: float | None, k: int, repeats: int
) -> list[str]:
    """The trainer at one optimizer batch, one pass per step vs k micro-batches; table lines."""
    lines = [
        f"Gradient accumulation: the trainer at one optimizer batch, one forward/backward per step vs {k} "
        f"micro-batches of batch/{k} tokens (`--micro-batch-tokens`; same windows, losses scaled by 1/{k}), "
        "alternating which goes first; tokens per second and per CPU-second of the training steps, medians; "
        "ratio = accumulated / one pass:",
        "",
        "| size | N (non-emb.) | width×depth | context | batch tokens | micro-batch tokens | steps | one pass tokens/s "
        "| accumulated tokens/s | ratio | one pass tokens/CPU-s | accumulated tokens/CPU-s | CPU-time ratio | "
        "MFU one pass | MFU accumulated |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for case in cases:
        seqs = case.batch_tokens // case.context
        if seqs % k:
            raise SystemExit(f"--accumulation {k} does not divide the {seqs} sequences of the {case.label} case")
        variants = {"one pass": replace(case, micro_batch_tokens=None)}
        variants["accumulated"] = replace(case, micro_batch_tokens=case.batch_tokens // k)
        rates: dict[str, list[Rate]] = {name: [] for name in variants}
        mfus: dict[str, list[float]] = {name: [] for name in variants}
        for repeat in range(repeats):
            for name in list(variants)[:: 1 if repeat % 2 == 0 else -1]:
                rate, _, mfu = trainer_run(variants[name], corpus, device, threads, peak)
                rates[name].append(rate)
                if mfu is not None:
                    mfus[name].append(mfu)
        wall = [statistics.median(r.wall for r in rates[name]) for name in variants]
        cpu = [statistics.median(r.cpu for r in rates[name]) for name in variants]
        mfu_text = [f"{statistics.median(mfus[name]):.1%}" if mfus[name] else "n/a" for name in variants]
        line = (
            f"| {case.label} | {non_embedding(case):,} | {case.width}×{case.depth} | {case.context} | "
            f"{case.batch_tokens:,} | {case.batch_tokens // k:,} | {case.steps} | {wall[0]:,.0f} | {wall[1]:,.0f} | "
            f"{wall[1] / wall[0]:.2f} | {cpu[0]:,.0f} | {cpu[1]:,.0f} | {cpu[1] / cpu[0]:.2f} | {mfu_text[0]} | "
            f"{mfu_text[1]} |"
        )
        lines.append(line)
        print(line, flush=True)
    return lines


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
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated tables to measure, from {', '.join(PARTS)} (default: all; batched is CPU only)",
    )
    parser.add_argument(
        "--batched",
        type=int,
        default=4,
        metavar="K",
        help="CPU: also compare K models trained batched vs one after another (default: 4, 0 skips)",
    )
    parser.add_argument(
        "--accumulation",
        type=int,
        default=4,
        metavar="K",
        help="compare K accumulated micro-batches per step with one pass at the same batch (default: 4, 0 skips)",
    )
    parser.add_argument(
        "--peak-flops", type=float, default=None, help="peak FLOP/s of the GPU for MFU (default: known GPUs)"
    )
    add_append_option(parser)
    args = parser.parse_args()
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")

    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda needs a CUDA GPU; use --device cpu")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    peak = None
    if device == "cuda":
        probe = TrainConfig(width=32, depth=1, context=32, batch_tokens=32, steps=2, peak_flops=args.peak_flops)
        peak = peak_flops(probe, torch.device("cuda"))
    corpus = load_corpus()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    started = time.perf_counter()

    sections: list[list[str]] = []  # each table prints as it is measured
    if "plain" in parts:
        cases = [c.scaled(args.scale) for c in (CUDA_CASES if device == "cuda" else CPU_CASES)]
        sections.append(trainer_vs_plain(cases, corpus, device, threads, peak, args.repeats))
        print(flush=True)
    if "batched" in parts and device == "cpu" and args.batched > 1:
        cases = [c.scaled(args.scale) for c in BATCHED_CASES]
        sections.append(batched_table(cases, corpus, args.batched, args.repeats))
        print(flush=True)
    if "accumulation" in parts and args.accumulation > 1:
        base = [replace(c, batch_tokens=65536, micro_batch_tokens=None) for c in CUDA_CASES]
        cases = [c.scaled(args.scale) for c in (base if device == "cuda" else ACCUMULATION_CPU_CASES)]
        sections.append(accumulation_table(cases, corpus, device, threads, peak, args.accumulation, args.repeats))
        print(flush=True)

    elapsed = time.perf_counter() - started
    end_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if device == "cuda":
        name = torch.cuda.get_device_name()
        machine = f"{name} (dense bf16 peak {peak:.3g} FLOP/s)" if peak else f"{name} (peak unknown: no MFU)"
        conditions = "bf16 autocast, torch.compile, fused AdamW (trainer)"
        if "plain" in parts:
            conditions += (
                "; bf16 autocast, eager, default AdamW (plain); batches of 2 or more micro-batches accumulate "
                "gradients in both"
            )
    else:
        machine = f"{cpu_model()}, {os.cpu_count()} cores"
        conditions = "fp32, eager; trainer: fused AdamW, grad clipping"
        if "plain" in parts:
            conditions += "; plain: default AdamW, no clipping"
    flags = "".join(
        f" --{name.replace('_', '-')} {value}"
        for name, value, default in (
            ("device", args.device, "auto"),
            ("threads", args.threads, None),
            ("repeats", args.repeats, 3),
            ("scale", args.scale, 1.0),
            ("parts", args.parts, ",".join(PARTS)),
            ("batched", args.batched, 4),
            ("accumulation", args.accumulation, 4),
            ("peak_flops", args.peak_flops, None),
        )
        if value != default
    )
    header = [
        "",
        f"## Trainer throughput, {device.upper()} ({dt.date.today().isoformat()})",
        "",
        f"`python benchmarks/trainer_throughput.py{flags}`: machine {machine}; "
        f"torch {torch.__version__}, Python {platform.python_version()}; {threads} thread(s); "
        f"load average {load:.1f} at the start, {end_load:.1f} at the end; {conditions}. Medians of "
        f"{args.repeats} alternating repeats in one process, in tokens per wall-clock second and per process "
        f"CPU-second (steadier on a shared machine); MFU only where the device peak is known. "
        f"Measured in {elapsed / 60:.1f} min.",
        "",
    ]
    lines = [line for section in sections for line in [*section, ""]]
    if device == "cpu":
        lines.append(
            "CUDA figures (about 10M and 60M parameters, bf16, compiled): not measured here "
            "(no GPU on this machine); run `python benchmarks/trainer_throughput.py --device cuda` on one."
        )
    if not args.no_append:  # the tables were printed as they were measured
        append_results("\n".join(header + lines).rstrip("\n"))
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
