"""Current draw and energy: mean current per board and energy per inference by state.

Uses the same back-to-back stream as the throughput case. One round per completed inference
measures the device time between consecutive results; ``extra_info`` holds, per board, the mean
current (mA at 3.3 V) and the energy per inference split into idle, inference, radio TX and RX.
"""

from __future__ import annotations

import numpy as np
from pytest_benchmark.fixture import BenchmarkFixture

from tinysplit.links.calibration import section
from tinysplit.pytest_plugin import Bench
from tinysplit.sim.metrics import completion_times, summarize


def test_energy(benchmark: BenchmarkFixture, bench: Bench, transport: str) -> None:
    stream = bench.stream(transport)
    summary = summarize(stream)
    gaps = np.diff(completion_times(stream)).tolist()
    assert gaps, "the stream must complete at least two inferences"

    bench.timed(benchmark, len(gaps), lambda k: gaps[k])
    volts = float(section("power")["supply_v"])
    done = summary["completed"]
    boards = [
        {
            "board": k + 1,
            "mean_current_ma": sum(energy.values()) / (volts * stream.duration_s) * 1e3,
            "energy_per_inference_j": {s: e / done for s, e in energy.items()},
        }
        for k, energy in enumerate(summary["energy_j"])
    ]
    benchmark.extra_info.update(
        transport=transport,
        energy_per_inference_j=summary["energy_per_inference_j"],
        boards=boards,
    )
    bench.report(transport, energy_per_inference_j=summary["energy_per_inference_j"])
    assert summary["energy_per_inference_j"] > 0
