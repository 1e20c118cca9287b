"""Transfer time vs signal strength and vs bytes sent (Figures 6, 7 and 8).

Both cases measure one radio link in isolation, as the paper's Figure 8 did with two boards moved
apart: ``make_link(transport, --profile).transfer`` of one tensor under the session's window
(``--window``) and mode (``--mode``), each point the mean over ``SEEDS`` seeds (``--seed`` + s;
the same seeds at every point, so the points differ by the swept quantity, not by the draws).
Lost tensors (``paper`` mode) have no transfer time: they are counted in ``delivered`` and left
out of the means. Wi-Fi is measured on one hop (a station and the SoftAP).

* ``test_latency_vs_rssi`` (Figure 8): the paper's 200,704 B tensor at -50 to -90 dBm in 5 dB
  steps, one benchmark round per level. ``extra_info["pearson_r"]`` correlates the mean time with
  the RSSI in dBm (negative: a stronger signal sends faster; the paper plots |RSSI| and reports
  +0.99 across its pipeline's links). Asserted: the time does not fall as the signal weakens
  (beyond 3 standard errors of the seeds' means) and the weakest level is slower than the
  strongest.
* ``test_latency_vs_bytes`` (Figure 6): every distinct size of a tensor the model can be cut at
  (Figure 10's intermediates), at the median RSSI of the pipeline's links, one round per size.
  ``extra_info["pearson_r"]`` correlates time with bytes (asserted positive).
  ``extra_info["pipeline_links"]`` adds the paper's own view from one pipeline run of the session
  plan (``bench.run``): per link its bytes, RSSI and mean transfer time, with the correlations of
  time with bytes (Figure 6, the paper's 0.56) and with RSSI (Figure 7).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from pytest_benchmark.fixture import BenchmarkFixture

from tinysplit.links import LinkConditions, Mode, make_link
from tinysplit.model import load_model
from tinysplit.pytest_plugin import Bench
from tinysplit.sim.metrics import summarize

TENSOR_BYTES = 200_704  # 28 x 28 x 128 int16 values, the paper's Figure 8 tensor
RSSI_LEVELS = tuple(float(r) for r in range(-50, -95, -5))
SEEDS = 5


def test_latency_vs_rssi(
    benchmark: BenchmarkFixture, bench: Bench, transport: str, window: int
) -> None:
    points = []

    def one_level(k: int) -> float:
        points.append(_point(bench, transport, window, TENSOR_BYTES, RSSI_LEVELS[k]))
        return float(points[-1]["mean_s"])

    bench.timed(benchmark, len(RSSI_LEVELS), one_level)
    means = np.array([p["mean_s"] for p in points])
    r = _pearson(means, np.array(RSSI_LEVELS))
    benchmark.extra_info.update(
        transport=transport,
        tensor_bytes=TENSOR_BYTES,
        window=window,
        mode=bench.options.mode,
        seeds=SEEDS,
        levels=points,
        pearson_r=r,
    )
    _assert_non_decreasing(points, "rssi_dbm")
    assert points[-1]["mean_s"] > points[0]["mean_s"], "a weak signal must cost time"


def test_latency_vs_bytes(
    benchmark: BenchmarkFixture, bench: Bench, transport: str, window: int
) -> None:
    graph = load_model(bench.options.model)
    sizes = sorted({graph.boundary_bytes(c) for c in graph.cut_points})
    plan = bench.plan(transport)
    result = bench.run(f"signal_bytes[{transport}]", bench.config(transport, plan), plan)
    links = summarize(result)["links"]
    rssi = float(np.median(result.rssi_dbm)) if result.rssi_dbm else -60.0
    points = []

    def one_size(k: int) -> float:
        points.append(_point(bench, transport, window, sizes[k], rssi))
        return float(points[-1]["mean_s"])

    bench.timed(benchmark, len(sizes), one_size)
    means = np.array([p["mean_s"] for p in points])
    r = _pearson(means, np.array(sizes, dtype=float))
    link_s = np.array([link["mean_transfer_s"] for link in links])
    benchmark.extra_info.update(
        transport=transport,
        rssi_dbm=rssi,
        window=window,
        mode=bench.options.mode,
        seeds=SEEDS,
        sizes=points,
        pearson_r=r,
        pipeline_links={
            "links": [
                {k: link[k] for k in ("link", "bytes", "rssi_dbm", "mean_transfer_s")}
                for link in links
            ],
            "pearson_r_bytes": _pearson(link_s, np.array([x["bytes"] for x in links], float)),
            "pearson_r_rssi": _pearson(link_s, np.array([x["rssi_dbm"] for x in links])),
        },
    )
    assert len(points) >= 2, "the model needs at least two cut sizes"
    assert r > 0, f"transfer time must grow with bytes (r = {r})"


def _point(bench: Bench, transport: str, window: int, size: int, rssi: float) -> dict[str, Any]:
    """Send ``size`` bytes at ``rssi`` once per seed: mean time of the delivered transfers."""
    link = make_link(transport, bench.options.profile)
    conditions = LinkConditions(rssi_dbm=rssi, window=window, mode=Mode(bench.options.mode))
    results = [
        link.transfer(size, conditions, np.random.default_rng(bench.options.seed + s))
        for s in range(SEEDS)
    ]
    times = [t.duration_s for t in results if t.delivered]
    assert times, f"no {size} B transfer at {rssi} dBm was delivered (window {window})"
    return {
        "bytes": size,
        "rssi_dbm": rssi,
        "delivered": len(times),
        "mean_s": float(np.mean(times)),
        "sem_s": float(np.std(times, ddof=1) / math.sqrt(len(times))) if len(times) > 1 else 0.0,
        "link_retries": sum(t.link_retries for t in results),
        "retransmissions": sum(t.retransmissions for t in results),
    }


def _assert_non_decreasing(points: list[dict[str, Any]], key: str) -> None:
    """Each point's mean time is at least the previous one's, within the seeds' sampling noise."""
    for a, b in itertools.pairwise(points):
        noise = 3.0 * math.hypot(a["sem_s"], b["sem_s"])
        assert b["mean_s"] >= a["mean_s"] - noise, f"time fell from {key} {a[key]} to {b[key]}"


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation (NaN when either series is constant or too short)."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])
