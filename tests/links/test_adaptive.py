"""The adaptive window controller and per-ACK adaptation in the BLE model."""

from __future__ import annotations

import numpy as np
import pytest

from tinysplit.errors import ConfigError
from tinysplit.links.adaptive import (
    AdaptiveWindow,
    adaptive_transfer,
    min_window_for_cadence,
    sequence_goodput_kbps,
)
from tinysplit.links.base import LinkConditions, LinkModel, Mode, TransferResult
from tinysplit.links.ble import BleLink
from tinysplit.links.espnow import EspNowLink

TENSOR_BYTES = 100_000


def test_bounds_are_checked() -> None:
    with pytest.raises(ConfigError, match="min"):
        AdaptiveWindow(initial=6, min_window=7)
    with pytest.raises(ConfigError):
        AdaptiveWindow(initial=17, max_window=17)
    with pytest.raises(ConfigError, match="cadence"):
        min_window_for_cadence(0)
    with pytest.raises(ConfigError, match="ACK sample"):
        AdaptiveWindow().on_ack(1, -1)
    assert [min_window_for_cadence(r) for r in (1, 2, 6, 16)] == [1, 2, 4, 9]


def test_slow_start_then_one_per_window() -> None:
    ctl = AdaptiveWindow(initial=2)
    ctl.on_ack(2, 2000)
    ctl.on_ack(4, 4000)
    assert ctl.window == 8
    ctl.on_loss()
    assert ctl.window == 4
    ctl.on_ack(4, 4000)
    assert ctl.window == 5
    assert ctl.in_flight == 10


def test_loss_halves_once_per_burst_and_timeout_goes_to_min() -> None:
    ctl = AdaptiveWindow(initial=16, min_window=3)
    ctl.on_loss()
    ctl.on_loss()
    assert ctl.window == 8
    ctl.on_ack(8, 8000)
    ctl.on_loss()
    assert ctl.window == 4
    ctl.on_timeout()
    assert ctl.window == 3
    assert (ctl.losses, ctl.timeouts) == (3, 1)


def test_slower_frames_hold_growth_until_the_reference_forgets() -> None:
    ctl = AdaptiveWindow(initial=4)
    ctl.on_ack(4, 4000)
    for _ in range(4):
        ctl.on_ack(4, 40_000)
    held = ctl.window
    for _ in range(3):
        ctl.on_ack(4, 40_000)
    assert ctl.window == held < 16
    for _ in range(200):
        ctl.on_ack(4, 40_000)
    assert ctl.window == 16


def test_observe_counts_a_transfer_as_one_ack() -> None:
    ctl = AdaptiveWindow(initial=6)
    ctl.observe(TransferResult(duration_s=0.01, delivered=True, app_frames=6), 3000)
    assert ctl.window == 12
    ctl.observe(TransferResult(duration_s=0.01, delivered=True, app_frames=7, retransmissions=1),
                3000)  # fmt: skip
    assert ctl.window == 7  # halved to 6, then +1 for the window of frames acknowledged
    ctl.observe(TransferResult(duration_s=1.0, delivered=False, app_frames=3), 3000)
    assert ctl.window == 1


def test_fixed_window_transfers_are_unchanged_by_the_adaptive_path() -> None:
    """``simulate`` without a controller is the plain model (same draws, same result)."""
    link = BleLink.from_profile("bluedroid-2m")
    cond = LinkConditions(rssi_dbm=-50.0, window=6, mode=Mode.RELIABLE)
    a = link.transfer(TENSOR_BYTES, cond, np.random.default_rng(3))
    b = link.transfer(TENSOR_BYTES, cond, np.random.default_rng(3))
    assert a == b
    ctl = AdaptiveWindow.for_cadence(6)
    c = link.transfer_adaptive(TENSOR_BYTES, cond, np.random.default_rng(3), ctl)
    assert c.delivered and c.app_frames == a.app_frames
    assert c.duration_s < a.duration_s  # more in flight: the ACK rides the running event


def test_paper_mode_is_not_adapted() -> None:
    link = BleLink.from_profile("paper")
    cond = LinkConditions(rssi_dbm=-60.0, window=4, mode=Mode.PAPER)
    ctl = AdaptiveWindow.for_cadence(4)
    r1 = adaptive_transfer(link, 5000, cond, np.random.default_rng(1), ctl)
    r2 = link.transfer(5000, cond, np.random.default_rng(1))
    assert r1 == r2 and ctl.acks == 0
    with pytest.raises(ConfigError, match="reliable"):
        link.transfer_adaptive(5000, cond, np.random.default_rng(1), ctl)


@pytest.mark.parametrize(
    ("transport", "profile", "rssi_dbm"),
    [("ble", "bluedroid-2m", -50.0), ("ble", "bluedroid-2m", -85.0), ("espnow", None, -70.0)],
)
def test_goodput_reaches_90_percent_of_the_best_fixed_window(
    transport: str, profile: str | None, rssi_dbm: float
) -> None:
    link: LinkModel = (
        BleLink.from_profile(profile) if transport == "ble" else EspNowLink.from_profile(profile)
    )
    best = max(
        sequence_goodput_kbps(link, TENSOR_BYTES, rssi_dbm, w, tensors=6)[0]
        for w in (2, 4, 8, 12, 15, 16)
    )
    ctl = AdaptiveWindow.for_cadence(16)
    got, lost = sequence_goodput_kbps(link, TENSOR_BYTES, rssi_dbm, 16, ctl, tensors=6)
    assert lost == 0
    assert got >= 0.9 * best


def test_weak_link_losses_shrink_the_window_and_nothing_is_lost() -> None:
    """ESP-NOW at -98 dBm resends frames (observe: a loss per transfer)."""
    link = EspNowLink.from_profile(None)
    ctl = AdaptiveWindow.for_cadence(16)
    got, lost = sequence_goodput_kbps(link, TENSOR_BYTES, -98.0, 16, ctl, tensors=3)
    assert lost == 0 and got > 0
    assert ctl.losses > 0
    assert min_window_for_cadence(16) <= ctl.window < 16
