"""Start-up and chains: the import and the help load no heavy library, and fits run their
chains in parallel without any set-up by the user (each check in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import bayescale
from bayescale import cores

#: Libraries that take seconds to import and must wait until a command or function needs them.
HEAVY = ("jax", "numpyro", "arviz", "matplotlib", "scipy")


def _python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter with no XLA flags (the test session sets some) and
    JAX on the CPU; return its stdout."""
    environ = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    environ.update(JAX_PLATFORMS="cpu", **env)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _heavy_after(code: str) -> list[str]:
    out = _python(f"import sys\n{code}\nprint('\\n' + ' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    return out.splitlines()[-1].split()


def test_import_loads_no_heavy_library():
    assert _heavy_after("import bayescale\nassert bayescale.__version__") == []


def test_help_of_every_command_loads_no_heavy_library():
    code = ("from bayescale.cli import COMMANDS, main\n"
            "for argv in (['--help'], *([name, '--help'] for name in (*COMMANDS, 'train', 'sweep'))):\n"
            "    try:\n        main(argv)\n    except SystemExit as e:\n        assert e.code == 0, argv\n")
    assert _heavy_after(code) == []


def test_public_names_load_on_first_use():
    assert set(bayescale.__all__) <= set(dir(bayescale))
    for name in bayescale.__all__:
        assert getattr(bayescale, name).__name__ == name
    assert bayescale.use_cpu_cores is cores.use_cpu_cores
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        bayescale.no_such_name  # noqa: B018


def test_fit_and_calibrate_stay_functions_when_their_submodules_load_first():
    """``bayescale.fit`` is the function even where ``bayescale/fit.py`` was imported
    through another module before the name was first used."""
    out = _python("import bayescale, bayescale.models.chinchilla, bayescale.report\n"
                  "print(bayescale.fit.__module__, bayescale.calibrate.__module__, callable(bayescale.fit))")
    assert out.split() == ["bayescale.fit", "bayescale.calibrate", "True"]


def test_expose_cpu_cores_keeps_the_users_count_unless_the_chains_need_more(monkeypatch):
    monkeypatch.setattr(cores, "backends_are_initialized", lambda: False)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert cores.expose_cpu_cores(2)
    assert cores.requested_devices() == cores.default_devices()
    assert "--xla_cpu_collective_timeout_seconds=86400" in os.environ["XLA_FLAGS"]
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_dump_to=/tmp/x")
    assert cores.expose_cpu_cores(2) and cores.requested_devices() == 8
    assert "--xla_dump_to=/tmp/x" in os.environ["XLA_FLAGS"]
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    assert cores.expose_cpu_cores(64) and cores.requested_devices() == 64
    monkeypatch.setattr(cores, "backends_are_initialized", lambda: True)
    monkeypatch.setenv("XLA_FLAGS", "")
    assert not cores.expose_cpu_cores(2) and os.environ["XLA_FLAGS"] == ""


def test_backends_are_initialized_without_importing_jax():
    out = _python("import sys\nfrom bayescale.cores import backends_are_initialized as started\n"
                  "a = started(); j = 'jax' in sys.modules\nimport jax\nb = started()\n"
                  "jax.numpy.zeros(1).block_until_ready()\nprint(a, j, b, started())")
    assert out.split() == ["False", "False", "False", "True"]


_FIT = ("import json, warnings\nimport bayescale\n"
        "runs = bayescale.load_runs({csv!r})\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    result = bayescale.fit(runs, chains=2, warmup=10, draws=10, progress=False, warn=False)\n"
        "    from bayescale.fit import _chain_method\n"
        "    again = _chain_method('parallel', 2)\n"
        "import jax\n"
        "print(json.dumps({{'method': result.posterior.meta.settings['chain_method'], 'again': again, "
        "'devices': jax.local_device_count(), 'warnings': [str(w.message) for w in caught "
        "if w.category.__name__ == 'VectorizedChainsWarning']}}))")


@pytest.fixture(scope="module")
def tiny_runs_csv(small_runs, tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "tiny.csv"
    small_runs[small_runs["params"].isin([1.5e4, 2.5e5])].to_csv(path, index=False)
    return str(path)


def test_fit_runs_parallel_chains_with_no_set_up(tiny_runs_csv):
    """A plain ``import bayescale; bayescale.fit(...)`` exposes the CPU cores itself."""
    out = json.loads(_python(_FIT.format(csv=tiny_runs_csv)).splitlines()[-1])
    assert out == {"method": "parallel", "again": "parallel", "devices": cores.default_devices(), "warnings": []}


def test_fit_after_jax_started_runs_vectorized_and_warns_once(tiny_runs_csv):
    code = "import jax\njax.numpy.zeros(1).block_until_ready()\n" + _FIT.format(csv=tiny_runs_csv)
    out = json.loads(_python(code).splitlines()[-1])
    assert out["method"] == out["again"] == "vectorized" and out["devices"] == 1
    assert len(out["warnings"]) == 1 and "bayescale.use_cpu_cores() before any JAX computation" in out["warnings"][0]


def test_simulated_runs_leave_the_cores_exposed():
    out = _python("from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs\n"
                  "simulate_runs(EXAMPLE_CONSTANTS, sizes=(1e4,), batches=(256.0,), points=5)\n"
                  "import jax\nprint(jax.local_device_count())")
    assert int(out) == cores.default_devices()


def test_release_compiled_code_gives_back_the_mappings_of_compiled_code():
    """XLA:CPU maps the machine code of each executable on its own and JAX's caches keep
    them; clearing the caches unmaps them, so a long process stays below vm.max_map_count."""
    import jax
    import jax.numpy as jnp

    if cores.memory_maps() is None:
        pytest.skip("the system does not report memory mappings")
    start = cores.memory_maps()[0]
    kept = [jax.jit(lambda x, k=k: x * k + 1.0) for k in range(150)]  # fresh closures, as every fit makes
    for f in kept:
        f(jnp.ones(3)).block_until_ready()
    grown = cores.memory_maps()[0]
    assert grown - start >= 300  # a few mappings per executable, none given back
    assert not cores.release_compiled_code(share=1.0)
    assert cores.release_compiled_code(share=0.0)
    assert cores.memory_maps()[0] < start + (grown - start) / 4
