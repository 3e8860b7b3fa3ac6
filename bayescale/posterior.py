"""The fitted posterior: an ArviZ ``InferenceData`` plus what is needed to predict.

The ``InferenceData`` holds the groups ``posterior``, ``sample_stats``,
``log_likelihood``, ``observed_data``, ``constant_data`` (the fitted points' N, B, S,
run and group) and ``prior`` (prior and prior-predictive draws). The metadata record
(:class:`PosteriorMeta`: the law's name, reference values, fitted ranges, group names,
vocabulary and settings) travels as JSON in the posterior group's ``bayescale``
attribute, so one netCDF file is enough to predict. Files written before the law had a
name of its own (``"model": "kaplan"`` with ``"irreducible": true``) are read by
:meth:`PosteriorMeta.from_dict`, the one place that converts them; files written before
the vocabulary was recorded read with ``vocab_size=None``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from bayescale.defaults import DEFAULT_ERROR_LENGTH, DEFAULT_EXTRAPOLATION_ERROR
from bayescale.diagnostics import diagnose
from bayescale.models.law import Law
from bayescale.models.registry import get_law

META_ATTR = "bayescale"


@dataclass
class PosteriorMeta:
    """What a posterior needs besides its draws: the law, the fitted data's summary and the settings.

    ``law`` is the registered name of the law form (:mod:`bayescale.models.registry`);
    ``references`` the values the latents are centred on; ``ranges`` the fitted ranges
    of each covariate (``params``, ``step``, ``batch_tokens`` and any the law adds) that
    extrapolation distances are measured from; ``extrapolation_error`` the law-error
    growth ``kappa`` (:mod:`bayescale.predict`) and ``error_length`` the e-folds of steps
    over which its size's part stays correlated along a run (:mod:`bayescale.track`; both
    measured on the ladder with ``fit(law_error="ladder")``: :mod:`bayescale.law_error`,
    the measurement under ``settings["law_error"]``); ``settings`` the sampler settings,
    priors and bayescale version; ``versions`` the libraries'. ``vocab_size`` is the
    fitted runs' vocabulary (the run table's ``vocab_size`` column; ``None`` when the
    table does not give one, or its runs disagree): it sets the losses' units
    (:func:`loss_units`) and the ceiling no forecast exceeds (:mod:`bayescale.predict`).
    """

    law: str
    groups: list[str]
    references: dict[str, float] = field(default_factory=dict)
    ranges: dict[str, list[float]] = field(default_factory=dict)
    extrapolation_error: float = DEFAULT_EXTRAPOLATION_ERROR
    error_length: float = DEFAULT_ERROR_LENGTH
    settings: dict[str, Any] = field(default_factory=dict)
    group_by: str | None = None
    sizes: list[float] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    vocab_size: int | None = None

    @classmethod
    def from_dict(cls, meta: dict[str, Any]) -> "PosteriorMeta":
        """Read a record as written to disk, including those written before laws had names."""
        meta = dict(meta)
        if "law" not in meta:  # older files: {"model": "kaplan", "irreducible": bool, "constants": [...]}
            model = meta.pop("model", "kaplan")
            meta["law"] = f"{model}_irreducible" if meta.pop("irreducible", False) else model
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in meta.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The vocabulary of byte-level models, whose losses are per byte.
BYTE_VOCAB = 256


def loss_units(meta: PosteriorMeta) -> str:
    """Units of the fitted losses, for labels and text: ``"nats/byte"`` for a byte-level
    vocabulary (:data:`BYTE_VOCAB`), else ``"nats/token"``."""
    return "nats/byte" if meta.vocab_size == BYTE_VOCAB else "nats/token"


def fitted_points(posterior: "Posterior") -> pd.DataFrame:
    """The fitted evaluation points: ``params, batch_tokens, step, loss, run, group`` and the
    law's covariates (``law.covariates``); ``run`` is the index into ``meta.runs``."""
    cd, obs = posterior.idata.constant_data, posterior.idata.observed_data
    return pd.DataFrame({
        "params": np.exp(cd["log_N"].values.astype(float)), "batch_tokens": np.exp(cd["log_B"].values.astype(float)),
        "step": np.exp(cd["log_S"].values.astype(float)), "loss": np.exp(obs["log_loss"].values.astype(float)),
        "run": cd["run_idx"].values, "group": np.asarray(posterior.groups)[cd["group_idx"].values],
        **{name: cd[name].values.astype(float) for name in posterior.law.covariates},
    })


class PosteriorFileError(ValueError):
    """A file that is not a bayescale posterior."""


@dataclass
class Posterior:
    """Posterior draws of a scaling-law model with the metadata to use them (:class:`PosteriorMeta`)."""

    idata: az.InferenceData
    meta: PosteriorMeta

    def __post_init__(self) -> None:
        if isinstance(self.meta, dict):
            self.meta = PosteriorMeta.from_dict(self.meta)

    @property
    def law(self) -> Law:
        """The law form the posterior was fitted under (:mod:`bayescale.models.registry`)."""
        return get_law(self.meta.law)

    @property
    def groups(self) -> list[str]:
        return list(self.meta.groups)

    @property
    def n_draws(self) -> int:
        post = self.idata.posterior
        return int(post.sizes["chain"] * post.sizes["draw"])

    def draws(self, name: str) -> np.ndarray:
        """Draws of one site with chains and draws flattened into the first axis."""
        values = self.idata.posterior[name].values
        return values.reshape((-1,) + values.shape[2:])

    def with_draws(self, index: np.ndarray) -> "Posterior":
        """The posterior with only the draws ``index`` (flat, in :meth:`draws`' order), as one
        chain; the other groups of ``idata`` (the fitted points) as they are. Forecasts from it
        cost those draws only."""
        post = self.idata.posterior
        index = np.asarray(index)
        # one chain of len(index) draws, with the sites' other dims, coords and attrs as they are
        subset = post.isel(chain=[0], draw=np.zeros(len(index), int)).assign_coords(draw=np.arange(len(index)))
        for name, var in post.data_vars.items():
            subset[name] = (var.dims, self.draws(name)[index][None])
        idata = az.InferenceData(posterior=subset, **{g: self.idata[g] for g in self.idata.groups() if g != "posterior"})
        return Posterior(idata=idata, meta=self.meta)

    def with_law_error(self, kappa: float) -> "Posterior":
        """The same draws with the law's error growing by ``kappa`` per e-fold beyond the fitted
        data (``meta.extrapolation_error``; 0: none), e.g. to take a band apart."""
        return Posterior(idata=self.idata, meta=dataclasses.replace(self.meta, extrapolation_error=kappa))

    def group_index(self, group: str | None) -> int:
        """Index of ``group``; ``None`` is allowed only when there is one group."""
        if group is None:
            if len(self.groups) == 1:
                return 0
            raise ValueError(f"the posterior has groups {', '.join(self.groups)}; choose one with group=... (--group)")
        if group not in self.groups:
            raise ValueError(f"group '{group}' is not in the posterior (groups: {', '.join(self.groups)})")
        return self.groups.index(group)

    def constants(self, group: str | None = None, fixed: tuple[str, ...] = ()):
        """The law's constants of one group, one value per posterior draw; the latents named
        in ``fixed`` are held at their posterior medians (to see what their uncertainty adds)."""
        g = self.group_index(group)
        law = self.law
        values = {name: self.draws(name)[:, g] for name in (*law.latents, *law.derived_sites)}
        for name in fixed:
            values[name] = np.full_like(values[name], np.median(values[name]))
        return law.constants_from_latents(values, self.meta.references)

    def constant_names(self) -> list[str]:
        """Names of the paper constants this posterior reports per group."""
        return self.law.gated()

    def summary(self, level: float = 0.9) -> pd.DataFrame:
        """Median, central ``level`` interval, R-hat and ESS of every constant per group."""
        names = self.constant_names()
        diag = diagnose(self.idata, names).table
        rows = []
        for name in names:
            values = self.draws(name).reshape(self.n_draws, -1)
            for g, group in enumerate(self.groups):
                key = f"{name}[{group}]"
                lo, med, hi = np.quantile(values[:, g], [(1 - level) / 2, 0.5, (1 + level) / 2])
                rows.append({"constant": name, "group": group, "median": med, "lower": lo, "upper": hi,
                             "r_hat": diag.loc[key, "r_hat"], "ess_bulk": diag.loc[key, "ess_bulk"],
                             "ess_tail": diag.loc[key, "ess_tail"]})
        return pd.DataFrame(rows)

    def save(self, path: str | Path) -> Path:
        """Write the posterior to netCDF atomically: a temporary file in the same folder, then
        ``os.replace``. A failed write leaves no temporary file and any earlier file intact."""
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"{path}: is an existing folder; give a file path, e.g. {path / 'posterior.nc'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.idata.posterior.attrs[META_ATTR] = json.dumps(self.meta.to_dict())
        tmp = path.with_name(path.name + ".tmp")
        try:
            self.idata.to_netcdf(str(tmp), engine="h5netcdf")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Posterior":
        """Read a posterior written by :meth:`save`; raise :class:`PosteriorFileError` otherwise."""
        path = Path(path)
        if not path.is_file():
            raise PosteriorFileError(f"{path}: no such posterior file; create one with `bayescale fit --out {path.name}`")
        try:
            idata = az.from_netcdf(str(path), engine="h5netcdf")
        except (OSError, ValueError, KeyError) as err:
            raise PosteriorFileError(f"{path}: not a netCDF posterior ({type(err).__name__}); "
                                     "give a file written by `bayescale fit --out`") from err
        if "posterior" not in idata.groups() or META_ATTR not in idata.posterior.attrs:
            raise PosteriorFileError(f"{path}: a netCDF file but not a bayescale posterior (no '{META_ATTR}' metadata); "
                                     "give a file written by `bayescale fit --out`")
        return cls(idata=idata, meta=PosteriorMeta.from_dict(json.loads(idata.posterior.attrs[META_ATTR])))
