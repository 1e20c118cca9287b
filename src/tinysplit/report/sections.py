"""The report's sections: for each, its data, figure, caption and notes, in page order.

Each builder takes the :class:`~tinysplit.report.runs.Runs` and the series colours and returns a
:class:`Drawn` (call it inside :func:`tinysplit.report.style.style`); it raises
:class:`~tinysplit.report.runs.MissingDataError` when the archives lack its data, and
:func:`tinysplit.report.write_report` then lists the section as skipped. Captions quote the
numbers the figure is about (correlations, ratios, the largest safe window...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tinysplit.report import figures
from tinysplit.report import paper as fig_data
from tinysplit.report.beyond import REFERENCE, beyond_table
from tinysplit.report.page import Column
from tinysplit.report.partitions import partition_table
from tinysplit.report.runs import MissingDataError, Runs
from tinysplit.report.transports import (
    current_by_state,
    energy_by_state,
    timeline,
    transport_table,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: Inferences shown in the pipeline timeline.
TIMELINE_INFERENCES = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Drawn:
    """What a section builder returns: an optional figure, its caption, notes and table."""

    figure: Figure | None
    caption: str
    notes: tuple[str, ...] = ()
    table: pd.DataFrame | None = None
    columns: tuple[Column, ...] = field(default_factory=tuple)


Builder = Callable[[Runs, Mapping[str, str]], Drawn]


def _per_series(values: Mapping[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items())


def _r(value: float) -> str:
    return "n/a" if value != value else f"{value:+.2f}"


# ------------------------------------------------------------------------------- sections


def _fig03(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    data = fig_data.failure_rate_by_window(runs)
    pipeline = data[data["board"] == 0]
    safe = {
        str(s): str(max(g.loc[g["failures"] == 0, "window"], default=0))
        for s, g in pipeline.groupby("series", sort=False)
    }
    caption = (
        "Failure rate of each sending device's link per application window in paper mode "
        "(window_sweep runs, links.csv `delivered`): failed transfers / transfers attempted. A "
        "device downstream of a lost tensor is not attempted in that run. Dashed: runs that "
        "lost their inference (summary.csv `failed`). Largest window without a loss: "
        f"{_per_series(safe)}."
    )
    return Drawn(figure=figures.failure_rate(data), caption=caption)


def _fig04(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    data = fig_data.send_time_by_window(runs)
    best = {}
    for s, g in data.dropna(subset=["cumulative_send_s"]).groupby("series", sort=False):
        row = g.sort_values("cumulative_send_s", kind="stable").iloc[0]
        best[str(s)] = f"{row['cumulative_send_s']:.3g} s at window {int(row['window'])}"
    caption = (
        "Time to send summed over every link of the pipeline (summary.csv `network_s`), mean of "
        "the runs that lost nothing per window, +- standard error (window_sweep runs). "
        f"Shortest: {_per_series(best)}."
    )
    return Drawn(figure=figures.send_time(data, colors), caption=caption)


def _fig05a(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    data = fig_data.network_vs_inference(runs)
    ratios = {
        str(s): f"{r:.2f}x"
        for s, r in zip(data["series"], data["network_to_inference"], strict=True)
    }
    caption = (
        "Transfer time summed over every link vs compute time summed over every device, per "
        "inference, in the latency runs (summary.csv `network_s`, `inference_s`). Network / "
        f"inference: {_per_series(ratios)} (the paper: more than 5x over BLE)."
    )
    return Drawn(figure=figures.network_vs_inference(data), caption=caption)


def _fig05b(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    data = fig_data.board_times(runs)
    caption = (
        "Mean receive, inference and send time of each device over the completed inferences of "
        "the latency runs (inferences.csv: `*_end_s - *_start_s` of the scribe's events). "
        "Device 1 gets its input from the host and the last device sends nothing."
    )
    return Drawn(figure=figures.board_times(data), caption=caption)


def _scatter_caption(data: fig_data.Scatter, what: str) -> str:
    rs = {
        str(s): f"{_r(float(r))} (n={int(n)})"
        for s, r, n in data.correlation[["series", "pearson_r", "points"]].itertuples(index=False)
    }
    return f"Pearson r of {what}: {_per_series(rs)}."


def _fig06(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    data = fig_data.time_vs_bytes(runs)
    caption = (
        "Each point is one delivered transfer of the latency runs (links.csv `bytes`, "
        "`duration_s`); lines are least-squares fits. "
        + _scatter_caption(data, "time with bytes")
        + " The paper: 0.56 over its BLE pipeline."
    )
    fig = figures.scatter(data, colors, xlabel="tensor sent (kB)", ylabel="transfer time (s)",
                          x_scale=1e-3)  # fmt: skip
    return Drawn(figure=fig, caption=caption)


def _fig07(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    data = fig_data.time_vs_rssi(runs)
    caption = (
        "Each point is one delivered transfer of the latency runs (links.csv `rssi_dbm`, "
        "`duration_s`). "
        + _scatter_caption(data, "time with RSSI in dBm")
        + " A negative r means a weaker signal sends slower (the paper plots |RSSI|, so its r "
        "is positive). The links also carry different tensors: see Fig. 6 and Fig. 8."
    )
    fig = figures.scatter(data, colors, xlabel="RSSI (dBm)", ylabel="transfer time (s)")
    return Drawn(figure=fig, caption=caption)


def _fig08(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    data = fig_data.time_per_kb_vs_rssi(runs)
    notes = [
        "Archives record no round-trip time (the paper's Fig. 8 moved two boards apart and "
        "timed round trips): shown instead is each link's transfer time per kB "
        "(links.csv `duration_s` x 1000 / `bytes`, latency runs) against its RSSI."
    ]
    if data.points["distance_m"].isna().all():
        notes.append(
            "The runs' layout gave link RSSI values, not board positions, so no distance is "
            "shown (run the bench with --positions desk, room or a positions file)."
        )
    caption = (
        "One point per link (label: link and, when known, the distance between its boards). "
        + _scatter_caption(data, "time per kB with RSSI in dBm")
    )
    fig = figures.scatter(data, colors, xlabel="RSSI (dBm)", ylabel="transfer time per kB (s)")
    return Drawn(figure=fig, caption=caption, notes=tuple(notes))


def _fig10(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    data = fig_data.tensor_sizes(runs)
    parts = []
    for sizes in data:
        label, sent = next(iter(sizes.sent_bytes.items()), ("", ()))
        parts.append(
            f"{sizes.model}: {len(sizes.layers)} layers, {int(sizes.layers['cut_point'].sum())} "
            f"valid cut points; {label} sends {', '.join(f'{b:,} B' for b in sent)}"
        )
    caption = (
        "Output tensor size (int16) of every layer of the model the plans name, rebuilt from "
        "its spec. Blue: layers after which the model can be cut; red: the tensors the first "
        "split sends; markers: the cuts of every plan in the archive. " + "; ".join(parts) + "."
    )
    return Drawn(figure=figures.tensor_sizes(data), caption=caption)


#: Columns of the transport comparison table.
TRANSPORT_COLUMNS = (
    Column(key="series", header="transport"),
    Column(key="latency_p50_s", header="latency p50 s"),
    Column(key="latency_p95_s", header="p95 s"),
    Column(key="throughput_per_s", header="inf/s"),
    Column(key="energy_per_inference_j", header="J/inference"),
    Column(key="network_to_inference", header="net/compute"),
    Column(key="failure_rate", header="failure rate"),
)


def _transports(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    table = transport_table(runs)
    notes = []
    try:
        energy: pd.DataFrame | None = energy_by_state(runs)
    except MissingDataError as exc:
        energy = None
        notes.append(f"throughput and energy: {exc}")
    if "latency" not in set(runs.cases["family"]):
        notes.append("latency: the archive has no latency[...] runs")
    elif table["latency_p50_s"].isna().all():
        notes.append("latency: no inference of the latency[...] runs completed")
    caption = (
        "Latency: one inference through an idle pipeline, every completed inference of the "
        "latency runs (bar: p50, tick: p95). Throughput and energy: the back-to-back stream "
        "runs (summary.csv `throughput_per_s`, the steady rate between the "
        "pipeline's fill and drain; energy.csv by state / completed inferences)."
    )
    return Drawn(figure=figures.transports(table, energy, colors), caption=caption,
                 notes=tuple(notes), table=table, columns=TRANSPORT_COLUMNS)  # fmt: skip


def _current(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    data = current_by_state(runs)
    caption = (
        "Mean current of each device over the stream run, by state (energy.csv: the device's "
        "`mean_current_ma` times each state's share of its energy). Idle is the idle current "
        "over the whole run, the other states the extra current while busy, so each stack is "
        "the device's mean current."
    )
    return Drawn(figure=figures.current_by_state(data), caption=caption)


def _timeline(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    data = timeline(runs, inferences=TIMELINE_INFERENCES)
    caption = (
        f"The first {TIMELINE_INFERENCES} inferences of the back-to-back stream run "
        "(inferences.csv event times), one lane per activity: a device computes the next "
        "inference while its radio sends the previous tensor, and each transfer is one device's "
        "send and the next device's receive."
    )
    return Drawn(figure=figures.timeline(data), caption=caption)


#: Columns of the partition comparison table.
PARTITION_COLUMNS = (
    Column(key="series", header="transport"),
    Column(key="strategy", header="strategy"),
    Column(key="devices", header="devices", fmt="d"),
    Column(key="cuts", header="cuts after layers"),
    Column(key="max_sent_bytes", header="largest tensor kB", scale=1e-3, fmt=".1f"),
    Column(key="modelled_period_s", header="modelled period s"),
    Column(key="latency_p50_s", header="latency p50 s"),
    Column(key="throughput_per_s", header="inf/s"),
    Column(key="throughput_vs_paper", header="vs paper", fmt=".3g"),
)


def _partitions(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    table = partition_table(runs)
    best = {}
    for s, g in table.dropna(subset=["throughput_per_s"]).groupby("series", sort=False):
        row = g.sort_values("throughput_per_s", ascending=False, kind="stable").iloc[0]
        best[str(s)] = f"{row['strategy']} ({row['throughput_vs_paper']:.3g}x paper)"
    caption = (
        "Each strategy's plan on the same devices: latency p50 of its partition runs, "
        "throughput of its partition_stream run, largest tensor sent from the plan (manifest). "
        f"Highest throughput: {_per_series(best) or 'n/a'}."
    )
    fig = figures.partitions(table, colors)
    return Drawn(figure=fig, caption=caption, table=table, columns=PARTITION_COLUMNS)


#: Columns of the beyond-the-paper table.
BEYOND_COLUMNS = (
    Column(key="series", header="transport"),
    Column(key="technique", header="technique"),
    Column(key="spare", header="spare boards", fmt="d"),
    Column(key="stages", header="stages", fmt="d"),
    Column(key="replicas", header="replicas per stage"),
    Column(key="placement", header="boards per stage"),
    Column(key="link_profile", header="link profile"),
    Column(key="adaptive_window", header="adaptive window"),
    Column(key="modelled_period_s", header="modelled period s"),
    Column(key="latency_p50_s", header="latency p50 s"),
    Column(key="throughput_per_s", header="inf/s"),
    Column(key="throughput_vs_paper", header="vs paper", fmt=".3g"),
)


def _beyond(runs: Runs, colors: Mapping[str, str]) -> Drawn:
    table = beyond_table(runs)
    best, spare = {}, {}
    for s, g in table.dropna(subset=["throughput_vs_paper"]).groupby("series", sort=False):
        row = g[g["spare"] == 0].sort_values("throughput_per_s", ascending=False).iloc[:1]
        if len(row):
            ratio = row["throughput_vs_paper"].iloc[0]
            best[str(s)] = f"{row['technique'].iloc[0]} ({ratio:.3g}x paper)"
        most = g.sort_values("spare", kind="stable").iloc[-1]
        if most["spare"] > 0:
            spare[str(s)] = (
                f"{most['technique']} with {int(most['spare'])} spare boards "
                f"({most['throughput_vs_paper']:.3g}x paper)"
            )
    notes = []
    paper = table[(table["technique"] == REFERENCE[0]) & (table["spare"] == REFERENCE[1])]
    have = set(paper.dropna(subset=["throughput_per_s"])["series"])
    alone = [s for s in dict.fromkeys(table["series"]) if s not in have]
    if alone:
        notes.append(
            f"{', '.join(alone)}: no beyond_stream[paper,...,spare0] throughput, so no ratio"
        )
    caption = (
        "bench/test_beyond_paper.py: the same model and boards, each technique alone and "
        "together against the paper configuration (paper: the paper's split, stage k on board "
        "k; cuts: the optimal split; placement: stages placed by RSSI; window: the adaptive "
        "window; link: the tuned link profile; replication: cuts and replicas chosen together; "
        "joint: cuts, placement, windows and replicas, plus the adaptive window; all: joint "
        "with the tuned profile), and joint with spare boards. Latency: p50 over the completed "
        "inferences of the beyond runs (one inference on an idle pipeline each). Throughput: "
        "the beyond_stream run (summary.csv `throughput_per_s`, back to back), and its ratio to "
        "paper without spare boards. Stages, replicas and boards per stage: where the runs "
        "placed each stage (manifest `cases[].placement`, boards 1-based); modelled period: "
        "the plan's deployment. Highest throughput: "
        f"{_per_series(best) or 'n/a'}."
        + (f" With the most spare boards: {_per_series(spare)}." if spare else "")
    )
    return Drawn(figure=figures.beyond(table, colors), caption=caption, notes=tuple(notes),
                 table=table, columns=BEYOND_COLUMNS)  # fmt: skip


#: Every section in page order: (id, title, builder).
SECTIONS: tuple[tuple[str, str, Builder], ...] = (
    ("transports", "Transports: latency, throughput, energy per inference", _transports),
    ("fig03_failure_rate", "Fig. 3: failure rate vs window size per device", _fig03),
    ("fig04_send_time", "Fig. 4: cumulative time to send vs window", _fig04),
    ("fig05a_network_vs_inference", "Fig. 5a: network vs inference time", _fig05a),
    ("fig05b_device_times", "Fig. 5b: receive / inference / send per device", _fig05b),
    ("fig06_time_vs_bytes", "Fig. 6: transfer time vs bytes sent", _fig06),
    ("fig07_time_vs_rssi", "Fig. 7: transfer time vs RSSI", _fig07),
    ("fig08_time_vs_rssi_distance", "Fig. 8 (derived): time per kB vs RSSI and distance", _fig08),
    ("fig10_tensor_sizes", "Fig. 10: intermediate tensor size per layer", _fig10),
    ("current", "Current by state per device", _current),
    ("timeline", "Pipeline timeline", _timeline),
    ("partitions", "Partition strategies: paper vs greedy vs optimal", _partitions),
    ("beyond", "Beyond the paper: placement, windows, replication", _beyond),
)
