"""Adapters for the public run formats, on small excerpts written by the tests themselves."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from bayescale.curves import transient_mask
from bayescale.runs import GADRE_VOCAB, GEMSTONES_VOCAB, RunTableError, load_gadre2024, load_gemstones2025, vocab_size_of
from bayescale.schedules import table_features


def _gadre_rows() -> pd.DataFrame:
    """Four rows in the Gadre et al. (2024) layout; the last records the 7B runs' wrong batch."""
    return pd.DataFrame({
        "name": ["c4-d=96-0.5", "c4-d=96-1.0", "rpj-d=512-1.0", "c4-open_lm_7b-1.0"],
        "dataset": ["c4_original", "c4_original", "rpj", "c4_original"],
        "model": ["d=96", "d=96", "d=512", "open_lm_7b"],
        "N": [10569312, 10569312, 78914048, 6889410560],
        "N_no_embed": [5727840, 5727840, 53092864, 6682841088],
        "D_tokens": [105693120, 211386240, 1578280960, 137788211200],
        "global_bs_seqs": [64, 64, 512, 1],
        "seq_len": [2048, 2048, 2048, 2048],
        "lr": [3e-3, 3e-3, 3e-3, 3e-4],
        "warmup_steps": [100, 100, 1000, 5000],
        "lr_cooldown_end": [3e-5, 3e-5, 3e-5, 3e-5],
        "loss_c4_val": [5.55, 5.22, 3.80, 2.38],
        "loss_openlm": [6.1, 5.9, 4.4, 3.1],
        "steps": [806.3745, 1612.749, 1505.166, 32851.27],
        "global_bs_from_args": [64, 64, 512, 2048],
        "lr_from_args": [3e-3, 3e-3, 3e-3, 3e-3],
    })


def test_gadre_maps_columns(tmp_path):
    path = tmp_path / "final_losses.csv"
    raw = _gadre_rows()
    raw.to_csv(path, index=False)
    runs = load_gadre2024(path).set_index("run").loc[raw["name"]]
    np.testing.assert_array_equal(runs["params"], raw["N_no_embed"])
    np.testing.assert_array_equal(runs["params_total"], raw["N"])
    np.testing.assert_array_equal(runs["tokens"], raw["D_tokens"])
    np.testing.assert_array_equal(runs["loss"], raw["loss_c4_val"])
    assert list(runs["group"]) == list(raw["dataset"])
    np.testing.assert_allclose(runs["batch_tokens"] * runs["step"], raw["D_tokens"], rtol=1e-9)
    # the embedding holds GADRE_VOCAB rows of the model's width (d=96, d=512, and 4,096 for the 7B)
    np.testing.assert_array_equal(raw["N"] - raw["N_no_embed"], GADRE_VOCAB * np.array([96, 96, 512, 4096]))
    assert vocab_size_of(runs) == GADRE_VOCAB


def test_gadre_final_losses_are_kept_even_when_shorter_than_twice_the_warmup(tmp_path):
    """A published final loss is the end of a whole schedule, not a transient point."""
    path = tmp_path / "final_losses.csv"
    _gadre_rows().to_csv(path, index=False)
    runs = load_gadre2024(path).set_index("run")
    assert runs.loc["rpj-d=512-1.0", "step"] < 2 * runs.loc["rpj-d=512-1.0", "warmup_steps"]
    assert transient_mask(runs.reset_index()).all()
    curve = pd.DataFrame({"run": "a", "step": [50.0, 150.0, 300.0, 1000.0], "warmup_steps": 100.0})
    assert list(transient_mask(curve)) == [False, False, True, True]


def test_gadre_runs_carry_their_cosine_schedule(tmp_path):
    """Each published loss ends a cosine decay from lr to lr_cooldown_end: the rows specify it,
    so the schedule-aware laws need no assumption (no ScheduleWarning)."""
    path = tmp_path / "final_losses.csv"
    raw = _gadre_rows()
    raw.to_csv(path, index=False)
    runs = load_gadre2024(path).set_index("run").loc[raw["name"]]
    assert runs["schedule"].eq("cosine").all()
    np.testing.assert_array_equal(runs["total_steps"], runs["step"])
    np.testing.assert_allclose(runs["final_lr_fraction"], [0.01, 0.01, 0.01, 0.1])  # the 7B run: lr 3e-4
    np.testing.assert_array_equal(runs["warmup_steps"], [100, 100, 1000, 5000])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features = table_features(runs.reset_index())
    assert (features["lr_anneal"] > 0).all()  # every run ends its decay
    _gadre_rows().drop(columns=["lr_cooldown_end"]).to_csv(path, index=False)
    assert "final_lr_fraction" not in load_gadre2024(path).columns  # the specification's default applies


def test_gadre_takes_the_launch_batch_where_the_recorded_one_contradicts_the_steps(tmp_path):
    path = tmp_path / "final_losses.csv"
    _gadre_rows().to_csv(path, index=False)
    runs = load_gadre2024(path).set_index("run")
    assert runs.loc["c4-open_lm_7b-1.0", "batch_tokens"] == 2048 * 2048
    np.testing.assert_allclose(runs.loc["c4-open_lm_7b-1.0", "step"], 32851.27, rtol=1e-6)
    assert runs.loc["c4-d=96-0.5", "batch_tokens"] == 64 * 2048


def test_gadre_without_step_columns_keeps_the_recorded_batch(tmp_path):
    path = tmp_path / "final_losses.csv"
    _gadre_rows().drop(columns=["steps", "global_bs_from_args"]).to_csv(path, index=False)
    runs = load_gadre2024(path).set_index("run")
    assert runs.loc["c4-open_lm_7b-1.0", "batch_tokens"] == 2048


def test_gadre_other_loss_column_and_missing_columns(tmp_path):
    path = tmp_path / "final_losses.csv"
    _gadre_rows().to_csv(path, index=False)
    runs = load_gadre2024(path, loss_column="loss_openlm").set_index("run")
    assert runs.loc["rpj-d=512-1.0", "loss"] == pytest.approx(4.4)
    _gadre_rows().drop(columns=["N_no_embed"]).to_csv(path, index=False)
    with pytest.raises(RunTableError, match="N_no_embed"):
        load_gadre2024(path)


def test_gadre_bad_loss_names_the_row(tmp_path):
    path = tmp_path / "final_losses.csv"
    raw = _gadre_rows()
    raw.loc[2, "loss_c4_val"] = -1.0
    raw.to_csv(path, index=False)
    with pytest.raises(RunTableError, match="row 3.*loss"):
        load_gadre2024(path)


def _gemstones_rows() -> list[dict]:
    rows = []
    for name, total, width, depth in (("PyGemma-256x23_pretrain", 48377600, 256, 23),
                                      ("PyGemma-1024x28_pretrain", 543482880, 1024, 28)):
        for step in (477, 954, 1431):
            rows.append({"run_name": name, "params_active_precise": total, "width": width, "depth": depth,
                         "tokens": step * 4194304, "step": step, "num_nodes": 32, "seconds_per_step": 1.4,
                         "final_loss": 4.0 - 0.1 * step / 477})
    return rows


def test_gemstones_derives_non_embedding_parameters(tmp_path):
    path = tmp_path / "train_loss_curves.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _gemstones_rows()))
    runs = load_gemstones2025(path)
    assert len(runs) == 6 and set(runs["split"]) == {"train"}
    first = runs.groupby("run").first()
    for name, width, depth in (("PyGemma-256x23_pretrain", 256, 23), ("PyGemma-1024x28_pretrain", 1024, 28)):
        # untied embeddings: total - 2 V w; the rest is depth (15 w^2 + 2 w) + w for these shapes
        assert first.loc[name, "params"] == first.loc[name, "params_total"] - 2 * GEMSTONES_VOCAB * width
        assert first.loc[name, "params"] == depth * (15 * width**2 + 2 * width) + width
    assert set(runs["batch_tokens"]) == {4194304.0} and vocab_size_of(runs) == GEMSTONES_VOCAB
    np.testing.assert_array_equal(runs["step"], [477, 954, 1431] * 2)
    np.testing.assert_allclose(runs.loc[runs["step"] == 954, "loss"], 3.8)


def test_gemstones_runs_are_constant_after_warm_up(tmp_path):
    path = tmp_path / "train_loss_curves.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _gemstones_rows()))
    runs = load_gemstones2025(path)
    assert runs["schedule"].eq("constant").all() and "warmup_steps" not in runs.columns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features = table_features(runs)
    np.testing.assert_allclose(np.exp(features["log_lr_area"]), runs["step"])  # constant: the area is the step
    path.write_text("".join(json.dumps({**r, "warmup_steps": 100}) + "\n" for r in _gemstones_rows()))
    assert load_gemstones2025(path)["warmup_steps"].eq(100).all()


def test_gemstones_missing_columns(tmp_path):
    path = tmp_path / "train_loss_curves.jsonl"
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "width"}) + "\n"
                            for r in _gemstones_rows()))
    with pytest.raises(RunTableError, match="width"):
        load_gemstones2025(path)
