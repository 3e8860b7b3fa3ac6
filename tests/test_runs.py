"""Run-table loading and validation: every rule names the file, the row and the fix."""

import numpy as np
import pandas as pd
import pytest

from bayescale.curves import IdentifiabilityWarning, prepare_curves
from bayescale.models import KAPLAN
from bayescale.runs import MAX_SCALE, RunTableError, load_runs, validate_runs, vocab_size_of


def _table(**changes):
    df = pd.DataFrame({
        "run": ["a", "a", "a", "b", "b"],
        "params": [1e5, 1e5, 1e5, 2e5, 2e5],
        "batch_tokens": [1024.0] * 5,
        "step": [100.0, 200.0, 300.0, 100.0, 200.0],
        "loss": [2.0, 1.8, 1.7, 1.9, 1.7],
    })
    df["tokens"] = df["batch_tokens"] * df["step"]
    for col, (row, value) in changes.items():
        df.loc[row, col] = value
    return df


def test_valid_table_round_trips_through_every_format(tmp_path):
    df = _table()
    df.to_csv(tmp_path / "r.csv", index=False)
    df.to_json(tmp_path / "r.jsonl", orient="records", lines=True)
    df.to_parquet(tmp_path / "r.parquet")
    for name in ("r.csv", "r.jsonl", "r.parquet"):
        out = load_runs(tmp_path / name)
        assert len(out) == 5 and list(out["run"].unique()) == ["a", "b"]


def test_missing_column_names_it_and_the_fix():
    with pytest.raises(RunTableError, match=r"missing required column\(s\) loss.*map them: --column-map"):
        validate_runs(_table().drop(columns="loss"), source="x.csv")


@pytest.mark.parametrize("col,value,pattern", [
    ("loss", np.nan, r"x.csv: row 3: loss=nan is not finite"),
    ("loss", np.inf, r"row 3: loss=inf is not finite"),
    ("step", -5.0, r"row 3: step=-5 must be > 0"),
    ("params", 0.0, r"row 3: params=0 must be > 0"),
    ("batch_tokens", -1.0, r"row 3: batch_tokens=-1 must be > 0"),
])
def test_bad_values_give_file_row_and_fix(col, value, pattern):
    with pytest.raises(RunTableError, match=pattern):
        validate_runs(_table(**{col: (2, value)}), source="x.csv")


def test_non_numeric_value():
    df = _table()
    df["loss"] = df["loss"].astype(object)
    df.loc[1, "loss"] = "oops"
    with pytest.raises(RunTableError, match=r"row 2: loss='oops' is not a number"):
        validate_runs(df)


def test_duplicated_rows():
    df = pd.concat([_table(), _table().iloc[[1]]], ignore_index=True)
    with pytest.raises(RunTableError, match=r"row 6: duplicates an earlier row"):
        validate_runs(df)


def test_params_changing_mid_run():
    with pytest.raises(RunTableError, match=r"run 'a' changes params mid-run"):
        validate_runs(_table(params=(1, 3e5)))


def test_tokens_inconsistent_with_batch_times_steps():
    with pytest.raises(RunTableError, match=r"row 2: tokens=1 but batch_tokens\*step=204800"):
        validate_runs(_table(tokens=(1, 1.0)))


@pytest.mark.parametrize("row,value,pattern", [
    (1, 0.0, r"x.csv: row 2: vocab_size=0 must be a whole number of tokens > 0 \(256 for byte-level models\)"),
    (2, 255.5, r"x.csv: row 3: vocab_size=255.5 must be a whole number"),
    (0, np.inf, r"x.csv: row 1: vocab_size=inf must be a whole number"),
    (3, 512.0, r"x.csv: run 'b' changes vocab_size mid-run \(256, 512\)"),
])
def test_vocab_size_is_a_whole_number_of_tokens_per_run(row, value, pattern):
    table = _table().assign(vocab_size=256.0)
    table.loc[row, "vocab_size"] = value
    with pytest.raises(RunTableError, match=pattern):
        validate_runs(table, source="x.csv")


def test_the_vocabulary_of_a_table_is_known_only_when_every_row_gives_the_same():
    assert vocab_size_of(validate_runs(_table().assign(vocab_size=256))) == 256
    assert vocab_size_of(_table()) is None
    partial = _table().assign(vocab_size=256.0)
    partial.loc[4, "vocab_size"] = np.nan  # a blank cell passes validation but leaves the vocabulary unknown
    assert vocab_size_of(validate_runs(partial)) is None
    mixed = _table().assign(vocab_size=[256, 256, 256, 50_304, 50_304])
    assert vocab_size_of(validate_runs(mixed)) is None


def test_drop_mode_counts_and_reports_dropped_rows():
    with pytest.warns(UserWarning, match=r"dropped 2 of 5 rows"):
        out = validate_runs(_table(loss=(0, np.nan), step=(4, -1.0)), on_invalid="drop")
    assert len(out) == 3


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(RunTableError, match="no such file"):
        load_runs(tmp_path / "nope.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(RunTableError, match="unknown table format"):
        load_runs(tmp_path / "t.xlsx")


def test_column_mapping(tmp_path):
    _table().rename(columns={"params": "N_no_embed"}).to_csv(tmp_path / "r.csv", index=False)
    assert "params" in load_runs(tmp_path / "r.csv", columns={"params": "N_no_embed"}).columns
    with pytest.raises(RunTableError, match="absent column"):
        load_runs(tmp_path / "r.csv", columns={"params": "nope"})


def test_mapping_onto_a_name_the_file_already_has_keeps_both(tmp_path):
    """``--column-map loss=val_loss`` on a file with its own ``loss`` column: the mapped
    column becomes ``loss`` and the file's own is kept as ``loss_original``."""
    table = _table()
    table.assign(val_loss=table["loss"] * 1.1).to_csv(tmp_path / "r.csv", index=False)
    runs = load_runs(tmp_path / "r.csv", columns={"loss": "val_loss"})
    np.testing.assert_allclose(runs["loss"], runs["loss_original"] * 1.1)



def _scheduled(**columns) -> pd.DataFrame:
    """Two runs logged on two splits at each step, with a learning rate and a schedule."""
    df = pd.DataFrame({
        "run": ["a"] * 4 + ["b"] * 2, "params": 1e5, "batch_tokens": 1024.0,
        "step": [100.0, 100.0, 200.0, 200.0, 100.0, 300.0], "loss": [2.0, 2.1, 1.8, 1.9, 1.9, 1.7],
        "split": ["in", "out", "in", "out", "in", "in"],
        "learning_rate": [1e-3, 1e-3, 5e-4, 5e-4, 1e-3, 1e-3], "schedule": ["cosine"] * 4 + ["constant"] * 2,
        "warmup_steps": 10.0, "final_lr_fraction": 0.1, "decay_fraction": 0.2, "total_steps": [200.0] * 4 + [300.0] * 2,
    })
    for col, (row, value) in columns.items():
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
    return df


def test_schedule_columns_are_read_and_blank_cells_pass():
    runs = validate_runs(_scheduled(learning_rate=(slice(4, 5), np.nan), schedule=(4, " "), total_steps=(0, None)))
    assert runs["learning_rate"].dtype == float and runs["learning_rate"].isna().sum() == 2
    assert runs["schedule"].isna().sum() == 1 and set(runs["schedule"].dropna()) == {"cosine", "constant"}


@pytest.mark.parametrize("col,row,value,pattern", [
    ("learning_rate", 2, -1e-3, r"x.csv: row 3: learning_rate=-0.001 must be a finite number >= 0 \(the rate in "
                                r"effect at that step\)$"),
    ("learning_rate", 2, np.inf, r"x.csv: row 3: learning_rate=inf must be a finite number >= 0"),
    ("learning_rate", 2, "fast", r"x.csv: row 3: learning_rate='fast' is not a number"),
    ("learning_rate", 1, 2e-3, r"x.csv: row 2: learning_rate=0.002 but an earlier row of run 'a' at step 100 says "
                               r"0.001; the rows of one step \(one per split\) share the rate in effect at that step$"),
    ("schedule", 4, "onecycle", r"x.csv: row 5: schedule='onecycle' is not a schedule bayescale knows; use one of "
                                r"constant, cosine, wsd, linear, or leave it blank$"),
    ("final_lr_fraction", 0, 1.5, r"x.csv: row 1: final_lr_fraction=1.5 must be in \[0, 1\] \(final rate / peak rate\) "
                                  r"\(6 rows in all\)$"),
    ("decay_fraction", 0, 0.0, r"x.csv: row 1: decay_fraction=0 must be in \(0, 1\]"),
    ("total_steps", 0, -5.0, r"x.csv: row 1: total_steps=-5 must be > 0"),
    ("total_steps", 5, 250.0, r"x.csv: row 6: total_steps=250 but run 'b' reaches step 300; total_steps is the "
                              r"planned last step of the schedule, at least the last step logged \(fix it or leave "
                              r"it blank\)$"),
])
def test_bad_schedule_cells_give_file_row_and_fix(col, row, value, pattern):
    table = _scheduled()
    if col in ("final_lr_fraction", "decay_fraction"):
        table[col] = value  # every row: the range check names the first and counts them
    else:
        table = _scheduled(**{col: (row, value)})
    with pytest.raises(RunTableError, match=pattern):
        validate_runs(table, source="x.csv")


def test_the_schedule_may_not_change_within_a_run_and_must_run_at_some_step():
    with pytest.raises(RunTableError, match=r"x.csv: run 'a' changes schedule mid-run \(constant, cosine\); give "
                                            r"each configuration its own run id"):
        validate_runs(_scheduled(schedule=(3, "constant")), source="x.csv")
    with pytest.raises(RunTableError, match=r"run 'a' changes warmup_steps mid-run \(10, 20\)"):
        validate_runs(_scheduled(warmup_steps=(0, 20.0)), source="x.csv")
    with pytest.raises(RunTableError, match=r"x.csv: run 'b' has learning_rate 0 at every step; give the rate in "
                                            r"effect at each step, or leave the cells blank to use the run's schedule"):
        validate_runs(_scheduled(learning_rate=(slice(4, 5), 0.0)), source="x.csv")
    validate_runs(_scheduled(learning_rate=(4, 0.0)))  # a zero rate at one step is allowed


def test_drop_mode_drops_rows_that_disagree_on_the_learning_rate():
    with pytest.warns(UserWarning, match=r"dropped 1 of 6 rows: 1 x <run table>: row 4: learning_rate=0.0001 but"):
        out = validate_runs(_scheduled(learning_rate=(3, 1e-4)), on_invalid="drop")
    assert len(out) == 5 and out["learning_rate"].tolist() == [1e-3, 5e-4, 1e-3, 1e-3, 1e-3]  # sorted by split


def test_one_size_or_one_batch_warns_that_the_prior_decides():
    df = validate_runs(_table(params=(slice(0, 4), 1e5)).assign(params=1e5))
    with pytest.warns(IdentifiabilityWarning) as record:  # the Kaplan law's constants (the law warns)
        KAPLAN.prepare(df, group_by="auto", min_step_fraction=0.0, min_step=0.0)
    messages = " ".join(str(w.message) for w in record)
    assert "alpha_N and N_c are decided by their priors" in messages
    assert "B_star and alpha_B" in messages


def test_transient_cut_counts_dropped_points(small_runs):
    data = prepare_curves(small_runs)
    assert data.dropped["early_transient"] > 0
    assert data.n_points + data.dropped["early_transient"] == len(small_runs)
    assert np.all(np.exp(data.log_S) >= 300 - 1e-3)  # 10% of the final step 3000
    # AR(1) links only consecutive points of one run
    linked = data.has_prev
    assert np.all(data.run_idx[linked] == data.run_idx[data.prev_idx[linked]])


@pytest.mark.parametrize("col,value,pattern", [
    ("run", np.nan, r"x.csv: row 3: run is blank; every row needs a run id$"),
    ("run", "  ", r"x.csv: row 3: run is blank; every row needs a run id$"),
    ("split", None, r"x.csv: row 3: split is blank; every row needs a split, since rows are grouped by it "
                    r"\(fill it in or remove the row\)"),
    ("group", "", r"x.csv: row 3: group is blank; every row needs a group"),
])
def test_blank_run_ids_and_group_cells(col, value, pattern):
    df = _table()
    if col not in df.columns:
        df[col] = "web"
    df[col] = df[col].astype(object)
    df.loc[2, col] = value
    with pytest.raises(RunTableError, match=pattern):
        validate_runs(df, source="x.csv")
    with pytest.warns(UserWarning, match=r"dropped 1 of 5 rows"):
        assert len(validate_runs(df, source="x.csv", on_invalid="drop")) == 4


def test_a_group_by_column_may_not_be_blank(tmp_path):
    df = _table().assign(dataset=["web", "web", None, "code", "code"])
    df.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(RunTableError, match=r"r.csv: row 3: dataset is blank; every row needs a dataset"):
        load_runs(tmp_path / "r.csv", group_columns=["dataset"])
    table = load_runs(tmp_path / "r.csv")  # not a grouping column unless named
    with pytest.raises(ValueError, match=r"--group-by column 'dataset' is blank in 1 row\(s\) "
                                         r"\(first: run 'a', step 300\)"):
        prepare_curves(table, group_by="dataset")


@pytest.mark.parametrize("col", ["step", "params", "batch_tokens"])
def test_sizes_batches_and_steps_beyond_the_documented_bound(col):
    df = _table().drop(columns="tokens")
    if col == "step":
        df.loc[2, col] = 1e300
    else:
        df.loc[df["run"] == "a", col] = 1e16
    with pytest.raises(RunTableError, match=rf"x.csv: row \d: {col}=1e\+(300|16) is above 1e\+15, far beyond any "
                                            r"training run .*check the units or remove the row"):
        validate_runs(df, source="x.csv")
    df.loc[df[col] > MAX_SCALE, col] = MAX_SCALE  # the bound itself is allowed
    validate_runs(df, source="x.csv")


def test_a_text_loss_column_an_empty_file_and_a_header_only_file(tmp_path):
    _table().assign(loss="low").to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(RunTableError, match=r"text.csv: row 1: loss='low' is not a number; fix or remove the row "
                                            r"\(5 rows in all\)"):
        load_runs(tmp_path / "text.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(RunTableError, match=r"empty.csv: cannot be parsed as csv .*check the file format"):
        load_runs(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("run,params,batch_tokens,step,loss\n")
    with pytest.raises(RunTableError, match=r"header.csv: the table has no rows"):
        load_runs(tmp_path / "header.csv")
