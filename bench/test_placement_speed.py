"""Placement speed: the exact search on 10 boards / 5 stages, and the heuristic on 30 boards.

Run with ``pytest bench/test_placement_speed.py``; pytest-benchmark reports the timings (wall
clock: these cases do not use the ``bench`` fixture, so they are not timed on the device clock).
The link-time tables are built once before timing: the search itself is what is measured.
"""

from __future__ import annotations

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tinysplit.model import load_model
from tinysplit.partition import Plan, partition
from tinysplit.partition.period import SHARED_CHANNEL, boundary_times_s, compute_times_s
from tinysplit.partition.placement import solve
from tinysplit.partition.rssi import rssi_from_positions

CASES = [
    # (boards, replicas, method)
    (10, (1, 1, 1, 1, 1), "exact"),
    (10, (2, 2, 1, 1, 1), "exact"),
    (30, (1, 1, 1, 1, 1), "heuristic"),
    (30, (3, 2, 1, 1, 1), "heuristic"),
]


@pytest.fixture(scope="module")
def paper_plan() -> Plan:
    return partition(load_model("paper"), strategy="paper", devices=5, profile="paper")


@pytest.mark.parametrize("transport", ["ble", "espnow"])
@pytest.mark.parametrize(
    ("boards", "replicas", "method"), CASES, ids=[f"{b}boards-{m}-r{sum(r)}" for b, r, m in CASES]
)
def test_place(
    benchmark: BenchmarkFixture,
    paper_plan: Plan,
    transport: str,
    boards: int,
    replicas: tuple[int, ...],
    method: str,
) -> None:
    benchmark.group = f"placement-{transport}"
    rng = np.random.default_rng(boards)
    rssi = rssi_from_positions(rng.uniform(0, 10.0, (boards, 2)).tolist(), transport, seed=1)
    sizes = [s.outgoing.size_bytes for s in paper_plan.stages[:-1]]
    times = boundary_times_s(sizes, rssi, transport=transport)
    compute = compute_times_s(paper_plan)
    found = benchmark.pedantic(
        solve,
        args=(compute, times, replicas),
        kwargs={"shared_channel": transport in SHARED_CHANNEL, "method": method},
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
    benchmark.extra_info.update(boards=boards, period_s=found.period_s, method=found.method)
    assert found.replicas == replicas
