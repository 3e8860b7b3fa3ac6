"""PyTorch trainer: small GPT decoders whose loss curves feed the scaling-law fits.

    from bayescale.trainer import TrainConfig, train
    result = train(TrainConfig(width=64, depth=2, context=128, batch_tokens=1024,
                               steps=3000), "runs/")

Writes ``runs/runs.csv`` (the run-table schema) and ``runs/<run>.json``. Importing
this package does not import torch; ``train``, ``RunResult``, ``GPT``,
``param_counts`` and ``BatchedGPT`` load it on first use.
"""

from __future__ import annotations

from typing import Any

from .config import DiskFullError, RunBusyError, TrainConfig, TrainerError
from .data import Corpus, load_corpus
from .sizing import FLOPS_CONVENTION, GPTConfig, ParamCounts, analytic_param_counts, flops_per_token
from .sweep import SweepResult, expand_grid, load_grid, run_sweep, shard_runs

__all__ = [
    "FLOPS_CONVENTION",
    "GPT",
    "BatchedGPT",
    "Corpus",
    "DiskFullError",
    "GPTConfig",
    "ParamCounts",
    "RunBusyError",
    "RunResult",
    "SweepResult",
    "TrainConfig",
    "TrainerError",
    "analytic_param_counts",
    "expand_grid",
    "flops_per_token",
    "load_corpus",
    "load_grid",
    "param_counts",
    "run_sweep",
    "shard_runs",
    "train",
]

_LAZY = {
    "BatchedGPT": ".batched",
    "GPT": ".model",
    "param_counts": ".model",
    "RunResult": ".training",
    "train": ".training",
}


def __getattr__(name: str) -> Any:
    """Import the torch-dependent names on first access (PEP 562)."""
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
