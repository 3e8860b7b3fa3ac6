"""The command line: every entry point with tiny budgets, machine-readable output, errors."""

import json

import numpy as np
import pandas as pd
import pytest

from bayescale.cli import COMMANDS, build_parser, main
from bayescale.defaults import PUBLIC_EXTRAPOLATION_ERROR
from bayescale.diagnostics import ConvergenceWarning
from bayescale.law_error import law_error_record
from bayescale.posterior import Posterior


def test_every_command_has_help_with_examples(capsys):
    names = [*COMMANDS, "train", "sweep"]
    for name in names:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "example" in capsys.readouterr().out.lower(), name
    assert set(names) <= set(build_parser()._subparsers._group_actions[0].choices)


@pytest.fixture(scope="module")
def posterior_file(small_posterior, tmp_path_factory):
    return small_posterior.save(tmp_path_factory.mktemp("post") / "p.nc")


def test_fit_writes_a_posterior_and_prints_json(small_runs, tmp_path, capsys):
    """Also with the law error taken from the public ladders, recorded with the posterior."""
    small_runs.to_csv(tmp_path / "runs.csv", index=False)
    with pytest.warns(ConvergenceWarning, match="did not pass its convergence checks"):
        code = main(["fit", "--runs", str(tmp_path / "runs.csv"), "--chains", "1", "--warmup", "20", "--draws", "20",
                     "--law-error", "public", "--out", str(tmp_path / "p.nc"), "--json", "--quiet"])
    assert code == 0 and (tmp_path / "p.nc").exists()
    out = json.loads(capsys.readouterr().out)
    assert {row["constant"] for row in out["summary"]} == {"N_c", "alpha_N", "S_c", "alpha_S", "B_star", "alpha_B"}
    assert out["dropped"]["early_transient"] > 0
    assert out["law_error"] == {"source": "public", "kappa": PUBLIC_EXTRAPOLATION_ERROR, "length": 1.0}
    meta = Posterior.load(tmp_path / "p.nc").meta
    assert meta.extrapolation_error == PUBLIC_EXTRAPOLATION_ERROR
    assert law_error_record(meta) == out["law_error"]


def test_fit_law_error_ladder_on_too_few_sizes_is_one_line(small_runs, tmp_path, capsys):
    small_runs.to_csv(tmp_path / "runs.csv", index=False)
    assert main(["fit", "--runs", str(tmp_path / "runs.csv"), "--law-error", "ladder", "--out",
                 str(tmp_path / "p.nc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs 3 sizes below the top 33%" in err[0], err
    assert not (tmp_path / "p.nc").exists()


def test_predict_trajectory_csv(posterior_file, tmp_path, capsys):
    out = tmp_path / "traj.csv"
    assert main(["predict", "--posterior", str(posterior_file), "--params", "1e6", "--batch-tokens", "2**10",
                 "--steps", "5000", "--points", "12", "--out", str(out)]) == 0
    # 4x beyond the fitted sizes: the note says how much of the band the law's own error is
    assert "of the predictive variance of this forecast at step 5000 is the law's own error" in capsys.readouterr().err
    df = pd.read_csv(out)
    assert list(df.columns) == ["step", "median", "lower", "upper"]
    assert len(df) == 12 and df["step"].iloc[-1] == 5000
    assert np.all((df["lower"] <= df["median"]) & (df["median"] <= df["upper"]))
    assert main(["predict", "--posterior", str(posterior_file), "--params", "1e6", "--batch-tokens", "1024",
                 "--steps", "5000", "--points", "12", "--level", "0.5", "--level", "0.9", "--out", str(out)]) == 0
    assert list(pd.read_csv(out).columns) == ["step", "median", "lower", "upper", "level"]


def test_predict_until_loss_json(posterior_file, capsys):
    assert main(["predict", "--posterior", str(posterior_file), "--params", "1e6", "--batch-tokens", "1024",
                 "--until-loss", "1.2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    quantities = {row["quantity"] for row in out["bands"]}
    assert quantities == {"steps", "tokens", "min_steps", "min_tokens", "critical_batch"}
    assert "size x4" in out["extrapolation"]


def _bad_table(tmp_path, column, value):
    df = pd.DataFrame({"run": ["a"] * 3, "params": 1e5, "batch_tokens": 1024.0,
                       "step": [100.0, 200.0, 300.0], "loss": [2.0, 1.9, 1.8]})
    df.loc[1, column] = value
    df.to_csv(tmp_path / "bad.csv", index=False)
    return tmp_path / "bad.csv"


@pytest.mark.parametrize("column,value,pattern", [
    ("loss", np.inf, "row 2: loss=inf is not finite"),
    ("step", -200.0, "row 2: step=-200 must be > 0"),
])
def test_bad_run_tables_exit_non_zero_with_one_line(tmp_path, capsys, column, value, pattern):
    code = main(["fit", "--runs", str(_bad_table(tmp_path, column, value)), "--out", str(tmp_path / "p.nc")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("bayescale: error: ") and pattern in err[0]


def test_a_file_that_is_not_a_posterior(tmp_path, capsys):
    (tmp_path / "p.nc").write_bytes(b"\x00garbage")
    code = main(["predict", "--posterior", str(tmp_path / "p.nc"), "--params", "1e6", "--batch-tokens", "1024",
                 "--steps", "100"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a netCDF posterior" in err[0]


def test_bad_numbers_are_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--posterior", "p.nc", "--params", "-3", "--batch-tokens", "1024", "--steps", "100"])
    assert exit_info.value.code == 2
    assert "expected a positive number" in capsys.readouterr().err


def test_predict_never_prints_what_the_law_cannot_reach(posterior_file, capsys):
    code = main(["predict", "--posterior", str(posterior_file), "--params", "1e6", "--batch-tokens", "1024",
                 "--until-loss", "0.05"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("bayescale: error: --until-loss 0.05 is out of reach for N=1e+06: no posterior draw gets "
                             "below its minimum reachable loss")
    assert err[0].endswith("raise --until-loss or --params")
    # the largest request allowed gives finite bands
    assert main(["predict", "--posterior", str(posterior_file), "--params", "1e15", "--batch-tokens", "1e15",
                 "--steps", "1e15", "--points", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all(np.isfinite(row[k]) for row in out["bands"] for k in ("median", "lower", "upper"))
    assert 0.0 < out["law_error_share"] <= 1.0


def test_commands_that_sample_share_the_sampler_options():
    """fit, compare and demo read the NUTS settings through one helper: each keeps its defaults,
    and the settings a command leaves out are not passed on (the library's defaults hold)."""
    from bayescale.commands.common import sampler_options
    from bayescale.defaults import DEMO_CHAINS, DEMO_WARMUP, SAMPLER_DEFAULTS

    parse = build_parser().parse_args
    fit_args = parse(["fit", "--runs", "r.csv", "--out", "p.nc"])
    compare_args = parse(["compare", "--runs", "r.csv", "--chain-method", "sequential", "--seed", "3"])
    assert sampler_options(fit_args) == SAMPLER_DEFAULTS and fit_args.seed == 0
    assert sampler_options(compare_args) == {**SAMPLER_DEFAULTS, "chain_method": "sequential"}
    assert compare_args.seed == 3 and not compare_args.quiet
    demo_args = parse(["demo"])
    assert sampler_options(demo_args) == {"chains": DEMO_CHAINS, "warmup": DEMO_WARMUP}  # draws: set per law
    assert not hasattr(demo_args, "target_accept") and demo_args.seed == 0
