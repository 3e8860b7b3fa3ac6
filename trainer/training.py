"""The training loop: one run -> rows in ``OUT/runs.csv`` plus ``OUT/<run>.json``.

``train(config, out_dir)`` trains a :class:`~.model.GPT` with AdamW and evaluates it
on every held-out split at ``config.eval_steps()``. Each evaluation appends one row
per split in the run-table schema (:data:`~.records.COLUMNS`):

* ``params`` = N (non-embedding), ``params_total`` = all parameters;
* ``batch_tokens`` = B = sequences × context; ``step`` = optimizer steps completed;
  ``tokens`` = B·step;
* ``loss`` = mean cross-entropy in nats per token (per byte for byte corpora) over
  the split's fixed evaluation windows (:func:`~.data.eval_windows`);
* ``lr`` = the peak learning rate; ``schedule``, ``warmup_steps``, ``seed``, ``context``.

Determinism: the initialisation is seeded by ``config.seed``; the batch of step s is
drawn from ``numpy.random.default_rng([seed, s])``, so the data position of a run is
its step count and a resumed run sees exactly the batches it would have seen.

Crash safety follows :mod:`.records`: rows are appended at each evaluation, the
checkpoint (model, optimizer, RNG states, step = data position, timers) is written
atomically every ``checkpoint_every`` steps after the rows of its step, and a restart
deletes the run's rows past its checkpoint before continuing. Checkpoints load with
``torch.load(..., weights_only=True)``.

Under ``torchrun`` the global batch is split over ranks (DistributedDataParallel);
every rank evaluates the same windows and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import importlib.metadata
import io
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from .config import DiskFullError, TrainConfig, TrainerError
from .data import Corpus, check_corpus_size, eval_windows, load_corpus
from .model import GPT, param_counts
from .records import FINAL_STATUSES, append_rows, atomic_write_bytes, disk_errors, read_json, truncate_run, write_json
from .sizing import FLOPS_CONVENTION, PARAMS_CONVENTION, GPTConfig, flops_per_token

# Dense bf16 peak FLOP/s per GPU by a substring of torch.cuda.get_device_name().
PEAK_FLOPS_BF16 = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10G", 125e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),
)
CHECKPOINT_DIR = "checkpoints"


@dataclass(frozen=True)
class RunResult:
    """Outcome of :func:`train`.

    Attributes:
        run: the run id.
        status: ``finished`` or ``diverged``.
        skipped: the run had already ended in ``out_dir`` and was not trained again.
        metadata: the run's metadata record (``OUT/<run>.json``).
    """

    run: str
    status: str
    skipped: bool
    metadata: dict[str, Any]

    @property
    def final_loss(self) -> dict[str, float]:
        """Last evaluation loss per split."""
        return dict(self.metadata.get("final_loss", {}))


@dataclass(frozen=True)
class _Dist:
    rank: int
    local_rank: int
    world_size: int

    @classmethod
    def from_env(cls) -> _Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world)

    @property
    def main(self) -> bool:
        return self.rank == 0


def checkpoint_path(out_dir: Path, run: str) -> Path:
    """Where the checkpoint of ``run`` lives: ``OUT/checkpoints/<run>.pt``."""
    return Path(out_dir) / CHECKPOINT_DIR / f"{run}.pt"


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainerError("--device cuda was requested but no CUDA GPU is available; use --device cpu")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def build_optimizer(model: GPT, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with decoupled weight decay on matrices (dim >= 2) only.

    Parameters with two or more dimensions (linear weights and the embeddings) get
    ``config.weight_decay``; LayerNorm gains get none. Uses the fused kernel (one
    kernel for all parameters) on CPU and CUDA: on one CPU thread it takes the
    optimizer step of a 1M-parameter model from about 4.7 ms to 0.8 ms.
    """
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups,
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        fused=device.type in ("cpu", "cuda") or None,
    )


def peak_flops(config: TrainConfig, device: torch.device) -> float | None:
    """Peak FLOP/s of one device: ``config.peak_flops`` or the bf16 table for known GPUs."""
    if config.peak_flops is not None:
        return config.peak_flops
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in PEAK_FLOPS_BF16:
            if key in name:
                return value
    return None


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def _git_commit() -> dict[str, Any] | None:
    """Commit of the git checkout holding this package, if any, and whether the trainer's
    own files (the code that trains) differ from it; sweep grids and data elsewhere in
    the checkout do not count.

    Read once per process, so a long sweep records the code it imported.
    """
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _versions() -> dict[str, str | None]:
    try:
        own = importlib.metadata.version("bayescale")
    except importlib.metadata.PackageNotFoundError:
        own = None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "bayescale": own,
    }


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


class _Batches:
    """Training batches: the batch of step s comes from ``default_rng([seed, s])``."""

    def __init__(self, tokens: np.ndarray, config: TrainConfig, dist_info: _Dist, device: torch.device) -> None:
        self.tokens = tokens
        self.context = config.context
        self.seed = config.seed
        self.global_seqs = config.batch_seqs
        per_rank = config.batch_seqs // dist_info.world_size
        self.rows = slice(dist_info.rank * per_rank, (dist_info.rank + 1) * per_rank)
        self.device = device
        self.offsets = np.arange(config.context + 1)
        self.high = tokens.size - config.context  # exclusive bound on window starts

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        starts = rng.integers(0, self.high, size=self.global_seqs)[self.rows]
        window = torch.from_numpy(self.tokens[starts[:, None] + self.offsets].astype(np.int64))
        if self.device.type == "cuda":
            window = window.pin_memory().to(self.device, non_blocking=True)
        return window[:, :-1], window[:, 1:]


class _Evaluator:
    """Mean loss over the fixed evaluation windows of every split."""

    def __init__(self, corpus: Corpus, config: TrainConfig, device: torch.device) -> None:
        self.batches: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        chunk = max(1, config.batch_seqs)
        span = np.arange(config.context + 1)
        for split, tokens in corpus.eval_splits.items():
            starts = eval_windows(tokens, config.context, config.eval_tokens)
            windows = torch.from_numpy(tokens[starts[:, None] + span].astype(np.int64)).to(device)
            self.batches[split] = [
                (windows[i : i + chunk, :-1], windows[i : i + chunk, 1:]) for i in range(0, len(windows), chunk)
            ]

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, autocast: contextlib.AbstractContextManager[Any]) -> dict[str, float]:
        model.eval()
        losses = {}
        for split, batches in self.batches.items():
            total = torch.zeros((), dtype=torch.float64, device=batches[0][0].device)
            count = 0
            for x, y in batches:
                with autocast:
                    total += model(x, y, reduction="sum").double()
                count += y.numel()
            losses[split] = float(total.item() / count)
        model.train()
        return losses


def _autocast(device: torch.device, precision: str) -> tuple[str, Callable[[], contextlib.AbstractContextManager[Any]]]:
    resolved = precision if precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    if resolved == "bf16":
        return resolved, lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return resolved, contextlib.nullcontext


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` to ``path`` atomically (temporary file, fsync, ``os.replace``).

    Serialises in memory first, so a full disk surfaces as a plain ``OSError`` from
    the file write (and becomes :class:`~.config.DiskFullError`).
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with disk_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getbuffer())


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    quiet: bool = False,
    corpus: Corpus | None = None,
    on_step: Callable[[int], None] | None = None,
) -> RunResult:
    """Train one run, resuming from its checkpoint in ``out_dir`` if one exists.

    Args:
        config: the run.
        out_dir: output folder; receives ``runs.csv`` (appended), ``<run>.json`` and
            ``checkpoints/<run>.pt``.
        quiet: no progress bar (it is also off when stderr is not a terminal).
        corpus: an already loaded corpus (default: ``load_corpus(config.data)``).
        on_step: called with the number of completed steps after each step, after
            that step's rows and checkpoint are written (progress reporting, or
            simulating a crash in tests by raising).

    Returns:
        The run's status and metadata. A run whose metadata already says
        ``finished`` or ``diverged`` is not trained again (``skipped=True``).

    Raises:
        TrainerError: bad input (see :meth:`TrainConfig.validate`), a missing or too
            small corpus, no CUDA for ``device="cuda"``, a checkpoint of another
            config, or a full disk (:class:`~.config.DiskFullError`).
    """
    out = Path(out_dir)
    run = config.run_id()
    meta_path = out / f"{run}.json"
    with disk_errors(out):
        out.mkdir(parents=True, exist_ok=True)
    previous = read_json(meta_path)
    if previous is not None and previous.get("status") in FINAL_STATUSES:
        return RunResult(run, previous["status"], True, previous)

    info = _Dist.from_env()
    device = resolve_device(config.device, info.local_rank)
    if config.batch_seqs % info.world_size:
        raise TrainerError(
            f"batch of {config.batch_seqs} sequences does not split over {info.world_size} processes; "
            f"use --batch-tokens a multiple of {config.context * info.world_size}"
        )
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if corpus is None:
        corpus = load_corpus(config.data)
    check_corpus_size(corpus, config.context, config.batch_seqs, config.eval_tokens)

    own_group = False
    if info.world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        own_group = True
    try:
        return _train(config, out, run, corpus, device, info, quiet, on_step)
    finally:
        if own_group:
            dist.destroy_process_group()


def _train(
    config: TrainConfig,
    out: Path,
    run: str,
    corpus: Corpus,
    device: torch.device,
    info: _Dist,
    quiet: bool,
    on_step: Callable[[int], None] | None,
) -> RunResult:
    started = time.perf_counter()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model_config = GPTConfig(config.width, config.depth, config.heads, config.context, corpus.vocab_size)
    torch.manual_seed(config.seed)
    model = GPT(model_config).to(device)
    counts = param_counts(model)
    optimizer = build_optimizer(model, config, device)
    ckpt_path = checkpoint_path(out, run)

    start_step, sessions = 0, 1
    carried: dict[str, float] = {}
    if ckpt_path.exists():
        # On the CPU first: RNG states must stay CPU tensors; load_state_dict moves the rest.
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if state["config"] != config.result_dict():
            raise TrainerError(
                f"checkpoint {ckpt_path} belongs to a different configuration; delete it to start {run} afresh"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"], device)
        start_step = int(state["step"])
        carried = {k: float(v) for k, v in state["clock"].items()}
        sessions = int(state["sessions"]) + 1
    if info.main:
        truncate_run(out, run, start_step)

    precision, autocast = _autocast(device, config.precision)
    use_compile = config.compile == "on" or (config.compile == "auto" and device.type == "cuda")
    wrapped: torch.nn.Module = model
    if info.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    forward = torch.compile(wrapped) if use_compile else wrapped
    eval_model = model if info.world_size > 1 else forward

    flops_token = flops_per_token(model_config)
    peak = peak_flops(config, device)
    schedule = config.eval_steps()
    eval_set = set(schedule)
    metadata: dict[str, Any] = {
        "run": run,
        "status": "running",
        "config": config.to_dict(),
        "model": {
            "width": config.width,
            "depth": config.depth,
            "heads": config.heads,
            "head_dim": model_config.head_dim,
            "context": config.context,
            "vocab_size": corpus.vocab_size,
            "tied_embeddings": True,
            "params_non_embedding": counts.non_embedding,
            "params_embedding": counts.embedding,
            "params_total": counts.total,
            "params_convention": PARAMS_CONVENTION,
        },
        "flops": {
            "per_token": flops_token,
            "convention": FLOPS_CONVENTION,
            "total": flops_token * config.batch_tokens * config.steps,
        },
        "corpus": corpus.describe(),
        "eval_steps": schedule,
        "eval_tokens_per_split": (config.eval_tokens // config.context) * config.context,
        "versions": _versions(),
        "device": {
            "type": device.type,
            "name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
            "count": info.world_size,
            "cpu_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "precision": precision,
            "compiled": use_compile,
        },
        "git": _git_commit(),
        "command": sys.argv,
        "started_at": _now(),
        "sessions": sessions,
        "resumed_from_step": start_step,
        "step": start_step,
    }
    rows_base = {
        "run": run,
        "params": counts.non_embedding,
        "batch_tokens": config.batch_tokens,
        "lr": config.lr,
        "seed": config.seed,
        "params_total": counts.total,
        "context": config.context,
        "schedule": config.schedule,
        "warmup_steps": config.warmup_steps,
    }
    if info.main:
        write_json(out / f"{run}.json", metadata)

    batches = _Batches(corpus.train, config, info, device)
    evaluator = _Evaluator(corpus, config, device)
    max_loss = config.max_loss_factor * math.log(corpus.vocab_size)
    sync_every = 1 if device.type == "cpu" else 10
    params = list(model.parameters())
    final_loss: dict[str, float] = {}
    divergence: dict[str, Any] | None = None
    clock = _Clock(device, started, carried)

    def save_checkpoint(done: int) -> None:
        metadata["step"] = done
        metadata["timing"] = _timing(clock, done, config, flops_token, peak, info)
        _save_checkpoint(
            ckpt_path,
            {
                "run": run,
                "step": done,
                "config": config.result_dict(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": _rng_state(device),
                "clock": clock.state(),
                "sessions": sessions,
            },
        )
        write_json(out / f"{run}.json", metadata)

    bar = tqdm(
        total=config.steps,
        initial=start_step,
        desc=run,
        unit="step",
        leave=False,
        dynamic_ncols=True,
        disable=quiet or not info.main or not sys.stderr.isatty(),
    )
    try:
        model.train()
        clock.start("startup")  # the first step of a session (compilation, allocation)
        for step in range(start_step, config.steps):
            if step > start_step:
                clock.timed_steps += 1
            lr = config.lr_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = batches(step)
            with autocast():
                loss = forward(x, y)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            bar.update(1)
            evaluate = done in eval_set
            if done % sync_every == 0 or evaluate or done == config.steps:
                divergence = _check_loss(loss, done, max_loss, config, corpus.vocab_size, info)
                if divergence:
                    break
            if evaluate:
                clock.start("eval")
                losses = evaluator(eval_model, autocast())
                final_loss = losses
                if info.main:
                    append_rows(
                        out,
                        [
                            {**rows_base, "step": done, "loss": v, "tokens": config.batch_tokens * done, "split": k}
                            for k, v in losses.items()
                        ],
                    )
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
                bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
                if bad:
                    divergence = {"step": done, "reason": f"evaluation loss is not finite: {bad}"}
                    break
            if done % config.checkpoint_every == 0 and done < config.steps and info.main:
                clock.start("other")
                save_checkpoint(done)
            clock.start("train")
            if on_step is not None:
                on_step(done)
        clock.start("other")
    except BaseException as exc:
        if info.main:
            metadata["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            metadata["error"] = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(OSError, DiskFullError):
                write_json(out / f"{run}.json", metadata)
        raise
    finally:
        bar.close()

    done_steps = divergence["step"] if divergence else config.steps
    metadata["status"] = "diverged" if divergence else "finished"
    metadata["step"] = done_steps
    metadata["finished_at"] = _now()
    metadata["final_loss"] = final_loss
    if divergence:
        metadata["divergence"] = divergence
    metadata["timing"] = _timing(clock, done_steps, config, flops_token, peak, info)
    if info.main:
        write_json(out / f"{run}.json", metadata)
        if not config.keep_checkpoint:
            with contextlib.suppress(FileNotFoundError):
                ckpt_path.unlink()
        elif not divergence:
            save_checkpoint(done_steps)
    return RunResult(run, metadata["status"], False, metadata)


class _Clock:
    """Splits elapsed time into phases: startup, train, eval and other (I/O).

    ``start(phase)`` closes the current phase; on CUDA it synchronizes first, so the
    asynchronous kernels of a phase are charged to it (only at phase changes, so
    consecutive training steps are not synchronized). ``startup`` is the first step
    of each session (``torch.compile`` and allocations), so ``train`` times the
    ``timed_steps`` steady-state steps. The process CPU time of the training phase is
    kept too: on a shared machine, tokens per CPU-second is steadier than tokens per
    second. Totals carried over from a checkpoint cover the earlier sessions up to
    that checkpoint.
    """

    PHASES = ("startup", "train", "eval")

    def __init__(self, device: torch.device, started: float, carried: dict[str, float]) -> None:
        self.device = device
        self.started = started
        self.totals = {phase: carried.get(f"{phase}_time_s", 0.0) for phase in self.PHASES}
        self.train_cpu_time = carried.get("train_cpu_time_s", 0.0)
        self.timed_steps = int(carried.get("timed_steps", 0))
        self.earlier_wall_time = carried.get("wall_time_s", 0.0)
        self.phase = "other"
        self.since = time.perf_counter()
        self.cpu_since = time.process_time()

    def start(self, phase: str) -> None:
        """End the current phase and start ``phase`` (nothing to do if it is running)."""
        if phase == self.phase:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now, cpu_now = time.perf_counter(), time.process_time()
        if self.phase in self.totals:
            self.totals[self.phase] += now - self.since
        if self.phase == "train":
            self.train_cpu_time += cpu_now - self.cpu_since
        self.phase, self.since, self.cpu_since = phase, now, cpu_now

    def wall_time(self) -> float:
        """Wall time of this session so far plus the earlier sessions' (to their checkpoints)."""
        return self.earlier_wall_time + time.perf_counter() - self.started

    def state(self) -> dict[str, float]:
        """Totals to store in a checkpoint."""
        return {
            **{f"{phase}_time_s": value for phase, value in self.totals.items()},
            "train_cpu_time_s": self.train_cpu_time,
            "timed_steps": float(self.timed_steps),
            "wall_time_s": self.wall_time(),
        }


def _check_loss(
    loss: torch.Tensor, done: int, max_loss: float, config: TrainConfig, vocab_size: int, info: _Dist
) -> dict[str, Any] | None:
    """Divergence record when the (rank-averaged) training loss is not finite or too large."""
    value = loss.detach().float()
    if info.world_size > 1:
        dist.all_reduce(value, op=dist.ReduceOp.AVG)
    train_loss = float(value.item())
    if math.isfinite(train_loss) and train_loss <= max_loss:
        return None
    if not math.isfinite(train_loss):
        reason = f"training loss is {train_loss}"
    else:
        reason = (
            f"training loss {train_loss:.4g} exceeds max_loss_factor*ln(vocab) = "
            f"{config.max_loss_factor}*ln({vocab_size}) = {max_loss:.4g}"
        )
    return {"step": done, "reason": reason, "train_loss": repr(train_loss)}


def _timing(
    clock: _Clock,
    steps: int,
    config: TrainConfig,
    flops_token: int,
    peak: float | None,
    info: _Dist,
) -> dict[str, Any]:
    """Throughput over all sessions.

    tokens/s = B·(timed steps) / (train time), excluding each session's first step;
    tokens per CPU-second likewise with the process CPU time of those steps;
    MFU = C_token·tokens/s / (peak FLOP/s per device × devices).
    """
    train_time, cpu_time = clock.totals["train"], clock.train_cpu_time
    tokens_per_s = config.batch_tokens * clock.timed_steps / train_time if clock.timed_steps else None
    tokens_per_cpu_s = config.batch_tokens * clock.timed_steps / cpu_time if clock.timed_steps and cpu_time else None
    achieved = flops_token * tokens_per_s if tokens_per_s else None
    return {
        **{f"{phase}_time_s": value for phase, value in clock.totals.items()},
        "train_cpu_time_s": cpu_time,
        "timed_steps": clock.timed_steps,
        "steps": steps,
        "session_wall_time_s": time.perf_counter() - clock.started,
        "wall_time_s": clock.wall_time(),
        "tokens_per_s": tokens_per_s,
        "tokens_per_cpu_s": tokens_per_cpu_s,
        "model_flops_per_s": achieved,
        "peak_flops_per_device": peak,
        "mfu": achieved / (peak * info.world_size) if achieved and peak else None,
    }
