"""Window sweep: failure rate per device and cumulative send time vs window (Figures 3 and 4).

The paper chose its application window (frames sent before a response is required) as the
largest that lost no tensor in 10 runs. For windows 1..12 this case makes 10 runs of one
inference each (seeds ``--seed`` + run) in ``paper`` mode, whatever ``--mode`` says: only the
paper's protocol, without retransmission, can lose a tensor. BLE sweeps its application window,
ESP-NOW the frames per application acknowledgment; TCP has its own window, so Wi-Fi is skipped.

Failure rate (Figure 3): a failed transfer ends the inference, so in the pipeline a board whose
upstream link failed is never attempted. As the paper did, each sending board's link is measured
in isolation instead: ``make_link(...).transfer`` of that board's tensor at that link's RSSI in
the pipeline run (``bench.config(...).rssi_dbm``, or the layout's path loss), with the generator
the simulated pipeline gives that link for the same seed. Every board is then attempted in every
run, and a pipeline run fails exactly when one of its boards' isolated transfers does (asserted,
so both measurements see the same links). Cumulative send time (Figure 4): the summed transfer
time across the pipeline of the pipeline runs (``bench.run``) that lost nothing.

One benchmark round per window: device seconds = the mean cumulative send time of the window's
10 pipeline runs, failed runs counting their time until the loss. ``extra_info["windows"]`` holds
per window the failure rate of each sending board, the failure-free runs and their mean
cumulative send time. Asserted: with BLE no board's failure rate decreases as the window grows
(its host buffer pool overflows); with ESP-NOW, where each acknowledgment costs an exchange,
the cumulative send time does not grow with the window beyond the runs' sampling noise.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tinysplit.links import LinkConditions, Mode, make_link
from tinysplit.pytest_plugin import Bench
from tinysplit.sim.metrics import summarize

WINDOWS = range(1, 13)
RUNS = 10


def test_window_sweep(benchmark: BenchmarkFixture, bench: Bench, transport: str) -> None:
    if transport == "wifi":
        pytest.skip("TCP has its own window")
    plan = bench.plan(transport)
    senders = len(plan.stages) - 1
    if not senders:
        pytest.skip("a single board sends nothing")
    sizes = [plan.stages[k].outgoing.size_bytes for k in range(senders)]
    link = make_link(transport, bench.options.profile)
    rows: list[dict[str, Any]] = []
    rssi: list[float] = []

    def one_window(k: int) -> float:
        window = WINDOWS[k]
        failed = np.zeros((RUNS, senders), dtype=bool)
        totals, clean = [], []
        for run in range(RUNS):
            seed = bench.options.seed + run
            config = bench.config(
                transport, plan, mode=Mode.PAPER, window=window, inferences=1, seed=seed
            )
            result = bench.run(f"window_sweep[{transport}]", config, plan, window=window, seed=seed)
            for device in range(senders):
                conditions = LinkConditions(
                    rssi_dbm=result.rssi_dbm[device], window=window, mode=Mode.PAPER
                )
                rng = np.random.default_rng([seed, device])  # the pipeline's link generator
                failed[run, device] = not link.transfer(sizes[device], conditions, rng).delivered
            lost = bool(result.failed)
            assert lost == failed[run].any(), (window, seed, failed[run], result.failed)
            totals.append(summarize(result)["network_s"])
            if not lost:
                clean.append(totals[-1])
        rssi[:] = result.rssi_dbm
        rows.append(
            {
                "window": window,
                "failure_rate": failed.mean(axis=0).tolist(),
                "failed_runs": int(failed.any(axis=1).sum()),
                "failure_free_runs": len(clean),
                "cumulative_send_s": float(np.mean(clean)) if clean else math.nan,
                "cumulative_send_sem_s": _sem(clean),
                "mean_send_s_all_runs": float(np.mean(totals)),
            }
        )
        return float(np.mean(totals))

    bench.timed(benchmark, len(WINDOWS), one_window)
    rates = np.array([row["failure_rate"] for row in rows])  # windows x sending boards
    benchmark.extra_info.update(
        transport=transport,
        mode=str(Mode.PAPER),
        runs_per_window=RUNS,
        bytes_sent=sizes,
        rssi_dbm=rssi,
        windows=rows,
        largest_safe_window=max(
            (row["window"] for row in rows if row["failed_runs"] == 0), default=0
        ),
    )
    assert len(rows) == len(WINDOWS)
    if transport == "ble":
        for device in range(senders):
            curve = rates[:, device].tolist()
            assert curve == sorted(curve), f"device {device + 1} failure rate by window: {curve}"
    else:
        sweep = [row for row in rows if row["failure_free_runs"]]
        assert len(sweep) >= 2, "too few windows without failures to compare"
        for a, b in itertools.pairwise(sweep):
            noise = 3.0 * math.hypot(a["cumulative_send_sem_s"], b["cumulative_send_sem_s"])
            assert b["cumulative_send_s"] <= a["cumulative_send_s"] + noise, (a, b)
        assert sweep[-1]["cumulative_send_s"] < sweep[0]["cumulative_send_s"]


def _sem(values: list[float]) -> float:
    """Standard error of the mean (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))
