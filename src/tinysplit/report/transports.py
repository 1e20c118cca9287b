"""The data behind the transport comparison: latency, throughput, energy, current, timeline.

Pure pandas: each function takes :class:`~tinysplit.report.runs.Runs` and returns a small frame
with one row per series (or per series and board); it raises
:class:`~tinysplit.report.runs.MissingDataError` when the archives lack the runs it needs.
Latency figures come from the ``latency[...]`` runs (one inference on an idle pipeline), the
steady-state figures (throughput, energy, current, timeline) from the ``stream[...]`` runs
(inputs back to back, ``bench/test_throughput.py`` and ``bench/test_energy.py``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tinysplit.report.runs import MissingDataError, Runs

if TYPE_CHECKING:
    import pandas as pd

#: Energy states in display order (``energy.csv``); others follow, sorted.
STATE_ORDER = ("idle", "inference", "radio_tx", "radio_rx")
#: Scribe activities of the timeline, in drawing order.
ACTIVITIES = ("receive", "inference", "send")


def case_table(runs: Runs) -> pd.DataFrame:
    """:func:`tinysplit.results.compare.case_metrics` of every archive, with ``archive``,
    ``family`` and ``series`` columns (one row per case of each archive)."""
    import pandas as pd

    from tinysplit.results.compare import case_metrics

    frames = [
        case_metrics(archive).assign(archive=label)
        for label, archive in zip(runs.labels, runs.archives, strict=True)
    ]
    metrics = pd.concat(frames, ignore_index=True)
    keys = runs.cases[["archive", "case", "family", "series"]]
    return metrics.merge(keys, on=["archive", "case"], how="left")


def transport_table(runs: Runs) -> pd.DataFrame:
    """The transport comparison, one row per series (NaN where a family is missing).

    Columns: ``series``, ``transport``; from the ``latency`` runs ``latency_p50_s``,
    ``latency_p95_s`` (over every completed inference), ``network_to_inference`` and
    ``failure_rate``; from the ``stream`` runs ``throughput_per_s`` (steady state, the
    summary's steady rate between fill and drain) and ``energy_per_inference_j``.

    Raises:
        MissingDataError: neither ``latency`` nor ``stream`` runs.
    """
    import pandas as pd

    table = case_table(runs)
    latency = table[table["family"] == "latency"]
    stream = table[table["family"] == "stream"]
    if latency.empty and stream.empty:
        raise MissingDataError(
            "the transport comparison needs latency[...] or stream[...] runs; the archive has none"
        )
    rows = []
    for series in runs.series:
        lat = latency[latency["series"] == series]
        st = stream[stream["series"] == series]
        if lat.empty and st.empty:
            continue
        first = lat if not lat.empty else st
        rows.append(
            {
                "series": series,
                "transport": str(first["transport"].iloc[0]),
                "latency_p50_s": _one(lat, "latency_p50_s"),
                "latency_p95_s": _one(lat, "latency_p95_s"),
                "network_to_inference": _one(lat, "network_to_inference"),
                "failure_rate": _one(lat, "failure_rate"),
                "throughput_per_s": _one(st, "throughput_per_s"),
                "energy_per_inference_j": _one(st, "energy_per_inference_j"),
            }
        )
    return pd.DataFrame(rows)


def _one(rows: pd.DataFrame, column: str) -> float:
    """The value of the series' one case (the mean if a series had several such cases)."""
    values = rows[column].dropna()
    return float(values.mean()) if len(values) else math.nan


def energy_by_state(runs: Runs) -> pd.DataFrame:
    """Energy per completed inference of all boards, split by state (``stream`` runs).

    One row per (series, state): ``energy_per_inference_j`` = the state's energy summed over
    boards and runs / completed inferences. The states add up to the summary's
    ``energy_per_inference_j``.
    """
    what = "energy per inference by state"
    energy = runs.of("energy", "stream", what=what)
    summary = runs.of("summary", "stream", what=what)
    completed = summary.groupby("series", sort=False)["completed"].sum()
    states = energy[energy["state"] != "total"]
    sums = states.groupby(["series", "state"], sort=False)["energy_j"].sum().reset_index()
    sums["energy_per_inference_j"] = [
        e / completed[s] if completed[s] else math.nan
        for s, e in zip(sums["series"], sums["energy_j"], strict=True)
    ]
    return _ordered(sums.drop(columns="energy_j"), runs, ["state"])


def current_by_state(runs: Runs) -> pd.DataFrame:
    """Mean current of each board by state over the ``stream`` runs.

    One row per (series, board, state): ``current_ma``, the board's mean current
    (``mean_current_ma`` of its ``total`` row in ``energy.csv``) times the state's share of the
    board's energy. ``idle`` is the idle current over the whole run, the other states the extra
    current while busy, so a board's states add up to its mean current. Averaged over runs.
    """
    import pandas as pd

    energy = runs.of("energy", "stream", what="current by state per board")
    keys = ["archive", "case", "run", "board"]
    totals = energy[energy["state"] == "total"].set_index(keys)
    rows = []
    for _, row in energy[energy["state"] != "total"].iterrows():
        total = totals.loc[tuple(row[k] for k in keys)]
        share = row["energy_j"] / total["energy_j"] if total["energy_j"] else math.nan
        rows.append(
            {
                "series": row["series"],
                "run": int(row["run"]),
                "board": int(row["board"]),
                "state": str(row["state"]),
                "current_ma": float(total["mean_current_ma"]) * share,
            }
        )
    frame = pd.DataFrame(rows)
    mean = frame.groupby(["series", "board", "state"], sort=False)["current_ma"].mean()
    return _ordered(mean.reset_index(), runs, ["board", "state"])


def timeline(runs: Runs, *, inferences: int = 4) -> pd.DataFrame:
    """A Gantt chart of the first ``inferences`` inferences of each series' first stream run.

    One row per (series, inference, board, activity) with an event: ``activity`` is
    ``receive``, ``inference`` or ``send``; ``start_s`` and ``end_s`` are seconds since the
    first of these inferences was injected (``inferences.csv``).
    """
    import pandas as pd

    inf = runs.of("inferences", "stream", what="the pipeline timeline")
    rows = []
    for series, group in inf.groupby("series", sort=False):
        first = group[(group["archive"] == group["archive"].iloc[0])]
        first = first[
            (first["case"] == first["case"].iloc[0]) & (first["run"] == first["run"].min())
        ]
        some = first[first["inference"] < inferences]
        t0 = float(some["injected_s"].min())
        for event in some.itertuples(index=False):
            for activity in ACTIVITIES:
                start = float(getattr(event, f"{activity}_start_s"))
                end = float(getattr(event, f"{activity}_end_s"))
                if math.isnan(start) or math.isnan(end):
                    continue
                rows.append(
                    {
                        "series": series,
                        "inference": int(event.inference),
                        "board": int(event.stage),
                        "activity": activity,
                        "start_s": start - t0,
                        "end_s": end - t0,
                    }
                )
    if not rows:
        raise MissingDataError("the pipeline timeline needs stream[...] runs with events")
    return _ordered(pd.DataFrame(rows), runs, ["inference", "board"])


def _ordered(frame: pd.DataFrame, runs: Runs, keys: list[str]) -> pd.DataFrame:
    """Rows in the runs' series order, then ``keys`` (``state`` in :data:`STATE_ORDER`)."""
    if "state" not in keys:
        return runs.sort_series(frame, keys)
    others = sorted(set(frame["state"]) - set(STATE_ORDER))
    rank = {s: i for i, s in enumerate((*STATE_ORDER, *others))}
    ordered = runs.sort_series(frame.assign(_state=frame["state"].map(rank)),
                               [k if k != "state" else "_state" for k in keys])  # fmt: skip
    return ordered.drop(columns="_state")
