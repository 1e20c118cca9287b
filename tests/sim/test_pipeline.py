"""Pipeline simulator: timing bookkeeping, pipelining, losses, determinism, bad input."""

from __future__ import annotations

import itertools
import math

import pytest

from tests.sim.fixed_link import FixedLink, three_stage_plan
from tinysplit.errors import ConfigError
from tinysplit.sim import PipelineConfig, simulate
from tinysplit.sim.deployment import rssi_matrix
from tinysplit.sim.metrics import summarize

RSSI = (-60.0, -70.0)


def _run(**kwargs: object) -> dict[str, object]:
    config = PipelineConfig(transport="ble", rssi_dbm=RSSI, **kwargs)  # type: ignore[arg-type]
    return summarize(simulate(three_stage_plan(), config, link=FixedLink(0.5)))


def test_first_inference_crosses_the_pipeline_in_order() -> None:
    result = simulate(
        three_stage_plan(),
        PipelineConfig(transport="ble", rssi_dbm=RSSI, inferences=1),
        link=FixedLink(0.5),
    )
    events = {e.stage: e for e in result.stage_events}
    assert (events[1].inference_start_s, events[1].inference_end_s) == (0.0, 1.0)
    assert (events[1].send_start_s, events[1].send_end_s) == (1.0, 1.5)
    assert (events[2].receive_start_s, events[2].receive_end_s) == (1.0, 1.5)
    assert (events[2].inference_start_s, events[2].inference_end_s) == (1.5, 3.5)
    assert (events[3].inference_start_s, events[3].inference_end_s) == (4.0, 5.0)
    assert math.isnan(events[1].receive_start_s) and math.isnan(events[3].send_start_s)
    assert result.completed == [0]
    assert result.setup_s == [0.25, 0.25]


def test_pipelining_runs_at_the_bottleneck_stage() -> None:
    summary = _run(inferences=20)
    assert summary["completed"] == 20
    assert summary["latency_s"]["p50"] > 5.0  # later inputs queue behind the bottleneck
    # Board 2 computes 2 s per inference and is the bottleneck: 0.5 inferences per second.
    assert summary["throughput_per_s"] == pytest.approx(0.5)
    assert summary["network_s"] == pytest.approx(20 * 2 * 0.5)
    assert summary["inference_s"] == pytest.approx(20 * 4.0)


def test_inputs_at_a_fixed_interval_do_not_queue() -> None:
    summary = _run(inferences=5, interval_s=10.0)
    assert summary["latency_s"]["p95"] == pytest.approx(5.0)
    assert summary["duration_s"] == pytest.approx(45.0)


def test_lost_transfers_fail_inferences_but_the_pipeline_goes_on() -> None:
    config = PipelineConfig(transport="ble", rssi_dbm=RSSI, inferences=4)
    result = simulate(three_stage_plan(), config, link=FixedLink(0.5, lose=True))
    assert result.completed == []
    assert result.failed == [0, 1, 2, 3]
    summary = summarize(result)
    assert summary["links"][0]["failure_rate"] == 1.0
    assert summary["links"][1]["transfers"] == 0


def test_energy_counts_inference_radio_and_idle() -> None:
    summary = _run(inferences=2)
    board2 = summary["energy_j"][1]
    assert set(board2) == {"idle", "inference", "radio_tx", "radio_rx"}
    # Board 2 computed 2 x 2 s at (77.75 - 47.6) mA over idle at 3.3 V.
    assert board2["inference"] == pytest.approx(4.0 * 30.15e-3 * 3.3)
    assert summary["energy_per_inference_j"] == pytest.approx(summary["energy_total_j"] / 2)


def _completion_gaps(transport: str) -> list[float]:
    plan = three_stage_plan((0.1, 0.1, 0.1))
    config = PipelineConfig(transport=transport, rssi_dbm=RSSI, inferences=10)
    result = simulate(plan, config, link=FixedLink(1.0))
    ends = sorted(e.inference_end_s for e in result.stage_events if e.stage == 3)
    middle = ends[3:7]  # away from the start-up and the drain at the end
    return [round(b - a, 9) for a, b in itertools.pairwise(middle)]


def test_radios_serialise_transfers() -> None:
    # Wi-Fi: both links share one channel. BLE: board 2's radio serves both of its links.
    # Either way each inference needs 2 s of radio time: one result every 2 s.
    assert _completion_gaps("wifi") == [2.0, 2.0, 2.0]
    assert _completion_gaps("ble") == [2.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "window must be >= 1"),
        ({"inferences": 0}, "inferences must be >= 1"),
        ({"interval_s": -1.0}, "interval_s must be > 0"),
    ],
)
def test_bad_config(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PipelineConfig(transport="ble", **kwargs)  # type: ignore[arg-type]


def test_rssi_and_positions_must_match_the_boards() -> None:
    plan = three_stage_plan()
    with pytest.raises(ConfigError, match="rssi_dbm has 1 values but the plan has 2 links"):
        simulate(plan, PipelineConfig(transport="ble", rssi_dbm=(-60.0,)), link=FixedLink(1.0))
    with pytest.raises(ConfigError, match="same position"):
        simulate(
            plan,
            PipelineConfig(transport="ble", positions_m=((0, 0), (1, 0), (1, 0))),
            link=FixedLink(1.0),
        )


def test_simpy_backend_gives_identical_records() -> None:
    simpy = pytest.importorskip("simpy")
    plan = three_stage_plan((0.3, 0.7, 0.2))
    config = PipelineConfig(transport="ble", rssi_dbm=RSSI, inferences=12, interval_s=0.4)
    ours = simulate(plan, config, link=FixedLink(0.45))
    theirs = simulate(plan, config, link=FixedLink(0.45), backend=simpy)
    assert ours.stage_events == theirs.stage_events
    assert ours.duration_s == theirs.duration_s


@pytest.mark.parametrize("transport", ["ble", "wifi", "espnow"])
def test_same_seed_same_records_with_calibrated_links(transport: str) -> None:
    plan = three_stage_plan((0.05, 0.1, 0.05))
    config = PipelineConfig(transport=transport, rssi_dbm=(-70.0, -85.0), inferences=4, seed=3)
    a, b = simulate(plan, config), simulate(plan, config)
    assert a.stage_events == b.stage_events
    assert a.link_events == b.link_events
    other = simulate(plan, PipelineConfig(transport=transport, rssi_dbm=(-70.0, -85.0),
                                          inferences=4, seed=4))  # fmt: skip
    assert other.link_events != a.link_events


def test_wifi_relay_hops_go_through_the_access_point() -> None:
    seen: list[tuple[float, float | None]] = []

    class Recording(FixedLink):
        def transfer(self, payload_bytes, conditions, rng):  # type: ignore[no-untyped-def]
            seen.append((conditions.rssi_dbm, conditions.relay_rssi_dbm))
            return super().transfer(payload_bytes, conditions, rng)

    positions = ((0.0, 0.0), (3.0, 0.0), (9.0, 0.0))  # AP on board 1, at the left end
    config = PipelineConfig(transport="wifi", positions_m=positions, inferences=1, seed=1)
    simulate(three_stage_plan(), config, link=Recording(0.1))
    matrix = rssi_matrix(config, 3)
    # Link 1 -> 2 starts at the AP: one hop. Link 2 -> 3 goes board 2 -> AP -> board 3.
    assert seen == [(matrix[0, 1], None), (matrix[1, 0], matrix[0, 2])]
