"""Wi-Fi SoftAP + TCP link model: calibration, relaying, rate adaptation, TCP mechanics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinysplit.errors import ConfigError
from tinysplit.links import LinkConditions, Mode, make_link, profile_names
from tinysplit.links.wifi import WifiLink, WifiProfile

PROFILES = profile_names("wifi")
TENSOR = 401_408  # bytes: the largest MobileNet intermediate the pipeline sends


def goodput_kbps(link: WifiLink, conditions: LinkConditions, seeds: int = 3) -> float:
    """Mean goodput of a bulk transfer, kbit/s."""
    rng = np.random.default_rng(11)
    times = [link.transfer(TENSOR, conditions, rng).duration_s for _ in range(seeds)]
    return 8 * TENSOR / float(np.mean(times)) / 1e3


def test_profiles() -> None:
    assert set(PROFILES) == {"lwip-default", "lwip-tuned"}
    link = make_link("wifi")
    assert isinstance(link, WifiLink)
    assert link.frame_bytes == 1440
    assert link.profile.initial_cwnd_bytes == 4380


@pytest.mark.parametrize("name", PROFILES)
def test_bulk_goodput_matches_sourced_target(name: str) -> None:
    link = WifiLink.from_profile(name)
    prof = link.profile
    lo, hi = prof.goodput_kbps
    assert prof.goodput_source
    conditions = LinkConditions(rssi_dbm=-50.0, window=prof.goodput_window, mode=prof.goodput_mode)
    got = goodput_kbps(link, conditions)
    if lo == hi:
        assert got == pytest.approx(lo, rel=0.15)
    else:
        assert lo <= got <= hi


def test_relay_through_the_ap_roughly_halves_goodput() -> None:
    """Air-bound (tuned) TCP halves; latency-bound stock TCP loses less but still loses."""
    for name, low, high in (("lwip-tuned", 0.4, 0.65), ("lwip-default", 0.5, 0.9)):
        link = WifiLink.from_profile(name)
        direct = goodput_kbps(link, LinkConditions(rssi_dbm=-50.0))
        relayed = goodput_kbps(link, LinkConditions(rssi_dbm=-50.0, relay_rssi_dbm=-50.0))
        assert low < relayed / direct < high, name


def test_relay_accounts_for_the_access_point() -> None:
    link = WifiLink.from_profile("lwip-tuned")
    rng = np.random.default_rng(2)
    direct = link.transfer(100_000, LinkConditions(rssi_dbm=-55.0), rng)
    relayed = link.transfer(100_000, LinkConditions(rssi_dbm=-55.0, relay_rssi_dbm=-60.0), rng)
    assert direct.relay_tx_s == direct.relay_rx_s == 0.0
    assert relayed.relay_tx_s > 0 and relayed.relay_rx_s > 0
    # The AP receives what the sender transmits and transmits what the receiver receives.
    assert relayed.relay_rx_s == pytest.approx(relayed.sender_tx_s + relayed.receiver_tx_s, rel=0.3)
    assert relayed.bytes_on_air == pytest.approx(2 * direct.bytes_on_air, rel=0.1)


def test_weaker_signal_lowers_the_rate_and_lengthens_transfers() -> None:
    link = WifiLink.from_profile("lwip-tuned")
    levels = (-50.0, -72.0, -78.0, -82.0, -86.0, -90.0)
    rates = [link.mcs(rssi) for rssi in levels]
    assert rates == sorted(rates, reverse=True)
    assert rates[0] == 7 and rates[-1] == 0
    means = []
    for rssi in levels:
        rng = np.random.default_rng(4)
        conditions = LinkConditions(rssi_dbm=rssi)
        means.append(np.mean([link.transfer(60_000, conditions, rng).duration_s for _ in range(5)]))
    assert means == sorted(means)


def test_delayed_ack_timer_stalls_a_one_segment_window() -> None:
    """With room for one segment, each waits for lwIP's 250 ms delayed-ACK timer (mean 125 ms)."""
    base = WifiLink.from_profile("lwip-default").profile
    prof = dataclasses.replace(base, snd_buf_bytes=1440, wnd_bytes=1440)
    conditions = LinkConditions(rssi_dbm=-50.0, mode=Mode.RELIABLE)
    rng = np.random.default_rng(9)
    stalled = np.mean(
        [WifiLink(prof).transfer(1424 * 11 - 4, conditions, rng).duration_s for _ in range(10)]
    )
    normal = WifiLink(base).transfer(1424 * 11 - 4, conditions, rng).duration_s
    assert 0.6 < stalled < 2.0  # ten timer waits of U(0, 0.25) s
    assert normal < 0.02


def test_mode_sets_only_the_frame_header() -> None:
    link = WifiLink.from_profile("lwip-default")
    rng = np.random.default_rng(3)
    # A paper frame fills a 1440 B segment with its 2 B length prefix and 8 B timer id: 1430 B.
    paper = link.transfer(1430 * 50, LinkConditions(rssi_dbm=-50.0, mode=Mode.PAPER), rng)
    reliable = link.transfer(1430 * 50, LinkConditions(rssi_dbm=-50.0, mode=Mode.RELIABLE), rng)
    assert paper.app_frames == 50
    assert reliable.app_frames == 51  # 1424 B per frame and the 4 B tensor CRC: one more frame
    assert paper.delivered and reliable.delivered


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=80_000),
    rssi=st.floats(min_value=-96.0, max_value=-40.0),
    relay=st.one_of(st.none(), st.floats(min_value=-94.0, max_value=-40.0)),
    mode=st.sampled_from(list(Mode)),
    name=st.sampled_from(PROFILES),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_tcp_always_delivers(
    size: int, rssi: float, relay: float | None, mode: Mode, name: str, seed: int
) -> None:
    link = WifiLink.from_profile(name)
    conditions = LinkConditions(rssi_dbm=rssi, relay_rssi_dbm=relay, mode=mode)
    r = link.transfer(size, conditions, np.random.default_rng(seed))
    assert r.delivered
    assert r.duration_s > 0
    assert r.drops == r.retransmissions >= 0
    assert r.link_retries >= 0
    assert r.sender_tx_s > 0 and r.receiver_rx_s > 0 and r.receiver_tx_s > 0
    assert (r.relay_tx_s > 0) == (relay is not None)


def test_same_seed_same_result() -> None:
    link = WifiLink.from_profile("lwip-tuned")
    conditions = LinkConditions(rssi_dbm=-88.0, relay_rssi_dbm=-70.0)
    a = link.transfer(250_000, conditions, np.random.default_rng(42))
    b = link.transfer(250_000, conditions, np.random.default_rng(42))
    assert a == b
    assert a.link_retries > 0


def test_unknown_profile_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"lwip-default.*lwip-tuned"):
        make_link("wifi", "lwip-turbo")


def test_bad_profile_values_raise_config_error() -> None:
    prof = WifiLink.from_profile().profile
    table = prof.to_dict()
    assert WifiProfile.from_table(prof.name, table) == prof
    with pytest.raises(ConfigError):
        WifiProfile.from_table("x", {**table, "wnd_bytes": 100})
    with pytest.raises(ConfigError):
        WifiProfile.from_table("x", {**table, "nagle": True})


def test_setup_time_is_sourced() -> None:
    """radios-ref §3.3: static IP + known channel < 200 ms; DHCP 1.5-2 s."""
    conditions = LinkConditions(rssi_dbm=-50.0)
    assert 1.5 <= make_link("wifi", "lwip-default").setup_s(conditions) <= 2.0
    assert make_link("wifi", "lwip-tuned").setup_s(conditions) <= 0.2
