"""Simulator speed: the event engine against SimPy, and whole pipelines in frames per second."""

from __future__ import annotations

from collections.abc import Generator
from types import ModuleType
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tinysplit.model import load_model
from tinysplit.partition import plan_from_cuts
from tinysplit.partition.paper import TABLE_I_CUTS
from tinysplit.sim import PipelineConfig, simulate
from tinysplit.sim import engine as heapq_engine
from tinysplit.sim.layout import load_layout

simpy = pytest.importorskip("simpy")
BACKENDS = {"heapq": heapq_engine, "simpy": simpy}


def _ping_pong(backend: ModuleType, processes: int = 50, rounds: int = 200) -> float:
    """Processes trading items through stores and a shared resource; returns the end time."""
    env = backend.Environment()
    store = backend.Store(env, capacity=1)
    radio = backend.Resource(env, capacity=1)

    def worker(k: int) -> Generator[Any, Any, None]:
        for _ in range(rounds):
            req = radio.request()
            yield req
            yield env.timeout(0.001 * (1 + k % 3))
            radio.release(req)
            yield store.put(k)
            yield store.get()

    for k in range(processes):
        env.process(worker(k))
    env.run()
    return float(env.now)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_engine_events(benchmark: BenchmarkFixture, backend: str) -> None:
    """10,000 resource cycles, store round trips and timeouts: about 50,000 events."""
    benchmark.group = "engine"
    end = benchmark.pedantic(_ping_pong, args=(BACKENDS[backend],), rounds=5, iterations=1)
    assert end == pytest.approx(_ping_pong(heapq_engine))


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("transport", ["ble", "wifi", "espnow"])
def test_paper_pipeline_100_inferences(
    benchmark: BenchmarkFixture, backend: str, transport: str
) -> None:
    """The paper's model and split, 100 inferences: simulated application frames per second."""
    benchmark.group = f"pipeline-{transport}"
    plan = plan_from_cuts(load_model("paper"), TABLE_I_CUTS, profile="paper")
    layout = load_layout("paper", len(plan.stages))
    config = PipelineConfig(
        transport=transport, mode="paper", window=6, inferences=100, rssi_dbm=layout.rssi_dbm
    )
    result = benchmark.pedantic(
        simulate, args=(plan, config), kwargs={"backend": BACKENDS[backend]}, rounds=3, iterations=1
    )
    frames = sum(e.result.app_frames for e in result.link_events)
    benchmark.extra_info["app_frames"] = frames
    benchmark.extra_info["frames_per_s"] = frames / benchmark.stats.stats.median
    assert len(result.link_events) > 0
