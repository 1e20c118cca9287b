"""Latency: end-to-end time of one inference through the pipeline and its per-board breakdown.

One round is one inference on an idle pipeline (seed = ``--seed`` + round), timed on the device
clock: injection at board 1 until the result leaves the last board. A lost inference (paper mode)
counts the time until the loss and is reported in ``failures``. ``extra_info`` holds the paper's
Figure 5: network vs inference time and send / receive / inference per board.
"""

from __future__ import annotations

import numpy as np
from pytest_benchmark.fixture import BenchmarkFixture

from tinysplit.pytest_plugin import Bench
from tinysplit.sim.metrics import nanmean, summarize


def test_latency(benchmark: BenchmarkFixture, bench: Bench, transport: str) -> None:
    plan = bench.plan(transport)
    summaries = []

    def one_inference(k: int) -> float:
        config = bench.config(transport, plan, inferences=1, seed=bench.options.seed + k)
        result = bench.run(f"latency[{transport}]", config, plan, round=k)
        summary = summarize(result)
        summaries.append(summary)
        latency = summary["latency_s"]["p50"]
        return float(latency) if summary["completed"] else result.duration_s

    bench.timed(benchmark, bench.options.inferences, one_inference)
    done = [s for s in summaries if s["completed"]]
    latencies = [s["latency_s"]["p50"] for s in done]
    network = sum(s["network_s"] for s in summaries)
    compute = sum(s["inference_s"] for s in summaries)
    stages = [
        {
            key: nanmean([s["stages"][k][key] for s in done])
            for key in ("receive_s", "inference_s", "send_s")
        }
        for k in range(len(plan.stages))
    ]
    failures = sum(s["failed"] for s in summaries)
    benchmark.extra_info.update(
        transport=transport,
        network_s=network,
        inference_s=compute,
        network_to_inference=network / compute if compute else float("nan"),
        stages=stages,
        failures=failures,
        links=[
            {
                k: link[k]
                for k in (
                    "link",
                    "bytes",
                    "rssi_dbm",
                    "app_frames",
                    "retransmissions",
                    "drops",
                    "link_retries",
                )
            }
            for link in summaries[-1]["links"]
        ],
    )
    bench.report(
        transport,
        latency_p50_s=float(np.percentile(latencies, 50)) if latencies else float("nan"),
        latency_p95_s=float(np.percentile(latencies, 95)) if latencies else float("nan"),
        network_to_inference=benchmark.extra_info["network_to_inference"],
        failures=failures,
    )
    assert len(summaries) == bench.options.inferences
    assert compute > 0
