"""The fitted posterior: an ArviZ ``InferenceData`` plus what is needed to predict.

The ``InferenceData`` holds the groups ``posterior``, ``sample_stats``,
``log_likelihood``, ``observed_data``, ``constant_data`` (the fitted points' N, B, S,
run and group) and ``prior`` (prior and prior-predictive draws). The reference values,
fitted ranges, group names and settings travel as JSON in the posterior group's
``bayescale`` attribute, so one netCDF file is enough to predict.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from bayescale import laws
from bayescale.diagnostics import diagnose
from bayescale.models import (CHINCHILLA_LATENTS, CONSTANTS, ChinchillaConstants, chinchilla_constants_from_latents,
                              constants_from_latents)

META_ATTR = "bayescale"


class PosteriorFileError(ValueError):
    """A file that is not a bayescale posterior."""


@dataclass
class Posterior:
    """Posterior draws of a scaling-law model with the metadata to use them.

    ``meta`` keys: ``model`` (``kaplan`` or ``chinchilla``), ``irreducible``, ``groups``,
    ``group_by``, ``sizes``, ``references``, ``ranges``, ``settings`` and
    ``extrapolation_error`` (see :mod:`bayescale.predict`).
    """

    idata: az.InferenceData
    meta: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.meta["model"])

    @property
    def groups(self) -> list[str]:
        return list(self.meta["groups"])

    @property
    def n_draws(self) -> int:
        post = self.idata.posterior
        return int(post.sizes["chain"] * post.sizes["draw"])

    def draws(self, name: str) -> np.ndarray:
        """Draws of one site with chains and draws flattened into the first axis."""
        values = self.idata.posterior[name].values
        return values.reshape((-1,) + values.shape[2:])

    def group_index(self, group: str | None) -> int:
        """Index of ``group``; ``None`` is allowed only when there is one group."""
        if group is None:
            if len(self.groups) == 1:
                return 0
            raise ValueError(f"the posterior has groups {', '.join(self.groups)}; choose one with group=... (--group)")
        if group not in self.groups:
            raise ValueError(f"group '{group}' is not in the posterior (groups: {', '.join(self.groups)})")
        return self.groups.index(group)

    def constants(self, group: str | None = None) -> laws.KaplanConstants:
        """Kaplan constants of one group, one value per posterior draw."""
        if self.model != "kaplan":
            raise ValueError(f"a {self.model} posterior has no Kaplan constants; use the {self.model} predictor")
        g = self.group_index(group)
        latents = {name: self.draws(name)[:, g] for name in ("log_L_ref", "log_alpha_N", "log_A_ref",
                                                                  "log_alpha_S", "log_B_ref", "log_inv_alpha_B")}
        L_inf = self.draws("L_inf")[:, g] if self.meta.get("irreducible") else 0.0
        return constants_from_latents(latents, self.meta["references"], L_inf)

    def chinchilla_constants(self, group: str | None = None) -> ChinchillaConstants:
        """Chinchilla constants (E, A, B, alpha, beta) of one group, one value per posterior draw."""
        if self.model != "chinchilla":
            raise ValueError(f"a {self.model} posterior has no Chinchilla constants; fit with --model chinchilla")
        g = self.group_index(group)
        latents = {name: self.draws(name)[:, g] for name in CHINCHILLA_LATENTS}
        return chinchilla_constants_from_latents(latents, self.meta["references"])

    def constant_names(self) -> list[str]:
        """Names of the paper constants this posterior reports per group."""
        if self.model == "kaplan":
            return [*CONSTANTS, *(["L_inf"] if self.meta.get("irreducible") else [])]
        return list(self.meta["constants"])

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
        self.idata.posterior.attrs[META_ATTR] = json.dumps(self.meta)
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
        return cls(idata=idata, meta=json.loads(idata.posterior.attrs[META_ATTR]))
