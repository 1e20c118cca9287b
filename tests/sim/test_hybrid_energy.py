"""Hybrid power model and energy of hybrid runs, recomputed from the simulator's records."""

from __future__ import annotations

import pytest

from tinysplit.errors import ConfigError
from tinysplit.links import make_link
from tinysplit.links.hybrid import hybrid_link, load_hybrid_profile
from tinysplit.model import load_model
from tinysplit.partition import Plan, partition
from tinysplit.sim.energy import (
    PowerModel,
    busy_from_records,
    energy_from_records,
    marginal_energy_per_inference_j,
)
from tinysplit.sim.pipeline import PipelineConfig, SimResult, simulate

RSSI = (-60.0, -60.0, -60.0, -60.0)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return partition(load_model("paper"), strategy="paper", devices=5, profile="paper")


def run(plan: Plan, transport: str, *, wake: str | None, n: int, interval_s: float) -> SimResult:
    link = hybrid_link(make_link(transport), wake) if wake else None
    config = PipelineConfig(transport=transport, inferences=n, interval_s=interval_s, rssi_dbm=RSSI)
    return simulate(plan, config, link=link)


def test_hybrid_power_model_idles_at_the_sleep_current() -> None:
    sleep = load_hybrid_profile().sleep_ma
    awake = PowerModel.for_transport("wifi")
    hybrid = PowerModel.for_transport("wifi", wake="ble")
    assert hybrid.idle_ma == hybrid.cpu_idle_ma == pytest.approx(sleep)
    assert (hybrid.tx_ma, hybrid.rx_ma, hybrid.inference_ma) == (
        awake.tx_ma,
        awake.rx_ma,
        awake.inference_ma,
    )
    assert PowerModel.for_transport("espnow", wake="ble", hybrid_profile="xtal32k").idle_ma < sleep
    # An hour asleep: the sleep current alone.
    energy = hybrid.energy_j(duration_s=3600.0, busy_s={})
    assert energy["idle"] == pytest.approx(sleep * 3.3e-3 * 3600.0)
    assert energy["inference"] == energy["radio_tx"] == energy["radio_rx"] == 0.0


def test_hybrid_power_model_rejects_bad_pairs() -> None:
    with pytest.raises(ConfigError, match="data transport"):
        PowerModel.for_transport("ble", wake="ble")
    with pytest.raises(ConfigError, match="unknown wake transport"):
        PowerModel.for_transport("wifi", wake="zigbee")
    with pytest.raises(ConfigError, match="unknown hybrid profile"):
        PowerModel.for_transport("wifi", wake="ble", hybrid_profile="nope")


def test_records_rebuild_the_simulators_own_energy(plan: Plan) -> None:
    # ESP-NOW has no SoftAP relay, so the records hold every radio second the run counted.
    result = run(plan, "espnow", wake=None, n=4, interval_s=20.0)
    again = energy_from_records(result, PowerModel.for_transport("espnow"))
    for board, rebuilt in zip(result.energy_j, again, strict=True):
        assert rebuilt == pytest.approx(board)


def test_hybrid_run_delivers_everything_and_wakes_on_every_transfer(plan: Plan) -> None:
    plain = run(plan, "wifi", wake=None, n=4, interval_s=30.0)
    hybrid = run(plan, "wifi", wake="ble", n=4, interval_s=30.0)
    assert hybrid.completed == [0, 1, 2, 3] and not hybrid.failed
    ready = load_hybrid_profile().ready_s("wifi")
    assert len(plain.link_events) == len(hybrid.link_events)
    assert all(e.result.duration_s > ready for e in hybrid.link_events)
    busy = busy_from_records(hybrid)
    # Boards 2-4 receive and send, so their radios are up for two wake-ups per inference.
    assert all(b["radio_rx"] > 4 * 2 * ready for b in busy[1:4])


@pytest.mark.parametrize("transport", ["wifi", "espnow"])
def test_sleeping_boards_spend_less_per_inference_at_a_low_rate(plan: Plan, transport: str) -> None:
    interval = 60.0
    power = PowerModel.for_transport(transport, wake="ble")
    single = marginal_energy_per_inference_j(
        run(plan, transport, wake=None, n=3, interval_s=interval),
        run(plan, transport, wake=None, n=6, interval_s=interval),
    )
    hybrid = marginal_energy_per_inference_j(
        run(plan, transport, wake="ble", n=3, interval_s=interval),
        run(plan, transport, wake="ble", n=6, interval_s=interval),
        power,
    )
    assert hybrid < single / 5


def test_idle_floor_grows_linearly_with_the_interval(plan: Plan) -> None:
    # Same seeds: the k-th transfer of every link draws the same numbers at either interval,
    # so twice the interval costs exactly one more interval of five sleeping boards.
    power = PowerModel.for_transport("wifi", wake="ble")

    def per_inference(interval: float) -> float:
        return marginal_energy_per_inference_j(
            run(plan, "wifi", wake="ble", n=3, interval_s=interval),
            run(plan, "wifi", wake="ble", n=6, interval_s=interval),
            power,
        )

    floor_w = 5 * power.idle_ma * power.supply_v / 1e3
    assert per_inference(200.0) - per_inference(100.0) == pytest.approx(floor_w * 100.0, rel=1e-6)


def test_marginal_energy_needs_more_inferences(plan: Plan) -> None:
    a = run(plan, "wifi", wake=None, n=3, interval_s=10.0)
    with pytest.raises(ConfigError, match="more inferences"):
        marginal_energy_per_inference_j(a, a)
