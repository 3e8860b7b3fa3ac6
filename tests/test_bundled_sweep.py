"""Packaging the bundled sweep (benchmarks/make_bundled_sweep.py): a grid that gains runs
trains only those, and the runs packaged before keep their rows byte for byte."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from bayescale.trainer.records import COLUMNS, LAYOUTS

REPO = Path(__file__).resolve().parent.parent
GRID = """
width = 32
depth = 2
context = 32
steps = 12
warmup_steps = 3
eval_tokens = 512
eval_every = 4
eval_log_points = 4
[[grid]]
batch_tokens = [256, 512]
"""
DECAYING = """
[[grid]]
batch_tokens = 256
schedule = "cosine"
"""


@pytest.fixture(scope="module")
def packager():
    spec = importlib.util.spec_from_file_location("make_bundled_sweep", REPO / "benchmarks" / "make_bundled_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_new_grid_runs_are_trained_and_packaged_runs_carried_over(tmp_path, packager):
    grid, dest = tmp_path / "grid.toml", tmp_path / "data"
    dest.mkdir()
    grid.write_text(GRID)
    packager.train_grid(grid, tmp_path / "first", threads=1)
    packager.collect(grid, tmp_path / "first", dest, threads=1, note="first build")
    trained_rows = _lines(dest / "sweep_runs.csv")
    assert trained_rows[0] == ",".join(COLUMNS) and len(trained_rows) == 1 + 2 * 2 * 6  # 2 runs, 2 splits, 6 steps
    # What a packaging from before the newer columns held: the oldest header, one record
    # of versions and commit for the whole sweep.
    legacy = LAYOUTS[-1]
    with open(dest / "sweep_runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    (dest / "sweep_runs.csv").write_text("".join(",".join(r[c] for c in legacy) + "\n"
                                                 for r in [dict(zip(legacy, legacy)), *rows]))
    record = json.loads((dest / "sweep_runs.json").read_text())
    record["versions"], record["git"] = record["per_run"][0]["versions"], record["per_run"][0]["git"]
    for entry in record["per_run"]:
        del entry["versions"], entry["git"], entry["schedule"]
    (dest / "sweep_runs.json").write_text(json.dumps(record))
    old_lines = _lines(dest / "sweep_runs.csv")

    grid.write_text(GRID + DECAYING)
    later = tmp_path / "later"
    packager.train_grid(grid, later, threads=1, skip=packager.packaged_runs(dest))
    assert len(list(later.glob("w32-*.json"))) == 1  # only the new run was trained
    packed = packager.collect(grid, later, dest, threads=1, note="both builds")
    lines = _lines(dest / "sweep_runs.csv")
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 1 + 3 * 2 * 6
    # the carried rows: their cells unchanged, the newer ones filled as the trainer wrote them
    assert all(new.startswith(old + ",") for old, new in zip(old_lines[1:], lines[1:25], strict=True))
    assert lines[1:25] == trained_rows[1:]
    assert [r["schedule"] for r in packed["per_run"]] == ["constant", "constant", "cosine"]
    assert packed["per_run"][0]["git"] == record["git"] and len(packed["sessions"]) == 2
    assert packed["filled_columns"]["runs"] == [r["run"] for r in packed["per_run"][:2]]
    assert packed["rows"] == 36 and packed["runs"] == 3 and packed["conditions"] == "both builds"
    # packaging again changes nothing
    before = {name: (dest / name).read_bytes() for name in ("sweep_runs.csv", "sweep_runs.json")}
    packager.collect(grid, later, dest, threads=1, note="both builds")
    assert {name: (dest / name).read_bytes() for name in before} == before


def test_a_run_neither_trained_nor_packaged_stops_the_packaging(tmp_path, packager):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    (tmp_path / "out").mkdir()
    with pytest.raises(SystemExit, match=r"2 runs are neither finished in .*out nor packaged in"):
        packager.collect(grid, tmp_path / "out", tmp_path, threads=1)


def test_sweep_wall_time_counts_overlapping_sessions_once(packager):
    sessions = [{"started_unix": 0.0, "wall_time_s": 10.0}, {"started_unix": 2.0, "wall_time_s": 12.0},
                {"started_unix": 100.0, "wall_time_s": 5.0}]
    assert packager._sweep_wall_time(sessions) == 19.0
    assert packager._sweep_wall_time([]) == 0.0


def test_packaging_that_trains_nothing_keeps_the_machine_record(tmp_path, packager):
    """Every run carried over: the record keeps the machine (and threads) that trained them."""
    grid, dest = tmp_path / "grid.toml", tmp_path / "data"
    dest.mkdir()
    grid.write_text(GRID.replace("[256, 512]", "256"))
    packager.train_grid(grid, tmp_path / "first", threads=1)
    packager.collect(grid, tmp_path / "first", dest, threads=1)
    record = json.loads((dest / "sweep_runs.json").read_text())  # as packaged on another machine
    record["machine"] = {"cpu": "the training machine", "cpu_count": 64, "threads": 8, "platform": "elsewhere"}
    record["commands"][1] = record["commands"][1].replace("--threads 1", "--threads 8")
    (dest / "sweep_runs.json").write_text(json.dumps(record, indent=2) + "\n")
    before = {name: (dest / name).read_bytes() for name in ("sweep_runs.csv", "sweep_runs.json")}
    (tmp_path / "nothing").mkdir()
    packed = packager.collect(grid, tmp_path / "nothing", dest, threads=1)
    assert packed["machine"] == record["machine"]
    assert {name: (dest / name).read_bytes() for name in before} == before
