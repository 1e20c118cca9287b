"""Hybrid link: BLE wake-up + Wi-Fi / ESP-NOW data, its timing and its radio-time accounting."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tinysplit.errors import ConfigError
from tinysplit.links import LinkConditions, make_link
from tinysplit.links.hybrid import (
    HybridEspNowLink,
    HybridLink,
    HybridProfile,
    HybridWifiLink,
    check_wake,
    hybrid_link,
    load_hybrid_profile,
)

PAYLOAD = 50_176  # the paper plan's second tensor, bytes


@pytest.fixture(params=["wifi", "espnow"])
def link(request: pytest.FixtureRequest) -> HybridLink:
    wrapped = hybrid_link(make_link(request.param))
    assert isinstance(wrapped, HybridLink)
    return wrapped


def test_profiles_load_and_sleep_current_follows_the_formula() -> None:
    p = load_hybrid_profile()
    assert p.name == "devkit"
    events = (1 + 1 / (p.peripheral_latency + 1)) / (p.wake_conn_interval_ms / 1e3)
    assert p.sleep_ma == pytest.approx(
        p.sleep_floor_ma + p.psram_ma + p.event_charge_uc * events / 1e3
    )
    assert load_hybrid_profile("xtal32k").sleep_ma < p.sleep_ma
    # Far below a board that never sleeps (BLE idle: the CPU in WAITI, 47.6 mA).
    assert p.sleep_ma < 10.0


def test_longer_wake_interval_sleeps_cheaper() -> None:
    p = load_hybrid_profile()
    slow = dataclasses.replace(p, wake_conn_interval_ms=1000.0)
    assert slow.sleep_ma < p.sleep_ma


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"wake_conn_interval_ms": 5.0}, "7.5..4000"),
        ({"peripheral_latency": 500}, "0..499"),
        ({"idle_timeout_ms": -1.0}, "idle_timeout_ms"),
        ({"sleep_floor_ma": True}, "sleep_floor_ma"),
    ],
)
def test_bad_profile_values_are_rejected(change: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(load_hybrid_profile(), **change)  # type: ignore[arg-type]


def test_unknown_and_missing_profile_keys() -> None:
    with pytest.raises(ConfigError, match="unknown hybrid profile 'nope'"):
        load_hybrid_profile("nope")
    with pytest.raises(ConfigError, match="unknown keys"):
        HybridProfile.from_table("x", {"bogus": 1})
    with pytest.raises(ConfigError, match="hybrid profile 'x'"):
        HybridProfile.from_table("x", {"sleep_floor_ma": 1.0})


def test_wrapping_rules() -> None:
    wifi = make_link("wifi")
    assert hybrid_link(wifi, None) is wifi
    wrapped = hybrid_link(wifi)
    assert isinstance(wrapped, HybridWifiLink)
    assert hybrid_link(wrapped) is wrapped
    assert isinstance(hybrid_link(make_link("espnow")), HybridEspNowLink)
    assert wrapped.transport.value == "wifi"
    assert wrapped.frame_bytes == wifi.frame_bytes
    with pytest.raises(ConfigError, match="data transport of wifi or espnow"):
        hybrid_link(make_link("ble"))
    with pytest.raises(ConfigError, match="unknown wake transport 'lora'"):
        check_wake("wifi", "lora")
    with pytest.raises(ConfigError, match="wraps a espnow link"):
        HybridEspNowLink(wifi, load_hybrid_profile())


def test_transfer_is_wake_up_plus_the_data_transfer(link: HybridLink) -> None:
    conditions = LinkConditions(rssi_dbm=-60.0, window=6)
    got = link.transfer(PAYLOAD, conditions, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    wake = link.wake(conditions, rng)
    data = link.data.transfer(PAYLOAD, conditions, rng)
    assert got.duration_s == pytest.approx(wake.ready_s + data.duration_s)
    assert got.delivered and got.app_frames == data.app_frames
    assert got.sender_tx_s == data.sender_tx_s and got.receiver_tx_s == data.receiver_tx_s
    # Every second a radio is up is radio time: the sender from its decision to send, the
    # receiver from its wake-up, both until the idle timeout after the tensor.
    tail = link.profile.idle_timeout_ms / 1e3
    sender_up = got.sender_tx_s + got.sender_rx_s
    receiver_up = got.receiver_tx_s + got.receiver_rx_s
    assert sender_up == pytest.approx(got.duration_s + tail)
    assert receiver_up == pytest.approx(got.duration_s - wake.receiver_wake_s + tail)


def test_wake_up_latency_matches_its_parts(link: HybridLink) -> None:
    p = link.profile
    conditions = LinkConditions(rssi_dbm=-50.0)
    rng = np.random.default_rng(1)
    draws = [link.wake(conditions, rng) for _ in range(4000)]
    assert all(d.wake_writes == 1 for d in draws)  # strong signal: the first write gets through
    ready = np.array([d.ready_s for d in draws])
    fixed = p.host_wake_ms / 1e3 + p.ready_s(link.transport.value)
    interval = p.wake_conn_interval_ms / 1e3
    # The next connection anchor is uniform within one interval (plus ~1 ms of air time).
    assert fixed <= ready.min() and ready.max() <= fixed + interval + 2e-3
    assert ready.mean() == pytest.approx(fixed + interval / 2, abs=0.01)


def test_weak_signal_repeats_wake_writes_and_a_dead_link_is_an_error(link: HybridLink) -> None:
    rng = np.random.default_rng(3)
    weak = [link.wake(LinkConditions(rssi_dbm=-97.0), rng).wake_writes for _ in range(500)]
    assert max(weak) > 1
    assert link.wake_failure(-97.0) > link.wake_failure(-60.0)
    with pytest.raises(ConfigError, match="no BLE connection"):
        link.wake(LinkConditions(rssi_dbm=-125.0), rng)


def test_wifi_pairs_talk_directly_without_the_softap_relay() -> None:
    link = hybrid_link(make_link("wifi"))
    relayed = LinkConditions(rssi_dbm=-60.0, relay_rssi_dbm=-60.0)
    got = link.transfer(PAYLOAD, relayed, np.random.default_rng(0))
    assert got.relay_tx_s == 0.0 and got.relay_rx_s == 0.0
    direct = link.transfer(PAYLOAD, LinkConditions(rssi_dbm=-60.0), np.random.default_rng(0))
    assert got == direct


def test_setup_is_the_ble_connection_and_transfers_are_deterministic(link: HybridLink) -> None:
    conditions = LinkConditions(rssi_dbm=-60.0)
    assert link.setup_s(conditions) == link.wake_link.setup_s(conditions)
    a = link.transfer(PAYLOAD, conditions, np.random.default_rng(5))
    b = link.transfer(PAYLOAD, conditions, np.random.default_rng(5))
    assert a == b
