"""Curves logged every k steps are thinned to points evenly spaced in log-steps before fitting."""

import numpy as np
import pandas as pd
import pytest

from bayescale.cli import main
from bayescale.curves import check_max_points, prepare_curves, thin_curves
from bayescale.defaults import DEFAULT_MAX_POINTS

#: One checkpoint every 128 steps from 2,176 to 24,000, as the public Multi-Power-Law curves log them.
LINEAR_STEPS = np.arange(2176.0, 24001.0, 128.0)


def _table(steps: np.ndarray, runs: tuple[str, ...] = ("a",), splits: tuple[str, ...] = ("in",)) -> pd.DataFrame:
    parts = [pd.DataFrame({"run": run, "split": split, "params": 1e6, "batch_tokens": 4096.0, "step": steps,
                           "loss": 3.0 * steps ** -0.1}) for run in runs for split in splits]
    return pd.concat(parts, ignore_index=True)


def test_a_linearly_logged_curve_keeps_points_evenly_spaced_in_log_steps():
    keep = thin_curves(LINEAR_STEPS, np.zeros(len(LINEAR_STEPS)), 32)
    kept = np.log(LINEAR_STEPS[keep])
    assert keep.sum() == 32 and keep[0] and keep[-1]
    even = (kept[-1] - kept[0]) / 31
    gaps = np.diff(kept)
    assert gaps.min() > 0.5 * even and gaps.max() < 1.5 * even  # the raw gaps run from 0.005 to 0.06


def test_short_curves_and_no_limit_keep_every_point():
    steps = np.geomspace(10, 1000, 20)
    assert thin_curves(steps, np.zeros(20), 32).all()
    assert thin_curves(LINEAR_STEPS, np.zeros(len(LINEAR_STEPS)), None).all()


def test_prepare_curves_thins_each_run_and_group_and_counts_it():
    table = _table(LINEAR_STEPS, runs=("a", "b"), splits=("in", "out"))
    data = prepare_curves(table, group_by="split", min_step_fraction=0.0, max_points=DEFAULT_MAX_POINTS)
    curves = 4
    assert data.n_points == curves * DEFAULT_MAX_POINTS
    assert data.dropped["thinned_to_max_points"] == len(table) - curves * DEFAULT_MAX_POINTS
    assert int(np.sum(data.has_prev)) == data.n_points - curves  # AR(1) links the kept points of each curve
    assert np.all(np.diff(data.log_S)[np.asarray(data.has_prev)[1:]] > 0)
    every = prepare_curves(table, group_by="split", min_step_fraction=0.0, max_points=None)
    assert every.n_points == len(table) and "thinned_to_max_points" not in every.dropped


@pytest.mark.parametrize("bad", [1, 0, 2.5, True, "32"])
def test_bad_max_points_are_refused(bad):
    with pytest.raises(ValueError, match="max_points"):
        check_max_points(bad)


def test_cli_max_points_takes_zero_for_every_point_and_refuses_one(tmp_path, capsys):
    from bayescale.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["fit", "--runs", "r.csv", "--out", "p.nc"]).max_points == DEFAULT_MAX_POINTS
    assert parse(["fit", "--runs", "r.csv", "--out", "p.nc", "--max-points", "0"]).max_points is None
    assert parse(["compare", "--runs", "r.csv", "--max-points", "64"]).max_points == 64
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--runs", str(tmp_path / "r.csv"), "--out", str(tmp_path / "p.nc"), "--max-points", "1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--max-points" in err and "integer >= 2, or 0 for every point" in err
