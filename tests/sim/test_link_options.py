"""Pipeline link options: adaptive window per link and the hybrid (BLE wake-up) transport."""

from __future__ import annotations

import dataclasses

import pytest

from tinysplit.errors import ConfigError
from tinysplit.model import Graph, load_model
from tinysplit.partition import Plan, partition
from tinysplit.sim.metrics import summarize
from tinysplit.sim.pipeline import PipelineConfig, simulate

PAPER_RSSI = (-66.0, -76.0, -71.0, -60.0)


@pytest.fixture(scope="module")
def plan() -> Plan:
    graph: Graph = load_model("paper")
    return partition(graph, strategy="paper", devices=5, profile="paper")


def test_adaptive_window_matches_or_beats_the_fixed_window(plan: Plan) -> None:
    # bluedroid-2m is the BLE profile whose goodput depends on the window (docs/protocol.md).
    base = PipelineConfig(
        transport="ble", link_profile="bluedroid-2m", rssi_dbm=PAPER_RSSI, inferences=12
    )
    fixed = simulate(plan, base)
    adaptive = simulate(plan, dataclasses.replace(base, adaptive_window=True))
    assert not adaptive.failed and len(adaptive.completed) == 12
    assert summarize(adaptive)["throughput_per_s"] >= summarize(fixed)["throughput_per_s"]
    # The recorded window is the controller's, per link; it moved away from the cadence of 6.
    assert {e.window for e in adaptive.link_events} != {6}
    assert {e.window for e in fixed.link_events} == {6}


def test_adaptive_window_is_deterministic(plan: Plan) -> None:
    config = PipelineConfig(
        transport="espnow", rssi_dbm=PAPER_RSSI, inferences=4, adaptive_window=True
    )
    first = simulate(plan, config)
    assert first.link_events == simulate(plan, config).link_events
    # ESP-NOW waits for every frame's answer: nothing adapts, the cadence is what was sent with.
    assert {e.window for e in first.link_events} == {6}


def test_adaptive_window_needs_reliable_mode() -> None:
    with pytest.raises(ConfigError, match="adaptive_window needs reliable mode"):
        PipelineConfig(transport="ble", mode="paper", adaptive_window=True)


@pytest.mark.parametrize("transport", ["wifi", "espnow"])
def test_hybrid_saves_energy_at_a_low_rate_and_costs_latency(plan: Plan, transport: str) -> None:
    common = {"transport": transport, "rssi_dbm": PAPER_RSSI, "inferences": 6, "interval_s": 60.0}
    awake = summarize(simulate(plan, PipelineConfig(**common)))
    hybrid = summarize(simulate(plan, PipelineConfig(**common, wake="ble")))
    assert hybrid["completed"] == awake["completed"] == 6
    assert hybrid["energy_per_inference_j"] < 0.5 * awake["energy_per_inference_j"]
    assert hybrid["latency_s"]["p50"] > awake["latency_s"]["p50"]  # every hop wakes its peer


def test_hybrid_needs_a_data_radio() -> None:
    with pytest.raises(ConfigError, match="ble"):
        PipelineConfig(transport="ble", wake="ble")
