r"""The law protocol: what a scaling-law form tells the rest of bayescale.

A law form (Kaplan, Kaplan with a loss floor, Chinchilla, ...) is one object, the way
an emcee move or a NumPyro model function is one object. Everything outside
:mod:`bayescale.models` (fitting, prediction, budgeting, reports, plots, comparison,
the command line) asks the law object and never tests its name. A law has:

* **identity** -- ``name`` (its key in :mod:`bayescale.models.registry` and the
  command line's ``--model``), ``title`` (prose) and ``units`` (of its constants);
* **sites** -- ``latents``: the re-centred per-group latent sites sampled by the shared
  skeleton (:mod:`bayescale.models.skeleton`) with the priors of
  :meth:`Law.prior_centres`; ``extra_sites``: further per-group sites it samples itself
  (:meth:`Law.extra_latents`); ``derived_sites``: per-group deterministic sites that
  :meth:`Law.constants_from_latents` reads back from a posterior; ``constants``: the
  paper constants, recorded as deterministic sites and gated by the diagnostics;
* **covariates** -- :meth:`Law.mean_log_loss` takes a :class:`Covariates` record: the
  log size, batch and steps of each point and a mapping ``extra`` of any other
  per-point covariate the law declares in ``covariates`` (a learning-rate schedule, for
  instance, read from the run table by :meth:`Law.prepare` and given to the predictor
  as ``covariates=``);
* **derived quantities** -- :meth:`Law.min_loss` (loss with unlimited training),
  :meth:`Law.steps_to_loss` and :meth:`Law.critical_batch`; a law that has no such
  quantity leaves the attribute ``None`` (the Chinchilla law has no batch size, so no
  critical batch);
* **extrapolation distance** -- :meth:`Law.extrapolation`: per axis the log-distance of
  a request from the fitted ranges, which scales the law's own error in the predictor.

Adding a law form is one new module with a :class:`Law` subclass and one entry in
:data:`bayescale.models.registry.LAWS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bayescale.defaults import DEFAULT_MAX_POINTS


@dataclass(frozen=True)
class Covariates:
    """Per-point covariates of a law: natural logs of size, batch (tokens) and steps, broadcastable.

    ``extra`` holds any further per-point covariate a law declares (``Law.covariates``),
    keyed by its name.
    """

    log_N: Any
    log_B: Any
    log_S: Any
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def log_tokens(self):
        """``log(B S)``: the tokens seen after ``S`` steps of ``B`` tokens."""
        return self.log_B + self.log_S

    def __getitem__(self, name: str):
        return self.extra[name]


class ExtrapolationWarning(UserWarning):
    """A forecast lies far beyond the fitted data (see ``EXTRAPOLATION_WARN_FACTOR``)."""


class LossCeilingWarning(UserWarning):
    """Draws of a forecast lay above ``ln V``, the loss of a model that has learned nothing
    (a uniform guess over a vocabulary of ``V`` tokens), and were clipped to it."""


@dataclass(frozen=True)
class Extrapolation:
    """How far a request lies outside the fitted data: natural-log distance per axis."""

    axes: dict[str, float]

    @property
    def factors(self) -> dict[str, float]:
        """Per axis, how many times beyond the fitted range (1 inside it)."""
        return {name: float(np.exp(v)) for name, v in self.axes.items()}

    @property
    def distance(self) -> float:
        return float(np.sqrt(sum(v**2 for v in self.axes.values())))

    @property
    def extrapolates(self) -> bool:
        return self.distance > 0

    def describe(self) -> str:
        if not self.extrapolates:
            return "inside the fitted ranges"
        parts = [f"{name} x{np.exp(v):.3g}" if np.isfinite(v) else f"{name} (nothing like it fitted)"
                 for name, v in self.axes.items() if v > 0]
        return "extrapolates beyond the fitted data: " + ", ".join(parts) + f" (log-distance {self.distance:.2f})"


def expand(c, axis: int = -1):
    """Insert a broadcasting axis into every constant of ``c`` (draws x points layouts)."""
    import jax.numpy as jnp

    return type(c)(*(jnp.expand_dims(jnp.asarray(v), axis) for v in c))


def outside(value, lo: float, hi: float) -> np.ndarray:
    """How far ``log value`` lies outside ``[log lo, log hi]`` (0 inside), elementwise."""
    logv = np.log(np.asarray(value, float))
    return np.maximum(0.0, np.maximum(logv - np.log(hi), np.log(lo) - logv))


class Law:
    """Base class of the law forms (module docstring). Subclasses set the class attributes
    and implement the methods that raise ``NotImplementedError``."""

    #: Key in the registry and value of ``--model``.
    name: ClassVar[str]
    #: What the law is, in prose (reports, the demo's summary).
    title: ClassVar[str]
    #: Where the law comes from (reports).
    reference: ClassVar[str] = ""
    #: Units of the constants, for figure and table captions ("" when they are plain numbers).
    units: ClassVar[str] = ""
    #: Paper constants, recorded per group as deterministic sites; the convergence gate covers them.
    constants: ClassVar[tuple[str, ...]]
    #: Constants that span decades (scales), shown on log axes.
    scale_constants: ClassVar[tuple[str, ...]] = ()
    #: Re-centred per-group latent sites with Gaussian priors (:meth:`prior_centres`).
    latents: ClassVar[tuple[str, ...]]
    #: Latents of the critical batch (their share of a band is reported on single-batch ladders).
    batch_latents: ClassVar[tuple[str, ...]] = ()
    #: Further per-group sites the law samples itself (:meth:`extra_latents`).
    extra_sites: ClassVar[tuple[str, ...]] = ()
    #: Per-group deterministic sites :meth:`constants_from_latents` reads besides the latents.
    derived_sites: ClassVar[tuple[str, ...]] = ()
    #: Per-point covariates besides log N, B and S (names of ``Covariates.extra``).
    covariates: ClassVar[tuple[str, ...]] = ()
    #: Whether the law's loss depends on the batch size at a fixed token count.
    uses_batch: ClassVar[bool] = True
    #: Whether fits of final losses (one point per run) still get run offsets and an AR(1)
    #: correlation; fits of curves always do. Kept per law as measured (the Kaplan law
    #: always had them; the Chinchilla law's published form folds seed noise into sigma).
    offsets_for_final_losses: ClassVar[bool] = False
    #: Critical batch in tokens at a loss, ``(constants, L) -> B_crit``; ``None`` when the law has none.
    critical_batch: Callable | None = None

    def default_priors(self):
        """The law's prior settings (a frozen dataclass with at least ``group_sd``, ``noise_sd``,
        ``run_sd`` and ``nu``)."""
        raise NotImplementedError

    def prepare(self, runs, *, group_by, min_step_fraction: float, min_step: float,
                max_points: int | None = DEFAULT_MAX_POINTS):
        """The points to fit (:class:`~bayescale.curves.CurveData`) with this law's references,
        fitted ranges and covariates; a law warns here when the data cannot identify one of
        its constants. By default the points of :func:`~bayescale.curves.prepare_curves`."""
        from bayescale.curves import prepare_curves

        return prepare_curves(runs, group_by=group_by, min_step_fraction=min_step_fraction, min_step=min_step,
                              max_points=max_points)

    def prior_centres(self, data, priors) -> dict[str, tuple[float, float]]:
        """Prior ``(loc, scale)`` of every latent in :attr:`latents`, in that order."""
        raise NotImplementedError

    def extra_latents(self, data, priors) -> dict[str, Any]:
        """Sample the law's other per-group sites (:attr:`extra_sites`) inside the model and return
        the values :meth:`constants_from_latents` reads (by their :attr:`derived_sites` names)."""
        return {}

    def constants_from_latents(self, latents: Mapping[str, Any], references: Mapping[str, float]):
        """The law's constants (a NamedTuple of arrays) from its latent and derived site values."""
        raise NotImplementedError

    def paper_constants(self, c) -> dict[str, Any]:
        """The values of :attr:`constants` from the law's constants ``c``."""
        raise NotImplementedError

    def mean_log_loss(self, c, x: Covariates):
        """The law's mean log loss at covariates ``x`` (any broadcast of constants and points)."""
        raise NotImplementedError

    def min_loss(self, c, N):
        """The lowest loss a model of size ``N`` reaches with unlimited training (broadcast)."""
        raise NotImplementedError

    def steps_to_loss(self, c, N, B, L) -> dict[str, Any]:
        """Quantities needed to reach loss ``L`` at size ``N`` and batch ``B``: at least ``steps``
        and ``tokens`` (``inf`` where ``L`` is out of reach); a law may add more (``min_steps``...)."""
        raise NotImplementedError

    def fitted_ranges(self) -> tuple[tuple[str, str], ...]:
        """(axis name, key of the fitted ranges) of each extrapolation axis."""
        raise NotImplementedError

    def axis_values(self, N, B, S) -> dict[str, Any]:
        """Values of each extrapolation axis at points ``(N, B, S)``; ``None`` where not given."""
        raise NotImplementedError

    def axis_distances(self, ranges: Mapping[str, list[float]], N, B=None, S=None) -> dict[str, np.ndarray]:
        """Per axis, the log-distance of each point ``(N, B, S)`` (broadcast) outside the fitted
        range (0 inside, and on an axis the request leaves out)."""
        values = self.axis_values(N, B, S)
        return {axis: np.zeros(()) if values[axis] is None else outside(values[axis], *ranges[key])
                for axis, key in self.fitted_ranges()}

    def extrapolation(self, ranges: Mapping[str, list[float]], N, B=None, S=None,
                      covariates: Mapping[str, np.ndarray] | None = None) -> Extrapolation:
        """Log-distance of the request from the fitted data per axis (largest over the points);
        a law with covariates may add an axis for them (``covariates`` of the request)."""
        return Extrapolation({axis: float(np.max(d)) for axis, d in self.axis_distances(ranges, N, B, S).items()})

    def distance(self, ranges: Mapping[str, list[float]], N, B, S) -> np.ndarray:
        """Log-distance from the fitted data of each point ``(N, B, S)`` (broadcast)."""
        return np.sqrt(sum(d**2 for d in self.axis_distances(ranges, N, B, S).values()))

    def gated(self) -> list[str]:
        """Sites the convergence gate covers: the constants and derived sites forecasts are made of."""
        return [*self.constants, *self.derived_sites]

    def group_sites(self, n_groups: int) -> list[str]:
        """Every per-group site of a fit (for ArviZ dims), with the non-centred latents of one group."""
        sites = [*self.constants, *self.latents, *self.derived_sites, *self.extra_sites]
        if n_groups == 1:  # non-centred latents (bayescale.models.skeleton)
            sites += [f"{s}_decentered" for s in self.latents]
        return sites

    def __repr__(self) -> str:
        return f"<law {self.name}: {self.title}>"

