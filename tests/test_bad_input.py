"""Bad input never loses work: every case stops with one line naming the input and the fix,
exit code 2, before any sampling, and leaves nothing behind.

None of these tests samples: the run tables are rejected first, and the commands that read
a posterior get a minimal one (no draws of the constants) that the checks never reach past.
"""

import importlib
import os
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

from bayescale.budget import MAX_FLOPS, plan_budget
from bayescale.cli import build_parser, main
from bayescale.posterior import Posterior
from bayescale.predict import loss_draws, predict_trajectory


def _runs(**changes) -> pd.DataFrame:
    df = pd.DataFrame({"run": ["a"] * 3 + ["b"] * 3, "params": [1e5] * 3 + [2e5] * 3, "batch_tokens": 1024.0,
                       "step": [100.0, 200.0, 300.0] * 2, "loss": [2.0, 1.9, 1.8, 1.9, 1.8, 1.7],
                       "split": ["in"] * 6})
    for col, (row, value) in changes.items():
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
    return df


@pytest.fixture
def no_sampling(monkeypatch):
    """Fail the test if NUTS is started."""
    def boom(*args, **kwargs):
        raise AssertionError("sampling started although the input was bad")
    monkeypatch.setattr(importlib.import_module("bayescale.fit"), "sample", boom)


@pytest.fixture
def fake_posterior(tmp_path):
    """A file that loads as a posterior but has no constants: only checks that run before
    the law is evaluated can pass it."""
    meta = {"model": "kaplan", "groups": ["all"], "group_by": "split",
            "ranges": {"params": [1e5, 2e5], "step": [100.0, 300.0], "batch_tokens": [1024.0, 1024.0]}}
    path = tmp_path / "fake.nc"
    Posterior(idata=az.from_dict(posterior={"sigma": np.ones((1, 4))}), meta=meta).save(path)
    return path


def _one_line_error(capsys, code) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("bayescale: error: "), err
    return err[0]


def _fit(tmp_path, table, *extra):
    table.to_csv(tmp_path / "runs.csv", index=False)
    return main(["fit", "--runs", str(tmp_path / "runs.csv"), "--chains", "1", "--warmup", "20", "--draws", "20",
                 "--quiet", *extra])


# 1. blank run ids and grouping cells --------------------------------------------------------

@pytest.mark.parametrize("column,value,pattern", [
    ("split", None, "runs.csv: row 5: split is blank; every row needs a split"),
    ("split", " ", "runs.csv: row 5: split is blank"),
    ("run", None, "runs.csv: row 5: run is blank; every row needs a run id"),
])
def test_fit_rejects_blank_run_and_group_cells(tmp_path, capsys, no_sampling, column, value, pattern):
    code = _fit(tmp_path, _runs(**{column: (4, value)}), "--out", str(tmp_path / "p.nc"))
    assert pattern in _one_line_error(capsys, code)


def test_fit_rejects_a_blank_cell_of_the_group_by_column(tmp_path, capsys, no_sampling):
    table = _runs().assign(dataset=["web", "web", None, "code", "code", "code"])
    code = _fit(tmp_path, table, "--group-by", "dataset", "--out", str(tmp_path / "p.nc"))
    assert "runs.csv: row 3: dataset is blank; every row needs a dataset" in _one_line_error(capsys, code)


def test_calibrate_rejects_a_blank_split(tmp_path, capsys, fake_posterior):
    _runs(split=(1, None)).to_csv(tmp_path / "realized.csv", index=False)
    code = main(["calibrate", "--posterior", str(fake_posterior), "--runs", str(tmp_path / "realized.csv")])
    assert "realized.csv: row 2: split is blank" in _one_line_error(capsys, code)


# 2. output paths and option values, checked before sampling -----------------------------------

def test_fit_onto_an_existing_folder_stops_before_sampling(tmp_path, capsys, no_sampling):
    (tmp_path / "o").mkdir()
    code = _fit(tmp_path, _runs(), "--out", str(tmp_path / "o"))
    line = _one_line_error(capsys, code)
    assert f"--out {tmp_path / 'o'}: is an existing folder; give a file path, e.g. {tmp_path / 'o' / 'posterior.nc'}" \
        in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o", "runs.csv"]  # no o.tmp


def test_fit_into_an_unwritable_folder_stops_before_sampling(tmp_path, capsys, no_sampling, monkeypatch):
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    code = _fit(tmp_path, _runs(), "--out", str(tmp_path / "ro" / "p.nc"))
    line = _one_line_error(capsys, code)
    assert f"--out {tmp_path / 'ro' / 'p.nc'}: cannot write in {tmp_path} (Permission denied)" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_fit_into_a_read_only_folder(tmp_path, capsys, no_sampling):
    (tmp_path / "ro").mkdir(mode=0o555)
    code = _fit(tmp_path, _runs(), "--out", str(tmp_path / "ro" / "p.nc"))
    assert "cannot write in" in _one_line_error(capsys, code)


def test_fit_below_a_file_stops_before_sampling(tmp_path, capsys, no_sampling):
    code = _fit(tmp_path, _runs(), "--out", str(tmp_path / "runs.csv" / "p.nc"))
    assert "runs.csv is a file, not a folder" in _one_line_error(capsys, code)


def test_fit_level_outside_0_1_is_a_parse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _fit(tmp_path, _runs(), "--out", str(tmp_path / "p.nc"), "--level", "1.5")
    assert exit_info.value.code == 2
    assert "argument --level: a level must be in (0, 1), e.g. 0.9; got '1.5'" in capsys.readouterr().err


def test_fit_negative_extrapolation_error_stops_before_sampling(tmp_path, capsys, no_sampling):
    code = _fit(tmp_path, _runs(), "--out", str(tmp_path / "p.nc"), "--extrapolation-error", "-1")
    assert "extrapolation_error=-1.0 must be a number >= 0" in _one_line_error(capsys, code)


def test_demo_with_zero_draws_stops_before_sampling(tmp_path, capsys, no_sampling):
    code = main(["demo", "--draws", "0", "--out", str(tmp_path / "d")])
    assert "draws=0 must be at least 1" in _one_line_error(capsys, code)


@pytest.mark.parametrize("argv", [
    ["predict", "--posterior", "P", "--params", "1e6", "--batch-tokens", "1024", "--steps", "100"],
    ["budget", "--posterior", "P", "--flops", "1e18"],
    ["calibrate", "--posterior", "P", "--runs", "R"],
    ["report", "--posterior", "P"],
    ["compare", "--runs", "R"],
    ["demo"],
])
def test_every_writing_command_checks_its_output_first(tmp_path, capsys, no_sampling, argv):
    _runs().to_csv(tmp_path / "runs.csv", index=False)
    argv = [str(tmp_path / "runs.csv") if a == "R" else str(tmp_path / "none.nc") if a == "P" else a for a in argv]
    option = "--out-dir" if argv[0] == "compare" else "--out"
    if argv[0] == "predict":  # a file: a folder is wrong
        target, pattern = tmp_path, "is an existing folder; give a file path"
    else:  # a folder: a file is wrong
        target, pattern = tmp_path / "runs.csv", "is a file, not a folder"
    line = _one_line_error(capsys, main([*argv, option, str(target)]))
    assert f"{option} {target}: {pattern}" in line


def test_a_failed_save_leaves_no_temporary_file_and_keeps_the_old_one(tmp_path, fake_posterior, monkeypatch):
    post = Posterior.load(fake_posterior)
    with pytest.raises(ValueError, match="is an existing folder; give a file path"):
        post.save(tmp_path)
    out = tmp_path / "p.nc"
    post.save(out)
    before = out.read_bytes()

    def half_written(path, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(post.idata, "to_netcdf", half_written)
    with pytest.raises(OSError, match="No space left"):
        post.save(out)
    assert out.read_bytes() == before
    assert not (tmp_path / "p.nc.tmp").exists()


# 3. predictions the law cannot make ------------------------------------------------------

@pytest.mark.parametrize("option,name", [("--steps", "steps"), ("--params", "params"),
                                         ("--batch-tokens", "batch_tokens")])
def test_predict_rejects_absurd_requests(fake_posterior, capsys, option, name):
    argv = {"--params": "1e6", "--batch-tokens": "1024", "--steps": "5000"}
    argv[option] = "1e40"
    code = main(["predict", "--posterior", str(fake_posterior), *(x for kv in argv.items() for x in kv)])
    message = (f"{name}=1e+40 is above 1e+15, far beyond any training run and the range the float32 law is "
               f"evaluated in; give {name} up to 1e+15 (check the units)")
    assert _one_line_error(capsys, code) == f"bayescale: error: {message}"
    post = Posterior.load(fake_posterior)
    with pytest.raises(ValueError) as err:
        predict_trajectory(post, float(argv["--params"]), float(argv["--batch-tokens"]), float(argv["--steps"]))
    assert str(err.value) == message


def test_the_law_is_never_evaluated_beyond_float32(fake_posterior):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from the float32 cast
        with pytest.raises(ValueError, match=r"steps=1e\+39 is beyond float32"):
            loss_draws(Posterior.load(fake_posterior), 1e6, 1024.0, [1e3, 1e39])


# 4. budgets the law cannot speak for ------------------------------------------------------

def test_budget_rejects_an_absurd_budget_in_one_line(fake_posterior, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = main(["budget", "--posterior", str(fake_posterior), "--flops", "1e60", "--quiet"])
    message = ("flops=1e+60 is above 1e+35 FLOPs, beyond what the law can say (the search would try sizes and step "
               "counts the float32 law cannot evaluate); give at most 1e+35")
    assert _one_line_error(capsys, code) == f"bayescale: error: {message}"
    with pytest.raises(ValueError) as err:
        plan_budget(Posterior.load(fake_posterior), 1e60)
    assert str(err.value) == message
    code = main(["budget", "--posterior", str(fake_posterior), "--flops", "1e18", "--target-loss", "1",
                 "--max-flops", "1e40", "--quiet"])
    assert f"max_flops=1e+40 is above {MAX_FLOPS:.3g} FLOPs" in _one_line_error(capsys, code)


# 6. the documented default of --attention-flops-per-token ---------------------------------

def test_attention_flops_accepts_its_documented_default_of_zero(capsys):
    parser = build_parser()
    budget = parser._subparsers._group_actions[0].choices["budget"]
    assert "d_attn (default: 0)" in " ".join(budget.format_help().split())
    args = parser.parse_args(["budget", "--posterior", "p.nc", "--flops", "1e18", "--attention-flops-per-token", "0"])
    assert args.attention_flops_per_token == 0.0
    args = parser.parse_args(["budget", "--posterior", "p.nc", "--flops", "1e18",
                              "--attention-flops-per-token", "6*24*2048*1024"])
    assert args.attention_flops_per_token == 6 * 24 * 2048 * 1024
    with pytest.raises(SystemExit):
        parser.parse_args(["budget", "--posterior", "p.nc", "--flops", "1e18", "--attention-flops-per-token", "-1"])
    assert "expected a number >= 0, got '-1'" in capsys.readouterr().err


# 5 and the rest: run tables the fit cannot use ---------------------------------------------

@pytest.mark.parametrize("write,pattern", [
    (lambda p: _runs(step=(3, 1e300)).to_csv(p, index=False),
     "runs.csv: row 4: step=1e+300 is above 1e+15, far beyond any training run"),
    (lambda p: _runs().assign(loss=["low", "mid", "high", "low", "mid", "high"]).to_csv(p, index=False),
     "runs.csv: row 1: loss='low' is not a number; fix or remove the row (6 rows in all)"),
    (lambda p: _runs().drop(columns="loss").to_csv(p, index=False),
     "runs.csv: missing required column(s) loss"),
    (lambda p: p.write_text(""), "runs.csv: cannot be parsed as csv"),
    (lambda p: p.write_text("run,params,batch_tokens,step,loss\n"), "runs.csv: the table has no rows"),
    (lambda p: _runs().assign(learning_rate=[1e-3, 1e-3, -1e-3, 1e-3, 1e-3, 1e-3]).to_csv(p, index=False),
     "runs.csv: row 3: learning_rate=-0.001 must be a finite number >= 0"),
    (lambda p: _runs().assign(schedule="step_decay").to_csv(p, index=False),
     "runs.csv: row 1: schedule='step_decay' is not a schedule bayescale knows; use one of constant, cosine, wsd, "
     "linear, or leave it blank (6 rows in all)"),
    (lambda p: _runs().assign(total_steps=250.0).to_csv(p, index=False),
     "runs.csv: row 1: total_steps=250 but run 'a' reaches step 300"),
])
def test_fit_rejects_tables_it_cannot_use(tmp_path, capsys, no_sampling, write, pattern):
    write(tmp_path / "runs.csv")
    code = main(["fit", "--runs", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "p.nc")])
    assert pattern in _one_line_error(capsys, code)
