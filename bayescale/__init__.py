"""bayescale: Bayesian forecasts of language-model training runs from small runs.

Public API::

    runs    = bayescale.load_runs("runs.csv")            # validated run table
    result  = bayescale.fit(runs)                        # NUTS posterior + diagnostics
    bands   = bayescale.predict_trajectory(result.posterior, params=1e8, batch_tokens=2**19,
                                           steps=10_000, levels=(0.5, 0.9))
    plan    = bayescale.plan_budget(result.posterior, flops=1e18, target_loss=2.1)  # risk-aware N, B, S
    scores  = bayescale.calibrate(result.posterior, bayescale.load_runs("realized.csv"))
    page    = bayescale.write_report(result.posterior, "report/", flops=1e18)       # figures + HTML

See docs/model.md in the repository for the mathematics (Kaplan et al. 2020; Su et al. 2024).
"""

__version__ = "0.1.0"

from bayescale.runs import RunTableError, load_gadre2024, load_gemstones2025, load_runs, validate_runs  # noqa: E402
from bayescale.laws import KaplanConstants  # noqa: E402
from bayescale.posterior import Posterior, PosteriorFileError  # noqa: E402
from bayescale.fit import FitResult, fit, use_cpu_cores  # noqa: E402
from bayescale.chinchilla import fit_chinchilla  # noqa: E402
from bayescale.compare import compare_models  # noqa: E402
from bayescale.budget import least_compute, plan_budget  # noqa: E402
from bayescale.calibrate import calibrate  # noqa: E402
from bayescale.report import write_report  # noqa: E402

__all__ = [
    "FitResult",
    "KaplanConstants",
    "Posterior",
    "PosteriorFileError",
    "RunTableError",
    "calibrate",
    "compare_models",
    "fit",
    "fit_chinchilla",
    "least_compute",
    "load_gadre2024",
    "load_gemstones2025",
    "load_runs",
    "plan_budget",
    "validate_runs",
    "write_report",
    "use_cpu_cores",
]
