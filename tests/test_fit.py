"""Recovery of known constants, diagnostics and posterior files (the coverage rate over
seeds: test_coverage_over_datasets.py)."""

import json
import subprocess
import sys

import arviz as az
import numpy as np
import pytest

from bayescale import Posterior, PosteriorFileError, fit
from bayescale.posterior import META_ATTR, loss_units
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs

from .conftest import BATCHES, assert_sampler_sane

TRUTH = {"N_c": np.exp(EXAMPLE_CONSTANTS.log_N_c), "alpha_N": EXAMPLE_CONSTANTS.alpha_N,
         "S_c": np.exp(EXAMPLE_CONSTANTS.log_S_c), "alpha_S": EXAMPLE_CONSTANTS.alpha_S,
         "B_star": np.exp(EXAMPLE_CONSTANTS.log_B_star), "alpha_B": EXAMPLE_CONSTANTS.alpha_B}


def _inside(posterior, level):
    summary = posterior.summary(level).set_index("constant")
    return {name: bool(summary.loc[name, "lower"] <= float(TRUTH[name]) <= summary.loc[name, "upper"])
            for name in TRUTH}


def test_recovers_known_constants(small_fit):
    """One seed: each constant inside its 99% interval (all six inside their 90% intervals
    holds for a perfect model only about 53% of the time), from chains that agree."""
    assert_sampler_sane(small_fit.diagnostics)
    inside = _inside(small_fit.posterior, 0.99)
    assert all(inside.values()), inside


def test_irreducible_variant_recovers_a_loss_floor():
    """Curves with a floor L_inf = 0.8 over two decades of N: the 99% intervals of the
    irreducible fit hold L_inf and the six constants. The floor trades off against N_c
    and alpha_N, so NUTS mixes slowly along that ridge (bulk ESS about 550 at 2 x 2,000
    draws), which the sanity bounds allow for."""
    truth = EXAMPLE_CONSTANTS._replace(L_inf=0.8)
    runs = simulate_runs(truth, sizes=np.geomspace(1e4, 1e6, 5), batches=BATCHES, final_step=3000, points=30, seed=5)
    result = fit(runs, law="kaplan_irreducible", chains=2, warmup=1000, draws=2000, seed=5, progress=False, warn=False)
    assert_sampler_sane(result.diagnostics)
    summary = result.posterior.summary(0.99).set_index("constant")
    for name, value in {**TRUTH, "L_inf": 0.8}.items():
        assert summary.loc[name, "lower"] <= float(value) <= summary.loc[name, "upper"], (name, summary.loc[name])


def test_inference_data_groups_and_round_trip(small_posterior, tmp_path):
    groups = set(small_posterior.idata.groups())
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data", "prior", "constant_data"} <= groups
    assert small_posterior.idata.posterior["N_c"].dims == ("chain", "draw", "group")
    path = small_posterior.save(tmp_path / "p.nc")
    loaded = Posterior.load(path)
    assert loaded.meta == small_posterior.meta
    np.testing.assert_allclose(loaded.draws("alpha_S"), small_posterior.draws("alpha_S"))


def test_a_subset_of_draws_is_one_chain_of_those_draws(small_posterior):
    index = np.array([7, 0, small_posterior.n_draws - 1, 7])
    subset = small_posterior.with_draws(index)
    assert subset.n_draws == 4 and subset.idata.posterior.sizes["chain"] == 1
    for name in ("alpha_N", "sigma", "log_L_ref"):
        assert np.array_equal(subset.draws(name), small_posterior.draws(name)[index])
    assert np.array_equal(np.asarray(subset.constants().alpha_S), np.asarray(small_posterior.constants().alpha_S)[index])
    assert subset.meta is small_posterior.meta and "constant_data" in subset.idata.groups()


def test_the_vocabulary_travels_with_the_posterior_and_older_files_load_without_it(small_runs, tmp_path):
    """A byte-level table gives losses in nats/byte; a file written before the vocabulary
    was recorded loads with none, in nats/token."""
    result = fit(small_runs.assign(vocab_size=256), chains=1, warmup=20, draws=20, progress=False, warn=False)
    path = result.posterior.save(tmp_path / "p.nc")
    loaded = Posterior.load(path)
    assert loaded.meta.vocab_size == 256 and loss_units(loaded.meta) == "nats/byte"
    record = json.loads(loaded.idata.posterior.attrs[META_ATTR])
    del record["vocab_size"]
    loaded.idata.posterior.attrs[META_ATTR] = json.dumps(record)
    loaded.idata.to_netcdf(str(tmp_path / "older.nc"), engine="h5netcdf")
    older = Posterior.load(tmp_path / "older.nc")
    assert older.meta.vocab_size is None and loss_units(older.meta) == "nats/token"


def test_loading_something_that_is_not_a_posterior(tmp_path):
    (tmp_path / "x.nc").write_text("not netcdf")
    with pytest.raises(PosteriorFileError, match="not a netCDF posterior"):
        Posterior.load(tmp_path / "x.nc")
    with pytest.raises(PosteriorFileError, match="no such posterior file"):
        Posterior.load(tmp_path / "missing.nc")
    az.from_dict(posterior={"x": np.zeros((1, 10))}).to_netcdf(str(tmp_path / "plain.nc"))
    with pytest.raises(PosteriorFileError, match="not a bayescale posterior"):
        Posterior.load(tmp_path / "plain.nc")


def test_fit_rejects_bad_settings(small_runs):
    with pytest.raises(ValueError, match="chains=0 must be at least 1"):
        fit(small_runs, chains=0)
    with pytest.raises(ValueError, match="group-by column 'nope'"):
        fit(small_runs, group_by="nope", chains=1, warmup=1, draws=1, progress=False)


def test_importing_bayescale_leaves_jax_unstarted():
    """use_cpu_cores only works before JAX starts, so no import may start it."""
    code = ("import bayescale, bayescale.cli, bayescale.demo, bayescale.predict\n"
            "from jax._src import xla_bridge\nassert not xla_bridge.backends_are_initialized()\n"
            "bayescale.use_cpu_cores(3)\nimport jax\nassert jax.local_device_count() == 3\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_parallel_chains_survive_a_saturated_cpu(small_runs, small_fit):
    """Two busy processes hold both cores while two parallel chains run: slow, not dead. The
    fit repeats ``small_fit``'s, whose programs the session's compilation cache holds, so the
    time goes to running the chains."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        result = fit(small_runs, chains=2, warmup=300, draws=700, seed=0, chain_method="parallel", progress=False,
                     warn=False)
    finally:
        for p in burners:
            p.kill()
            p.wait()
    assert result.posterior.meta.settings["chain_method"] == "parallel"
    np.testing.assert_array_equal(result.posterior.draws("alpha_N"), small_fit.posterior.draws("alpha_N"))


def test_a_fit_near_the_memory_map_limit_first_clears_the_compiled_code(small_runs, monkeypatch):
    """Every compiled executable holds memory mappings and JAX's caches keep them all; a
    process that keeps fitting would reach vm.max_map_count and crash inside XLA's compiler,
    so a fit in a process past half its mappings clears the caches before it compiles."""
    import importlib

    import jax

    from bayescale import cores

    fit_module = importlib.import_module("bayescale.fit")
    cleared = []

    class Compiling(Exception):
        pass

    def starting_points(*args, **kwargs):
        raise Compiling  # the fit's first compilation: far enough

    monkeypatch.setattr(jax, "clear_caches", lambda: cleared.append(True))
    monkeypatch.setattr(fit_module, "starting_points", starting_points)
    monkeypatch.setattr(cores, "memory_maps", lambda: (30_000, 65_530))
    with pytest.raises(Compiling):
        fit(small_runs, chains=1, warmup=10, draws=10, progress=False, warn=False)
    assert cleared == []
    monkeypatch.setattr(cores, "memory_maps", lambda: (40_000, 65_530))
    with pytest.raises(Compiling):
        fit(small_runs, chains=1, warmup=10, draws=10, progress=False, warn=False)
    assert cleared == [True]
