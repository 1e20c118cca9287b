"""The Dask executor, for real on an in-process LocalCluster (skipped without tinysplit[dask])."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.sweep.runners import FAILING_SEED, fail_seed_1
from tinysplit.errors import MissingExtraError
from tinysplit.sweep import DaskExecutor, GridSpec, LocalExecutor, make_executor, run_sweep


def test_dask_gives_the_local_records(small_grid: GridSpec, tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    run_sweep(small_grid, tmp_path / "local", executor=LocalExecutor(1))
    outcome = run_sweep(
        small_grid, tmp_path / "dask", executor=DaskExecutor(jobs=2, processes=False)
    )
    assert sorted(outcome.ran) == sorted(p.name for p in small_grid.points())
    local = {p.name: p.read_text() for p in (tmp_path / "local" / "points").glob("*.json")}
    dask = {p.name: p.read_text() for p in (tmp_path / "dask" / "points").glob("*.json")}
    assert local == dask


def test_dask_failing_point_keeps_the_others(small_grid: GridSpec, tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    executor = DaskExecutor(jobs=2, processes=False)
    outcome = run_sweep(small_grid, tmp_path / "dask", executor=executor, runner=fail_seed_1)
    assert sorted(outcome.failed) == sorted(
        p.name for p in small_grid.points() if p.seed == FAILING_SEED
    )
    assert len(outcome.ran) == len(small_grid.points()) - len(outcome.failed)


def test_missing_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail, as on an install without the extra.
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'tinysplit\[dask\]'"):
        make_executor("dask")
