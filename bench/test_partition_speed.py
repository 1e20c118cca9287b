"""Partitioner speed: the exact DP on a 1,000-layer chain (target <= 1 s) and the paper model.

Run with ``pytest bench/test_partition_speed.py``; pytest-benchmark reports the timings.
"""

from __future__ import annotations

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tinysplit.model import Graph, Layer, load_model
from tinysplit.partition import partition

#: Output channels cycled by the synthetic chain's convolutions: 1,000 layers then need 26
#: ESP32-S3-N8R8 boards (weights ~190 MB in all).
HEAVY_CHANNELS = (112, 144, 176)
#: Tiny channels: every sub-range fits one board, so the DP sees all ~500,000 candidate stages.
LIGHT_CHANNELS = (8,)


def chain(layers: int, channels: tuple[int, ...], size: int = 8) -> Graph:
    """Alternating 3x3 Conv / Relu layers with zero-stride (unallocated) weights."""
    cin = channels[-1]
    prev, out = "input", []
    for i in range(layers):
        name = f"t{i}"
        if i % 2:
            out.append(
                Layer(
                    index=i,
                    name=f"relu{i}",
                    op="Relu",
                    node_inputs=(prev,),
                    output=name,
                    shape=(1, cin, size, size),
                )
            )
        else:
            cout = channels[(i // 2) % len(channels)]
            params = {
                f"w{i}": np.broadcast_to(np.float32(0), (cout, cin, 3, 3)),
                f"b{i}": np.broadcast_to(np.float32(0), (cout,)),
            }
            out.append(
                Layer(
                    index=i,
                    name=f"conv{i}",
                    op="Conv",
                    node_inputs=(prev, *params),
                    output=name,
                    shape=(1, cout, size, size),
                    attrs={"group": 1},
                    params=params,
                    macs=cout * size * size * cin * 9,
                )
            )
            cin = cout
        prev = name
    return Graph(
        name=f"chain{layers}",
        input_name="input",
        input_shape=(1, channels[-1], size, size),
        layers=tuple(out),
        output_name=prev,
        source_hash="0" * 64,
    )


@pytest.fixture(scope="module")
def paper_graph() -> Graph:
    return load_model("paper")


@pytest.mark.parametrize("objective", ["bottleneck", "bytes"])
@pytest.mark.parametrize("devices", [None, 32], ids=["auto", "32"])
@pytest.mark.parametrize("channels", [HEAVY_CHANNELS, LIGHT_CHANNELS], ids=["heavy", "light"])
def test_optimal_1000_layer_chain(
    benchmark: BenchmarkFixture, channels: tuple[int, ...], devices: int | None, objective: str
) -> None:
    g = chain(1000, channels)
    g.boundaries  # noqa: B018  (graph-side cache, built once per model, not partition work)
    plan = benchmark.pedantic(
        partition,
        args=(g,),
        kwargs={"devices": devices, "objective": objective},
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
    benchmark.extra_info.update(devices=plan.devices, target_s=1.0)
    assert plan.devices <= 32


@pytest.mark.parametrize("strategy", ["paper", "greedy", "optimal"])
def test_paper_model(benchmark: BenchmarkFixture, paper_graph: Graph, strategy: str) -> None:
    plan = benchmark(partition, paper_graph, strategy=strategy, devices=5, profile="paper")
    benchmark.extra_info.update(devices=plan.devices, max_sent_bytes=plan.max_sent_bytes)
    assert plan.devices == 5
