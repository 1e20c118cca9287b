"""Throughput: pipelined steady-state inferences per second, measured like MLPerf Tiny.

Inputs go in back to back; after the pipeline has filled, the stream is cut into 5 windows of at
least 10 s of device time (and at least five steady periods). One round is one window and measures
device seconds per inference in it; the median over the 5 windows is the result, and
``extra_info["throughput_per_s"]`` is its inverse.
"""

from __future__ import annotations

import statistics

from pytest_benchmark.fixture import BenchmarkFixture

from tinysplit.pytest_plugin import Bench
from tinysplit.sim.metrics import throughput_windows


def test_throughput(benchmark: BenchmarkFixture, bench: Bench, transport: str) -> None:
    stream = bench.stream(transport)
    windows = throughput_windows(stream)
    assert len(windows) == 5, "the stream must cover five measurement windows"
    per_inference = [width / count if count else width for count, width in windows]

    bench.timed(benchmark, len(windows), lambda k: per_inference[k])
    throughput = 1.0 / statistics.median(per_inference)
    benchmark.extra_info.update(
        transport=transport,
        throughput_per_s=throughput,
        windows=[{"results": c, "window_s": w} for c, w in windows],
        stream_inferences=stream.config.inferences,
        failures=len(stream.failed),
    )
    bench.report(transport, throughput_per_s=throughput)
