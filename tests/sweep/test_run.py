"""Running sweeps: every point once, resume, determinism across jobs, failures, one archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sweep.conftest import small_options
from tests.sweep.runners import FAILING_SEED, fail_seed_1
from tinysplit.errors import ConfigError
from tinysplit.results import load
from tinysplit.sweep import GridSpec, LocalExecutor, SweepPoint, grid_from_options, run_sweep
from tinysplit.sweep.point import TaskBuilder, run_point
from tinysplit.sweep.records import result_from_dict, result_to_dict

SERIAL = LocalExecutor(1)


def _records(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((out / "points").glob("*.json"))}


def test_every_point_runs_once_into_one_loadable_archive(
    small_grid: GridSpec, tmp_path: Path
) -> None:
    outcome = run_sweep(small_grid, tmp_path / "sweep", executor=SERIAL)
    names = [p.name for p in small_grid.points()]
    assert outcome.ran == names
    assert outcome.skipped == [] and outcome.failed == {} and outcome.complete
    assert outcome.archive is not None and outcome.archive.parent == tmp_path / "sweep"
    archive = load(outcome.archive)
    assert archive.complete
    summary = archive.summary
    assert list(summary["case"]) == [f"sweep[{n}]" for n in names]
    assert list(summary["extra_params_window"]) == [p.window for p in small_grid.points()]
    assert list(summary["extra_params_transport"]) == [p.transport for p in small_grid.points()]
    assert list(summary["seed"]) == [p.seed for p in small_grid.points()]
    assert (summary["completed"] == 3).all()
    assert [r["status"] for r in outcome.rows] == ["done"] * len(names)
    assert all(r["throughput_per_s"] > 0 and r["failed"] == 0 for r in outcome.rows)


def test_rerun_runs_only_missing_points_and_gives_the_same_archive(
    small_grid: GridSpec, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    first = run_sweep(small_grid, out, executor=SERIAL)
    again = run_sweep(small_grid, out, executor=SERIAL)
    assert again.ran == [] and len(again.skipped) == len(first.ran)
    victim = small_grid.points()[5]
    (out / "points" / f"{victim.name}.json").unlink()
    third = run_sweep(small_grid, out, executor=SERIAL)
    assert third.ran == [victim.name]
    assert first.archive is not None and third.archive is not None
    assert first.archive != third.archive  # archives are never overwritten
    a, b = load(first.archive), load(third.archive)
    for table in ("summary", "inferences", "links", "energy"):
        assert getattr(a, table).equals(getattr(b, table)), table


def test_records_do_not_depend_on_jobs(small_grid: GridSpec, tmp_path: Path) -> None:
    run_sweep(small_grid, tmp_path / "one", executor=LocalExecutor(1))
    run_sweep(small_grid, tmp_path / "two", executor=LocalExecutor(2))
    one, two = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert len(one) == len(small_grid.points())
    assert one == two


def test_a_failing_point_keeps_the_others(small_grid: GridSpec, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    outcome = run_sweep(small_grid, out, executor=LocalExecutor(2), runner=fail_seed_1)
    bad = [p.name for p in small_grid.points() if p.seed == FAILING_SEED]
    assert sorted(outcome.failed) == sorted(bad)
    assert "ConfigError: point" in outcome.failed[bad[0]]
    assert sorted(outcome.ran) == sorted(p.name for p in small_grid.points() if p.seed != 1)
    assert not outcome.complete
    assert outcome.archive is not None
    archive = load(outcome.archive)
    assert not archive.complete and len(archive.summary) == len(outcome.ran)
    assert {r["status"] for r in outcome.rows if r["point"] in bad} == {"failed"}
    retry = run_sweep(small_grid, out, executor=SERIAL)
    assert sorted(retry.ran) == sorted(bad) and retry.complete
    assert load(retry.archive).complete  # type: ignore[arg-type]


class _StopAfter:
    """Progress that presses Ctrl-C after ``n`` points."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: list[str] = []

    def start(self, total: int, finished: int) -> None:
        self.total = total

    def advance(self, point: SweepPoint, error: str | None) -> None:
        self.seen.append(point.name)
        if len(self.seen) == self.n:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_what_finished(small_grid: GridSpec, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    outcome = run_sweep(small_grid, out, executor=SERIAL, progress=_StopAfter(3))
    assert outcome.interrupted and len(outcome.ran) == 3
    assert len(_records(out)) == 3
    assert outcome.archive is not None and not load(outcome.archive).complete
    assert [r["status"] for r in outcome.rows].count("not run") == len(small_grid.points()) - 3
    resumed = run_sweep(small_grid, out, executor=SERIAL)
    assert len(resumed.ran) == len(small_grid.points()) - 3 and resumed.complete


def test_a_bigger_grid_extends_the_sweep(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    run_sweep(grid_from_options(small_options(seed="0..1")), out, executor=SERIAL)
    bigger = run_sweep(grid_from_options(small_options(seed="0..3")), out, executor=SERIAL)
    assert bigger.ran == ["ble_paper_w6_paper_chain_s2", "ble_paper_w6_paper_chain_s3"]
    assert len(bigger.skipped) == 2


def test_other_shared_options_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    run_sweep(grid_from_options(small_options()), out, executor=SERIAL)
    with pytest.raises(ConfigError, match="holds a sweep with inferences=3, not 4"):
        run_sweep(grid_from_options(small_options(inferences=4)), out, executor=SERIAL)


def test_a_damaged_record_names_its_file(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    spec = grid_from_options(small_options())
    run_sweep(spec, out, executor=SERIAL)
    record = out / "points" / f"{spec.points()[0].name}.json"
    record.write_text("{")
    with pytest.raises(ConfigError, match=r"is damaged .* delete it to run the point again"):
        run_sweep(spec, out, executor=SERIAL)


def test_bad_options_stop_before_any_point_runs(tmp_path: Path) -> None:
    # the paper's layout has RSSIs for 5 boards, not 3
    spec = grid_from_options(small_options(positions="paper", seed="0..3"))
    with pytest.raises(ConfigError, match="3 boards have 2 links"):
        run_sweep(spec, tmp_path / "sweep", executor=SERIAL)
    assert not list((tmp_path / "sweep" / "points").glob("*.json"))


def test_run_records_round_trip_exactly() -> None:
    spec = grid_from_options(small_options(mode="paper", window="16"))
    task = TaskBuilder(spec).task(spec.points()[0])
    plain = run_point(task)
    text = json.dumps(plain)
    again = result_to_dict(result_from_dict(json.loads(text)))
    assert json.dumps(again) == text


RSSI = """\
boards = ["a", "b", "c", "d"]
rssi_dbm = [
  ["nan", -85.0, -60.0, -70.0],
  [-85.0, "nan", -88.0, -55.0],
  [-60.0, -88.0, "nan", -65.0],
  [-70.0, -55.0, -65.0, "nan"],
]
"""


def test_chain_and_rssi_placements_share_one_matrix(tmp_path: Path) -> None:
    pytest.importorskip("tinysplit.partition.placement")
    matrix = tmp_path / "rssi.toml"
    matrix.write_text(RSSI)
    spec = grid_from_options(small_options(rssi=str(matrix), placement="chain,rssi"))
    outcome = run_sweep(spec, tmp_path / "sweep", executor=SERIAL)
    assert outcome.complete and outcome.archive is not None
    summary = load(outcome.archive).summary
    assert list(summary["extra_params_placement"]) == ["chain", "rssi"]
    chain, placed = (json.loads(b) for b in summary["extra_boards"])
    assert chain == [[0], [1], [2]]
    assert len(placed) == 3 and len({b for (b,) in placed}) == 3
