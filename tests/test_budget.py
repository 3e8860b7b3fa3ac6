"""Risk-aware budgeting: cases with a known answer, limits, bad input and the command line.

The known-answer cases use posteriors built from chosen constant draws (no fitting):
a wide one, where the law's error of extrapolated batches makes the point-estimate
choice risky, and a nearly exact one, where risk-aware and point choices must agree.
"""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pytest
from scipy.stats import norm

from bayescale.models import KAPLAN
from bayescale.models.law import ExtrapolationWarning
from bayescale.models import kaplan as laws
from bayescale.budget import (MAX_FLOPS, SearchSpace, UnreachableTarget, candidates, compute_frontier,
                              final_loss_draws, frontier_budgets, least_compute, plan_budget)
from bayescale.cli import build_parser, main
from bayescale.commands.common import read_search_space, read_speed
from bayescale.hardware import time_text
from bayescale.posterior import Posterior
from bayescale.synthetic import EXAMPLE_CONSTANTS

REFERENCES = {"log_N_ref": float(np.log(5e4)), "log_S_ref": float(np.log(1e3)), "log_L_ref": float(np.log(2.0)),
              "log_B_mean": float(np.log(2048.0)), "log_L_min": float(np.log(1.5))}
#: Wide fitted sizes and steps, so that only batches below 1024 tokens extrapolate.
RANGES = {"params": [1e4, 1e8], "step": [100.0, 1e6], "batch_tokens": [1024.0, 4096.0]}
#: One batch inside the fitted range and one 4x below it (law-error distance log 4).
BATCHES = SearchSpace(batch_tokens=(256.0, 1024.0))
BUDGET = 1e14


def posterior_from_constants(c: laws.KaplanConstants, *, kappa: float, sigma: float = 1e-4,
                             chains: int = 2) -> Posterior:
    """A single-group Kaplan posterior whose draws are the given constants (inverting the re-centring)."""
    a_N, a_S, a_B = (np.asarray(v, float) for v in (c.alpha_N, c.alpha_S, c.alpha_B))
    latents = {"log_L_ref": a_N * (np.asarray(c.log_N_c) - REFERENCES["log_N_ref"]), "log_alpha_N": np.log(a_N),
               "log_A_ref": a_S * (np.asarray(c.log_S_c) - REFERENCES["log_S_ref"]), "log_alpha_S": np.log(a_S),
               "log_B_ref": np.asarray(c.log_B_star) - REFERENCES["log_L_ref"] / a_B, "log_inv_alpha_B": -np.log(a_B)}
    n = a_N.size
    post = {k: v.reshape(chains, -1, 1) for k, v in latents.items()}
    post.update(sigma=np.full((chains, n // chains), sigma), run_offset_scale=np.full((chains, n // chains), sigma))
    idata = az.from_dict(posterior=post, dims={k: ["group"] for k in latents}, coords={"group": ["all"]})
    meta = {"law": "kaplan", "groups": ["all"], "group_by": None, "references": REFERENCES,
            "ranges": RANGES, "extrapolation_error": kappa, "settings": {"priors": {"nu": 5.0}}}
    return Posterior(idata=idata, meta=meta)


def example_draws(sd: float, n: int = 400, seed: int = 0) -> laws.KaplanConstants:
    """Draws around :data:`EXAMPLE_CONSTANTS`: every constant jittered by ``sd`` on the log scale."""
    rng = np.random.default_rng(seed)
    e = EXAMPLE_CONSTANTS

    def jitter(value, log_scale: bool) -> np.ndarray:
        z = rng.normal(0.0, sd, n)
        return float(value) + z if log_scale else float(value) * np.exp(z)

    return laws.KaplanConstants(jitter(e.log_N_c, True), jitter(e.alpha_N, False), jitter(e.log_S_c, True),
                                jitter(e.alpha_S, False), jitter(e.log_B_star, True), jitter(e.alpha_B, False))


@pytest.fixture(scope="module")
def wide():
    """Parameter uncertainty of a few percent plus a law error of 0.1 per unit log-distance."""
    return posterior_from_constants(example_draws(0.02), kappa=0.1)


@pytest.fixture(scope="module")
def narrow():
    """Nearly exact constants, no law error."""
    return posterior_from_constants(example_draws(1e-5), kappa=0.0)


def test_candidates_spend_the_budget_within_the_limits(narrow):
    space = SearchSpace(batch_tokens=(256.0, 1024.0, 4096.0), attention_flops_per_token=1e5, max_steps=3e4,
                        max_tokens=2e7, min_steps=200.0)
    table = candidates(narrow, BUDGET, space)
    per_token = 6 * table["params"] + 1e5
    assert np.allclose(table["flops"], per_token * table["batch_tokens"] * table["steps"])
    assert (table["flops"] <= BUDGET * (1 + 1e-12)).all()
    assert (table["steps"] <= 3e4 + 1e-6).all() and (table["steps"] >= 200).all()
    assert (table["tokens"] <= 2e7 * (1 + 1e-12)).all()
    spent = table["limit"] == "budget"
    assert np.allclose(table.loc[spent, "flops"], BUDGET)
    assert set(table["limit"]) == {"budget", "max_steps", "max_tokens"}
    assert table["params"].min() == pytest.approx(RANGES["params"][0])


def test_a_wall_clock_limit_takes_the_same_compute_from_every_size(narrow):
    """At one FLOP rate a run's time is its compute: the limit caps every candidate at it."""
    cap = BUDGET / 10
    table = candidates(narrow, BUDGET, SearchSpace(batch_tokens=(256.0, 1024.0), max_run_flops=cap))
    assert np.allclose(table["flops"], cap) and set(table["limit"]) == {"max_hours"}
    assert table["params"].nunique() > 3


@pytest.mark.parametrize("limit, run_flops", [
    (["--tokens-per-second", "1e5", "--throughput-params", "1e6", "--attention-flops-per-token", "1e5"],
     1e5 * (6e6 + 1e5) * 7200),  # measured on a 1M model: its FLOP rate, for every size
    (["--gpus", "8", "--peak-flops", "1e15", "--mfu", "0.5"], 8 * 0.5e15 * 7200),
])
def test_max_hours_becomes_a_runs_compute_at_its_flop_rate(limit, run_flops):
    args = build_parser().parse_args(["budget", "--posterior", "p.nc", "--flops", "1e18", "--max-hours", "2", *limit])
    assert read_search_space(args).max_run_flops == pytest.approx(run_flops)
    assert time_text(run_flops, read_speed(args)).startswith("2 h ")  # the time is stated at the same rate


def test_candidates_carry_their_extrapolation_and_a_trainer_shape(narrow):
    table = candidates(narrow, BUDGET, BATCHES)
    inside = table["batch_tokens"] == 1024.0
    small = table.loc[~inside, "extrapolation"]  # 256 tokens: 4x below the fitted batches, or farther on steps
    assert (small >= 4.0 - 1e-9).all() and np.isclose(small, 4.0).any()
    assert (table.loc[inside, "extrapolation"] >= 1.0).all() and (table.loc[inside, "extrapolation"] == 1.0).any()
    assert np.allclose(table["shape_params"] / table["params"], 1.0, atol=0.035)
    for shape, heads in table[["shape", "heads"]].itertuples(index=False):
        width, _ = (int(v) for v in shape.split("x"))
        assert width % heads == 0


def test_plan_states_and_warns_its_extrapolation(wide):
    with pytest.warns(ExtrapolationWarning, match="risk-aware choice.*steps x"):
        plan = plan_budget(wide, 1e24, space=SearchSpace(batch_tokens=(1024.0,)))
    assert set(plan.extrapolation) == {"risk-aware", "point estimate"}
    far = plan.extrapolation["risk-aware"].factors
    assert max(far.values()) > 10 and far["batch"] == 1.0


def test_budget_too_small_for_any_candidate(narrow):
    with pytest.raises(ValueError, match="too small for any candidate.*needs"):
        candidates(narrow, 1e6, BATCHES)


def test_search_space_rejects_bad_limits():
    with pytest.raises(ValueError, match="min_params=.*exceeds max_params"):
        SearchSpace(min_params=1e6, max_params=1e5)
    with pytest.raises(ValueError, match="max_steps=50 is below min_steps"):
        SearchSpace(max_steps=50)
    with pytest.raises(ValueError, match="batch_tokens"):
        SearchSpace(batch_tokens=(0.0,))


def test_wide_posterior_risk_aware_choice_beats_point_estimate(wide):
    """The point estimate trains the extrapolated small batch (lowest median loss), but the
    law's error there makes it risky; the risk-aware choice stays at the fitted batch."""
    loose = plan_budget(wide, BUDGET, space=BATCHES)
    target = float(loose.choice["upper_90"])
    plan = plan_budget(wide, BUDGET, target_loss=target, space=BATCHES)
    risky, safe = plan.point_choice, plan.choice
    assert risky["batch_tokens"] == 256.0 and safe["batch_tokens"] == 1024.0
    assert risky["point_loss"] < safe["point_loss"]
    # recomputed from fresh draws of the two rows: the same law errors, other evaluation noise
    draws = final_loss_draws(wide, plan.table.loc[[safe.name, risky.name]])
    p_safe, p_risky = np.mean(draws <= target, axis=0)
    assert (p_safe, p_risky) == pytest.approx((safe["p_target"], risky["p_target"]), abs=0.01)
    assert p_safe > p_risky + 0.2
    assert loose.choice["loss_q"] < loose.point_choice["loss_q"]


def test_point_choice_probability_matches_the_law_error():
    """Exact constants with a law error: P(reach) of the extrapolated choice is a normal CDF."""
    kappa = 0.1
    posterior = posterior_from_constants(example_draws(1e-5, n=2000), kappa=kappa)
    plan = plan_budget(posterior, BUDGET, space=BATCHES)
    point = plan.point_choice
    assert point["batch_tokens"] == 256.0
    target = point["point_loss"] * 1.05
    plan = plan_budget(posterior, BUDGET, target_loss=target, space=BATCHES)
    expected = norm.cdf(np.log(1.05) / (kappa * np.log(1024 / 256)))
    se = np.sqrt(expected * (1 - expected) / posterior.n_draws)
    assert plan.point_choice["p_target"] == pytest.approx(expected, abs=4 * se)
    assert plan.choice["batch_tokens"] == 1024.0 and plan.choice["p_target"] == 1.0


@pytest.mark.parametrize("target", [None, 1.2])
def test_narrow_posterior_risk_aware_and_point_choices_agree(narrow, target):
    plan = plan_budget(narrow, BUDGET, target_loss=target, space=SearchSpace(batch_tokens=(256.0, 1024.0, 4096.0)))
    assert plan.choice.name == plan.point_choice.name
    assert plan.choice["loss_q"] == pytest.approx(plan.choice["point_loss"], rel=1e-3)


def test_target_below_reachable_loss(narrow):
    with pytest.raises(UnreachableTarget, match="out of reach with 1e\\+14 FLOPs"):
        plan_budget(narrow, BUDGET, target_loss=0.5, space=BATCHES)
    with pytest.raises(UnreachableTarget, match="may lie below the minimum reachable loss"):
        least_compute(narrow, 0.5, 0.9, space=SearchSpace(batch_tokens=(1024.0,), max_params=1e6), max_flops=1e17)
    capped = SearchSpace(batch_tokens=(1024.0,), max_run_flops=1e12)  # the budget is not what binds
    with pytest.raises(UnreachableTarget, match="out of reach with 1e\\+14 FLOPs \\(of which the wall-clock limit "
                                                "lets a run spend only 1e\\+12\\)"):
        plan_budget(narrow, BUDGET, target_loss=1.2, space=capped)


def test_least_compute_matches_the_law(narrow):
    """With exact constants, the least compute reaching L is min over the lattice of 6 N B S(L; B)."""
    space = SearchSpace(batch_tokens=(512.0, 2048.0), params_per_decade=4)
    target = 1.3
    found = least_compute(narrow, target, 0.9, space=space)
    N = space.params_grid(RANGES, 1e20)
    N, B = (a.ravel() for a in np.meshgrid(N, np.array([512.0, 2048.0]), indexing="ij"))
    steps = KAPLAN.steps_to_loss(EXAMPLE_CONSTANTS, N, B, target)["steps"]
    cost = np.where(steps >= space.min_steps, 6 * N * B * steps, np.inf)
    best = int(np.argmin(cost))
    assert found["budget"] == pytest.approx(cost[best], rel=0.01)
    assert (found["params"], found["batch_tokens"]) == (N[best], B[best])
    assert found["p_target"] >= 0.9


def test_frontier_falls_with_compute_and_bands_nest(narrow, wide):
    budgets = np.geomspace(1e8, 1e15, 8)
    frontier = compute_frontier(wide, budgets, space=BATCHES)
    assert frontier["budget"].min() > 1e8  # budgets that fit no candidate are left out
    assert np.all(np.diff(frontier["median"]) < 0)
    for lower, upper in (("lower_90", "lower_50"), ("lower_50", "median"), ("median", "upper_50"),
                         ("upper_50", "upper_90")):
        assert (frontier[lower] <= frontier[upper]).all()
    with pytest.raises(ValueError, match="too small"):
        compute_frontier(narrow, [1e5, 1e6], space=BATCHES)


@pytest.fixture(scope="module")
def posterior_file(small_posterior, tmp_path_factory):
    return str(small_posterior.save(tmp_path_factory.mktemp("budget") / "p.nc"))


def test_budget_command_end_to_end(posterior_file, tmp_path, capsys):
    out = tmp_path / "budget"
    code = main(["budget", "--posterior", posterior_file, "--flops", "1e12", "--target-loss", "1.95",
                 "--max-flops", "1e14", "--out", str(out), "--quiet", "--gpus", "2", "--mfu", "0.5"])
    printed, said = capsys.readouterr()
    assert "time of the risk-aware choice: " in printed and "on 2 GPUs at 494.5 TFLOP/s each" in printed
    assert code == 0
    assert "risk-aware" in printed and "point estimate" in printed and "least compute reaching 1.95" in printed
    assert "risk-aware choice: " in said and "point estimate choice: " in said
    far = "risk-aware choice: extrapolates beyond the fitted data" in said
    assert far == ("of the predictive variance of the risk-aware choice's final loss is the law's own error" in said)
    assert {p.name for p in out.iterdir()} == {"candidates.csv", "frontier.csv", "frontier.png"}
    code = main(["budget", "--posterior", posterior_file, "--flops", "1e12", "--risk", "0.8", "--json", "--quiet",
                 "--batch-tokens", "2**9", "--max-steps", "5000", "--attention-flops-per-token", "6*4*64*32"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["choices"][0]["batch_tokens"] == 512 and result["choices"][0]["steps"] <= 5000
    assert result["criterion"] == "lowest 80% quantile of the final loss"
    assert set(result["extrapolation"]["risk-aware"]["factors"]) == {"size", "steps", "batch"}
    beyond = max(result["extrapolation"]["risk-aware"]["factors"].values()) > 1.0
    assert (0.0 < result["law_error_share"] < 1.0) if beyond else result["law_error_share"] == 0.0
    assert "shape" in result["choices"][0] and "(assumed: state yours" in result["time"]


@pytest.mark.parametrize("argv, message", [
    (["--flops", "1e6"], "too small for any candidate"),
    (["--flops", "1e12", "--target-loss", "0.01"], "out of reach"),
    (["--flops", "1e12", "--tokens-per-second", "1e5"], "go together"),
    (["--flops", "1e12", "--tokens-per-second", "1e5", "--max-hours", "2"], "go together"),  # measured on what size?
    (["--flops", "1e12", "--max-hours", "2"], "--max-hours needs a FLOP rate"),
])
def test_budget_command_bad_input(posterior_file, capsys, argv, message):
    assert main(["budget", "--posterior", posterior_file, "--quiet", *argv]) == 2
    assert message in capsys.readouterr().err


def test_the_frontier_spans_two_decades_each_way_up_to_the_largest_budget():
    """Four decades around a budget, nine points, but never past MAX_FLOPS (the report's frontier
    went past it for budgets above 1e33)."""
    assert np.allclose(frontier_budgets(1e18), np.geomspace(1e16, 1e20, 9))
    near = frontier_budgets(1e34)
    assert near[0] == pytest.approx(1e32) and near[-1] == MAX_FLOPS and np.all(np.diff(near) > 0)
