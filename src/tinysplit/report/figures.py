"""Figure drawing: one function per figure, from the data of :mod:`tinysplit.report.paper`,
:mod:`~tinysplit.report.transports`, :mod:`~tinysplit.report.partitions` and
:mod:`~tinysplit.report.beyond`.

Every function returns a ``matplotlib.figure.Figure``; call them inside
:func:`tinysplit.report.style.style`. They draw what the data frames hold and compute nothing
the tests would need to check.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tinysplit.report.style import ACTIVITY_COLORS, STATE_COLORS, new_figure, panels

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from tinysplit.report.paper import Scatter, TensorSizes

#: Per-device line styles of Figure 3 (colour, marker), distinct from the series colours.
_DEVICE_STYLES = (
    ("#08519c", "o"),
    ("#e6550d", "s"),
    ("#31a354", "^"),
    ("#756bb1", "D"),
    ("#636363", "v"),
    ("#843c39", "P"),
)


def _legend_below(fig: Figure, ax: Any, columns: int) -> None:
    """One legend for the whole figure, under the panels (it never hides a bar)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=columns)


def _wrap(text: str) -> str:
    """A legend label folded to lines of 56 characters."""
    return textwrap.fill(text, 56, subsequent_indent="  ")


def _r(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.2f}"


def failure_rate(frame: pd.DataFrame) -> Figure:
    """Figure 3: failure rate vs window, one line per sending board, one panel per series."""
    series = list(dict.fromkeys(frame["series"]))
    fig, axes = panels(len(series))
    for ax, name in zip(axes, series, strict=True):
        rows = frame[frame["series"] == name]
        for board, group in rows.groupby("board", sort=True):
            if board == 0:
                ax.plot(group["window"], 100 * group["failure_rate"], "k--", lw=1.2,
                        label="pipeline (any link)")  # fmt: skip
                continue
            color, marker = _DEVICE_STYLES[(int(board) - 1) % len(_DEVICE_STYLES)]
            ax.plot(group["window"], 100 * group["failure_rate"], marker=marker, ms=3.5,
                    lw=1.1, color=color, label=f"device {board}")  # fmt: skip
        ax.set(title=name, xlabel="window (frames per response)", ylabel="failure rate (%)")
        ax.set_ylim(-3, 103)
        ax.legend(loc="upper left")
    return fig


def send_time(frame: pd.DataFrame, colors: Mapping[str, str]) -> Figure:
    """Figure 4: cumulative time to send vs window (mean of failure-free runs, +- s.e.m.)."""
    fig = new_figure(4.6, 3.0)
    ax = fig.subplots()
    for name, group in frame.groupby("series", sort=False):
        ok = group[group["clean_runs"] > 0]
        ax.errorbar(ok["window"], ok["cumulative_send_s"], yerr=ok["sem_s"], fmt="o-", ms=3,
                    capsize=2, color=colors[str(name)], label=str(name))  # fmt: skip
    ax.set(xlabel="window (frames per response)", ylabel="cumulative time to send (s)")
    ax.set_ylim(bottom=0)
    ax.legend()
    return fig


def network_vs_inference(frame: pd.DataFrame) -> Figure:
    """Figure 5a: network vs inference time per inference, with their ratio."""
    fig = new_figure(4.6, 3.0)
    ax = fig.subplots()
    x = list(range(len(frame)))
    width = 0.38
    ax.bar([i - width / 2 for i in x], frame["network_s"], width, color="#fd8d3c",
           label="network (all links)")  # fmt: skip
    ax.bar([i + width / 2 for i in x], frame["inference_s"], width, color="#31a354",
           label="inference (all boards)")  # fmt: skip
    for i, (net, ratio) in enumerate(zip(frame["network_s"], frame["network_to_inference"],
                                         strict=True)):  # fmt: skip
        ax.annotate(f"{ratio:.2f}x", (i - width / 2, net), ha="center", va="bottom", fontsize=7.5)
    ax.set_xticks(x, list(frame["series"]))
    ax.set(ylabel="time per inference (s)")
    ax.legend()
    return fig


def board_times(frame: pd.DataFrame) -> Figure:
    """Figure 5b: receive / inference / send time of each board, one panel per series."""
    series = list(dict.fromkeys(frame["series"]))
    fig, axes = panels(len(series))
    width = 0.27
    for ax, name in zip(axes, series, strict=True):
        rows = frame[frame["series"] == name]
        boards = rows["board"].tolist()
        for k, activity in enumerate(("receive", "inference", "send")):
            values = rows[f"{activity}_s"].fillna(0.0)
            ax.bar([b + (k - 1) * width for b in boards], values, width,
                   color=ACTIVITY_COLORS[activity], label=activity)  # fmt: skip
        ax.set_xticks(boards, [str(b) for b in boards])
        ax.set(title=name, xlabel="device", ylabel="mean time (s)")
    _legend_below(fig, axes[0], 3)
    return fig


def scatter(data: Scatter, colors: Mapping[str, str], *, xlabel: str, ylabel: str,
            x_scale: float = 1.0) -> Figure:  # fmt: skip
    """Figures 6-8: one panel per series, its points, least-squares line and Pearson r."""
    import numpy as np

    corr = data.correlation.set_index("series")["pearson_r"]
    series = list(corr.index)
    fig, axes = panels(len(series))
    for ax, name in zip(axes, series, strict=True):
        rows = data.points[data.points["series"] == name]
        x = rows[data.x].to_numpy(dtype=float) * x_scale
        y = rows[data.y].to_numpy(dtype=float)
        ax.scatter(x, y, s=14, color=colors[name], zorder=3)
        if not math.isnan(corr[name]):
            slope, intercept = np.polyfit(x, y, 1)
            xs = np.array([x.min(), x.max()])
            ax.plot(xs, slope * xs + intercept, color=colors[name], lw=1, alpha=0.6)
        if "distance_m" in rows:
            for xi, yi, link, dist in zip(x, y, rows["link"], rows["distance_m"], strict=True):
                text = link if math.isnan(dist) else f"{link}, {dist:.1f} m"
                ax.annotate(text, (xi, yi), xytext=(3, 3), textcoords="offset points",
                            fontsize=6.5)  # fmt: skip
        ax.set(title=f"{name}: r = {_r(float(corr[name]))}", xlabel=xlabel, ylabel=ylabel)
    return fig


def tensor_sizes(data: list[TensorSizes]) -> Figure:
    """Figure 10: output tensor size per layer; valid cut points and each plan's cuts marked."""
    from matplotlib.patches import Patch

    wrapped = [[_wrap(f"cuts: {label}") for label in sizes.cuts] for sizes in data]
    lines = max(sum(text.count("\n") + 1 for text in labels) + 3 for labels in wrapped)
    fig = new_figure(10.0, max(3.0, 0.16 * lines + 0.8) * len(data))
    axes = fig.subplots(len(data), 1, squeeze=False).ravel().tolist()
    markers = ("v", "D", "s", "^", "o", "P", "X", "*")
    for ax, sizes, labels in zip(axes, data, wrapped, strict=True):
        layers = sizes.layers
        kb = layers["output_bytes"] / 1e3
        first = next(iter(sizes.cuts.values()), ())
        color = [
            "#d62728" if layer in first else "#6baed6" if cut else "#cccccc"
            for layer, cut in zip(layers["layer"], layers["cut_point"], strict=True)
        ]
        ax.bar(layers["layer"], kb, width=0.8, color=color)
        top = float(kb.max())
        for k, (label, cuts) in enumerate(zip(labels, sizes.cuts.values(), strict=True)):
            y = top * (1.08 + 0.09 * k)
            ax.scatter(list(cuts), [y] * len(cuts), marker=markers[k % len(markers)], s=22,
                       label=label, zorder=3)  # fmt: skip
        handles, _ = ax.get_legend_handles_labels()
        handles += [
            Patch(color="#6baed6", label="valid cut point"),
            Patch(color="#cccccc", label="no cut possible (several tensors live)"),
            Patch(color="#d62728", label="tensor sent (first split)"),
        ]
        ax.set(title=f"{sizes.model}: intermediate tensor size per layer (int16)",
               xlabel="layer (cut after it: its output is sent)",
               ylabel="output tensor (kB)")  # fmt: skip
        ax.set_xlim(0, len(layers) + 1)
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def transports(table: pd.DataFrame, energy: pd.DataFrame | None,
               colors: Mapping[str, str]) -> Figure:  # fmt: skip
    """Transport comparison: latency p50 / p95, throughput, energy per inference, net/compute."""
    fig, axes = panels(4, width_in=3.3, height_in=2.6, per_row=2)
    names = list(table["series"])
    x = list(range(len(names)))
    bar_colors = [colors[n] for n in names]
    ax = axes[0]
    ax.bar(x, table["latency_p50_s"], color=bar_colors, label="p50")
    ax.scatter(x, table["latency_p95_s"], marker="_", s=300, color="k", zorder=3, label="p95")
    ax.set(title="latency (one inference, idle pipeline)", ylabel="s")
    ax.legend()
    axes[1].bar(x, table["throughput_per_s"], color=bar_colors)
    axes[1].set(title="throughput (steady state)", ylabel="inferences / s")
    ax = axes[2]
    if energy is not None and not energy.empty:
        bottom = [0.0] * len(names)
        for state, group in energy.groupby("state", sort=False):
            per = dict(zip(group["series"], group["energy_per_inference_j"], strict=True))
            values = [float(per.get(n, 0.0)) for n in names]
            ax.bar(x, values, bottom=bottom, color=STATE_COLORS.get(str(state), "#999999"),
                   label=str(state))  # fmt: skip
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.legend()
    else:
        ax.bar(x, table["energy_per_inference_j"], color=bar_colors)
    ax.set(title="energy per inference (all boards)", ylabel="J")
    axes[3].bar(x, table["network_to_inference"], color=bar_colors)
    axes[3].set(title="network time / inference time", ylabel="ratio")
    for ax in axes:
        ax.set_xticks(x, names)
    return fig


def current_by_state(frame: pd.DataFrame) -> Figure:
    """Mean current of each board by state, stacked, one panel per series."""
    series = list(dict.fromkeys(frame["series"]))
    fig, axes = panels(len(series))
    for ax, name in zip(axes, series, strict=True):
        rows = frame[frame["series"] == name]
        boards = sorted(set(rows["board"]))
        bottom = dict.fromkeys(boards, 0.0)
        for state, group in rows.groupby("state", sort=False):
            per = dict(zip(group["board"], group["current_ma"], strict=True))
            values = [float(per.get(b, 0.0)) for b in boards]
            ax.bar(boards, values, bottom=[bottom[b] for b in boards],
                   color=STATE_COLORS.get(str(state), "#999999"), label=str(state))  # fmt: skip
            for b, v in zip(boards, values, strict=True):
                bottom[b] += v
        ax.set_xticks(boards, [str(b) for b in boards])
        ax.set(title=name, xlabel="device", ylabel="mean current (mA at 3.3 V)")
    _legend_below(fig, axes[0], 4)
    return fig


def timeline(frame: pd.DataFrame) -> Figure:
    """Pipeline timeline (Gantt): per device one lane each for receive, inference and send."""
    series = list(dict.fromkeys(frame["series"]))
    fig = new_figure(9.0, 2.0 * len(series) + 0.4)
    axes = fig.subplots(len(series), 1, squeeze=False).ravel().tolist()
    lane = {"receive": -0.27, "inference": 0.0, "send": 0.27}
    for ax, name in zip(axes, series, strict=True):
        rows = frame[frame["series"] == name]
        for activity, offset in lane.items():
            part = rows[rows["activity"] == activity]
            ax.barh(part["board"] + offset, part["end_s"] - part["start_s"], left=part["start_s"],
                    height=0.26, color=ACTIVITY_COLORS[activity], label=activity)  # fmt: skip
        for event in rows[rows["activity"] == "inference"].itertuples(index=False):
            ax.annotate(str(event.inference), (event.start_s, event.board), xytext=(1, 0),
                        textcoords="offset points", ha="left", va="center",
                        fontsize=6.5)  # fmt: skip
        boards = sorted(set(rows["board"]))
        ax.set_yticks(boards, [f"device {b}" for b in boards])
        ax.set_ylim(max(boards) + 0.6, min(boards) - 0.6)
        ax.set(title=f"{name} (numbers: inference)", xlabel="time since the first input (s)")
        ax.grid(axis="y", visible=False)
    axes[0].legend(loc="lower left", bbox_to_anchor=(0.0, 1.08), ncols=3)
    return fig


def partitions(frame: pd.DataFrame, colors: Mapping[str, str]) -> Figure:
    """Partition comparison: latency, throughput and largest tensor sent per strategy."""
    strategies = list(dict.fromkeys(frame["strategy"]))
    series = list(dict.fromkeys(frame["series"]))
    fig, axes = panels(3, width_in=3.2, height_in=2.8)
    width = 0.8 / max(len(series), 1)
    panel_specs: tuple[tuple[str, str, float], ...] = (
        ("latency_p50_s", "latency p50 (s)", 1.0),
        ("throughput_per_s", "throughput (inferences / s)", 1.0),
        ("max_sent_bytes", "largest tensor sent (kB)", 1e-3),
    )
    for ax, (column, title, scale) in zip(axes, panel_specs, strict=True):
        for k, name in enumerate(series):
            per: dict[Any, Any] = dict(
                frame.loc[frame["series"] == name, ["strategy", column]].itertuples(index=False)
            )
            x = [i + (k - (len(series) - 1) / 2) * width for i in range(len(strategies))]
            values = [float(per.get(s, math.nan)) * scale for s in strategies]
            ax.bar(x, values, width, color=colors[name], label=name)
        ax.set_xticks(range(len(strategies)), strategies, rotation=30, ha="right")
        ax.set(title=title)
    axes[0].legend()
    return fig


#: Above this ratio between the largest and smallest bar, "vs paper" is drawn on a log scale.
LOG_SPREAD = 8.0
#: Up to this many series, each "vs paper" bar is labelled with its ratio.
ANNOTATED_SERIES = 3


def beyond(frame: pd.DataFrame, colors: Mapping[str, str]) -> Figure:
    """Beyond the paper: throughput vs paper per technique, and throughput vs spare boards."""
    base = frame[frame["spare"] == 0]
    techniques = list(dict.fromkeys(base["technique"]))
    series = list(dict.fromkeys(frame["series"]))
    fig = new_figure(9.6, 3.4)
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.0, 1.0]})
    ax = axes[0]
    width = 0.8 / max(len(series), 1)
    for k, name in enumerate(series):
        per: dict[Any, Any] = dict(
            base.loc[base["series"] == name, ["technique", "throughput_vs_paper"]].itertuples(
                index=False
            )
        )
        x = [i + (k - (len(series) - 1) / 2) * width for i in range(len(techniques))]
        values = [float(per.get(t, math.nan)) for t in techniques]
        ax.bar(x, values, width, color=colors[name], label=name)
        for xi, value in zip(x, values, strict=True):
            if len(series) <= ANNOTATED_SERIES and not math.isnan(value):
                ax.annotate(f"{value:.3g}x", (xi, value), xytext=(0, 1.5),
                            textcoords="offset points", ha="center", va="bottom",
                            fontsize=6.5)  # fmt: skip
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="paper (1x)")
    ratios = [r for r in base["throughput_vs_paper"] if r > 0 and not math.isnan(r)]
    if ratios and max(ratios) / min(ratios) > LOG_SPREAD:
        from matplotlib.ticker import NullFormatter

        low, high = min(1.0, min(ratios)) / 1.3, max(ratios) * 1.6
        ax.set_yscale("log")
        ticks = [t * 10.0**e for e in range(-2, 4) for t in (1, 2, 5) if low <= t * 10.0**e <= high]
        ax.set_yticks(ticks, [f"{t:g}x" for t in ticks])
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(low, high)
    else:
        ax.set_ylim(0, max([1.0, *ratios]) * 1.15)
    ax.set_xticks(range(len(techniques)), techniques, rotation=30, ha="right")
    ax.set(title="throughput vs the paper configuration", ylabel="throughput / paper's")
    ax.legend(loc="upper left")
    ax = axes[1]
    spread = frame.groupby(["series", "technique"], sort=False)["spare"].nunique()
    lines = [(str(s), str(t)) for s, t in spread[spread > 1].index.tolist()]
    top = 0.0
    several = len({technique for _, technique in lines}) > 1
    for name, technique in lines:
        rows = frame[(frame["series"] == name) & (frame["technique"] == technique)]
        rows = rows.sort_values("spare", kind="stable")
        top = max(top, float(rows["throughput_per_s"].fillna(0.0).max()))
        ax.plot(rows["spare"], rows["throughput_per_s"], "o-", ms=3.5, color=colors[name],
                label=f"{name}, {technique}" if several else f"{name} ({technique})")  # fmt: skip
        for x, y, ratio in rows[["spare", "throughput_per_s", "throughput_vs_paper"]].itertuples(
            index=False
        ):
            if len(lines) == 1 and not math.isnan(ratio):  # several lines' labels would collide
                ax.annotate(f"{ratio:.3g}x", (x, y), xytext=(0, 4), textcoords="offset points",
                            ha="center", va="bottom", fontsize=6.5)  # fmt: skip
    if lines:
        spares = sorted({int(s) for s in frame["spare"]})
        ax.set_xticks(spares)
        ax.set_xlim(spares[0] - 0.4, spares[-1] + 0.4)
        ax.set_ylim(0, top * 1.2 or 1.0)
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "no spare-board runs", transform=ax.transAxes, ha="center",
                va="center")  # fmt: skip
    ax.set(title="throughput vs spare boards", xlabel="spare boards",
           ylabel="throughput (inferences / s)")  # fmt: skip
    return fig
