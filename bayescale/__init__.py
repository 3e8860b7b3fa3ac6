"""bayescale: Bayesian forecasts of language-model training runs from small runs.

Public API::

    from bayescale.predict import predict_trajectory

    runs    = bayescale.load_runs("runs.csv")            # validated run table
    result  = bayescale.fit(runs)                        # NUTS posterior + diagnostics (law="kaplan")
    other   = bayescale.fit(runs, law="chinchilla")      # another law form (bayescale.models.registry)
    bands   = predict_trajectory(result.posterior, params=1e8, batch_tokens=2**19,
                                 steps=10_000, levels=(0.5, 0.9))
    plan    = bayescale.plan_budget(result.posterior, flops=1e18, target_loss=2.1)  # risk-aware N, B, S
    scores  = bayescale.calibrate(result.posterior, bayescale.load_runs("realized.csv"))
    page    = bayescale.write_report(result.posterior, "report/", flops=1e18)       # figures + HTML
    cosine  = bayescale.Schedule("cosine", warmup_steps=500)  # forecasts under a schedule (law="kaplan_schedule")
    live    = bayescale.track(result.posterior, bayescale.load_runs("live.csv"), total_steps=100_000,
                              schedule=cosine)                  # a live run's forecast, updated by its checkpoints

Law forms live in :mod:`bayescale.models` (one object per law behind
:class:`bayescale.models.law.Law`); see docs/model.md in the repository for the
mathematics (Kaplan et al. 2020; Su et al. 2024; Hoffmann et al. 2022).
"""

__version__ = "0.1.0"

# The public names load on first use (PEP 562), so that ``import bayescale`` and
# ``bayescale --help`` start in well under a second: JAX, NumPyro, ArviZ, SciPy and
# matplotlib are imported by the submodules that need them, when they are needed.
import importlib as _importlib
import sys as _sys
import types as _types
import typing as _typing

#: Public name -> submodule that defines it.
_PUBLIC = {
    "RunTableError": "runs",
    "load_gadre2024": "runs",
    "load_gemstones2025": "runs",
    "load_runs": "runs",
    "load_wandb": "runs",
    "validate_runs": "runs",
    "KaplanConstants": "models.kaplan",
    "PosteriorMeta": "posterior",
    "Posterior": "posterior",
    "PosteriorFileError": "posterior",
    "FitResult": "fit",
    "fit": "fit",
    "use_cpu_cores": "cores",
    "compare_models": "compare",
    "least_compute": "budget",
    "plan_budget": "budget",
    "calibrate": "calibrate",
    "write_report": "report",
    "Schedule": "schedules",
    "track": "track",
}

if _typing.TYPE_CHECKING:
    from bayescale.budget import least_compute, plan_budget
    from bayescale.calibrate import calibrate
    from bayescale.compare import compare_models
    from bayescale.cores import use_cpu_cores
    from bayescale.fit import FitResult, fit
    from bayescale.models.kaplan import KaplanConstants
    from bayescale.posterior import Posterior, PosteriorFileError, PosteriorMeta
    from bayescale.report import write_report
    from bayescale.schedules import Schedule
    from bayescale.track import track
    from bayescale.runs import (RunTableError, load_gadre2024, load_gemstones2025, load_runs, load_wandb,
                                validate_runs)


def __getattr__(name: str):
    """Import the submodule of a public name on first use (then it is a plain attribute);
    other submodules (``bayescale.predict``, ...) load on first use too."""
    module = _PUBLIC.get(name)
    if module is not None:
        value = getattr(_importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):
        try:
            return _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(_types.ModuleType):
    """``bayescale.fit``, ``bayescale.calibrate`` and ``bayescale.track`` name functions (the
    first two as they did when this package imported everything eagerly), although
    ``bayescale/fit.py``, ``bayescale/calibrate.py`` and ``bayescale/track.py`` are also
    submodules. Importing a submodule binds it on
    its package; for these two names the function is bound instead."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, _types.ModuleType) and _PUBLIC.get(name) == name and \
                value.__name__ == f"{self.__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package

__all__ = [
    "FitResult",
    "KaplanConstants",
    "Posterior",
    "PosteriorFileError",
    "PosteriorMeta",
    "RunTableError",
    "Schedule",
    "calibrate",
    "compare_models",
    "fit",
    "least_compute",
    "load_gadre2024",
    "load_gemstones2025",
    "load_runs",
    "load_wandb",
    "plan_budget",
    "track",
    "validate_runs",
    "write_report",
    "use_cpu_cores",
]
