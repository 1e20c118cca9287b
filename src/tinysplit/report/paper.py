"""The data behind the paper's figures, from archived runs (pure pandas / numpy, no plotting).

Each function takes :class:`~tinysplit.report.runs.Runs` and returns a small frame or dataclass
that the figure draws and the tests check; it raises
:class:`~tinysplit.report.runs.MissingDataError` when the archives lack the runs it needs.
``docs/report.md`` lists which columns each figure reads.

* Figures 3 and 4 read ``window_sweep[...]`` runs (``bench/test_window_sweep.py``: paper mode,
  one inference per run, windows 1..12);
* Figures 5 to 8 read ``latency[...]`` runs (one inference on an idle pipeline per run);
* Figure 10 rebuilds the model named in the plans of the ``latency`` and ``partition`` runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tinysplit.report.runs import MissingDataError, Runs, parse_case

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd


def pearson(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Pearson correlation of two series (NaN with fewer than two points or a constant one)."""
    import numpy as np

    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(xs) < 2 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return math.nan
    return float(np.corrcoef(xs, ys)[0, 1])


# ------------------------------------------------------------------------- Figures 3 and 4


def failure_rate_by_window(runs: Runs) -> pd.DataFrame:
    """Figure 3: failure rate of each sending board's link per window.

    Returns one row per (series, window, board): ``attempts`` (transfers the board made: a
    board downstream of a failed link is never reached, so it can have fewer than the runs),
    ``failures`` (transfers not delivered) and ``failure_rate`` (failures / attempts), plus one
    row per (series, window) with ``board`` 0 for the whole pipeline (``attempts``: runs,
    ``failures``: runs that lost their inference). Read from ``links.csv`` and ``summary.csv``
    of the ``window_sweep`` runs.
    """
    import pandas as pd

    what = "the failure rate by window (Fig. 3)"
    links = runs.of("links", "window_sweep", what=what)
    summary = runs.of("summary", "window_sweep", what=what)
    boards = (
        links.assign(failed=~links["delivered"])
        .groupby(["series", "window", "stage"], sort=False)
        .agg(attempts=("failed", "size"), failures=("failed", "sum"))
        .reset_index()
        .rename(columns={"stage": "board"})
    )
    pipeline = (
        summary.assign(lost=summary["failed"] > 0)
        .groupby(["series", "window"], sort=False)
        .agg(attempts=("lost", "size"), failures=("lost", "sum"))
        .reset_index()
        .assign(board=0)
    )
    out = pd.concat([pipeline, boards], ignore_index=True)
    out["failures"] = out["failures"].astype("int64")
    out["failure_rate"] = out["failures"] / out["attempts"]
    out = runs.sort_series(out, ["window", "board"])
    return out[["series", "window", "board", "attempts", "failures", "failure_rate"]]


def send_time_by_window(runs: Runs) -> pd.DataFrame:
    """Figure 4: cumulative time to send (all links of the pipeline) per window.

    One row per (series, window): ``runs``, ``clean_runs`` (runs that lost nothing),
    ``cumulative_send_s`` (mean of ``summary.network_s`` over the clean runs; NaN without one)
    and ``sem_s`` (its standard error, 0 for fewer than two runs). Read from the
    ``window_sweep`` runs.
    """
    import numpy as np
    import pandas as pd

    summary = runs.of("summary", "window_sweep", what="the time to send by window (Fig. 4)")
    rows = []
    for _, group in summary.groupby(["series", "window"], sort=False):
        clean = group.loc[group["failed"] == 0, "network_s"].to_numpy(dtype=float)
        rows.append(
            {
                "series": group["series"].iloc[0],
                "window": int(group["window"].iloc[0]),
                "runs": len(group),
                "clean_runs": len(clean),
                "cumulative_send_s": float(np.mean(clean)) if len(clean) else math.nan,
                "sem_s": (
                    float(np.std(clean, ddof=1) / math.sqrt(len(clean))) if len(clean) > 1 else 0.0
                ),
            }
        )
    frame = pd.DataFrame(rows)
    return runs.sort_series(frame, ["window"])


# ------------------------------------------------------------------------------- Figure 5


def network_vs_inference(runs: Runs) -> pd.DataFrame:
    """Figure 5a: time on the radio links vs time computing, per inference.

    One row per series: ``inferences`` (injected), ``network_s`` and ``inference_s`` (summed
    transfer / compute time of the ``latency`` runs per inference injected) and
    ``network_to_inference`` (their ratio, the paper's "more than 5x").
    """
    summary = runs.of("summary", "latency", what="network vs inference time (Fig. 5a)")
    sums = (
        summary.groupby("series", sort=False)[["inferences", "network_s", "inference_s"]]
        .sum()
        .reset_index()
    )
    sums["network_to_inference"] = sums["network_s"] / sums["inference_s"]
    sums["network_s"] = sums["network_s"] / sums["inferences"]
    sums["inference_s"] = sums["inference_s"] / sums["inferences"]
    return runs.sort_series(sums, [])


def board_times(runs: Runs) -> pd.DataFrame:
    """Figure 5b: mean receive, inference and send time of each board.

    One row per (series, board): ``inferences`` (completed inferences averaged), ``receive_s``,
    ``inference_s``, ``send_s`` (means of the scribe's end - start; NaN where a board has no such
    event: board 1 receives from the host, the last board sends nothing). From the completed
    inferences of the ``latency`` runs (``inferences.csv``).
    """
    inf = runs.of("inferences", "latency", what="the per-board breakdown (Fig. 5b)")
    done = inf[inf["completed"]]
    if done.empty:
        raise MissingDataError("the per-board breakdown (Fig. 5b) needs a completed inference")
    times = done.assign(
        receive_s=done["receive_end_s"] - done["receive_start_s"],
        inference_s=done["inference_end_s"] - done["inference_start_s"],
        send_s=done["send_end_s"] - done["send_start_s"],
    )
    out = (
        times.groupby(["series", "stage"], sort=False)
        .agg(
            inferences=("inference_s", "size"),
            receive_s=("receive_s", "mean"),
            inference_s=("inference_s", "mean"),
            send_s=("send_s", "mean"),
        )
        .reset_index()
        .rename(columns={"stage": "board"})
    )
    return runs.sort_series(out, ["board"])


# ------------------------------------------------------------------------- Figures 6 to 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Scatter:
    """Points of a scatter figure and the correlation of each series.

    Attributes:
        x: column of ``points`` on the horizontal axis.
        y: column on the vertical axis.
        points: one row per point, with ``series`` and ``link``.
        correlation: one row per series: ``points`` and ``pearson_r`` of ``y`` with ``x``
            (NaN with fewer than two points or a constant axis).
    """

    x: str
    y: str
    points: pd.DataFrame
    correlation: pd.DataFrame


def _transfers(runs: Runs, what: str) -> pd.DataFrame:
    links = runs.of("links", "latency", what=what)
    done = links[links["delivered"]]
    if done.empty:
        raise MissingDataError(f"{what} needs a delivered transfer; every one was lost")
    return done


def _scatter(runs: Runs, points: pd.DataFrame, x: str, y: str) -> Scatter:
    import pandas as pd

    points = runs.sort_series(points, [])
    corr = pd.DataFrame(
        [
            {"series": s, "points": len(g), "pearson_r": pearson(g[x], g[y])}
            for s, g in points.groupby("series", sort=False)
        ]
    )
    return Scatter(x=x, y=y, points=points, correlation=corr)


def time_vs_bytes(runs: Runs) -> Scatter:
    """Figure 6: transfer time vs tensor bytes, one point per delivered transfer.

    Points: ``series``, ``link``, ``bytes``, ``rssi_dbm``, ``duration_s`` from ``links.csv`` of
    the ``latency`` runs; the correlation of ``duration_s`` with ``bytes`` per series (the paper
    reports 0.56 over its pipeline's links).
    """
    done = _transfers(runs, "time vs bytes (Fig. 6)")
    points = done[["series", "link", "bytes", "rssi_dbm", "duration_s"]]
    return _scatter(runs, points, "bytes", "duration_s")


def time_vs_rssi(runs: Runs) -> Scatter:
    """Figure 7: transfer time vs RSSI, one point per delivered transfer (``latency`` runs).

    The correlation is with the RSSI in dBm, so a negative r means a weaker signal is slower
    (the paper plots |RSSI| and reports a positive r).
    """
    done = _transfers(runs, "time vs RSSI (Fig. 7)")
    points = done[["series", "link", "bytes", "rssi_dbm", "duration_s"]]
    return _scatter(runs, points, "rssi_dbm", "duration_s")


def time_per_kb_vs_rssi(runs: Runs) -> Scatter:
    """Figure 8 as far as the archive allows: time per kB sent vs RSSI, with the distance.

    The paper's Figure 8 measures the round-trip time of two boards moved apart. Archives do
    not record round trips, so each link of the ``latency`` runs gives one point instead:
    ``time_per_kb_s`` (mean ``duration_s`` x 1000 / ``bytes`` of its delivered transfers)
    against its ``rssi_dbm``, and ``distance_m`` between the two boards when the run's layout
    gave board positions (NaN when it gave RSSI values).
    """
    done = _transfers(runs, "time per kB vs RSSI (Fig. 8)")
    per_link = (
        done.assign(time_per_kb_s=done["duration_s"] * 1000.0 / done["bytes"])
        .groupby(["archive", "series", "case", "link", "stage"], sort=False)
        .agg(
            transfers=("duration_s", "size"),
            rssi_dbm=("rssi_dbm", "mean"),
            time_per_kb_s=("time_per_kb_s", "mean"),
        )
        .reset_index()
    )
    distances = []
    for label, case, stage in zip(
        per_link["archive"], per_link["case"], per_link["stage"], strict=True
    ):
        configs = runs.case_configs(label)
        positions = next(
            (c.get("positions_m") for (name, _), c in configs.items() if name == case), None
        )
        k = int(stage)
        if isinstance(positions, list) and len(positions) > k:
            a, b = positions[k - 1], positions[k]
            distances.append(math.dist([float(v) for v in a], [float(v) for v in b]))
        else:
            distances.append(math.nan)
    per_link["distance_m"] = distances
    points = per_link[["series", "link", "transfers", "rssi_dbm", "distance_m", "time_per_kb_s"]]
    return _scatter(runs, points, "rssi_dbm", "time_per_kb_s")


# ------------------------------------------------------------------------------ Figure 10


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorSizes:
    """Figure 10: output tensor size of every layer of one model and where the plans cut it.

    Attributes:
        model: the model spec the plans name (rebuilt with ``tinysplit.model.load_model``).
        layers: one row per layer: ``layer`` (1-based), ``name``, ``op``, ``output_bytes``
            (int16) and ``cut_point`` (a valid place to cut: one tensor carries all state).
        cuts: per distinct split, labelled by the strategies and series that use it (e.g.
            ``paper (all); greedy (ble, wifi)``, ``all``: every series), the 1-based layers
            after which it cuts, i.e. whose output tensor is sent to the next board. The first
            is the first run's split.
        sent_bytes: per plan label, the bytes of each sent tensor (as the plan records them).
    """

    model: str
    layers: pd.DataFrame
    cuts: dict[str, tuple[int, ...]]
    sent_bytes: dict[str, tuple[int, ...]]


def tensor_sizes(runs: Runs) -> list[TensorSizes]:
    """Figure 10 for every model the ``latency`` and ``partition`` runs' plans name.

    Plans of the ``latency`` runs are labelled by their strategy, those of ``partition[s,...]``
    runs by ``s``; plans with the same cuts share one label listing every strategy and series.

    Raises:
        MissingDataError: no such runs, or no model could be rebuilt (an ``.onnx`` file that is
            not there any more, or a model whose hash differs from the plan's).
    """
    import pandas as pd

    from tinysplit.model import load_model

    summary = runs.summary[runs.summary["family"].isin(["latency", "partition"])]
    if summary.empty:
        raise MissingDataError("tensor sizes (Fig. 10) need latency[...] or partition[...] runs")
    by_model: dict[str, dict[tuple[int, ...], dict[str, Any]]] = {}
    hashes: dict[str, str] = {}
    for (label, case, plan_id), group in summary.groupby(["archive", "case", "plan"], sort=False):
        plan = runs.plan(str(label), str(plan_id))
        model = plan.get("model", {})
        name, stages = str(model.get("name")), plan.get("stages") or []
        hashes[name] = str(model.get("hash"))
        family, params = parse_case(str(case))
        strategy = params[0] if family == "partition" and params else str(plan.get("strategy"))
        cuts = tuple(int(s["last_layer"]) for s in stages[:-1])
        entry = by_model.setdefault(name, {}).setdefault(
            cuts,
            {"uses": {}, "bytes": tuple(int(s["outgoing"]["size_bytes"]) for s in stages[:-1])},
        )
        used = entry["uses"].setdefault(strategy, [])
        if str(group["series"].iloc[0]) not in used:
            used.append(str(group["series"].iloc[0]))
    out, problems = [], []
    for name, plans in by_model.items():
        try:
            graph = load_model(name)
        except Exception as exc:  # any failure to rebuild skips this model only
            problems.append(f"model {name!r} cannot be rebuilt ({exc})")
            continue
        if graph.source_hash != hashes[name]:
            problems.append(f"model {name!r} rebuilt with another hash than the plans'")
            continue
        valid = set(graph.cut_points)
        layers = pd.DataFrame(
            {
                "layer": [x.index + 1 for x in graph.layers],
                "name": [x.name for x in graph.layers],
                "op": [x.op for x in graph.layers],
                "output_bytes": [x.output_bytes for x in graph.layers],
                "cut_point": [x.index in valid for x in graph.layers],
            }
        )
        splits, sent = {}, {}
        for cut, entry in plans.items():
            plan_label = "; ".join(
                f"{strategy} ({_series_text(runs, series)})"
                for strategy, series in entry["uses"].items()
            )
            splits[plan_label], sent[plan_label] = cut, entry["bytes"]
        out.append(TensorSizes(model=name, layers=layers, cuts=splits, sent_bytes=sent))
    if not out:
        raise MissingDataError("tensor sizes (Fig. 10): " + "; ".join(problems))
    return out


def _series_text(runs: Runs, series: list[str]) -> str:
    """``all`` for every series of the runs, else the series in display order."""
    if len(runs.series) > 1 and set(series) == set(runs.series):
        return "all"
    return ", ".join(s for s in runs.series if s in series)
