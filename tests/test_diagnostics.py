"""The convergence gate's logic, on constructed diagnostics tables (no sampling).

Whether a real fit passes depends on the MCMC path, which changes with library
versions and CPUs; the gate's decisions do not, so they are tested here on tables
built by hand, one threshold at a time.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from bayescale.commands.common import EXIT_GATE_FAILED, gate_exit_code
from bayescale.diagnostics import ESS_MIN, RHAT_MAX, ConvergenceWarning, Diagnostics, check, diagnose

CONSTANTS = ["N_c[a]", "alpha_N[a]", "S_c[a]"]


def _diagnostics(r_hat=1.001, ess_bulk=800.0, ess_tail=900.0, divergences=0, worst="alpha_N[a]") -> Diagnostics:
    """A clean table with one constant (``worst``) set to the given values."""
    table = pd.DataFrame({"r_hat": 1.001, "ess_bulk": 1000.0, "ess_tail": 1000.0}, index=CONSTANTS)
    table.loc[worst] = [r_hat, ess_bulk, ess_tail]
    return Diagnostics(table=table, divergences=divergences, n_draws=2000)


def test_a_clean_table_passes_without_a_warning():
    d = _diagnostics()
    assert d.passed and d.problems() == []
    assert d.format().splitlines()[0].endswith("PASS")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check(d) is True


@pytest.mark.parametrize("values,needle", [
    ({"r_hat": RHAT_MAX + 0.001}, "R-hat 1.011 > 1.01 (alpha_N[a])"),
    ({"ess_bulk": ESS_MIN - 1.0}, "bulk ESS 399 < 400 (alpha_N[a])"),
    ({"ess_tail": ESS_MIN - 1.0}, "tail ESS 399 < 400 (alpha_N[a])"),
    ({"divergences": 1}, "1 divergent transitions"),
])
def test_each_threshold_fails_on_its_own_and_names_the_fix(values, needle):
    d = _diagnostics(**values)
    assert not d.passed
    assert len(d.problems()) == 1 and needle in d.problems()[0]
    assert "--" in d.problems()[0]  # every problem names a flag to change
    assert d.format().splitlines()[0].endswith("FAIL")
    with pytest.warns(ConvergenceWarning, match="did not pass its convergence checks"):
        assert check(d) is False


def test_thresholds_are_inclusive():
    assert _diagnostics(r_hat=RHAT_MAX, ess_bulk=ESS_MIN, ess_tail=ESS_MIN).passed


def test_several_failures_are_all_reported():
    d = _diagnostics(r_hat=1.2, ess_bulk=50.0, ess_tail=40.0, divergences=3)
    assert len(d.problems()) == 4
    assert d.max_rhat == 1.2 and d.min_ess_bulk == 50.0 and d.min_ess_tail == 40.0


def test_strict_exit_code_follows_the_gate():
    assert gate_exit_code(_diagnostics(), strict=True) == 0
    assert gate_exit_code(_diagnostics(divergences=2), strict=False) == 0
    assert gate_exit_code(_diagnostics(divergences=2), strict=True) == EXIT_GATE_FAILED == 3


def test_diagnose_reads_draws_and_divergences_from_inference_data():
    """Independent draws pass; two chains stuck at different values fail on R-hat; the
    divergences are counted from ``sample_stats``."""
    import arviz as az

    rng = np.random.default_rng(0)
    good = rng.normal(size=(2, 1000))
    stuck = np.stack([rng.normal(0.0, 0.1, 1000), rng.normal(3.0, 0.1, 1000)])
    diverging = np.zeros((2, 1000), bool)
    diverging[0, :5] = True
    idata = az.from_dict(posterior={"good": good, "stuck": stuck}, sample_stats={"diverging": diverging})
    assert diagnose(idata, ["good"]).table.loc["good", "r_hat"] < 1.01
    d = diagnose(idata, ["good", "stuck"])
    assert d.divergences == 5 and d.n_draws == 2000
    assert d.table.loc["stuck", "r_hat"] > 1.5 and not d.passed


def test_a_single_chain_fails_and_says_to_run_more_chains():
    """Split R-hat needs two chains; with one it is undefined (NaN) and the gate says why."""
    d = _diagnostics(r_hat=float("nan"))
    assert not d.passed
    assert d.problems() == ["R-hat is undefined with a single chain: run two or more chains (--chains 2)"]
