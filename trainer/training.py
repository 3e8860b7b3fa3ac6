"""The training loop: one run -> rows in ``OUT/runs.csv`` plus ``OUT/<run>.json``.

``train(config, out_dir)`` trains a :class:`~.model.GPT` with AdamW and evaluates it
on every held-out split at ``config.eval_steps()``. Each evaluation appends one row
per split in the run-table schema (:data:`~.records.COLUMNS`):

* ``params`` = N (non-embedding), ``params_total`` = all parameters;
* ``batch_tokens`` = B = sequences × context; ``step`` = optimizer steps completed;
  ``tokens`` = B·step;
* ``micro_batch_tokens`` = tokens per forward/backward pass on one device (B over the
  processes when the step is not split; see ``TrainConfig.micro_batch_tokens``);
* ``loss`` = mean cross-entropy in nats per token (per byte for byte corpora) over
  the split's fixed evaluation windows (:func:`~.data.eval_windows`);
* ``vocab_size`` = the corpus's vocabulary, which the model's embedding covers (256
  for byte corpora: the losses are then nats per byte);
* ``learning_rate`` = the rate of the last optimizer step taken (0-based step
  ``step - 1``), from :meth:`~.config.TrainConfig.learning_rates`, which the loop also
  sets;
* ``lr`` = the peak learning rate; the schedule's specification
  (:meth:`~.config.TrainConfig.schedule_columns`: ``schedule``, ``warmup_steps``,
  ``final_lr_fraction`` = ``min_lr_ratio``, ``decay_fraction``, ``total_steps`` =
  ``steps``); ``seed``, ``context``.

Determinism: the initialisation is seeded by ``config.seed``; the batch of step s is
drawn from ``numpy.random.default_rng([seed, s])``, so the data position of a run is
its step count and a resumed run sees exactly the batches it would have seen. Micro-
batches are consecutive rows of that batch (rank r of W takes rows r·B/W to
(r+1)·B/W and splits them in order), so gradient accumulation and DDP see the same
windows as one process with the whole batch; their gradients differ only by rounding.

Crash safety follows :mod:`.records`: rows are appended at each evaluation, the
checkpoint (model, optimizer, RNG states, step = data position, timers) is written
atomically every ``checkpoint_every`` steps after the rows of its step, and a restart
deletes the run's rows past its checkpoint before continuing. Checkpoints load with
``torch.load(..., weights_only=True)``.

Under ``torchrun`` the global batch is split over ranks (DistributedDataParallel);
every rank evaluates the same windows and only rank 0 writes files. Gradients are
all-reduced once per step, after the last micro-batch (``no_sync`` before it).

One process trains a run at a time: rank 0 holds an exclusive ``flock`` on
``OUT/locks/<run>.lock`` while it trains (:func:`~.records.run_lock`), so two sweeps
into one folder share the runs out instead of training them twice; the operating
system drops the lock when its process dies, so a crash never leaves a stale one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import importlib.metadata
import io
import math
import os
import pickle
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from bayescale import schedules

from .config import DiskFullError, RunBusyError, TrainConfig, TrainerError
from .data import Corpus, check_corpus_size, eval_windows, load_corpus
from .model import GPT, param_counts
from .records import (
    FINAL_STATUSES,
    append_rows,
    atomic_write_bytes,
    disk_errors,
    read_json,
    run_lock,
    truncate_run,
    write_json,
)
from .sizing import FLOPS_CONVENTION, PARAMS_CONVENTION, PEAK_FLOPS_BF16, GPTConfig, flops_per_token

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_KEYS = frozenset({"run", "step", "config", "model", "optimizer", "rng", "clock", "sessions"})


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
    """Commit of the git checkout holding this package, if any, and whether the code that
    trains differs from it: the trainer's own files and :mod:`bayescale.schedules` (its
    learning rates); sweep grids and data elsewhere in the checkout do not count.

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
            ["git", "-C", str(here), "status", "--porcelain", "--", ".", str(Path(schedules.__file__).resolve())],
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
    """Training batches: the batch of step s comes from ``default_rng([seed, s])``.

    A call returns this rank's rows of the batch as its micro-batches, in order: the
    same windows for any number of ranks and micro-batches. The rank's rows travel to
    the device in one copy.
    """

    def __init__(
        self, tokens: np.ndarray, config: TrainConfig, dist_info: _Dist, micro_seqs: int, device: torch.device
    ) -> None:
        self.tokens = tokens
        self.context = config.context
        self.seed = config.seed
        self.global_seqs = config.batch_seqs
        per_rank = config.batch_seqs // dist_info.world_size
        self.rows = slice(dist_info.rank * per_rank, (dist_info.rank + 1) * per_rank)
        self.micro_seqs = micro_seqs
        self.device = device
        self.offsets = np.arange(config.context + 1)
        self.high = tokens.size - config.context  # exclusive bound on window starts

    def __call__(self, step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([self.seed, step])
        starts = rng.integers(0, self.high, size=self.global_seqs)[self.rows]
        window = torch.from_numpy(self.tokens[starts[:, None] + self.offsets].astype(np.int64))
        if self.device.type == "cuda":
            window = window.pin_memory().to(self.device, non_blocking=True)
        return [(part[:, :-1], part[:, 1:]) for part in window.split(self.micro_seqs)]


class _Evaluator:
    """Mean loss over the fixed evaluation windows of every split.

    Windows are evaluated ``chunk`` sequences at a time: the micro-batch when one is
    set (a forward pass no larger than a training one fits in memory), else the whole
    batch, as before micro-batches existed.
    """

    def __init__(self, corpus: Corpus, config: TrainConfig, chunk: int, device: torch.device) -> None:
        self.batches: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
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


def _load_checkpoint(path: Path, run: str) -> dict[str, Any]:
    """The checkpoint in ``path``, or a one-line TrainerError naming it and the fix.

    Checkpoints are written atomically, so a damaged one was cut short or altered
    after the fact (a copy interrupted, a full disk during a manual move); torch
    then raises EOFError, RuntimeError ("failed finding central directory") or
    OSError ("[Errno 22] Invalid argument"), none of which names the file. Loads on
    the CPU: RNG states must stay CPU tensors; ``load_state_dict`` moves the rest.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing = sorted(CHECKPOINT_KEYS - set(state)) if isinstance(state, dict) else ["everything"]
    except (EOFError, OSError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        reason = (str(exc).splitlines() or [""])[0].split(". ")[0][:120] or type(exc).__name__
        raise TrainerError(
            f"checkpoint {path} is unreadable ({reason}); delete it to restart {run} from step 0, "
            "or restore it from a copy"
        ) from exc
    if missing:
        raise TrainerError(
            f"checkpoint {path} lacks {', '.join(missing)}; delete it to restart {run} from step 0, "
            "or restore it from a copy"
        )
    return state


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
        ``finished`` or ``diverged`` is not trained again (``skipped=True``), also
        when another process finished it while this one waited for its lock.

    Raises:
        TrainerError: bad input (see :meth:`TrainConfig.validate`), a batch that
            does not split over the processes and micro-batches, a missing or too
            small corpus, no CUDA for ``device="cuda"``, an unreadable checkpoint or
            one of another config, a full disk (:class:`~.config.DiskFullError`), or
            another process training the run into ``out_dir``
            (:class:`~.config.RunBusyError`).
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
    micro_seqs, _ = config.micro_batches(info.world_size)
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
        with _exclusive(out, run, info, device):
            # Another process may have ended the run while this one waited.
            previous = read_json(meta_path)
            if previous is not None and previous.get("status") in FINAL_STATUSES:
                return RunResult(run, previous["status"], True, previous)
            return _train(config, out, run, corpus, device, info, micro_seqs, quiet, on_step)
    finally:
        if own_group:
            dist.destroy_process_group()


@contextlib.contextmanager
def _exclusive(out: Path, run: str, info: _Dist, device: torch.device) -> Iterator[None]:
    """Hold the run's lock (rank 0) for the block; every rank raises RunBusyError if it is taken.

    Rank 0 alone takes the lock, since the ranks of one run are one trainer; it
    broadcasts whether it got it, so that no rank starts a run that rank 0 refused.
    """
    with contextlib.ExitStack() as stack:
        busy: RunBusyError | None = None
        if info.main:
            try:
                stack.enter_context(run_lock(out, run))
            except RunBusyError as exc:
                busy = exc
        if info.world_size > 1:
            flag = torch.tensor([busy is not None], dtype=torch.int32, device=device)
            dist.broadcast(flag, src=0)
            if flag.item() and busy is None:
                busy = RunBusyError(f"run {run} is being trained by another process; wait for it or use another --out")
        if busy is not None:
            raise busy
        yield


def _train(
    config: TrainConfig,
    out: Path,
    run: str,
    corpus: Corpus,
    device: torch.device,
    info: _Dist,
    micro_seqs: int,
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
        state = _load_checkpoint(ckpt_path, run)
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
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if use_compile:
        # Each run of a sweep compiles a new model, often of a new shape; without a reset
        # the process's compile cache fills, and past its recompile limit dynamo falls
        # back to eager mode with only a log message.
        torch.compiler.reset()
    forward = torch.compile(wrapped) if use_compile else wrapped
    eval_model = model if info.world_size > 1 else forward
    accumulation = config.batch_seqs // info.world_size // micro_seqs
    micro_tokens = micro_seqs * config.context

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
        "batch": {
            "batch_tokens": config.batch_tokens,
            "micro_batch_tokens": micro_tokens,
            "accumulation_steps": accumulation,
            "processes": info.world_size,
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
        "micro_batch_tokens": micro_tokens,
        "vocab_size": corpus.vocab_size,
        **config.schedule_columns(),
    }
    rates = config.learning_rates()
    if info.main:
        write_json(out / f"{run}.json", metadata)

    batches = _Batches(corpus.train, config, info, micro_seqs, device)
    evaluator = _Evaluator(corpus, config, micro_seqs if accumulation > 1 else config.batch_seqs, device)
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
            lr = float(rates[step])
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = _accumulate_gradients(forward, wrapped, batches(step), autocast)
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
                            {**rows_base, "step": done, "loss": v, "tokens": config.batch_tokens * done, "split": k,
                             "learning_rate": lr}
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


def _accumulate_gradients(
    forward: Callable[..., torch.Tensor],
    wrapped: torch.nn.Module,
    micro_batches: list[tuple[torch.Tensor, torch.Tensor]],
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
) -> torch.Tensor:
    """Backpropagate one step's micro-batches; return their mean loss (detached).

    Every micro-batch has the same number of tokens, so the mean of their mean losses
    is the mean over the step's batch: scaling each loss by 1/k makes the summed
    gradients those of the whole batch (k = 1 is the plain step: x/1 is exact). Under
    DDP the gradients are all-reduced (averaged over ranks) only in the backward pass
    of the last micro-batch; the earlier ones run inside ``no_sync``.
    """
    k = len(micro_batches)
    losses = []
    for index, (x, y) in enumerate(micro_batches):
        defer = isinstance(wrapped, DistributedDataParallel) and index < k - 1
        with wrapped.no_sync() if defer else contextlib.nullcontext():
            with autocast():
                loss = forward(x, y)
            (loss / k).backward()
        losses.append(loss.detach())
    return torch.stack(losses).mean()


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
