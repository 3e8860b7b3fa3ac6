"""Bringing outside runs: --column-map, --batch-tokens/--context, row filters, W&B exports."""

import json

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale.cli import main
from bayescale.commands.common import add_runs_arguments, read_runs_arguments
from bayescale.runs import RunTableError, load_runs, select_runs, set_batch


def wandb_long() -> pd.DataFrame:
    """An excerpt of a W&B history export: one row per logged step, eval loss every other step."""
    rows = []
    for run, base in (("tiny-a", 3.0), ("tiny-b", 2.5)):
        for step in range(0, 50, 10):
            rows.append({"Name": run, "_step": step, "train/loss": base / (1 + step) ** 0.1,
                         "eval/loss": base / (1 + step) ** 0.1 + 0.01 if step % 20 == 0 else np.nan,
                         "_runtime": step * 1.5})
    return pd.DataFrame(rows)


def wandb_wide() -> pd.DataFrame:
    """An excerpt of W&B's chart "export CSV": Step, then <run> - <metric> and its band columns."""
    steps = np.array([0, 100, 200, 300])
    table = {"Step": steps}
    for run, base in (("gpt-1e5 lr3e-3", 3.0), ("gpt-3e5 lr3e-3", 2.7)):
        loss = base / (1 + steps) ** 0.1
        table[f"{run} - eval/loss"] = loss
        table[f"{run} - eval/loss__MIN"] = loss - 0.01
        table[f"{run} - eval/loss__MAX"] = loss + 0.01
    frame = pd.DataFrame(table)
    frame.loc[2, "gpt-3e5 lr3e-3 - eval/loss"] = np.nan  # a run that did not log at that step
    return frame


def test_load_wandb_long_form(tmp_path):
    wandb_long().to_csv(tmp_path / "history.csv", index=False)
    with pytest.warns(UserWarning, match="left out 2 rows at step 0"):
        runs = bayescale.load_wandb(tmp_path / "history.csv", loss="eval/loss",
                                    params={"tiny-a": 1e5, "tiny-b": 3e5}, batch_tokens=2048)
    assert list(runs.columns[:5]) == ["run", "params", "batch_tokens", "step", "loss"]
    assert set(runs["run"]) == {"tiny-a", "tiny-b"} and len(runs) == 4  # steps 20 and 40 of each
    assert runs.loc[runs["run"] == "tiny-b", "params"].eq(3e5).all() and runs["batch_tokens"].eq(2048).all()
    with pytest.raises(RunTableError, match="no params given for run.*tiny-b"):
        bayescale.load_wandb(wandb_long().query("_step > 0"), loss="eval/loss", params={"tiny-a": 1e5},
                             batch_tokens=2048)
    with pytest.raises(RunTableError, match="no loss column 'val_loss'"):
        bayescale.load_wandb(wandb_long(), loss="val_loss", params=1e5, batch_tokens=2048)


def test_load_wandb_wide_chart_export(tmp_path):
    wandb_wide().to_csv(tmp_path / "chart.csv", index=False)
    with pytest.warns(UserWarning, match="step 0"):
        runs = bayescale.load_wandb(tmp_path / "chart.csv", loss="eval/loss",
                                    params={"gpt-1e5 lr3e-3": 1e5, "gpt-3e5 lr3e-3": 3e5},
                                    batch_tokens={"gpt-1e5 lr3e-3": 1024, "gpt-3e5 lr3e-3": 4096}, split="val")
    assert set(runs["run"]) == {"gpt-1e5 lr3e-3", "gpt-3e5 lr3e-3"}
    assert len(runs) == 5 and runs["split"].eq("val").all()  # 3 + 2 (one unlogged, step 0 left out)
    assert not any(c.endswith(("__MIN", "__MAX")) for c in runs.columns)
    small = runs[runs["run"] == "gpt-1e5 lr3e-3"]
    assert small["step"].tolist() == [100, 200, 300] and small["batch_tokens"].eq(1024).all()
    with pytest.raises(RunTableError, match="metric.*eval/loss"):
        bayescale.load_wandb(wandb_wide(), loss="train/loss", params=1e5, batch_tokens=1024)


def test_load_wandb_maps_the_logged_learning_rate(tmp_path):
    """The per-step rate becomes learning_rate: found under a common name or named, taken
    from the last step it was logged at, in both export layouts."""
    history = wandb_long().query("_step > 0").reset_index(drop=True)
    history["lr"] = np.where(history["_step"] % 20 == 0, np.nan, 1e-3 / history["_step"])  # logged between evals
    runs = bayescale.load_wandb(history, loss="eval/loss", params=1e5, batch_tokens=2048)
    np.testing.assert_allclose(runs["learning_rate"], [1e-3 / 10, 1e-3 / 30] * 2)
    renamed = history.rename(columns={"lr": "optim/lr_group0"})
    assert "learning_rate" not in bayescale.load_wandb(renamed, loss="eval/loss", params=1e5, batch_tokens=2048)
    named = bayescale.load_wandb(renamed, loss="eval/loss", params=1e5, batch_tokens=2048,
                                 learning_rate="optim/lr_group0")
    np.testing.assert_array_equal(named["learning_rate"], runs["learning_rate"])
    with pytest.raises(RunTableError, match=r"no learning-rate metric 'lr/adam'.*learning_rate, lr, train/"):
        bayescale.load_wandb(history, loss="eval/loss", params=1e5, batch_tokens=2048, learning_rate="lr/adam")

    chart = wandb_wide().query("Step > 0")
    for run in ("gpt-1e5 lr3e-3", "gpt-3e5 lr3e-3"):
        chart[f"{run} - train/learning_rate"] = 3e-3 * (1 - chart["Step"] / 400)
    wide = bayescale.load_wandb(chart, loss="eval/loss", params=1e5, batch_tokens=1024)
    np.testing.assert_allclose(wide["learning_rate"], 3e-3 * (1 - wide["step"] / 400))


def test_set_batch_constant_sequences_and_conflicts():
    table = pd.DataFrame({"run": ["a", "a"], "params": [1e5, 1e5], "step": [1, 2], "loss": [3.0, 2.9]})
    assert set_batch(table, batch_tokens=4096)["batch_tokens"].eq(4096).all()
    in_sequences = table.assign(batch_sequences=8)
    out = set_batch(in_sequences, context=512)
    assert out["batch_tokens"].eq(4096).all() and out["context"].eq(512).all()
    with pytest.raises(RunTableError, match="give --context"):
        set_batch(in_sequences)
    with pytest.raises(RunTableError, match="--batch-tokens 1024 gives batch_tokens=1024 but the table's"):
        set_batch(table.assign(batch_tokens=2048), batch_tokens=1024)
    assert set_batch(table.assign(batch_tokens=2048), batch_tokens=2048)["batch_tokens"].eq(2048).all()


def test_select_runs_filters_and_errors(small_runs):
    assert select_runs(small_runs, max_params=small_runs["params"].min())["params"].nunique() == 1
    kept = select_runs(small_runs, where=f"params < {small_runs['params'].max()} and step > 10")
    assert kept["params"].max() < small_runs["params"].max() and kept["step"].min() > 10
    with pytest.raises(RunTableError, match=r"--where 'params <<< 3' cannot be evaluated"):
        select_runs(small_runs, where="params <<< 3")
    with pytest.raises(RunTableError, match=r"--where 'nosuch > 1'.*nosuch"):
        select_runs(small_runs, where="nosuch > 1")
    with pytest.raises(RunTableError, match="leaves no rows"):
        select_runs(small_runs, where="params < 0")
    with pytest.raises(RunTableError, match="no rows with params <= 1"):
        select_runs(small_runs, max_params=1)


@pytest.mark.parametrize("command", ["fit", "compare", "calibrate", "report"])
def test_every_runs_command_has_the_import_options(command):
    from bayescale.cli import build_parser

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    options = {o for a in sub._actions for o in a.option_strings}
    assert {"--runs", "--column-map", "--batch-tokens", "--context", "--max-params", "--where"} <= options


def test_command_line_reads_a_mapped_table_with_constant_batch_and_filter(small_runs, tmp_path):
    import argparse

    theirs = small_runs.drop(columns=["batch_tokens", "tokens"], errors="ignore")
    theirs = theirs[theirs["run"] == theirs["run"].iloc[0]].rename(columns={"params": "N_no_embed", "loss": "eval_loss"})
    batch = float(small_runs["batch_tokens"].iloc[0])
    theirs.to_csv(tmp_path / "theirs.csv", index=False)
    parser = argparse.ArgumentParser()
    add_runs_arguments(parser)
    args = parser.parse_args(["--runs", str(tmp_path / "theirs.csv"), "--column-map", "params=N_no_embed,loss=eval_loss",
                              "--batch-tokens", f"{batch:g}", "--where", "step >= 100"])
    runs = read_runs_arguments(args)
    assert runs["batch_tokens"].eq(batch).all() and runs["step"].min() >= 100 and "loss" in runs
    # fit refuses a bad expression with one line that names it (exit 2, nothing sampled)
    assert main(["fit", "--runs", str(tmp_path / "theirs.csv"), "--column-map", "params=N_no_embed,loss=eval_loss",
                 "--batch-tokens", f"{batch:g}", "--where", "nosuch > 1", "--out", str(tmp_path / "p.nc")]) == 2
    # a constant batch that disagrees with the file's own column
    small_runs.to_csv(tmp_path / "ours.csv", index=False)
    assert main(["fit", "--runs", str(tmp_path / "ours.csv"), "--batch-tokens", "3",
                 "--out", str(tmp_path / "p.nc")]) == 2


def test_report_and_calibrate_read_mapped_runs(small_posterior, small_runs, tmp_path, capsys):
    posterior = small_posterior.save(tmp_path / "p.nc")
    theirs = small_runs.rename(columns={"loss": "eval_loss"})
    theirs.to_csv(tmp_path / "realized.csv", index=False)
    largest = small_runs["params"].max()
    assert main(["calibrate", "--posterior", str(posterior), "--runs", str(tmp_path / "realized.csv"),
                 "--column-map", "loss=eval_loss", "--where", f"params == {largest}", "--level", "0.9",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["points"] + out["dropped"] == int((small_runs["params"] == largest).sum())
    assert main(["report", "--posterior", str(posterior), "--out", str(tmp_path / "r"), "--quiet",
                 "--runs", str(tmp_path / "realized.csv"), "--column-map", "loss=eval_loss",
                 "--where", "nosuch > 1"]) == 2
    assert "--where 'nosuch > 1'" in capsys.readouterr().err
