"""The staged point estimate recovers known constants from nearly noiseless curves."""

import numpy as np
import pytest

from bayescale.baselines.classic import classic_fit
from bayescale.synthetic import EXAMPLE_CONSTANTS, simulate_runs


def test_classic_recovers_constants_from_clean_curves():
    runs = simulate_runs(EXAMPLE_CONSTANTS, sizes=[1.5e4, 4e4, 1e5, 2.5e5], batches=[128, 512, 2048, 8192, 32768],
                         final_step=5000, points=80, noise=1e-4, run_sd=0.0, seed=0)
    est = classic_fit(runs).as_dict()
    c = EXAMPLE_CONSTANTS
    truth = {"alpha_N": c.alpha_N, "alpha_S": c.alpha_S, "alpha_B": c.alpha_B,
             "N_c": np.exp(c.log_N_c), "S_c": np.exp(c.log_S_c), "B_star": np.exp(c.log_B_star)}
    for name in ("alpha_N", "alpha_B"):
        assert est[name] == pytest.approx(float(truth[name]), rel=0.1), name
    assert est["alpha_S"] == pytest.approx(float(truth["alpha_S"]), rel=0.2)


def test_classic_needs_a_batch_sweep(small_runs):
    one_batch = small_runs[small_runs["batch_tokens"] == 1024.0]
    with pytest.raises(ValueError, match="needs a batch sweep"):
        classic_fit(one_batch)
