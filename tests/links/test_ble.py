"""BLE link model: LL timing, sourced goodputs, the paper's failures, reliable delivery."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinysplit.errors import ConfigError
from tinysplit.links import LinkConditions, Mode, make_link, profile_names
from tinysplit.links.ble import BleLink
from tinysplit.links.ble_profile import BleProfile, profile_table
from tinysplit.links.ble_timing import fragments, ll_ceiling_kbps, load_phys, load_spec
from tinysplit.protocol import MAX_RELIABLE_WINDOW

#: The paper's largest intermediates (28 x 28 x 256 and 14 x 14 x 512 int16 values).
PAPER_TENSORS = (401_408, 200_704)
PROFILES = profile_names("ble")


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def paper_conditions(rssi_dbm: float, window: int) -> LinkConditions:
    return LinkConditions(rssi_dbm=rssi_dbm, window=window, mode=Mode.PAPER)


def mean_duration(
    link: BleLink, payload: int, conditions: LinkConditions, seeds: Iterable[int]
) -> float:
    results = [link.transfer(payload, conditions, rng(s)) for s in seeds]
    assert all(r.delivered for r in results)
    return float(np.mean([r.duration_s for r in results]))


def failure_rate(link: BleLink, payload: int, conditions: LinkConditions, seeds: int) -> float:
    return (
        sum(not link.transfer(payload, conditions, rng(s)).delivered for s in range(seeds)) / seeds
    )


@pytest.fixture(scope="module")
def paper() -> BleLink:
    return BleLink.from_profile("paper")


# --- link-layer timing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phy", "ll_payload", "ceiling_kbps"), [("1m", 251, 791), ("2m", 251, 1402), ("1m", 27, 237)]
)
def test_ll_ceilings_come_out_of_the_timing(phy: str, ll_payload: int, ceiling_kbps: float) -> None:
    """radios-ref §1.2: back-to-back full PDUs, each followed by the peer's empty PDU."""
    got = ll_ceiling_kbps(load_phys()[phy], ll_payload, load_spec())
    assert got == pytest.approx(ceiling_kbps, abs=1.0)


@pytest.mark.parametrize(
    ("phy", "ll_payload", "pdus", "ms"),
    [("1m", 251, 3, 5.55), ("1m", 27, 20, 13.4), ("2m", 251, 3, 3.25)],
)
def test_one_514_byte_value(phy: str, ll_payload: int, pdus: int, ms: float) -> None:
    """radios-ref §1.2: a 514 B notification (MTU 517) as LL PDUs and its air time."""
    spec = load_spec()
    sizes = fragments(514, ll_payload, spec)
    assert len(sizes) == pdus and sum(sizes) == 514 + 7
    air_us = sum(load_phys()[phy].exchange_us(s, spec) for s in sizes)
    assert air_us / 1e3 == pytest.approx(ms, rel=0.01)


def test_make_link_builds_ble_profiles() -> None:
    link = make_link("ble")
    assert isinstance(link, BleLink)
    assert link.profile.name == "paper" and link.frame_bytes == 512
    assert link.tx_queue_values == 6  # NimBLE 12 x 256 B mbufs = 4 values, + 2 in the controller
    assert isinstance(make_link("ble", "bluedroid-2m"), BleLink)


def test_paper_frames_carry_504_tensor_bytes(paper: BleLink) -> None:
    assert paper.frame_plan(401_408, Mode.PAPER) == (797, 401_408 - 796 * 504 + 8)
    frames, last = paper.frame_plan(401_408, Mode.RELIABLE)  # 16 B header, 4 B tensor CRC
    assert frames == 810 and last == 401_412 - 809 * 496 + 16


# --- calibration against sources ------------------------------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_profile_reproduces_its_sourced_goodput(name: str) -> None:
    link = BleLink.from_profile(name)
    p = link.profile
    conditions = LinkConditions(rssi_dbm=-50.0, window=p.goodput_window, mode=Mode(p.goodput_mode))
    kbps = PAPER_TENSORS[0] * 8 / mean_duration(link, PAPER_TENSORS[0], conditions, range(3)) / 1e3
    lo, hi = p.goodput_kbps
    assert 0.85 * lo <= kbps <= 1.15 * hi, f"{name}: {kbps:.1f} kbit/s vs {p.goodput_kbps}"


@pytest.mark.parametrize("rssi_dbm", [-55.0, -70.0, -85.0])
@pytest.mark.parametrize("payload", PAPER_TENSORS)
def test_paper_goodput_is_about_90_kbps_indoors(
    paper: BleLink, payload: int, rssi_dbm: float
) -> None:
    kbps = (
        payload * 8 / mean_duration(paper, payload, paper_conditions(rssi_dbm, 6), range(3)) / 1e3
    )
    assert 90 * 0.85 <= kbps <= 90 * 1.15


def test_windows_5_and_6_are_close_and_6_is_faster(paper: BleLink) -> None:
    c5, c6 = paper_conditions(-70.0, 5), paper_conditions(-70.0, 6)
    t5 = mean_duration(paper, PAPER_TENSORS[0], c5, range(10))
    t6 = mean_duration(paper, PAPER_TENSORS[0], c6, range(10))
    assert t6 < t5 < 1.06 * t6


def test_larger_windows_fail_but_would_be_faster(paper: BleLink) -> None:
    c6, c10 = paper_conditions(-70.0, 6), paper_conditions(-70.0, 10)
    assert failure_rate(paper, PAPER_TENSORS[0], c10, 10) == 1.0
    roomy = BleLink(dataclasses.replace(paper.profile, controller_tx_values=40))
    t6 = mean_duration(paper, PAPER_TENSORS[0], c6, range(5))
    assert mean_duration(roomy, PAPER_TENSORS[0], c10, range(5)) < 0.97 * t6


@pytest.mark.parametrize("payload", PAPER_TENSORS)
def test_failure_rate_rises_with_the_window(paper: BleLink, payload: int) -> None:
    rates = [failure_rate(paper, payload, paper_conditions(-70.0, w), 10) for w in range(1, 13)]
    assert rates[:6] == [0.0] * 6  # window <= 6: failure-free
    assert rates[7:] == [1.0] * 5  # window >= 8: always fails
    assert rates == sorted(rates)


def test_transfer_time_rises_as_the_signal_weakens(paper: BleLink) -> None:
    rssi = np.arange(-55.0, -91.0, -5.0)
    times = np.array(
        [mean_duration(paper, PAPER_TENSORS[0], paper_conditions(r, 6), range(5)) for r in rssi]
    )
    assert np.all(np.diff(times) > 0)
    assert times[-1] > 1.2 * times[0]
    assert np.corrcoef(rssi, times)[0, 1] < -0.8


def test_more_bytes_take_longer(paper: BleLink) -> None:
    small, big = (
        mean_duration(paper, n, paper_conditions(-70.0, 6), range(3)) for n in sorted(PAPER_TENSORS)
    )
    assert 1.8 * small < big < 2.2 * small


# --- loss and repair ------------------------------------------------------------------------------


def test_paper_mode_drops_silently_when_the_window_exceeds_the_pool(paper: BleLink) -> None:
    window = paper.tx_queue_values + 4
    result = paper.transfer(PAPER_TENSORS[0], paper_conditions(-60.0, window), rng(0))
    assert not result.delivered
    assert result.drops >= 1 and result.retransmissions == 0
    assert result.app_frames == window  # the first window already overflows; the sender waits
    assert result.duration_s >= paper.profile.paper_timeout_ms / 1e3


@pytest.mark.parametrize("name", PROFILES)
def test_paper_mode_never_drops_within_the_pool(name: str) -> None:
    link = BleLink.from_profile(name)
    conditions = paper_conditions(-60.0, link.tx_queue_values)
    for seed in range(3):
        result = link.transfer(50_000, conditions, rng(seed))
        assert result.delivered and result.drops == 0


def test_crc_errors_cost_time_not_data() -> None:
    link = BleLink.from_profile("nimble-tuned")
    conditions = LinkConditions(rssi_dbm=-95.0, window=16, mode=Mode.RELIABLE)
    weak = link.transfer(100_000, conditions, rng(1))
    strong = link.transfer(100_000, dataclasses.replace(conditions, rssi_dbm=-50.0), rng(1))
    assert weak.delivered and weak.retransmissions == 0 and weak.drops == 0
    assert weak.link_retries > 0 and strong.link_retries == 0
    assert weak.duration_s > strong.duration_s and weak.bytes_on_air > strong.bytes_on_air


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(PROFILES),
    payload=st.integers(1, 120_000),
    margin_db=st.floats(-2.0, 55.0),
    window=st.integers(1, MAX_RELIABLE_WINDOW),
    seed=st.integers(0, 2**32 - 1),
)
def test_reliable_mode_never_loses_a_tensor(
    name: str, payload: int, margin_db: float, window: int, seed: int
) -> None:
    link = BleLink.from_profile(name)
    rssi = link.phy_timing.sensitivity_dbm + margin_db
    conditions = LinkConditions(rssi_dbm=rssi, window=window, mode=Mode.RELIABLE)
    result = link.transfer(payload, conditions, rng(seed))
    frames, _ = link.frame_plan(payload, Mode.RELIABLE)
    assert result.delivered
    assert result.app_frames == frames + result.retransmissions
    assert result.drops == result.retransmissions  # only what a dropped connection lost
    assert result.duration_s > 0 and result.bytes_on_air > payload
    assert 0 < result.sender_tx_s <= result.duration_s and result.sender_rx_s > 0


def test_reliable_mode_resends_what_a_dropped_connection_lost() -> None:
    link = BleLink.from_profile("nimble-default")
    conditions = LinkConditions(rssi_dbm=-102.0, window=4, mode=Mode.RELIABLE)
    result = link.transfer(5_000, conditions, rng(1))
    frames, _ = link.frame_plan(5_000, Mode.RELIABLE)
    assert result.delivered and result.retransmissions > 0
    assert result.app_frames == frames + result.retransmissions
    lost = link.transfer(5_000, dataclasses.replace(conditions, mode=Mode.PAPER), rng(1))
    assert not lost.delivered and lost.drops > 0


def test_an_unusable_rssi_is_a_config_error(paper: BleLink) -> None:
    with pytest.raises(ConfigError, match="cannot hold a connection"):
        paper.transfer(1_000, paper_conditions(-110.0, 6), rng(0))
    with pytest.raises(ConfigError, match="cannot hold a connection"):
        paper.setup_s(paper_conditions(-110.0, 6))


# --- determinism and accounting ---------------------------------------------------------------


@pytest.mark.parametrize("mode", list(Mode))
def test_same_seed_same_result(paper: BleLink, mode: Mode) -> None:
    conditions = LinkConditions(rssi_dbm=-80.0, window=6, mode=mode)
    first = paper.transfer(PAPER_TENSORS[1], conditions, rng(7))
    assert paper.transfer(PAPER_TENSORS[1], conditions, rng(7)) == first
    assert BleLink.from_profile("paper").transfer(PAPER_TENSORS[1], conditions, rng(7)) == first
    assert paper.transfer(PAPER_TENSORS[1], conditions, rng(8)) != first


def test_radio_time_accounting(paper: BleLink) -> None:
    result = paper.transfer(PAPER_TENSORS[0], paper_conditions(-70.0, 6), rng(3))
    assert result.sender_tx_s == result.receiver_rx_s and result.sender_rx_s == result.receiver_tx_s
    assert result.receiver_tx_s < result.sender_tx_s < result.duration_s
    assert result.bytes_on_air > PAPER_TENSORS[0]
    assert result.relay_tx_s == result.relay_rx_s == 0.0


def test_setup_time_is_plausible(paper: BleLink) -> None:
    assert 0.1 < paper.setup_s(paper_conditions(-60.0, 6)) < 2.0
    assert paper.setup_s(paper_conditions(-95.0, 6)) > paper.setup_s(paper_conditions(-60.0, 6))


# --- configuration errors -----------------------------------------------------------------------


def test_unknown_profile_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match="valid: paper, nimble-default, nimble-tuned"):
        BleLink.from_profile("nordic")
    with pytest.raises(ConfigError, match="unknown ble profile 'nordic'"):
        make_link("ble", "nordic")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("conn_interval_ms", 8.0, "1.25 ms steps"),
        ("conn_interval_ms", 5.0, "7.5..4000"),
        ("ll_payload_bytes", 300, "27..251"),
        ("value_bytes", 600, "value_bytes"),
        ("att_mtu", "517", "must be an integer"),
        ("host", "zephyr", "host must be one of nimble, bluedroid"),
        ("phy", "3m", "unknown phy '3m'"),
        ("max_event_ms", 50.0, "max_event_ms"),
        ("tx_pool_blocks", 0, "tx_pool_blocks"),
        ("app_write_ms", -1.0, "app_write_ms"),
        ("supervision_timeout_ms", 50.0, "supervision_timeout_ms"),
        ("interference_duty", 1.5, "duty"),
        ("interference_dbm", [-60.0, -90.0], "interference range"),
        ("goodput_kbps", [90.0], r"goodput_kbps must be \[lo, hi\]"),
        ("goodput_mode", "fast", "goodput_mode"),
        ("description", 3, "must be a string"),
    ],
)
def test_bad_table_values_are_config_errors(key: str, value: object, match: str) -> None:
    name, table = profile_table("paper")
    table[key] = value
    with pytest.raises(ConfigError, match=match):
        BleLink(BleProfile.from_table(name, table))


def test_missing_and_unknown_keys_are_config_errors() -> None:
    name, table = profile_table("paper")
    del table["conn_interval_ms"]
    with pytest.raises(ConfigError, match="missing keys conn_interval_ms"):
        BleProfile.from_table(name, table)
    name, table = profile_table("paper")
    table["colour"] = "blue"
    with pytest.raises(ConfigError, match="unknown keys colour"):
        BleProfile.from_table(name, table)


def test_an_event_shorter_than_one_exchange_is_rejected(paper: BleLink) -> None:
    coded = dataclasses.replace(
        paper.profile, phy="coded-s8", ll_payload_bytes=251, max_event_ms=10.0
    )
    with pytest.raises(ConfigError, match="shorter than one exchange"):
        BleLink(coded)


@pytest.mark.parametrize("name", PROFILES)
def test_profile_round_trips_through_to_dict(name: str) -> None:
    profile = BleLink.from_profile(name).profile
    table = {k: v for k, v in profile.to_dict().items() if k != "name"}
    assert BleProfile.from_table(name, table) == profile
    assert BleProfile.from_dict(profile.to_dict()) == profile


def test_reliable_window_is_bounded_by_the_ack_bitmap() -> None:
    """The firmware's ACK bitmap covers 2 x window frames in flight: 16 is the largest window."""
    LinkConditions(rssi_dbm=-50.0, window=MAX_RELIABLE_WINDOW)
    LinkConditions(rssi_dbm=-50.0, window=40, mode=Mode.PAPER)  # paper mode has no bitmap
    with pytest.raises(ConfigError, match="reliable mode takes windows up to 16, got 17"):
        LinkConditions(rssi_dbm=-50.0, window=MAX_RELIABLE_WINDOW + 1)
    for window in (0, True, 2.0):
        with pytest.raises(ConfigError, match="window must be an integer >= 1"):
            LinkConditions(rssi_dbm=-50.0, window=window)  # type: ignore[arg-type]
