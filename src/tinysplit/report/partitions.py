"""The data behind the partition comparison (paper vs greedy vs optimal).

``bench/test_partition_strategies.py`` records ``partition[strategy,transport]`` runs (one
inference on an idle pipeline each) and a ``partition_stream[strategy,transport]`` run (a short
back-to-back stream) per strategy; the plans are in the manifest.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tinysplit.report.runs import Runs, parse_case

if TYPE_CHECKING:
    import pandas as pd

#: Strategies in display order (``bench/test_partition_strategies.py``); others follow.
STRATEGY_ORDER = ("paper", "greedy", "optimal", "optimal-bytes", "table-i")


def partition_table(runs: Runs) -> pd.DataFrame:
    """One row per (series, strategy) of the ``partition`` runs.

    Columns: ``series``, ``strategy`` (from the case name), ``devices``, ``cuts`` (1-based last
    layer of every board but the last, ``23,37,49,59``), ``max_sent_bytes`` and ``bytes_sent``
    (largest and summed tensor sent between boards), ``modelled_period_s`` (the plan's slowest
    stage, compute + send), ``latency_p50_s`` (median over the completed inferences of the
    ``partition`` runs), ``throughput_per_s`` (the ``partition_stream`` run's steady-state rate,
    NaN without one) and ``throughput_vs_paper`` (ratio to the ``paper`` strategy of the same
    series).
    """
    import pandas as pd

    from tinysplit.report.transports import case_table

    summary = runs.of("summary", "partition", what="the partition comparison")
    metrics = case_table(runs).set_index(["archive", "case"])
    streams = metrics[metrics["family"] == "partition_stream"]
    rows = []
    for (label, case), group in summary.groupby(["archive", "case"], sort=False):
        _, params = parse_case(str(case))
        strategy = params[0] if params else str(case)
        plan = runs.plan(str(label), str(group["plan"].iloc[0]))
        stages = plan.get("stages") or []
        sent = [int(s["outgoing"]["size_bytes"]) for s in stages[:-1]]
        period = max(
            (float(s["estimated_compute_s"]) + float(s["estimated_send_s"]) for s in stages),
            default=math.nan,
        )
        stream_case = str(case).replace("partition[", "partition_stream[", 1)
        throughput = (
            _float(streams.at[(label, stream_case), "throughput_per_s"])
            if (label, stream_case) in streams.index
            else math.nan
        )
        rows.append(
            {
                "series": str(group["series"].iloc[0]),
                "strategy": strategy,
                "devices": len(stages),
                "cuts": ",".join(str(int(s["last_layer"])) for s in stages[:-1]),
                "max_sent_bytes": max(sent, default=0),
                "bytes_sent": sum(sent),
                "modelled_period_s": period,
                "latency_p50_s": _float(metrics.at[(label, case), "latency_p50_s"]),
                "throughput_per_s": throughput,
            }
        )
    frame = pd.DataFrame(rows)
    paper = frame[frame["strategy"] == "paper"].set_index("series")["throughput_per_s"]
    frame["throughput_vs_paper"] = [
        t / paper[s] if s in paper.index and paper[s] else math.nan
        for s, t in zip(frame["series"], frame["throughput_per_s"], strict=True)
    ]
    others = sorted(set(frame["strategy"]) - set(STRATEGY_ORDER))
    rank = {s: i for i, s in enumerate((*STRATEGY_ORDER, *others))}
    ordered = runs.sort_series(frame.assign(_strategy=frame["strategy"].map(rank)), ["_strategy"])
    return ordered.drop(columns="_strategy")


def _float(value: Any) -> float:
    return float(value)
