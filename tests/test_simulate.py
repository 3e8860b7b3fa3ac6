"""`bayescale simulate`: a run table from chosen true constants, and a fit of it."""

import json

import pandas as pd
import pytest

from bayescale.cli import main
from bayescale.diagnostics import ConvergenceWarning
from bayescale.runs import load_runs


def test_simulate_kaplan_writes_table_and_truth(tmp_path):
    out = tmp_path / "sim.csv"
    assert main(["simulate", "--model", "kaplan", "--sizes", "1e4,3e4", "--batch-tokens", "512,2048", "--steps", "300",
                 "--points", "8", "--seeds", "2", "--noise", "0.003", "--run-sd", "0.002", "--seed", "0",
                 "--constants", "N_c=2e6,alpha_N=0.25", "--out", str(out)]) == 0
    runs = load_runs(out)
    assert runs["run"].nunique() == 2 * 2 * 2 and runs["step"].max() == 300
    truth = json.loads((tmp_path / "sim.csv.truth.json").read_text())
    assert truth["model"] == "kaplan" and truth["constants"]["N_c"] == 2e6 and truth["constants"]["alpha_N"] == 0.25
    assert truth["constants"]["S_c"] == 180.0  # the example constants fill in the rest
    assert truth["noise"] == 0.003 and truth["run_sd"] == 0.002 and truth["design"]["seeds"] == 2
    # same seed, same table
    assert main(["simulate", "--sizes", "1e4,3e4", "--batch-tokens", "512,2048", "--steps", "300", "--points", "8",
                 "--seeds", "2", "--constants", "N_c=2e6,alpha_N=0.25", "--out", str(tmp_path / "again.csv")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(tmp_path / "again.csv"))


def test_simulate_chinchilla_and_bad_options(tmp_path, capsys):
    out = tmp_path / "final.csv"
    assert main(["simulate", "--model", "chinchilla", "--sizes", "1e6,3e6", "--tokens-per-param", "5,20,80",
                 "--batch-tokens", "65536", "--out", str(out)]) == 0
    runs = load_runs(out)
    assert len(runs) == 6 and runs["batch_tokens"].eq(65536).all()
    assert json.loads((tmp_path / "final.csv.truth.json").read_text())["constants"]["E"] == pytest.approx(1.82)
    capsys.readouterr()
    for argv, message in (
        (["--model", "chinchilla", "--sizes", "1e6", "--tokens-per-param", "20", "--steps", "10"], "--steps"),
        (["--model", "chinchilla", "--sizes", "1e6"], "--tokens-per-param"),
        (["--sizes", "1e6"], "needs --batch-tokens"),
        (["--sizes", "1e6", "--batch-tokens", "512", "--constants", "E=2"], "E is not a constant of kaplan"),
    ):
        assert main(["simulate", *argv, "--out", str(tmp_path / "x.csv")]) == 2
        assert message in capsys.readouterr().err


def test_fit_runs_on_a_simulated_table(tmp_path, capsys):
    sim = tmp_path / "sim.csv"
    assert main(["simulate", "--sizes", "1e4,3e4,1e5", "--batch-tokens", "512,2048", "--steps", "400", "--points", "10",
                 "--out", str(sim)]) == 0
    with pytest.warns(ConvergenceWarning):
        code = main(["fit", "--runs", str(sim), "--chains", "1", "--warmup", "20", "--draws", "20", "--quiet",
                     "--max-params", "1e5", "--out", str(tmp_path / "p.nc"), "--json"])
    assert code == 0 and (tmp_path / "p.nc").exists()
    out = json.loads(capsys.readouterr().out)
    assert {row["constant"] for row in out["summary"]} >= {"N_c", "alpha_N"}
