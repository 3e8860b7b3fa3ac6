r"""The one NumPyro model every law form plugs into.

For group ``g`` (e.g. evaluation split), run ``r`` and kept point ``i`` (all logs
natural), with a law (:class:`~bayescale.models.law.Law`) that supplies the latents'
priors, its own extra sites and ``mean_log_loss``::

    # each re-centred latent x of the law, with prior (m, s)
    x[g] ~ Normal(m, s)                                             # one group
    x    ~ MultivariateNormal(m 1, s^2 1 1^T + group_sd^2 I)        # G > 1 groups
    #   i.e. x[g] = mu + delta[g],  mu ~ Normal(m, s),  delta[g] ~ Normal(0, group_sd), mu integrated out

    mu_i = law.mean_log_loss(constants[g_i], N_i, B_i, S_i, ...) + offset[r_i]
    run_offset[r] ~ Normal(0, tau_run),   tau_run ~ HalfNormal(run_sd)        # seed noise
    offset[r] = run_offset[r] - mean(run_offset of the runs of r's size)     # sizes with 2+ runs
    offset[r] = run_offset[r]                                                # a size's only run
    r_i = log_loss_i - mu_i
    rho_i = exp(-(log S_i - log S_prev(i)) / ell)                            # gap in log-steps
    log_loss_i ~ StudentT(nu, mu_i + rho_i r_prev(i), sigma sqrt(1 - rho_i^2))   # has a previous point
    log_loss_i ~ StudentT(nu, mu_i, sigma)                                  # first kept point
    sigma ~ HalfNormal(noise_sd),   ell ~ HalfNormal(correlation_length_sd)
    rho = exp(-delta / ell)       # reported: the correlation at the median gap delta of the kept curves

The AR(1) term follows consecutive kept checkpoints of the same run and group, with a
correlation that fades over ``ell`` e-folds of steps, however the checkpoints are spaced
(an Ornstein-Uhlenbeck process in log-steps with Student-t innovations): it keeps the
posterior from treating 100 correlated points of one curve as 100 independent facts. The
prior on ``ell`` keeps a departure that lasts a whole run out of the AR(1): that is a level,
the run offsets' and the law error's to carry (docs/model.md, section 4.4). Fits of final
losses (no curve) sample ``rho ~ Uniform(0, 1)``, which no point informs. With
``residual_correlation="independent"`` in the priors ``rho`` is
held at 0 (a deterministic site), so that the fit follows each run's level rather than its
shape, which is what a forecast across sizes extrapolates (docs/model.md, section 4.4).
Without observations (``log_loss=None``: prior predictive, and the
predictor's new runs) every point is drawn from the stationary marginal
``StudentT(nu, mu_i, sigma)``. Fits of final losses only (one point per run) have no
run offsets and no ``rho`` unless the law keeps them
(``Law.offsets_for_final_losses``): the seed noise is then part of ``sigma``.

Parametrisation for NUTS, chosen by measurement on the bundled runs (two groups, 11
runs; 2 chains x 2,000 draws, three seeds; benchmarks/RESULTS.md):

* The between-group spread ``group_sd`` is fixed, not sampled, and the population mean
  is integrated out, so each latent has a fixed Gaussian prior over groups. Two or
  three groups cannot estimate a spread (its posterior is its prior), and a sampled
  spread makes a funnel: non-centred, NUTS needed about 550 leapfrog steps per draw
  (tree depth 9); centred, it diverged. With the fixed spread the group latents are
  sampled directly (centred), since every group has hundreds of points. A single group
  samples each latent non-centred (``LocScaleReparam``: unit-scale coordinates for the
  starting-point search).
* The run offsets are non-centred (``LocScaleReparam``): a run's offset is known only
  to about its own size (tens of autocorrelated points), and with centred offsets the
  divergent transitions gathered where ``tau_run`` approaches zero.
* The offsets of the runs of one size average to zero (:func:`centre_within_sizes`):
  they carry run-to-run differences (seed, batch, schedule), never a size effect, which
  is the law's to explain. Measured on the Multi-Power-Law curves (nine runs at each of
  two sizes, predicting a third; benchmarks/RESULTS.md): with free offsets the 25M runs
  took +0.056 and the 100M runs -0.056, alpha_N fell to 0.002 and the 400M forecast
  erred by 12.5%; centred, 1.2%. A size's only run keeps its offset: it cannot be told
  apart from the size's curve, and its prior keeps it small.

The law's own error (how far real curves depart from the law, which grows with the
distance of an extrapolation) is not a parameter here: the predictor adds it
(:mod:`bayescale.predict`), since the fitted sizes cannot reveal it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.distributions import constraints
from numpyro.infer.reparam import LocScaleReparam

from .law import Covariates, Law


def group_latent(name: str, loc: float, scale: float, n_groups: int, group_sd: float):
    """One latent per group. A single group draws it from its prior; several groups share
    a population mean (prior ``Normal(loc, scale)``, integrated out) and differ from it by
    ``Normal(0, group_sd)``: ``MultivariateNormal(loc, scale^2 J + group_sd^2 I)``."""
    if n_groups == 1:
        with numpyro.plate("group", 1):
            return numpyro.sample(name, dist.Normal(loc, scale))
    # NumPy, not jax.numpy: these are constants, and jax.numpy would compile each operation
    # on its own, in every compiled program that traces the model
    cov = scale**2 * np.ones((n_groups, n_groups)) + group_sd**2 * np.eye(n_groups)
    return numpyro.sample(name, dist.MultivariateNormal(np.full(n_groups, loc), scale_tril=np.linalg.cholesky(cov)))


def take_group(c, g):
    """The constants ``c`` (a NamedTuple of per-group arrays or scalars) at group indices ``g``."""
    return type(c)(*(jnp.asarray(v)[g] if jnp.ndim(v) else v for v in c))


def centre_within_sizes(run_offset, data):
    """``run_offset`` (one per run of ``data``, last axis) minus the mean offset of its size,
    for sizes with two or more runs; a size's only run keeps its offset (module docstring)."""
    if len(data.runs) < 2 or not hasattr(data, "size_idx"):
        return run_offset
    run_size = np.zeros(len(data.runs), np.int64)
    run_size[np.asarray(data.run_idx)] = np.asarray(data.size_idx)
    members = np.eye(int(run_size.max()) + 1)[run_size]  # (runs, sizes) one-hot
    counts = members.sum(axis=0)
    mean = (jnp.asarray(run_offset) @ members) / counts
    return run_offset - jnp.where(counts[run_size] > 1, mean[..., run_size], 0.0)


def has_curves(data) -> bool:
    """Whether some run has several kept points (then run offsets and AR(1) residuals apply)."""
    return bool(np.asarray(data.has_prev).any())


def has_run_offsets(law: Law, data) -> bool:
    """Whether a fit of ``data`` under ``law`` has run offsets and an AR(1) correlation."""
    return law.offsets_for_final_losses or has_curves(data)


def covariates(data) -> Covariates:
    """The :class:`~bayescale.models.law.Covariates` of the points of a ``CurveData``."""
    return Covariates(data.log_N, data.log_B, data.log_S, dict(data.covariates))


def log_step_gaps(data) -> np.ndarray:
    """Per kept point, its distance in log-steps from the previous kept point of its curve
    (0 for a curve's first point)."""
    log_S = np.asarray(data.log_S, np.float64)
    return np.where(data.has_prev, log_S - log_S[np.asarray(data.prev_idx)], 0.0)


def median_spacing(data) -> float:
    """The median log-step gap between consecutive kept points of one curve; ``inf`` where no
    curve has two points (:func:`bayescale.residuals.fitted_spacing` reads the same from a fit)."""
    gaps = log_step_gaps(data)[np.asarray(data.has_prev)]
    return float(np.median(gaps)) if gaps.size else float("inf")


class CorrelationAtSpacing(dist.Distribution):
    """The correlation ``rho = exp(-delta / ell)`` of two points ``delta`` apart in log-steps, where
    the correlation length is ``ell ~ HalfNormal(scale)`` e-folds of steps.

    The prior is on ``ell``; the site is ``rho`` on the unit interval, so that NUTS moves in
    ``logit rho``. Sampled as ``ell`` itself (log coordinates), the bundled runs' fit
    mixed two to four times worse (tail ESS 111 and 972 against 2,058 and 4,379 of 16,000
    draws on seeds 0 and 1) and diverged more often (11 and 2 divergent draws against 2 and
    0). The density is ``HalfNormal(ell; scale) |d ell / d rho|`` with
    ``d ell / d rho = delta / (rho log(rho)^2)``.
    """

    support = constraints.unit_interval

    def __init__(self, spacing: float, scale: float, *, validate_args=None):
        self.spacing, self.scale = spacing, scale
        super().__init__(batch_shape=(), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        length = self.scale * jnp.abs(jax.random.normal(key, sample_shape))
        return jnp.exp(-self.spacing / length)

    def log_prob(self, value):
        log_rho = jnp.log(value)
        length = -self.spacing / log_rho
        return (dist.HalfNormal(self.scale).log_prob(length) + jnp.log(self.spacing) - log_rho
                - 2.0 * jnp.log(-log_rho))


def residual_correlation(data, priors) -> tuple:
    """The AR(1) sites of a fit with run offsets, and per point the share ``rho_i`` of the previous
    residual it carries and its innovation's scale relative to ``sigma``, ``sqrt(1 - rho_i^2)``.

    On curves, ``rho_i = exp(-gap_i / ell)`` over the log-step gap to the previous point, with a
    correlation length ``ell ~ HalfNormal(correlation_length_sd)`` e-folds of steps, sampled as
    ``rho = exp(-delta / ell)`` at the median gap ``delta`` (:class:`CorrelationAtSpacing`; the
    lag-1 correlation of evenly thinned points), so ``rho_i = rho^(gap_i / delta)``. Final losses
    only (no point has a previous one) sample ``rho ~ Uniform(0, 1)``, which no point informs;
    independent residuals hold ``rho`` at 0.
    """
    if priors.residual_correlation != "ar1":
        numpyro.deterministic("rho", jnp.zeros(()))
        return 0.0, 1.0
    if not has_curves(data):
        rho = numpyro.sample("rho", dist.Uniform(0.0, 1.0))
        return rho, jnp.sqrt(1.0 - rho**2)
    spacing = median_spacing(data)
    rho = numpyro.sample("rho", CorrelationAtSpacing(spacing, priors.correlation_length_sd))
    numpyro.deterministic("correlation_length", -spacing / jnp.log(rho))
    # a first point's gap is a placeholder (its residual carries nothing over), positive so that
    # the gradients stay finite: a zero gap would put sqrt(0) in the masked branch
    lags = jnp.asarray(np.where(data.has_prev, log_step_gaps(data), 1.0) / spacing, jnp.float32)
    log_rho = jnp.log(rho)
    return jnp.exp(lags * log_rho), jnp.sqrt(-jnp.expm1(2.0 * lags * log_rho))


def _model(law: Law, data, priors, log_loss, offsets: bool) -> None:
    G = data.n_groups
    latents = {name: group_latent(name, loc, scale, G, priors.group_sd)
               for name, (loc, scale) in law.prior_centres(data, priors).items()}
    latents.update(law.extra_latents(data, priors))
    c = law.constants_from_latents(latents, data.references)
    with numpyro.plate("group", G):
        for name, value in law.paper_constants(c).items():
            numpyro.deterministic(name, value)

    if offsets:
        run_scale = numpyro.sample("run_offset_scale", dist.HalfNormal(priors.run_sd))
        with numpyro.plate("run", len(data.runs)):
            run_offset = numpyro.sample("run_offset", dist.Normal(0.0, run_scale))
    sigma = numpyro.sample("sigma", dist.HalfNormal(priors.noise_sd))
    if offsets:
        carry, innovation = residual_correlation(data, priors)

    mu = law.mean_log_loss(take_group(c, data.group_idx), covariates(data))
    if offsets:
        mu = mu + centre_within_sizes(run_offset, data)[data.run_idx]
    loc, scale = mu, sigma
    if offsets and log_loss is not None:
        resid_prev = (log_loss - mu)[data.prev_idx]
        loc = mu + jnp.where(data.has_prev, carry * resid_prev, 0.0)
        scale = sigma * jnp.where(data.has_prev, innovation, 1.0)
    with numpyro.plate("obs", data.n_points):
        numpyro.sample("log_loss", dist.StudentT(priors.nu, loc, scale), obs=log_loss)


def curve_model(data, law: Law, priors=None, log_loss=None, run_offsets: bool | None = None,
                non_centred: bool = True) -> None:
    """NumPyro model of the losses in ``data`` under ``law`` (module docstring).

    ``priors`` defaults to ``law.default_priors()``; ``log_loss`` defaults to ``None``
    (prior predictive, or new runs from posterior draws); pass ``data.log_loss`` to
    condition. ``run_offsets`` defaults to :func:`has_run_offsets`; the predictor sets it
    to whether the fit had them, since the points of one new run are not a curve.
    ``non_centred=False`` samples a single group's latents directly (the same
    distribution), so that posterior draws of the latents themselves can be substituted.
    """
    offsets = has_run_offsets(law, data) if run_offsets is None else run_offsets
    priors = law.default_priors() if priors is None else priors
    reparam = {"run_offset": LocScaleReparam(0)}
    if data.n_groups == 1 and non_centred:  # unit-scale coordinates for the starting-point search
        reparam.update({name: LocScaleReparam(0) for name in law.latents})
    with handlers.reparam(config=reparam):
        _model(law, data, priors, log_loss, offsets)


def new_run_noise(rng: np.random.Generator, tau, sigma, nu: float, points: int) -> np.ndarray:
    """The model's observation block for one new run, on log loss, drawn with NumPy.

    Per posterior draw ``d`` (``tau``, ``sigma`` arrays over draws; ``tau`` zero for fits
    without run offsets): ``run_offset ~ Normal(0, tau_d)`` shared by the run's points,
    plus ``StudentT(nu, 0, sigma_d)`` per point, the stationary marginal -- exactly what
    :func:`curve_model` draws with ``log_loss=None`` for a run not in the fit (NumPyro's
    ``Predictive``; ``bayescale.predict.loss_draws(..., through_model=True)``). The
    predictor uses this form because JAX draws Student-t variables through a gamma
    rejection sampler that is slow on CPUs: 4,000 draws x 512 points took 5.5 s through
    ``Predictive`` against 0.45 s here (benchmarks/RESULTS.md); tests/test_predict.py
    checks that both give the same distribution. Returns ``(draws, points)``.
    """
    tau, sigma = np.asarray(tau, float), np.asarray(sigma, float)
    run = rng.standard_normal((tau.shape[0], 1)) * tau[:, None]
    return run + rng.standard_t(nu, size=(sigma.shape[0], points)) * sigma[:, None]


def dims(data, law: Law) -> tuple[dict, dict]:
    """ArviZ coordinates and dimensions of a fit of ``data`` under ``law``."""
    coords = {"group": data.groups, "obs": np.arange(data.n_points)}
    site_dims = {s: ["group"] for s in law.group_sites(data.n_groups)}
    site_dims["log_loss"] = ["obs"]
    if has_run_offsets(law, data):
        coords["run"] = data.runs
        site_dims.update({"run_offset": ["run"], "run_offset_decentered": ["run"]})
    return coords, site_dims
