"""The data behind the transport and partition comparisons, and how archives become series."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.report.archives import BEYOND, Recorded, write_bench_like
from tinysplit.links.calibration import section
from tinysplit.report import MissingDataError, Runs, load_runs
from tinysplit.report.beyond import beyond_table
from tinysplit.report.partitions import partition_table
from tinysplit.report.runs import parse_case
from tinysplit.report.transports import (
    current_by_state,
    energy_by_state,
    timeline,
    transport_table,
)
from tinysplit.sim.metrics import summarize


def _latencies(results: list) -> list[float]:  # type: ignore[type-arg]
    out = []
    for result in results:
        n = len(result.plan.stages)
        end = {e.inference: e.inference_end_s for e in result.stage_events if e.stage == n}
        out += [end[i] - result.injected_s[i] for i in result.completed]
    return out


def test_transport_table_from_latency_and_stream_runs(recorded: Recorded, runs: Runs) -> None:
    table = transport_table(runs).set_index("series")
    assert list(table.index) == ["ble", "espnow"]
    for series in ("ble", "espnow"):
        latency = _latencies(recorded.runs_of(f"latency[{series}]"))
        summaries = [summarize(r) for r in recorded.runs_of(f"latency[{series}]")]
        stream = summarize(recorded.runs_of(f"stream[{series}]")[0])
        row = table.loc[series]
        assert row.latency_p50_s == pytest.approx(np.percentile(latency, 50))
        assert row.latency_p95_s == pytest.approx(np.percentile(latency, 95))
        assert row.network_to_inference == pytest.approx(
            sum(s["network_s"] for s in summaries) / sum(s["inference_s"] for s in summaries)
        )
        assert row.failure_rate == 0
        assert row.throughput_per_s == pytest.approx(stream["throughput_per_s"])
        assert row.energy_per_inference_j == pytest.approx(stream["energy_per_inference_j"])


def test_energy_by_state_adds_up_to_energy_per_inference(recorded: Recorded, runs: Runs) -> None:
    frame = energy_by_state(runs)
    assert list(frame[frame.series == "ble"].state) == ["idle", "inference", "radio_tx",
                                                        "radio_rx"]  # fmt: skip
    for series in ("ble", "espnow"):
        stream = summarize(recorded.runs_of(f"stream[{series}]")[0])
        mine = frame[frame.series == series].set_index("state").energy_per_inference_j
        assert mine.sum() == pytest.approx(stream["energy_per_inference_j"])
        idle = sum(board["idle"] for board in stream["energy_j"]) / stream["completed"]
        assert mine["idle"] == pytest.approx(idle)


def test_current_by_state_adds_up_to_each_boards_mean_current(
    recorded: Recorded, runs: Runs
) -> None:
    frame = current_by_state(runs)
    volts = float(section("power")["supply_v"])
    stream = recorded.runs_of("stream[ble]")[0]
    ble = frame[frame.series == "ble"]
    assert sorted(set(ble.board)) == [1, 2, 3]
    for board, energy in enumerate(stream.energy_j, start=1):
        mine = ble[ble.board == board].set_index("state").current_ma
        expected = {s: e / (volts * stream.duration_s) * 1000 for s, e in energy.items()}
        assert mine.to_dict() == pytest.approx(expected)
        assert mine.sum() == pytest.approx(sum(energy.values()) / (volts * stream.duration_s) * 1e3)


def test_timeline_holds_the_first_inferences_events(recorded: Recorded, runs: Runs) -> None:
    frame = timeline(runs, inferences=2)
    stream = recorded.runs_of("stream[espnow]")[0]
    mine = frame[frame.series == "espnow"]
    assert set(mine.inference) == {0, 1}
    t0 = min(stream.injected_s[:2])
    expected = sorted(
        (e.inference, e.stage, activity,
         getattr(e, f"{activity}_start_s") - t0, getattr(e, f"{activity}_end_s") - t0)
        for e in stream.stage_events if e.inference < 2
        for activity in ("receive", "inference", "send")
        if not math.isnan(getattr(e, f"{activity}_start_s"))
    )  # fmt: skip
    got = sorted(mine[["inference", "board", "activity", "start_s", "end_s"]]
                 .itertuples(index=False, name=None))  # fmt: skip
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert np.allclose([g[3:] for g in got], [e[3:] for e in expected])
    assert min(mine.start_s) == 0.0


def test_partition_table_compares_the_strategies(recorded: Recorded, runs: Runs) -> None:
    table = partition_table(runs)
    assert list(table.strategy) == ["paper", "optimal"]
    rows = table.set_index("strategy")
    for name in ("paper", "optimal"):
        plan = recorded.plans[("ble", name)]
        row = rows.loc[name]
        stream = summarize(recorded.runs_of(f"partition_stream[{name},ble]")[0])
        assert row.series == "ble"
        assert row.cuts == ",".join(str(s.last_layer) for s in plan.stages[:-1])
        assert (row.devices, row.max_sent_bytes) == (3, plan.max_sent_bytes)
        assert row.bytes_sent == sum(s.outgoing.size_bytes for s in plan.stages[:-1])
        assert row.modelled_period_s == pytest.approx(plan.bottleneck_s)
        latency = _latencies(recorded.runs_of(f"partition[{name},ble]"))
        assert row.latency_p50_s == pytest.approx(np.percentile(latency, 50))
        assert row.throughput_per_s == pytest.approx(stream["throughput_per_s"])
    assert rows.loc["paper", "throughput_vs_paper"] == 1.0
    assert rows.loc["optimal", "throughput_vs_paper"] == pytest.approx(
        rows.loc["optimal", "throughput_per_s"] / rows.loc["paper", "throughput_per_s"]
    )


def test_beyond_table_compares_each_technique_with_paper(recorded: Recorded, runs: Runs) -> None:
    table = beyond_table(runs)
    assert list(zip(table.technique, table.spare, strict=True)) == [
        (v.technique, v.spare) for v in BEYOND
    ]
    paper = summarize(recorded.runs_of("beyond_stream[paper,ble,spare0]")[0])["throughput_per_s"]
    for variant, row in zip(BEYOND, table.itertuples(index=False), strict=True):
        plan = recorded.plans[("ble", f"beyond[{variant.params}]")]
        stream = summarize(recorded.runs_of(f"beyond_stream[{variant.params}]")[0])
        latency = _latencies(recorded.runs_of(f"beyond[{variant.params}]"))
        assert row.series == "ble"
        assert (row.stages, row.boards) == (len(plan.stages), 3 + variant.spare)
        assert row.replicas == ",".join(str(len(g)) for g in variant.placement)
        assert row.placement == " / ".join(
            ",".join(str(b + 1) for b in g) for g in variant.placement
        )
        assert row.boards_used == sum(len(g) for g in variant.placement)
        assert row.link_profile == (variant.link_profile or "paper")
        assert row.adaptive_window is variant.adaptive_window
        assert row.modelled_period_s == pytest.approx(plan.bottleneck_s)
        assert row.latency_p50_s == pytest.approx(np.median(latency))
        assert row.throughput_per_s == pytest.approx(stream["throughput_per_s"])
        assert row.throughput_vs_paper == pytest.approx(stream["throughput_per_s"] / paper)
    assert table.throughput_vs_paper.iloc[0] == 1.0


def test_beyond_table_reads_technique_and_spare_from_extra(tmp_path: Path) -> None:
    archive = write_bench_like(tmp_path, families=("beyond",)).path
    for name in ("manifest.json", "summary.csv", "inferences.csv", "links.csv", "energy.csv"):
        path = archive / name
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("beyond[joint,ble,spare1]", "beyond"), encoding="utf-8")
    table = beyond_table(load_runs([archive]))
    row = table[(table.technique == "joint") & (table.spare == 1)]
    assert len(row) == 1  # the bare ``beyond`` runs and beyond_stream[joint,ble,spare1]
    assert row.latency_p50_s.notna().all() and row.throughput_per_s.notna().all()


def test_missing_runs_name_what_needs_them(tmp_path: Path) -> None:
    only_latency = load_runs([write_bench_like(tmp_path, families=("latency",)).path])
    table = transport_table(only_latency)
    assert table.throughput_per_s.isna().all() and table.latency_p50_s.notna().all()
    with pytest.raises(MissingDataError, match=r"timeline needs stream\[\.\.\.\] runs"):
        timeline(only_latency)
    with pytest.raises(MissingDataError, match=r"partition comparison needs partition\[\.\.\.\]"):
        partition_table(only_latency)
    with pytest.raises(MissingDataError, match=r"beyond the paper needs beyond\[\.\.\.\] runs"):
        beyond_table(only_latency)


def test_same_transport_in_two_archives_gives_two_series(recorded: Recorded) -> None:
    twice = load_runs([recorded.path, recorded.path])
    name = recorded.path.name
    assert twice.labels == (name, f"{name}-2")
    assert twice.series == (f"ble ({name})", f"ble ({name}-2)", f"espnow ({name})",
                            f"espnow ({name}-2)")  # fmt: skip
    table = transport_table(twice).set_index("series")
    assert table.loc[f"ble ({name})"].equals(table.loc[f"ble ({name}-2)"])


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("latency[ble]", ("latency", ("ble",))),
        ("partition[optimal-bytes,wifi]", ("partition", ("optimal-bytes", "wifi"))),
        ("first", ("first", ())),
        ("odd[", ("odd[", ())),
    ],
)
def test_case_names(name: str, parsed: tuple[str, tuple[str, ...]]) -> None:
    assert parse_case(name) == parsed
