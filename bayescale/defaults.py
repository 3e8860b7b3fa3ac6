"""Defaults and fixed limits shared by the library and the command line.

Plain Python values with no imports, so that the command line can build its help from
them without loading NumPy, pandas or JAX. The modules that use them re-export them
(``bayescale.budget.DEFAULT_RISK`` is ``bayescale.defaults.DEFAULT_RISK``).
"""

#: Points before this fraction of each run's final step are the early transient and are
#: not fitted (:mod:`bayescale.curves`).
DEFAULT_MIN_STEP_FRACTION = 0.1

#: Most points fitted per curve (one run in one group) by default: a longer curve keeps the
#: points nearest to this many steps evenly spaced in log-steps (:func:`bayescale.curves.thin_curves`).
#: The density at which bayescale's own trainer logs (32 log-spaced evaluations per run).
DEFAULT_MAX_POINTS = 32

#: Default law-error growth per unit of log-distance outside the fitted ranges,
#: on log loss. See :mod:`bayescale.predict` and benchmarks/RESULTS.md.
DEFAULT_EXTRAPOLATION_ERROR = 0.01
#: Default length, in e-folds of steps (natural-log steps), over which the size's part of
#: the law's error stays correlated along a run (:mod:`bayescale.track`).
DEFAULT_ERROR_LENGTH = 1.0
#: Law-error growth per e-fold measured on the public ladders of language models at 6M-7B
#: parameters (Gadre et al. 2024 final losses, Gemstones 2025 curves; benchmarks/law_error_ladders.py,
#: docs/model.md section 7.2): the top of their pooled 95% likelihood interval, 0.0013-0.004 (best
#: 0.0025). ``law_error="public"``.
PUBLIC_EXTRAPOLATION_ERROR = 0.004
#: Where the law's error growth and length come from: set a priori (the defaults above,
#: or the given values), measured on the ladder's larger runs (:mod:`bayescale.law_error`),
#: or taken from the public ladders' measurement (:data:`PUBLIC_EXTRAPOLATION_ERROR`).
LAW_ERROR_SOURCES = ("prior", "ladder", "public")

#: How the residuals along one curve are modelled (``residual_correlation`` of every law's
#: priors, ``fit --residuals``; :mod:`bayescale.models.skeleton`), and what the choice trades.
RESIDUAL_CORRELATIONS = ("ar1", "independent")
RESIDUAL_CORRELATION_HELP = (
    "'ar1': the residuals along a curve are correlated over a sampled length in log-steps (about an e-fold "
    "a priori; rho reports the correlation of consecutive fitted points), so the points of a curve are not "
    "independent facts and the fit follows the curves' shapes (best within the fitted sizes: other schedules "
    "and horizons); 'independent': rho = 0, every kept point counts in full and the fit follows each run's "
    "level, which carries the size term (compare it for sizes beyond the fitted ones)")

#: Predictive modes of :mod:`bayescale.predict`: the law's curve with parameter
#: uncertainty only, or what a new run will show.
MODES = ("mean", "new_run")

#: A forecast warns (:class:`bayescale.models.law.ExtrapolationWarning`) when it lies more
#: than this factor beyond the fitted data along any axis (size, steps, batch): the
#: law's own error term widens its bands with the distance, but whether the law's form
#: still holds there is untested by the fitted runs.
EXTRAPOLATION_WARN_FACTOR = 10.0

#: Quantile of the final loss that :func:`bayescale.budget.plan_budget` minimises by default.
DEFAULT_RISK = 0.9

#: Central interval probabilities that :func:`bayescale.calibrate.calibrate` scores by default.
DEFAULT_LEVELS = (0.5, 0.8, 0.9, 0.95)
#: Realized sizes, batches and steps must lie within this factor of the fitted ranges.
RANGE_FACTOR = 1e4
#: The median realized/predicted loss ratio must lie in [1/SCALE_FACTOR, SCALE_FACTOR].
SCALE_FACTOR = 1.3
#: Joint replicates of the realized points drawn under the forecast's own model, and the
#: quantiles of their coverage reported as the range a calibrated forecast would show
#: (:mod:`bayescale.replicates`).
REPLICATES = 400
COVERAGE_RANGE = (0.05, 0.95)
#: Most draws x points that one :func:`bayescale.predict.loss_draws` call of ``calibrate`` and
#: :mod:`bayescale.replicates` holds (about 34 MB per float64 array): longer tables are scored
#: in pieces (:func:`bayescale.predict.row_chunks`), so their memory stays flat as they grow.
MAX_DRAW_POINTS = 2**22

#: Pareto shape above which a point's PSIS-LOO estimate is unreliable (Vehtari et al. 2024).
PARETO_K_MAX = 0.7

#: The demo's sampler settings (:mod:`bayescale.demo`): 2 chains of 500 warm-up
#: iterations, then draws and target_accept per law it fits (:data:`DEMO_SAMPLING`).
#: The posteriors have a long tail where the critical batch grows far beyond the batches
#: trained; it sets how many draws the tail ESS of B_star and S_c needs.
DEMO_CHAINS = 2
DEMO_WARMUP = 500
#: ``law: (draws per chain, target_accept)``, measured in benchmarks/RESULTS.md ("demo gate
#: over seeds"). ``kaplan_schedule`` (the default: constant and cosine runs), with the AR(1)
#: correlation length in log-steps: at 0.9, 2 x 2,000 draws gave no divergent draw on seeds 0-5,
#: tail ESS 404-1,175 and 26-36 s of sampling on a 2-core CPU (2026-12-07); at 0.8 (2 x 8,000) and 0.85
#: (2 x 4,000) seed 0 diverged once or twice, in the tails of the run-offset scale and B_star.
#: ``kaplan`` (``--constant-only``) diverged at 0.8 (5 of 5,000 on seed 0) and keeps 0.99, as do
#: the irreducible variants, whose L_inf, N_c and alpha_N trade off along a curved ridge.
DEMO_SAMPLING = {"kaplan_schedule": (2000, 0.9), "kaplan": (2500, 0.99), "kaplan_irreducible": (2500, 0.99),
                 "kaplan_schedule_irreducible": (5000, 0.99)}

#: Hardware the hours of a planned run assume by default (:mod:`bayescale.hardware`;
#: ``bayescale sweep --dry-run``, ``bayescale report``): an H100 SXM's dense bf16 peak in
#: FLOP/s, at 25% model FLOPs utilisation, about what models under 100M parameters reach
#: (they are small for the GPU).
PLAN_PEAK_FLOPS = 989e12
PLAN_MFU = 0.25

#: Learning-rate schedule shapes a forecast can be asked for (``--schedule``; bayescale.schedules).
SCHEDULE_KINDS = ("constant", "cosine", "wsd", "linear")

#: How :func:`bayescale.track.track` takes a live run's checkpoints in (``--method``): reweight
#: the ladder's draws, refit the ladder with the run added, or reweight and refit when the
#: reweighting rests on too few draws.
TRACK_METHODS = ("auto", "reweight", "refit")
#: NUTS settings of ``bayescale fit`` by default; a posterior records those it was fitted with,
#: which a joint refit (``bayescale track``) reuses unless told otherwise.
SAMPLER_DEFAULTS = {"chains": 4, "warmup": 1000, "draws": 1000, "target_accept": 0.9, "chain_method": "parallel"}
SAMPLER_SETTINGS = tuple(SAMPLER_DEFAULTS)
#: How NUTS runs several chains (``--chain-method``): one CPU device per chain, or one XLA program.
CHAIN_METHODS = ("vectorized", "parallel", "sequential")
