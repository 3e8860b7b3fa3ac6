"""How long a training run takes on stated hardware, from its compute.

A run of ``C`` training FLOPs on GPUs that each reach ``F`` FLOP/s at their peak and
use a fraction ``U`` of it (the model FLOPs utilisation, MFU) takes ``C / (F U)``
GPU-seconds, and ``C / (G F U)`` seconds of wall-clock time when it splits evenly over
``G`` GPUs. The planning defaults are an H100 SXM's dense bf16 peak at 25% MFU, about
what models under 100M parameters reach. ``bayescale sweep --dry-run`` states the
GPU-hours of each planned run, and ``bayescale report`` the hours of its recommended
run, with this one formula. A throughput measured on one model (:class:`Throughput`:
``R`` tokens/s on ``N`` parameters, ``bayescale budget --tokens-per-second R
--throughput-params N``) gives the FLOP rate ``R (6N + a)`` instead, which every model
size shares.

Plain Python with no imports beyond the standard library, so that the command line
and the trainer's planner load it without NumPy or JAX.
"""

from __future__ import annotations

from dataclasses import dataclass

from bayescale.defaults import PLAN_MFU, PLAN_PEAK_FLOPS

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Hardware:
    """``gpus`` GPUs of ``peak_flops`` FLOP/s each, used at ``mfu`` (module docstring)."""

    gpus: int = 1
    peak_flops: float = PLAN_PEAK_FLOPS
    mfu: float = PLAN_MFU

    def __post_init__(self) -> None:
        if not (self.peak_flops > 0 and 0 < self.mfu <= 1):
            raise ValueError(f"the hours need a positive peak and an MFU in (0, 1], got peak_flops={self.peak_flops!r} "
                             f"and mfu={self.mfu!r}")
        if not (isinstance(self.gpus, int) and self.gpus >= 1):
            raise ValueError(f"gpus={self.gpus!r} must be a whole number >= 1")

    @property
    def achieved_flops(self) -> float:
        """FLOP/s one GPU achieves: peak x MFU."""
        return self.peak_flops * self.mfu

    @property
    def flops_per_second(self) -> float:
        """FLOP/s of all :attr:`gpus` together."""
        return self.gpus * self.achieved_flops

    def gpu_hours(self, flops: float) -> float:
        """GPU-hours of ``flops`` training FLOPs (the same on any number of GPUs)."""
        return flops / self.achieved_flops / SECONDS_PER_HOUR

    def hours(self, flops: float) -> float:
        """Wall-clock hours of ``flops`` training FLOPs spread over :attr:`gpus` GPUs."""
        return self.gpu_hours(flops) / self.gpus

    def describe(self) -> str:
        """One line: the GPUs and the FLOP/s each achieves."""
        gpus = "1 GPU" if self.gpus == 1 else f"{self.gpus} GPUs"
        return (f"{gpus} at {self.achieved_flops / 1e12:.4g} TFLOP/s each (peak {self.peak_flops / 1e12:.4g} TFLOP/s "
                f"x MFU {self.mfu:g})")


@dataclass(frozen=True)
class Throughput:
    """A training throughput measured on one model: ``tokens_per_second`` on a model of
    ``params`` non-embedding parameters at ``flops_per_token`` training FLOPs per token
    (``6N + a``). Its FLOP rate serves every size: at one FLOP rate a run's time is its
    compute over that rate, whatever the model."""

    tokens_per_second: float
    params: float
    flops_per_token: float

    @property
    def flops_per_second(self) -> float:
        """The measured FLOP rate: tokens/s x FLOPs per token."""
        return self.tokens_per_second * self.flops_per_token

    def hours(self, flops: float) -> float:
        """Wall-clock hours of ``flops`` training FLOPs at the measured rate."""
        return flops / self.flops_per_second / SECONDS_PER_HOUR

    def describe(self) -> str:
        """One line: the FLOP rate and what it was measured on."""
        return (f"{self.flops_per_second / 1e12:.4g} TFLOP/s ({self.tokens_per_second:.3g} tokens/s measured on "
                f"N={self.params:.3g})")


def format_hours(hours: float) -> str:
    """A duration in the unit that reads best: ``"42 s"``, ``"17 min"``, ``"5.3 h"``, ``"12 days"``."""
    seconds = hours * SECONDS_PER_HOUR
    if seconds < 60:
        return f"{seconds:.2g} s"
    if hours < 1:
        return f"{seconds / 60:.2g} min"
    if hours < 48:
        return f"{hours:.3g} h"
    return f"{hours / 24:.3g} days"


def time_text(flops: float, hardware: Hardware | Throughput | None) -> str:
    """``"3.2 h on 8 GPUs at ...; 26 GPU-hours"``: the wall-clock and GPU time of ``flops``
    training FLOPs on ``hardware`` (``None``: the planning defaults, said to be assumed), or
    ``"1.2 h at 12 TFLOP/s (... tokens/s measured on N=...)"`` at a measured throughput."""
    if isinstance(hardware, Throughput):
        return f"{format_hours(hardware.hours(flops))} at {hardware.describe()}"
    stated = hardware or Hardware()
    assumed = "" if hardware else " (assumed: state yours with --gpus, --peak-flops and --mfu)"
    return (f"{format_hours(stated.hours(flops))} on {stated.describe()}; "
            f"{stated.gpu_hours(flops):.3g} GPU-hours{assumed}")
