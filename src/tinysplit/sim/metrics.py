"""Summaries of a simulated (or measured) run: latency, throughput, network vs compute, energy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinysplit.sim.energy import STATES
from tinysplit.sim.pipeline import SimResult


def summarize(result: SimResult) -> dict[str, Any]:
    """Figures of one run, in seconds, bytes, joules and inferences per second.

    Keys: ``inferences``, ``completed``, ``failed``, ``latency_s`` (p50, p95, mean over completed
    inferences, from injection to the result leaving the pipeline, see :func:`output_times`),
    ``throughput_per_s`` (:func:`steady_rate_per_s` of the completions), ``network_s`` and
    ``inference_s`` (summed transfer and compute time, the paper's Figure 5a), ``stages`` and
    ``links`` (per stage and per stage boundary, replicas pooled), ``energy_j`` (per physical
    board by state) and ``energy_per_inference_j``.
    """
    n = len(result.plan.stages)
    done = result.completed
    out_end = output_times(result)
    latencies = np.array([out_end[i] - result.injected_s[i] for i in done])
    throughput = steady_rate_per_s(np.sort(np.array([out_end[i] for i in done])))
    stages = []
    for k in range(1, n + 1):
        events = [e for e in result.stage_events if e.stage == k]
        stages.append(
            {
                "stage": k,
                "receive_s": nanmean([e.receive_end_s - e.receive_start_s for e in events]),
                "inference_s": nanmean([e.inference_end_s - e.inference_start_s for e in events]),
                "send_s": nanmean([e.send_end_s - e.send_start_s for e in events]),
            }
        )
    links = []
    for k in range(1, n):
        moves = [e for e in result.link_events if e.stage == k]
        transfers = len(moves)
        failures = sum(not e.result.delivered for e in moves)
        links.append(
            {
                "link": f"{k}->{k + 1}",
                "rssi_dbm": result.rssi_dbm[k - 1],
                "bytes": result.plan.stages[k - 1].outgoing.size_bytes,
                "transfers": transfers,
                "failures": failures,
                "failure_rate": failures / transfers if transfers else math.nan,
                "mean_transfer_s": nanmean([e.result.duration_s for e in moves]),
                "app_frames": sum(e.result.app_frames for e in moves),
                "retransmissions": sum(e.result.retransmissions for e in moves),
                "drops": sum(e.result.drops for e in moves),
                "link_retries": sum(e.result.link_retries for e in moves),
                "bytes_on_air": sum(e.result.bytes_on_air for e in moves),
                "setup_s": result.setup_s[k - 1],
            }
        )
    network_s = sum(e.result.duration_s for e in result.link_events)
    inference_s = sum(
        e.inference_end_s - e.inference_start_s
        for e in result.stage_events
        if not math.isnan(e.inference_end_s)
    )
    energy = [{s: board.get(s, 0.0) for s in STATES} for board in result.energy_j]
    total_j = sum(sum(board.values()) for board in energy)
    return {
        "inferences": result.config.inferences,
        "completed": len(done),
        "failed": len(result.failed),
        "duration_s": result.duration_s,
        "latency_s": {
            "p50": _pct(latencies, 50),
            "p95": _pct(latencies, 95),
            "mean": nanmean(list(latencies)),
        },
        "throughput_per_s": throughput,
        "network_s": network_s,
        "inference_s": inference_s,
        "network_to_inference": network_s / inference_s if inference_s else math.nan,
        "stages": stages,
        "links": links,
        "energy_j": energy,
        "energy_total_j": total_j,
        "energy_per_inference_j": total_j / len(done) if done else math.nan,
    }


def output_times(result: SimResult) -> dict[int, float]:
    """When each inference's result left the pipeline (s): the in-order release the simulator
    records (``SimResult.output_s``), else the end of the last stage's inference (NaN: lost)."""
    if result.output_s:
        return dict(enumerate(result.output_s))
    n = len(result.plan.stages)
    return {e.inference: e.inference_end_s for e in result.stage_events if e.stage == n}


def nanmean(values: list[float]) -> float:
    """Mean of the values that are not NaN (NaN when none is)."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


#: Results left out at each end of a run for its steady rate, as a fraction of them.
STEADY_TRIM = 0.25


def steady_rate_per_s(completions_s: np.ndarray) -> float:
    """Steady-state results per second from sorted completion times (s); NaN for fewer than 3.

    The mean rate between the results that leave once the pipeline is full and before it
    drains: a quarter of the results is left out at each end (with at least 8 results; else
    only the first, while the pipeline fills). Not a median gap: replicated stages release
    results in bursts, whose median gap is far shorter than the period.
    """
    n = len(completions_s)
    if n < 3:
        return math.nan
    skip = int(n * STEADY_TRIM) if n >= 8 else 0
    first, last = (skip, n - 1 - skip) if skip else (1, n - 1)
    span = float(completions_s[last] - completions_s[first])
    return (last - first) / span if span > 0 else math.nan


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan


#: Steady periods per throughput window: windows hold several results, so one result more or
#: less changes a window's rate by a fifth at most.
PERIODS_PER_WINDOW = 5.0


def completion_times(result: SimResult) -> list[float]:
    """Times (s) at which results left the pipeline, in order."""
    return sorted(t for t in output_times(result).values() if not math.isnan(t))


def throughput_windows(
    result: SimResult, *, windows: int = 5, min_window_s: float = 10.0
) -> list[tuple[int, float]]:
    """MLPerf Tiny style measurement windows of a back-to-back stream.

    After the first result (the pipeline is full), the stream is cut into ``windows`` windows of
    ``max(min_window_s, PERIODS_PER_WINDOW x steady period)`` seconds each, so every window holds
    several results; returns (results in window, window seconds) per window. Fewer windows come
    back when the stream is too short.
    """
    done = completion_times(result)
    if len(done) < 3:
        return []
    period = float(np.median(np.diff(done[1:])))
    width = max(min_window_s, PERIODS_PER_WINDOW * period)
    start = done[0]
    out = []
    for i in range(windows):
        lo, hi = start + i * width, start + (i + 1) * width
        if hi > done[-1]:
            break
        out.append((sum(lo < t <= hi for t in done), width))
    return out


def stream_length(
    period_s: float, stages: int, *, windows: int = 5, min_window_s: float = 10.0
) -> int:
    """Inferences a back-to-back stream needs for ``windows`` windows at steady ``period_s``."""
    width = max(min_window_s, PERIODS_PER_WINDOW * period_s)
    return math.ceil(windows * width / period_s) + stages + 2
