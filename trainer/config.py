"""Training configuration, run ids, evaluation steps and learning-rate schedules.

This module needs neither torch nor numpy, so the command line can parse and validate
a run without loading PyTorch. The schedule's formulas are those of
:class:`bayescale.schedules.Schedule` (one implementation for the trainer and the laws),
imported when a run asks for its rates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bayescale.defaults import SCHEDULE_KINDS

if TYPE_CHECKING:
    import numpy as np

    from bayescale.schedules import Schedule

#: The schedule shapes (``bayescale.schedules.KINDS``), from the light defaults module so
#: that parsing a command loads no numpy.
SCHEDULES = SCHEDULE_KINDS
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_MODES = ("auto", "on", "off")
# Settings that change speed but not the numbers a run produces (left out of run ids).
SPEED_FIELDS = (
    "device",
    "compile",
    "threads",
    "checkpoint_every",
    "keep_checkpoint",
    "peak_flops",
    "micro_batch_tokens",
)


class TrainerError(ValueError):
    """A problem the user can fix (bad flag, missing or too small corpus, full disk).

    The message is one line that names the offending value and the fix.
    """


class DiskFullError(TrainerError):
    """Writing an output failed because the device has no space left (ENOSPC)."""


class RunBusyError(TrainerError):
    """Another process is training the same run into the same output folder."""


def default_heads(width: int) -> int:
    """Default number of attention heads for ``width``: head width about 32.

    The largest divisor of ``width`` that is at most ``max(1, width // 32)``, so the
    head width is 32 for multiples of 32 (64 -> 2 heads, 128 -> 4, 256 -> 8) and
    never below 32 otherwise.
    """
    for heads in range(max(1, width // 32), 0, -1):
        if width % heads == 0:
            return heads
    return 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run.

    Fields that change the numbers a run produces enter its run id (see
    :meth:`run_id`); ``device``, ``threads``, ``compile``, ``checkpoint_every``,
    ``keep_checkpoint``, ``peak_flops`` and ``micro_batch_tokens`` only change how fast
    it gets there (and the floating-point rounding, as a different thread count does).

    Attributes:
        width: residual width d.
        depth: number of transformer blocks L.
        context: sequence length T in tokens.
        batch_tokens: tokens per optimizer step B (sequences × context, a multiple of
            ``context``), summed over all processes and micro-batches.
        steps: optimizer steps S.
        heads: attention heads; ``None`` picks :func:`default_heads`.
        lr: peak learning rate of AdamW.
        warmup_steps: linear warm-up steps, lr·(s+1)/warmup for s < warmup; ``None``
            is ``min(100, steps // 10)``.
        schedule: ``constant`` (after warm-up), ``cosine`` (decay to
            ``min_lr_ratio``·lr at the last step), ``linear`` (the same, linear) or
            ``wsd`` (warm-up, stable, then a linear decay to ``min_lr_ratio``·lr over
            the last ``decay_fraction`` of the steps); see :meth:`learning_rates`.
        min_lr_ratio: final learning rate of ``cosine``/``linear``/``wsd`` as a
            fraction of lr.
        decay_fraction: fraction of the steps used by the ``wsd`` decay, in (0, 1].
        weight_decay: decoupled (AdamW) weight decay on matrices (parameters with two
            or more dimensions, embeddings included); gains are not decayed.
        beta1, beta2: AdamW moment coefficients.
        grad_clip: maximum global gradient norm (0 disables clipping).
        seed: seeds the initialisation and the training batches.
        data: corpus path (text file, folder, or uint16 ``.bin``); ``None`` is the
            Python standard library corpus.
        eval_tokens: tokens per evaluation split, the same windows at every evaluation.
        eval_log_points: log-spaced evaluation steps between 1 and ``steps``.
        eval_every: regular evaluation interval in steps; ``None`` is ``steps // 10``.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32`` or ``bf16``.
        compile: ``auto`` (``torch.compile`` on CUDA only), ``on`` or ``off``.
        threads: CPU threads for intra-op parallelism; ``None`` keeps torch's default.
        checkpoint_every: steps between checkpoints (rows are flushed before each).
        keep_checkpoint: keep the last checkpoint after the run finishes.
        peak_flops: peak FLOP/s of one device for MFU; ``None`` looks it up (known
            CUDA GPUs) or leaves MFU unreported.
        micro_batch_tokens: at most this many tokens per forward/backward pass on one
            device (a multiple of ``context``). When a process's share of the batch,
            ``batch_tokens / processes``, is larger, it is split into
            k = share / ``micro_batch_tokens`` micro-batches whose gradients are
            accumulated (each loss scaled by 1/k) before one optimizer step, so k must
            be a whole number; ``None`` is one pass per step. The micro-batches are the
            rows of the same batch, so the run sees the same tokens either way.
        max_loss_factor: the run has diverged when a training loss is not finite or
            exceeds ``max_loss_factor``·ln(vocab_size) (the loss of a uniform guess).
    """

    width: int
    depth: int
    context: int
    batch_tokens: int
    steps: int
    heads: int | None = None
    lr: float = 3e-3
    warmup_steps: int | None = None
    schedule: str = "constant"
    min_lr_ratio: float = 0.1
    decay_fraction: float = 0.2
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    seed: int = 0
    data: str | None = None
    eval_tokens: int = 16384
    eval_log_points: int = 24
    eval_every: int | None = None
    device: str = "auto"
    precision: str = "auto"
    compile: str = "auto"
    threads: int | None = None
    checkpoint_every: int = 500
    keep_checkpoint: bool = False
    peak_flops: float | None = None
    max_loss_factor: float = 2.0
    micro_batch_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.heads is None and _is_pos_int(self.width):
            object.__setattr__(self, "heads", default_heads(self.width))
        if self.warmup_steps is None and _is_pos_int(self.steps):
            object.__setattr__(self, "warmup_steps", min(100, self.steps // 10))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`TrainerError` naming the first bad value and its fix."""
        for name in (
            "width",
            "depth",
            "context",
            "batch_tokens",
            "steps",
            "heads",
            "eval_tokens",
            "eval_log_points",
            "checkpoint_every",
        ):
            value = getattr(self, name)
            if not _is_pos_int(value):
                raise TrainerError(f"{name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise TrainerError(f"{name} must be a non-negative integer, got {value!r}")
        if self.width % self.heads:
            divisors = [h for h in range(1, self.width + 1) if self.width % h == 0]
            raise TrainerError(
                f"width {self.width} is not divisible by heads {self.heads}; "
                f"use --heads from {divisors[:8]} or change --width"
            )
        if self.batch_tokens % self.context:
            lower = max(self.context, self.batch_tokens // self.context * self.context)
            raise TrainerError(
                f"batch_tokens {self.batch_tokens} is not a multiple of context {self.context}; "
                f"use --batch-tokens {lower} or {lower + self.context}"
            )
        if self.micro_batch_tokens is not None:
            self._validate_micro_batch()
        if self.eval_tokens < self.context:
            raise TrainerError(
                f"eval_tokens {self.eval_tokens} is smaller than context {self.context}; "
                f"use --eval-tokens {self.context} or more"
            )
        if self.eval_every is not None and not _is_pos_int(self.eval_every):
            raise TrainerError(f"eval_every must be a positive integer, got {self.eval_every!r}")
        if self.warmup_steps >= self.steps > 1:
            raise TrainerError(
                f"warmup_steps {self.warmup_steps} must be smaller than steps {self.steps}; lower --warmup-steps"
            )
        for name in ("lr", "beta1", "beta2"):
            value = getattr(self, name)
            if not _is_finite(value) or value <= 0:
                raise TrainerError(f"{name} must be a positive number, got {value!r}")
        if self.beta1 >= 1 or self.beta2 >= 1:
            raise TrainerError(f"AdamW betas must be below 1, got ({self.beta1}, {self.beta2})")
        for name in ("weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not _is_finite(value) or value < 0:
                raise TrainerError(f"{name} must be a non-negative number, got {value!r}")
        if not _is_finite(self.min_lr_ratio) or not 0 <= self.min_lr_ratio <= 1:
            raise TrainerError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio!r}")
        if not _is_finite(self.decay_fraction) or not 0 < self.decay_fraction <= 1:
            raise TrainerError(f"decay_fraction must lie in (0, 1], got {self.decay_fraction!r}")
        if not _is_finite(self.max_loss_factor) or self.max_loss_factor <= 1:
            raise TrainerError(f"max_loss_factor must be a number above 1, got {self.max_loss_factor!r}")
        if self.schedule not in SCHEDULES:
            raise TrainerError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.device not in DEVICES:
            raise TrainerError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if self.precision not in PRECISIONS:
            raise TrainerError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.compile not in COMPILE_MODES:
            raise TrainerError(f"unknown compile mode {self.compile!r}; choose one of {', '.join(COMPILE_MODES)}")
        if self.threads is not None and not _is_pos_int(self.threads):
            raise TrainerError(f"threads must be a positive integer, got {self.threads!r}")
        if self.peak_flops is not None and (not _is_finite(self.peak_flops) or self.peak_flops <= 0):
            raise TrainerError(f"peak_flops must be a positive number, got {self.peak_flops!r}")

    def _validate_micro_batch(self) -> None:
        """A micro-batch is whole sequences and, when it splits the batch, divides it."""
        micro = self.micro_batch_tokens
        if not _is_pos_int(micro):
            raise TrainerError(f"micro_batch_tokens must be a positive integer, got {micro!r}")
        if micro % self.context:
            lower = max(self.context, micro // self.context * self.context)
            raise TrainerError(
                f"micro_batch_tokens {micro} is not a multiple of context {self.context}; "
                f"use --micro-batch-tokens {lower} or {lower + self.context}"
            )
        if micro < self.batch_tokens and self.batch_tokens % micro:
            raise TrainerError(
                f"micro_batch_tokens {micro} does not divide batch_tokens {self.batch_tokens} into equal "
                f"micro-batches; use --micro-batch-tokens {micro_batch_choices(self.batch_tokens, self.context, micro)}"
            )

    @property
    def batch_seqs(self) -> int:
        """Sequences per optimizer step, ``batch_tokens // context``."""
        return self.batch_tokens // self.context

    def micro_batches(self, processes: int = 1) -> tuple[int, int]:
        """Sequences per micro-batch on one process and micro-batches per step, (m, k).

        Each of ``processes`` gets ``batch_seqs / processes`` sequences per step (its
        share) and runs them k = share / m at a time, m = ``micro_batch_tokens /
        context`` when that is smaller than the share, else m = share and k = 1. Like
        nanochat's ``grad_accum_steps = total_batch_tokens // (device_batch * context *
        world_size)``, both divisions must be exact.

        Raises:
            TrainerError: the batch does not split evenly over the processes, or the
                share over the micro-batches.
        """
        if self.batch_seqs % processes:
            raise TrainerError(
                f"batch of {self.batch_seqs} sequences does not split over {processes} processes; "
                f"use --batch-tokens a multiple of {self.context * processes}"
            )
        share = self.batch_seqs // processes
        if self.micro_batch_tokens is None or self.micro_batch_tokens >= share * self.context:
            return share, 1
        micro = self.micro_batch_tokens // self.context
        if share % micro:
            raise TrainerError(
                f"batch_tokens {self.batch_tokens} over {processes} processes is {share * self.context} tokens "
                f"per process, which micro_batch_tokens {self.micro_batch_tokens} does not divide; use "
                f"--micro-batch-tokens {micro_batch_choices(share * self.context, self.context, micro * self.context)}"
            )
        return micro, share // micro

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a config from a dict, rejecting unknown keys with the list of valid ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainerError(f"unknown setting(s) {unknown}; valid settings are {sorted(known)}")
        return cls(**values)

    def result_dict(self) -> dict[str, Any]:
        """The fields that change a run's numbers (everything but speed settings)."""
        return {k: v for k, v in self.to_dict().items() if k not in SPEED_FIELDS}

    def run_id(self) -> str:
        """Deterministic run id, e.g. ``w64-d2-h2-ctx128-b1024-s3000-lr3e-03-constant-seed0-1a2b3c``.

        The readable part names the shape, batch, steps, learning rate, schedule and
        seed; the 6-hex suffix is a SHA-256 digest of every field in
        :meth:`result_dict`, so two configs that could produce different losses never
        share an id.
        """
        digest = hashlib.sha256(json.dumps(self.result_dict(), sort_keys=True).encode()).hexdigest()[:6]
        return (
            f"w{self.width}-d{self.depth}-h{self.heads}-ctx{self.context}-b{self.batch_tokens}"
            f"-s{self.steps}-lr{self.lr:.0e}-{self.schedule}-seed{self.seed}-{digest}"
        )

    def eval_steps(self) -> list[int]:
        """Steps after which every split is evaluated, sorted and unique.

        The union of ``eval_log_points`` log-spaced steps, round(S^(i/(k-1))) for
        i = 0..k-1 (duplicates merged), the multiples of ``eval_every`` (default
        ``max(1, S // 10)``), and the last step S.
        """
        return eval_steps(self.steps, self.eval_log_points, self.eval_every)

    def lr_schedule(self) -> Schedule:
        """This run's schedule as a :class:`bayescale.schedules.Schedule`: ``schedule`` with
        ``warmup_steps``, final fraction ``min_lr_ratio`` and ``decay_fraction``."""
        from bayescale.schedules import Schedule  # numpy: loaded when a run starts, not when a command parses

        return Schedule(self.schedule, warmup_steps=self.warmup_steps, final_lr_fraction=self.min_lr_ratio,
                        decay_fraction=self.decay_fraction)

    def learning_rates(self) -> np.ndarray:
        """Learning rate of every optimizer step, 0-based ``s = 0 .. steps - 1``: ``lr`` times
        :meth:`lr_schedule`'s relative rate (:meth:`bayescale.schedules.Schedule.relative_rates`).

        With peak η, warm-up W, steps S and floor r = ``min_lr_ratio``:

        * warm-up (all schedules): η·(s+1)/W for s < W;
        * constant: η;
        * cosine: η·(r + (1−r)·(1 + cos(π·p))/2), p = (s−W)/(S−1−W), reaching r·η at the
          last step;
        * linear: η·(1 − (1−r)·p), the same p;
        * wsd: η until the decay starts at D = S − round(``decay_fraction``·S), then
          η·(1 − (1−r)·(s−D+1)/(S−D)), reaching r·η at the last step.
        """
        return self.lr_schedule().relative_rates(self.steps) * self.lr

    def schedule_columns(self) -> dict[str, Any]:
        """The run-table columns that specify this run's schedule (docs/run-table.md):
        ``schedule``, ``warmup_steps``, ``final_lr_fraction`` (= ``min_lr_ratio``),
        ``decay_fraction`` and ``total_steps`` (= ``steps``)."""
        return {
            "schedule": self.schedule,
            "warmup_steps": self.warmup_steps,
            "final_lr_fraction": self.min_lr_ratio,
            "decay_fraction": self.decay_fraction,
            "total_steps": self.steps,
        }

    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based optimizer step ``step`` (one entry of :meth:`learning_rates`,
        which a training loop computes once)."""
        return float(self.learning_rates()[step])


def eval_steps(steps: int, log_points: int, every: int | None = None) -> list[int]:
    """Log-spaced plus regular evaluation steps in 1..``steps`` (see ``TrainConfig.eval_steps``)."""
    chosen = {steps}
    if log_points > 1:
        for i in range(log_points):
            chosen.add(max(1, round(steps ** (i / (log_points - 1)))))
    else:
        chosen.add(1)
    interval = every if every is not None else max(1, steps // 10)
    chosen.update(range(interval, steps + 1, interval))
    return sorted(s for s in chosen if 1 <= s <= steps)


def micro_batch_choices(tokens: int, context: int, micro: int) -> str:
    """The valid micro-batch sizes nearest ``micro`` for a batch of ``tokens``: "A or B".

    Valid sizes are ``context`` times a divisor of ``tokens / context`` (whole
    sequences in equal micro-batches); the largest below ``micro`` and the smallest
    above it, or the one that exists.
    """
    seqs = tokens // context
    sizes = [d * context for d in range(1, seqs + 1) if seqs % d == 0]
    below = [s for s in sizes if s < micro]
    above = [s for s in sizes if s > micro]
    return " or ".join(str(s) for s in ([below[-1]] if below else []) + ([above[0]] if above else []))


def _is_pos_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
