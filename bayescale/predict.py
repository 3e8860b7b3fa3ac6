r"""Credible bands for forecasts, from every posterior draw pushed through the law.

Two predictive modes (docs/model.md):

* ``"mean"`` -- the law's mean curve (``law.mean_log_loss``); parameter uncertainty only.
* ``"new_run"`` -- what a run you train will show: the fitted model itself
  (:func:`bayescale.models.skeleton.curve_model`, run through NumPyro's ``Predictive``
  on every posterior draw) draws a new run's offset ``Normal(0, tau_run)`` and the
  evaluation noise ``StudentT(nu, mu, sigma)`` at the requested points, and the law's
  own error ``law_error ~ Normal(0, kappa * d)`` is added per draw.

The law's own error grows with the distance ``d`` of the request from the fitted data,
measured in natural-log units per axis of the law (:meth:`~bayescale.models.law.Law.extrapolation`):
for the Kaplan law ``d = sqrt(d_N^2 + d_S^2 + d_B^2)``, where ``d_N`` is how far
``log N`` lies outside ``[log N_min, log N_max]`` of the fitted sizes (0 inside), and
likewise for steps and batch sizes; for the Chinchilla law ``d = sqrt(d_N^2 + d_D^2)``
with ``D = B S`` tokens. ``kappa`` (``extrapolation_error``, per unit of log-distance
on log loss) is stored with the posterior; its default was set on public runs that
bayescale does not ship (see benchmarks/RESULTS.md), never on the bundled runs it is
checked on. A posterior that carries parameter uncertainty alone is badly
over-confident in extrapolation: real curves fit the laws so well that the fitted
noise is tiny, while the law itself drifts from the truth as sizes grow.

Quantities a law does not have (the Chinchilla law has no batch size, so no critical
batch) raise ``ValueError``. Targets in loss are treated consistently: a law error
``eta`` on log loss means the true curve reaches ``L`` when the law's curve reaches
``L exp(-eta)``.

**The ceiling.** A model that has learned nothing predicts every token with probability
``1/V`` and scores ``ln V`` (5.545 nats for the 256 bytes of a byte-level model); a
power law has no such bound and climbs past it at tiny sizes or early steps. Where the
posterior knows the fitted runs' vocabulary (``posterior.meta.vocab_size``), every loss
draw is clipped at ``ln V`` (:func:`clip_to_ceiling`, in :func:`loss_draws` and
:func:`predict_min_loss`); a forecast says how many draws it clipped in
``df.attrs["ceiling"]`` and, when its bands reach the ceiling, warns once with
:class:`LossCeilingWarning` (:func:`state_ceiling`). With an unknown vocabulary the
draws are left as they are.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from numpyro.infer import Predictive

from bayescale.defaults import EXTRAPOLATION_WARN_FACTOR, MAX_DRAW_POINTS, MODES
from bayescale.models.law import Covariates, Extrapolation, ExtrapolationWarning, LossCeilingWarning, expand
from bayescale.models.priors import LITERATURE_ALPHA_B, LITERATURE_LOG_INV_ALPHA_B_SD
from bayescale.models.skeleton import curve_model, new_run_noise
from bayescale.posterior import Posterior, loss_units
from bayescale.runs import MAX_SCALE
from bayescale.schedules import CONSTANT, Schedule, features_at, final_features


def extrapolation(posterior: Posterior, params: float, batch_tokens: float | None = None,
                  steps: float | np.ndarray | None = None,
                  covariates: dict[str, np.ndarray] | None = None) -> Extrapolation:
    """Distance of a request from the fitted data along each of the law's axes (largest over
    ``steps``); with the request's schedule ``covariates``, a schedule-aware law adds its
    ``schedule`` axis."""
    return posterior.law.extrapolation(posterior.meta.ranges, params, batch_tokens, steps, covariates)


def state_extrapolation(df: pd.DataFrame, ext: Extrapolation, what: str) -> pd.DataFrame:
    """Record how far a forecast extrapolates in ``df.attrs`` (``"extrapolation"``: a
    sentence, ``"extrapolation_factors"``: per axis) and warn (:func:`warn_extrapolation`)."""
    df.attrs["extrapolation"] = ext.describe()
    df.attrs["extrapolation_factors"] = ext.factors
    warn_extrapolation(ext, what, stacklevel=4)
    return df


def warn_extrapolation(ext: Extrapolation, what: str, stacklevel: int = 3) -> None:
    """Warn with :class:`ExtrapolationWarning` when an axis of ``ext`` lies more than
    :data:`~bayescale.defaults.EXTRAPOLATION_WARN_FACTOR` times beyond the fitted data."""
    far = {name: f for name, f in ext.factors.items() if f > EXTRAPOLATION_WARN_FACTOR}
    if far:
        warnings.warn(f"{what}: {', '.join(f'{n} x{f:.3g}' for n, f in far.items())} beyond the fitted data "
                      f"(warned above x{EXTRAPOLATION_WARN_FACTOR:g}); the bands include the law's error, which grows "
                      "with the distance, but the fitted runs cannot show whether the law's form holds there",
                      ExtrapolationWarning, stacklevel=stacklevel)


def loss_ceiling(posterior: Posterior) -> float:
    """``ln V``, the loss of a uniform guess over the fitted runs' vocabulary of ``V``
    tokens (``posterior.meta.vocab_size``); ``inf`` when the vocabulary is unknown."""
    vocab = posterior.meta.vocab_size
    return math.inf if vocab is None else math.log(vocab)


def clip_to_ceiling(posterior: Posterior, losses: np.ndarray) -> np.ndarray:
    """``losses`` with every value above :func:`loss_ceiling` set to it: no model scores
    worse than one that has learned nothing."""
    return np.minimum(losses, loss_ceiling(posterior))


def state_ceiling(df: pd.DataFrame, posterior: Posterior, draws: np.ndarray, what: str) -> pd.DataFrame:
    """Say in ``df.attrs["ceiling"]`` how many of the loss ``draws`` behind ``df`` (``(draws,
    points)``, already clipped by :func:`clip_to_ceiling`) sit at the ceiling ``ln V``, and
    at how many points (``None`` when the vocabulary is unknown). When the clipping reaches
    the bands of ``df`` (a median or interval end at ``ln V``), also warn once with
    :class:`LossCeilingWarning`; a rare heavy-tailed draw clipped is only recorded."""
    ceiling = loss_ceiling(posterior)
    if not math.isfinite(ceiling):
        df.attrs["ceiling"] = None
        return df
    at = np.asarray(draws) >= ceiling
    bound = (f"ln {posterior.meta.vocab_size} = {ceiling:.4g} {loss_units(posterior.meta)}, the loss of a model that "
             "has learned nothing")
    if not at.any():
        df.attrs["ceiling"] = f"no draw above {bound}"
        return df
    df.attrs["ceiling"] = (f"at {int(at.any(axis=0).sum())} of {at.shape[1]} points, {int(at.sum())} of "
                           f"{at.size} draws in all were clipped to {bound}")
    if (df.filter(regex=r"(^|_)(median|lower|upper)$") >= ceiling).to_numpy().any():
        warnings.warn(f"{what}: the bands reach the ceiling: {df.attrs['ceiling']}", LossCeilingWarning,
                      stacklevel=3)
    return df


def level_percent(level: float) -> str:
    """``0.9`` -> ``"90"``: a central interval's probability in percent, for labels and column names."""
    return f"{100 * level:g}"


def quantile_bands(draws: np.ndarray, levels: Sequence[float]) -> dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Median and central interval per level over the first axis; infinite draws stay infinite."""
    for level in levels:
        if not 0.0 < level < 1.0:
            raise ValueError(f"level={level} must be in (0, 1), e.g. 0.9 for a central 90% interval")
    draws = np.sort(np.asarray(draws, float), axis=0)
    n = draws.shape[0]

    def q(p: float) -> np.ndarray:  # order statistic: no inf - inf interpolation
        return draws[min(n - 1, max(0, int(np.floor(p * n))))]

    median = q(0.5)
    return {level: (median, q((1 - level) / 2), q((1 + level) / 2)) for level in levels}


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode='{mode}' is not one of {', '.join(MODES)}")


def _positive(name: str, value) -> np.ndarray:
    arr = np.asarray(value, float)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name}={value} must be positive and finite")
    return arr


def _request(name: str, value) -> np.ndarray:
    """A requested size, batch or step count: positive, finite and at most :data:`MAX_SCALE`."""
    arr = _positive(name, value)
    if np.any(arr > MAX_SCALE):
        raise ValueError(f"{name}={np.max(arr):g} is above {MAX_SCALE:g}, far beyond any training run and the range "
                         f"the float32 law is evaluated in; give {name} up to {MAX_SCALE:g} (check the units)")
    return arr


def check_schedule(law, schedule: Schedule | None) -> None:
    """Raise ``ValueError`` when ``law`` cannot forecast ``schedule``: a law without schedule
    covariates (``kaplan``) describes a constant rate after warm-up only."""
    if not law.covariates and schedule is not None and schedule.kind != "constant":
        raise ValueError(f"the {law.name} law assumes a constant learning rate after warm-up; to forecast a "
                         f"{schedule.kind} schedule, fit a schedule-aware law (--model kaplan_schedule)")


def schedule_covariates(posterior: Posterior, schedule: Schedule | None, steps,
                        total_steps: float | None = None) -> dict[str, np.ndarray] | None:
    """The covariates of points ``steps`` of one run trained with ``schedule`` (default:
    constant after warm-up), planned to end at ``total_steps`` (default: the last of
    ``steps``), for the posterior's law; ``None`` for a law that reads no schedule.

    A law without schedule covariates (``kaplan``) describes a constant rate only, so any
    other schedule raises ``ValueError`` naming the law that forecasts it.
    """
    law = posterior.law
    check_schedule(law, schedule)
    if not law.covariates:
        return None
    schedule = CONSTANT if schedule is None else schedule
    if total_steps is None and schedule.last_step is not None:
        total_steps = float(np.max(steps))
    return {name: np.asarray(v) for name, v in features_at(schedule, steps, total_steps).items()
            if name in law.covariates}


#: Largest number the law's float32 arithmetic holds.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_law(log_L: np.ndarray, N: np.ndarray, B: np.ndarray, S: np.ndarray) -> None:
    """Raise ``ValueError`` where the law gives no finite loss (float32 overflow), naming the point."""
    bad = ~np.isfinite(log_L)
    if bad.any():
        j = int(np.flatnonzero(bad.reshape(-1, bad.shape[-1]).any(axis=0))[0])
        raise ValueError(f"the law gives no finite loss at params={N[j]:g}, batch_tokens={B[j]:g}, steps={S[j]:g} "
                         f"(float32 overflow); keep params, batch sizes and steps up to {MAX_SCALE:g}")


def fitted_priors(posterior: Posterior):
    """The law's prior settings the posterior was fitted with (stored with it)."""
    defaults = posterior.law.default_priors()
    stored = posterior.meta.settings.get("priors", {})
    return type(defaults)(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()
                             if k in defaults.__dataclass_fields__})


@dataclass(frozen=True)
class _NewRun:
    """The points of a prediction, shaped as the fitted model's data: one new run in group ``g``."""

    log_N: jax.Array
    log_B: jax.Array
    log_S: jax.Array
    covariates: dict
    references: dict
    n_groups: int
    group: int

    @property
    def n_points(self) -> int:
        return int(self.log_N.shape[0])

    @property
    def group_idx(self) -> np.ndarray:
        return np.full(self.n_points, self.group, np.int32)

    runs = ("new run",)
    run_idx = property(lambda self: np.zeros(self.n_points, np.int32))
    prev_idx = property(lambda self: np.zeros(self.n_points, np.int32))
    has_prev = property(lambda self: np.zeros(self.n_points, bool))


@functools.lru_cache(maxsize=16)
def _new_run_sampler(law, priors, offsets: bool, n_groups: int, group: int):
    """A compiled ``(key, draws, log N, log B, log S, covariates, references) -> log loss`` of
    new runs: the fitted model (``curve_model``) run by ``Predictive`` on every draw."""

    def sample(key, draws, log_N, log_B, log_S, covariates, references):
        data = _NewRun(log_N, log_B, log_S, covariates, references, n_groups, group)
        predictive = Predictive(curve_model, posterior_samples=draws, return_sites=["log_loss"], parallel=True)
        return predictive(key, data, law, priors, run_offsets=offsets, non_centred=False)["log_loss"]

    return jax.jit(sample)


@functools.lru_cache(maxsize=16)
def _mean_sampler(law):
    """The law's mean log loss over draws x points, compiled once per law."""
    return jax.jit(lambda c, log_N, log_B, log_S, extra: law.mean_log_loss(expand(c),
                                                                          Covariates(log_N, log_B, log_S, extra)))


def law_error_draws(posterior: Posterior, distance, rng: np.random.Generator | int) -> np.ndarray:
    """The law's own error ``Normal(0, kappa d)`` per draw, shared along a curve: shape (draws, len(d)).

    ``rng`` is a generator or a seed; drawn first from it, so a seed gives every quantity
    of one request the same law errors."""
    z = np.random.default_rng(rng).standard_normal((posterior.n_draws, 1))
    return z * float(posterior.meta.extrapolation_error) * np.atleast_1d(np.asarray(distance, float))[None, :]


def scale_draws(posterior: Posterior, name: str) -> np.ndarray:
    """Draws of a scalar site; zeros where the fit has no such site (no run offsets)."""
    if name not in posterior.idata.posterior:
        return np.zeros(posterior.n_draws)
    return posterior.draws(name).reshape(posterior.n_draws, -1)[:, 0]


def _model_draws(posterior: Posterior) -> dict[str, np.ndarray]:
    """Posterior draws of the sites a new run's prediction conditions on: the law's latents
    and extra sites, and the noise and seed-spread scales (not the fitted runs' offsets)."""
    law = posterior.law
    post = posterior.idata.posterior
    names = [*law.latents, *law.extra_sites, "sigma", "run_offset_scale", "rho"]
    return {name: posterior.draws(name) for name in names if name in post}


def band_frame(x: np.ndarray, levels: Sequence[float], index: dict[str, np.ndarray]) -> pd.DataFrame:
    """A table of bands of draws ``x`` ``(draws, points)``: the ``index`` columns, then
    ``median, lower, upper`` per level (stacked, with a ``level`` column when several)."""
    rows = []
    for level, (median, lower, upper) in quantile_bands(x, levels).items():
        part = pd.DataFrame({**index, "median": median, "lower": lower, "upper": upper})
        if len(levels) > 1:
            part["level"] = level
        rows.append(part)
    return pd.concat(rows, ignore_index=True)


def step_grid(final_step: float, points: int = 64, first_step: float = 1.0) -> np.ndarray:
    """``points`` log-spaced steps from ``first_step`` that end exactly at ``final_step``."""
    if points < 2:
        raise ValueError(f"points={points} must be at least 2")
    final_step = float(_positive("steps", final_step))
    if final_step <= first_step:
        raise ValueError(f"steps={final_step:g} must exceed the first grid step {first_step:g}")
    grid = np.geomspace(first_step, final_step, points)
    grid[-1] = final_step
    return grid


def loss_draws(
    posterior: Posterior,
    params: float | np.ndarray,
    batch_tokens: float | np.ndarray,
    steps: float | np.ndarray,
    *,
    mode: str = "new_run",
    group: str | None = None,
    seed: int = 0,
    covariates: dict[str, np.ndarray] | None = None,
    through_model: bool = False,
    fixed_latents: tuple[str, ...] = (),
) -> np.ndarray:
    """Predictive draws of the loss at points ``(params, batch_tokens, steps)``.

    The three arguments broadcast to one 1-D shape of ``P`` points; the result has
    shape ``(draws, P)``. ``covariates`` gives any further per-point covariate the law
    declares (``law.covariates``). In ``new_run`` mode the law error of a draw is shared
    by all points (it is smooth along a curve), the run offset is one new run's, and the
    evaluation noise is drawn per point, so each column is the marginal predictive
    distribution of its point. The new run's offset and noise are those of the fitted
    model, drawn with NumPy (:func:`bayescale.models.skeleton.new_run_noise`); with
    ``through_model=True`` they are drawn by running the model itself through NumPyro's
    ``Predictive`` (the same distribution, about 13 times slower on a CPU).
    ``fixed_latents`` holds those latents at their posterior medians
    (:meth:`~bayescale.posterior.Posterior.constants`; not with ``through_model``).
    Draws above ``ln V`` are clipped to it when the vocabulary ``V`` is known
    (:func:`clip_to_ceiling`; module docstring), in every mode.
    """
    _check_mode(mode)
    N, B, S = (np.atleast_1d(_positive(name, v)) for name, v in
               (("params", params), ("batch_tokens", batch_tokens), ("steps", steps)))
    N, B, S = np.broadcast_arrays(N, B, S)
    for name, v in (("params", N), ("batch_tokens", B), ("steps", S)):
        if np.max(v) > _FLOAT32_MAX:  # before the float32 cast, which would overflow with a warning
            raise ValueError(f"{name}={np.max(v):g} is beyond float32 (largest {_FLOAT32_MAX:.3g}), in which the law "
                             f"is evaluated; keep params, batch sizes and steps up to {MAX_SCALE:g}")
    law = posterior.law
    extra = {k: jnp.asarray(np.broadcast_to(v, N.shape), jnp.float32) for k, v in (covariates or {}).items()}
    missing = [k for k in law.covariates if k not in extra]
    if missing:
        raise ValueError(f"the {law.name} law needs the covariate(s) {', '.join(missing)} (covariates=...)")
    log_x = [jnp.log(jnp.asarray(v, jnp.float32)) for v in (N, B, S)]
    log_L = np.asarray(_mean_sampler(law)(posterior.constants(group, fixed_latents), *log_x, extra), float)
    _check_law(log_L, N, B, S)
    if mode == "new_run" and not through_model:
        rng = np.random.default_rng(seed)
        law_error = law_error_draws(posterior, law.distance(posterior.meta.ranges, N, B, S), rng)
        noise = new_run_noise(rng, scale_draws(posterior, "run_offset_scale"), scale_draws(posterior, "sigma"),
                              fitted_priors(posterior).nu, len(S))
        log_L = log_L + law_error + noise
    elif mode == "new_run":
        offsets = "run_offset_scale" in posterior.idata.posterior
        sampler = _new_run_sampler(law, fitted_priors(posterior), offsets, len(posterior.groups),
                                   posterior.group_index(group))
        references = {k: jnp.float32(v) for k, v in posterior.meta.references.items()}
        log_L = np.asarray(sampler(jax.random.PRNGKey(seed), _model_draws(posterior), *log_x, extra, references),
                           float)
        _check_law(log_L, N, B, S)
        log_L = log_L + law_error_draws(posterior, law.distance(posterior.meta.ranges, N, B, S), seed)
    return clip_to_ceiling(posterior, np.exp(log_L))


def row_chunks(rows: np.ndarray, width: int, limit: int = MAX_DRAW_POINTS) -> list[np.ndarray]:
    """``rows`` in consecutive pieces of at most ``limit // width`` rows (at least one), so that a
    piece of rows ``width`` values wide holds at most ``limit`` values: points of
    :func:`loss_draws` with ``width`` draws each, or replicates of ``width`` points
    (:mod:`bayescale.replicates`)."""
    size = max(1, limit // max(int(width), 1))
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def predict_trajectory(
    posterior: Posterior,
    params: float,
    batch_tokens: float,
    steps: float | Sequence[float] | np.ndarray,
    *,
    levels: Sequence[float] = (0.9,),
    mode: str = "new_run",
    group: str | None = None,
    points: int = 64,
    seed: int = 0,
    schedule: Schedule | None = None,
    total_steps: float | None = None,
) -> pd.DataFrame:
    """Loss trajectory bands of a model of ``params`` at ``batch_tokens`` per step.

    ``steps`` is either the final step (a log-spaced grid of ``points`` steps from the
    first fitted step, since the laws do not describe the early transient before it, to
    exactly ``steps``; from step 1 when ``steps`` comes before it) or an explicit array
    of steps. Columns: ``step, median, lower,
    upper`` (and ``level`` when several levels are asked). ``df.attrs["extrapolation"]``
    describes how far the request extrapolates, ``df.attrs["ceiling"]`` how many draws
    were clipped at ``ln V`` (:func:`state_ceiling`).

    ``schedule`` is the run's learning-rate schedule (:class:`~bayescale.schedules.Schedule`;
    default constant after warm-up), planned to end at ``total_steps`` (default: the
    last step of the grid); only schedule-aware laws forecast other than constant ones.
    """
    N = float(_request("params", params))
    B = float(_request("batch_tokens", batch_tokens))
    if np.ndim(steps) == 0:
        final, first_fitted = float(_request("steps", steps)), float(posterior.meta.ranges["step"][0])
        grid = step_grid(final, points, first_step=first_fitted if first_fitted < final else 1.0)
    else:
        grid = _request("steps", steps)
    covariates = schedule_covariates(posterior, schedule, grid, total_steps)
    draws = loss_draws(posterior, N, B, grid, mode=mode, group=group, seed=seed, covariates=covariates)
    df = band_frame(draws, levels, {"step": grid})
    if schedule is not None:
        df.attrs["schedule"] = schedule.describe()
    what = f"N={N:.3g}, B={B:.3g}"
    return state_ceiling(state_extrapolation(df, extrapolation(posterior, N, B, grid, covariates), what), posterior,
                         draws, what)


def _law_shift(posterior: Posterior, group: str | None, mode: str, N: float, seed: int) -> np.ndarray:
    """Per-draw law error on log loss (0 in mean mode), for quantities of a size alone."""
    if mode == "mean":
        return np.zeros((posterior.n_draws, 1))
    return law_error_draws(posterior, posterior.law.extrapolation(posterior.meta.ranges, N).distance, seed)


def predict_min_loss(
    posterior: Posterior,
    params: float | Sequence[float],
    *,
    levels: Sequence[float] = (0.9,),
    mode: str = "new_run",
    group: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Bands for the minimum reachable loss of one or more model sizes (the law's ``min_loss``).

    The Kaplan law's ``L_N = L_inf + (N_c/N)^alpha_N``; the Chinchilla law's
    unlimited-data loss ``E + A/N^alpha``. Draws above ``ln V`` are clipped to it
    (:func:`state_ceiling`).
    """
    _check_mode(mode)
    sizes = np.atleast_1d(_request("params", params))
    law = posterior.law
    floor = np.asarray(law.min_loss(expand(posterior.constants(group)), sizes[None, :]), float)
    shift = np.concatenate([_law_shift(posterior, group, mode, N, seed) for N in sizes], axis=1)
    draws = clip_to_ceiling(posterior, floor * np.exp(shift))
    df = band_frame(draws, levels, {"params": sizes})
    what = (f"N={', '.join(f'{n:.3g}' for n in sizes)}" if len(sizes) <= 4
            else f"N={min(sizes):.3g} to {max(sizes):.3g} ({len(sizes)} sizes)")
    return state_ceiling(state_extrapolation(df, extrapolation(posterior, sizes), what), posterior, draws, what)


def predict_critical_batch(
    posterior: Posterior,
    loss: float | Sequence[float],
    *,
    levels: Sequence[float] = (0.9,),
    group: str | None = None,
) -> pd.DataFrame:
    """Bands for the critical batch size in tokens at one or more loss values (laws that have one)."""
    law = posterior.law
    if law.critical_batch is None:
        raise ValueError(f"the {law.title} has no batch size, so no critical batch; fit a law that has one "
                         "(bayescale fit --model kaplan) to curves at several batch sizes")
    losses = np.atleast_1d(_positive("loss", loss))
    c = posterior.constants(group)
    values = np.stack([np.asarray(law.critical_batch(c, L), float) for L in losses], axis=1)
    return band_frame(values, levels, {"loss": losses})


def predict_steps_to_loss(
    posterior: Posterior,
    params: float,
    batch_tokens: float,
    target_loss: float,
    *,
    levels: Sequence[float] = (0.9,),
    mode: str = "new_run",
    group: str | None = None,
    seed: int = 0,
    schedule: Schedule | None = None,
) -> pd.DataFrame:
    """Steps and tokens to reach ``target_loss`` at ``batch_tokens``, and whatever else the law knows.

    Rows: ``steps``, ``tokens`` (at this batch) and the law's further quantities (the
    Kaplan law: ``min_steps`` at an infinite batch, ``min_tokens`` in the small-batch
    limit, ``critical_batch`` at the target; the Chinchilla law has no batch dependence
    and gives ``D = (B / (L - E - A/N^alpha))^(1/beta)`` tokens). Draws for which the
    target lies below the size's minimum loss give infinite steps; the column
    ``p_reachable`` is the posterior probability that the target is reachable.

    With a ``schedule`` other than constant (schedule-aware laws), ``steps`` is the
    shortest run that ends at or below the target: for a shape (cosine, WSD, linear) the
    planned length ``T`` whose final loss reaches it, for an explicit schedule the first
    step along it that does (:func:`steps_under_schedule`).
    """
    _check_mode(mode)
    N = float(_request("params", params))
    B = float(_request("batch_tokens", batch_tokens))
    L = float(_positive("target_loss", target_loss))
    L_law = L * np.exp(-_law_shift(posterior, group, mode, N, seed)[:, 0])
    if schedule is None or schedule.kind == "constant":
        quantities = posterior.law.steps_to_loss(posterior.constants(group), N, B, L_law)
    else:
        check_schedule(posterior.law, schedule)
        quantities = steps_under_schedule(posterior, N, B, L_law, schedule, group=group)
    values = np.stack(list(quantities.values()), axis=1)
    df = band_frame(values, levels, {"quantity": np.array(list(quantities))})
    reachable = np.isfinite(quantities["steps"])
    df["p_reachable"] = float(np.mean(reachable))
    steps = float(np.median(quantities["steps"][reachable])) if reachable.any() else None
    covariates = None if steps is None else schedule_covariates(posterior, schedule, [steps])
    return state_extrapolation(df, extrapolation(posterior, N, B, steps, covariates), f"N={N:.3g}, B={B:.3g}")


def steps_under_schedule(posterior: Posterior, params: float, batch_tokens: float, target_law: np.ndarray,
                         schedule: Schedule, *, group: str | None = None, points: int = 128) -> dict[str, np.ndarray]:
    """Per draw, the steps at which the law's mean curve under ``schedule`` first reaches
    ``target_law[d]`` (``inf`` when it does not within the search range).

    A shape (cosine, WSD, linear) is stretched to each planned length ``T`` of a
    log-spaced grid from step 1 to ``10^4`` times the last fitted step (at most
    :data:`MAX_SCALE`) and its final loss read; an explicit schedule is one run, read
    along its steps. The crossing is interpolated linearly in ``(log T, log L)``
    between grid points. Returns ``steps``, ``tokens`` and, for laws with one, the
    ``critical_batch`` at the target.
    """
    law = posterior.law
    end = min(MAX_SCALE, 1e4 * posterior.meta.ranges["step"][1]) if schedule.last_step is None else schedule.last_step
    T = np.geomspace(1.0, end, points)
    feats = features_at(schedule, T, end) if schedule.last_step is not None else final_features(schedule, T)
    extra = {k: jnp.asarray(v, jnp.float32) for k, v in feats.items() if k in law.covariates}
    log_x = [jnp.log(jnp.asarray(np.broadcast_to(v, T.shape), jnp.float32)) for v in (params, batch_tokens, T)]
    log_L = np.asarray(_mean_sampler(law)(posterior.constants(group), *log_x, extra), float)
    log_target = np.log(np.asarray(target_law, float))[:, None]
    reached = log_L <= log_target
    first = np.argmax(reached, axis=1)
    prev = np.maximum(first - 1, 0)
    rows = np.arange(len(first))
    y0, y1 = log_L[rows, prev], log_L[rows, first]
    w = np.where(y1 < y0, (y0 - log_target[:, 0]) / np.where(y1 < y0, y0 - y1, 1.0), 1.0)
    log_T = np.log(T)
    steps = np.exp(log_T[prev] + np.clip(w, 0.0, 1.0) * (log_T[first] - log_T[prev]))
    steps = np.where(reached.any(axis=1), np.where(first == 0, T[0], steps), np.inf)
    out = {"steps": steps, "tokens": batch_tokens * steps}
    if law.critical_batch is not None:
        out["critical_batch"] = np.asarray(law.critical_batch(posterior.constants(group), np.exp(log_target[:, 0])),
                                           float)
    return out


def single_batch_ladder(posterior: Posterior) -> bool:
    """Whether every fitted size was trained at one batch size (then the data cannot
    identify the critical batch, and its prior decides it)."""
    cd = posterior.idata.constant_data
    if "log_B" not in cd or not posterior.law.batch_latents:
        return False
    table = pd.DataFrame({"N": cd["log_N"].values.round(5), "B": cd["log_B"].values.round(5)})
    return bool(table.groupby("N")["B"].nunique().max() < 2)


#: The smallest critical-batch exponent the published measurements allow: the lower end of
#: the literature prior's 99% range (alpha_B = 0.21, sd 0.25 on log(1/alpha_B): 0.11-0.40).
STEEPEST_PUBLISHED_ALPHA_B = LITERATURE_ALPHA_B * math.exp(-2.576 * LITERATURE_LOG_INV_ALPHA_B_SD)


def shape_set_critical_batch(posterior: Posterior) -> float | None:
    """On a single-batch ladder, the smallest posterior median of ``alpha_B`` over the groups
    when it lies below :data:`STEEPEST_PUBLISHED_ALPHA_B`; ``None`` otherwise.

    With one batch per size nothing measures how the critical batch moves with the loss,
    yet it enters every point through ``S_min = S / (1 + B_crit(L) / B)`` with
    ``B_crit = B_* / L^(1/alpha_B)``: a steep ``B_crit(L)`` is one more way to bend the
    curves, and a fit of long curves can take it. Forecasts of other sizes then inherit a
    critical batch that grows as, e.g., ``L^-18`` instead of the published ``L^-4.8``
    (Kaplan et al. 2020, Table 5); docs/model.md, section 2.4, shows what that did on public
    single-batch curves."""
    if not single_batch_ladder(posterior):
        return None
    alpha_B = min(float(np.median(np.asarray(posterior.constants(g).alpha_B))) for g in posterior.groups)
    return alpha_B if alpha_B < STEEPEST_PUBLISHED_ALPHA_B else None


def single_batch_caveat(posterior: Posterior, share: float, forecast: str) -> str:
    """The sentence ``fit``, ``predict`` and the report print on a single-batch ladder: how much
    of ``forecast``'s predictive variance moves with the critical batch (``share``, from
    :func:`critical_batch_share`), what decided the critical batch (its prior, or the curves'
    shape: :func:`shape_set_critical_batch`) and how to narrow it."""
    literature = posterior.meta.settings.get("priors", {}).get("critical_batch") == "literature"
    remedy = "train some size at 3+ batches" + ("" if literature else
                                                 ", or fit with --batch-prior literature for losses in nats per BPE token")
    moved = f"{100 * share:.0f}% of the predictive variance of {forecast} moves with it"
    steep = shape_set_critical_batch(posterior)
    if steep is None:
        return f"every fitted size ran at one batch, so the critical batch is decided by its prior: {moved}; {remedy}"
    return (f"every fitted size ran at one batch, yet the fit put the critical batch's exponent at alpha_B = {steep:.2g} "
            f"(B_crit grows as L^-{1 / steep:.0f} as the loss falls; published {LITERATURE_ALPHA_B}, L^-"
            f"{1 / LITERATURE_ALPHA_B:.1f}): nothing measured it, the curves' shape set it, and forecasts of other sizes "
            f"inherit it ({moved}); {remedy}")


def _log_loss_draws_at(posterior: Posterior, params: float, batch_tokens: float, steps: float,
                       schedule: Schedule | None, group: str | None, seed: int, mode: str = "new_run") -> np.ndarray:
    """Draws of the log loss at one point ``(params, batch_tokens, steps)`` of a run trained with
    ``schedule`` (:func:`loss_draws` in ``mode``), shape ``(draws,)``."""
    return np.log(loss_draws(posterior, params, batch_tokens, steps, mode=mode,
                             group=posterior.groups[posterior.group_index(group)], seed=seed,
                             covariates=schedule_covariates(posterior, schedule, [float(steps)]))[:, 0])


def law_error_share(posterior: Posterior, params: float, batch_tokens: float, steps: float, *,
                    schedule: Schedule | None = None, group: str | None = None, seed: int = 0) -> float:
    """The share of the new-run predictive variance of the log loss at ``(params,
    batch_tokens, steps)`` that is the law's own error beyond the fitted data,
    ``(kappa d)^2 / ((kappa d)^2 + V)``: ``d`` is the point's log-distance outside the fitted
    ranges (``law.distance``), ``kappa`` the posterior's ``extrapolation_error`` (set a priori
    or measured on the ladder, :mod:`bayescale.law_error`), and ``V`` the variance of the
    :func:`loss_draws` without it (parameters, the new run's offset and evaluation noise),
    which the law error is drawn independently of. 0 inside the fitted ranges, where the
    law error vanishes."""
    d = float(posterior.law.distance(posterior.meta.ranges, *(np.atleast_1d(float(v))
                                                              for v in (params, batch_tokens, steps)))[0])
    law_variance = (float(posterior.meta.extrapolation_error) * d) ** 2
    if law_variance == 0.0:
        return 0.0
    rest = np.var(_log_loss_draws_at(posterior.with_law_error(0.0), params, batch_tokens, steps, schedule, group, seed))
    return float(law_variance / (law_variance + rest))


def critical_batch_share(posterior: Posterior, params: float, batch_tokens: float, steps: float, *,
                         schedule: Schedule | None = None, group: str | None = None, seed: int = 0) -> float:
    """The share of the new-run predictive variance of the log loss at ``(params,
    batch_tokens, steps)`` that moves with the critical batch: ``Var(f) / Var(log L)``, where
    ``f`` is the least-squares fit, across posterior draws, of the law's mean log loss on the
    law's critical-batch latents (``law.batch_latents``). Correlated constants that move
    with them count towards the share, evaluation noise and the law's error against it.
    0 for laws without a critical batch."""
    law = posterior.law
    if not law.batch_latents:
        return 0.0
    total = _log_loss_draws_at(posterior, params, batch_tokens, steps, schedule, group, seed)
    mean = _log_loss_draws_at(posterior, params, batch_tokens, steps, schedule, group, seed, mode="mean")
    g = posterior.group_index(group)
    X = np.column_stack([np.ones(len(mean)), *(posterior.draws(name)[:, g] for name in law.batch_latents)])
    fitted = X @ np.linalg.lstsq(X, mean, rcond=None)[0]
    return float(min(1.0, np.var(fitted) / np.var(total)))
