"""Sweep speed: points per second of a paper-model grid with 1 and 2 local worker processes."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tinysplit.sweep import LocalExecutor, grid_from_options, run_sweep

#: 3 transports x 4 seeds of the paper's model and split on 5 boards, 20 inferences each.
GRID = {"transport": "ble,wifi,espnow", "seed": "0..3", "inferences": 20}


@pytest.mark.parametrize("jobs", [1, 2])
def test_sweep_points_per_second(benchmark: BenchmarkFixture, jobs: int, tmp_path: Path) -> None:
    """Every round runs the whole grid into a fresh sweep directory (nothing is skipped).

    The time includes starting the worker processes (about a second each on a loaded machine),
    building the plans and writing the archive: the gain of more jobs shows on heavier points.
    """
    benchmark.group = "sweep"
    spec = grid_from_options(GRID)
    counter = itertools.count()

    def fresh() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (Path(tempfile.mkdtemp(dir=tmp_path, prefix=f"r{next(counter)}-")),), {}

    def sweep(out: Path) -> float:
        outcome = run_sweep(spec, out, executor=LocalExecutor(jobs))
        assert outcome.complete and not outcome.failed
        return len(outcome.ran) / outcome.elapsed_s

    rate = benchmark.pedantic(sweep, setup=fresh, rounds=2, iterations=1)
    benchmark.extra_info.update(points=len(spec.points()), jobs=jobs, points_per_s=rate)
