"""Statistical checks over several synthetic datasets: do the constants' intervals and the
new-run bands cover the truth at their nominal rate? One dataset's parameter error moves
all its held-out points together, so these rates are averaged over datasets. Both checks
read the same three fits (seeds 1-3), kept in this one module so that a parallel test run
(``pytest -n``, ``--dist loadfile``) fits them once."""

import numpy as np
import pytest

from bayescale import fit
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs

from .conftest import BATCHES, SIZES, assert_sampler_sane
from .test_fit import _inside
from .test_predict import _held_out_coverage

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fits_over_seeds():
    """Fits of three more synthetic sweeps like the shared ``small_runs`` (seeds 1-3):
    ``[(seed, FitResult), ...]``."""
    fits = []
    for seed in (1, 2, 3):
        runs = simulate_runs(EXAMPLE_CONSTANTS, sizes=SIZES, batches=BATCHES, final_step=3000, points=30, seed=seed)
        fits.append((seed, fit(runs, chains=2, warmup=500, draws=700, seed=seed, progress=False, warn=False)))
    return fits


def test_interval_coverage_rate_over_seeds(fits_over_seeds):
    """Across seeds, the fraction of constants inside their 90% intervals is near 0.9."""
    hits = []
    for _, result in fits_over_seeds:
        assert_sampler_sane(result.diagnostics)
        hits += list(_inside(result.posterior, 0.9).values())
    # 18 Bernoulli(0.9) trials: P(fewer than 13 hits) is about 3%
    assert sum(hits) >= 13, f"{sum(hits)} of {len(hits)} constants inside their 90% intervals"


def test_new_run_bands_are_calibrated_over_datasets(fits_over_seeds):
    """Synthetic runs follow the law exactly, so the law-error term is switched off: the
    parameter, seed and noise parts alone must be neither over- nor under-confident at
    4x, averaged over datasets. Measured on the fits of seeds 1-3 (360 points each): 90%
    bands 0.864, 0.981, 0.994 (mean 0.946); 50% bands 0.425, 0.653, 0.697 (mean 0.592)."""
    at90, at50 = [], []
    for seed, result in fits_over_seeds:
        coverage = _held_out_coverage(result.posterior.with_law_error(0.0), seed=100 + seed, levels=(0.9, 0.5))[0]
        at90.append(coverage[0.9])
        at50.append(coverage[0.5])
    assert 0.80 <= np.mean(at90) <= 0.98, at90
    assert 0.35 <= np.mean(at50) <= 0.70, at50
