"""The law protocol and registry: one object per law form, asked rather than named."""

from __future__ import annotations

import dataclasses
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import Predictive

from bayescale.cli import main
from bayescale.curves import prepare_curves
from bayescale.models import CHINCHILLA, KAPLAN, KAPLAN_IRREDUCIBLE, KaplanPriors
from bayescale.models.kaplan import Kaplan
from bayescale.models.law import Covariates
from bayescale.models.registry import LAWS, get_law, irreducible_variant
from bayescale.models.skeleton import curve_model, dims
from bayescale.posterior import PosteriorMeta


def test_registry_maps_names_to_law_objects():
    assert tuple(LAWS) == ("kaplan", "kaplan_irreducible", "kaplan_schedule", "kaplan_schedule_irreducible",
                           "chinchilla")
    for name in LAWS:
        assert get_law(name).name == name
    assert get_law(KAPLAN) is KAPLAN
    assert irreducible_variant("kaplan") == "kaplan_irreducible"
    with pytest.raises(ValueError, match="no irreducible-loss variant"):
        irreducible_variant("chinchilla")
    with pytest.raises(ValueError, match="unknown model 'hoffmann'"):
        get_law("hoffmann")


def test_laws_answer_what_they_have():
    assert KAPLAN.critical_batch is not None and CHINCHILLA.critical_batch is None
    assert KAPLAN.uses_batch and not CHINCHILLA.uses_batch
    assert KAPLAN_IRREDUCIBLE.gated() == [*KAPLAN.constants, "L_inf"]
    ranges = {"params": [1e4, 1e5], "step": [10.0, 1e3], "batch_tokens": [256.0, 1024.0], "tokens": [1e4, 1e6]}
    assert set(KAPLAN.extrapolation(ranges, 1e6, 512.0, 1e3).axes) == {"size", "steps", "batch"}
    ext = CHINCHILLA.extrapolation(ranges, 1e5, 1024.0, 1e4)
    assert ext.axes == {"size": 0.0, "tokens": pytest.approx(np.log(10.24))}


def test_old_posterior_metadata_converts_in_one_place():
    old = {"model": "kaplan", "irreducible": True, "groups": ["all"], "references": {}, "ranges": {},
           "extrapolation_error": 0.01, "constants": ["N_c"], "curves": True}
    assert PosteriorMeta.from_dict(old).law == "kaplan_irreducible"
    assert PosteriorMeta.from_dict({**old, "model": "chinchilla", "irreducible": False}).law == "chinchilla"
    new = PosteriorMeta.from_dict(old).to_dict()
    assert PosteriorMeta.from_dict(new) == PosteriorMeta.from_dict(old)


class _ScheduleLaw(Kaplan):
    """A law with a per-point covariate that is not (N, B, S): the Kaplan curve shifted by
    ``gain * log(lr)``, with ``lr`` read from the run table."""

    name = "kaplan_lr"
    covariates = ("lr",)

    def __init__(self):
        super().__init__()
        self.name, self.title = "kaplan_lr", "Kaplan law with a learning-rate term"

    def prepare(self, runs, *, group_by, min_step_fraction, min_step, max_points=None):
        data = super().prepare(runs, group_by=group_by, min_step_fraction=min_step_fraction, min_step=min_step,
                               max_points=max_points)
        table = runs.sort_values(["run", "step"])
        lr = np.interp(np.exp(data.log_S), table["step"], table["lr"]).astype(np.float32)
        return dataclasses.replace(data, covariates={"lr": lr})

    def mean_log_loss(self, c, x: Covariates):
        return super().mean_log_loss(c, x) + 0.01 * jnp.log(x["lr"])


def test_a_law_with_its_own_covariate_plugs_into_the_skeleton(small_runs):
    law = _ScheduleLaw()
    runs = small_runs.assign(lr=3e-4)
    data = law.prepare(runs, group_by=None, min_step_fraction=0.1, min_step=0.0)
    assert data.covariates["lr"].shape == (data.n_points,)
    prior = Predictive(curve_model, num_samples=3)(jax.random.PRNGKey(0), data, law, KaplanPriors())
    assert prior["log_loss"].shape == (3, data.n_points) and np.all(np.isfinite(prior["log_loss"]))
    coords, site_dims = dims(data, law)
    assert site_dims["N_c"] == ["group"] and "run" in coords
    plain = prepare_curves(runs, group_by=None)
    assert plain.covariates == {}


def test_cli_fit_passes_every_option_to_every_law(small_runs, tmp_path, monkeypatch):
    """``bayescale fit --model chinchilla`` selects the same points as ``compare`` does:
    the point-selection, law-error and chain options reach the fit for every law."""
    seen = {}

    class Stop(Exception):
        pass

    def fake_fit(runs, **options):
        seen.update(options)
        raise Stop

    monkeypatch.setattr(importlib.import_module("bayescale.fit"), "fit", fake_fit)
    small_runs.to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(Stop):
        main(["fit", "--runs", str(tmp_path / "runs.csv"), "--model", "chinchilla", "--min-step-fraction", "0.3",
              "--min-step", "5", "--max-points", "12", "--extrapolation-error", "0.02", "--chain-method", "vectorized",
              "--out", str(tmp_path / "p.nc"), "--quiet"])
    assert seen["law"] == "chinchilla" and seen["min_step_fraction"] == 0.3 and seen["min_step"] == 5.0
    assert seen["max_points"] == 12
    assert seen["extrapolation_error"] == 0.02 and seen["chain_method"] == "vectorized"
    assert main(["fit", "--runs", str(tmp_path / "runs.csv"), "--model", "chinchilla", "--irreducible",
                 "--out", str(tmp_path / "p.nc"), "--quiet"]) == 2
