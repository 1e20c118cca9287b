"""Expected link times: the cached, interpolated tables against the real link models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinysplit.errors import ConfigError
from tinysplit.links import LinkConditions, Mode, make_link
from tinysplit.links.estimate import GRID_DBM, link_time_s, link_times_s

PAYLOAD = 50_176  # the paper plan's stage-2 tensor


def _simulated_mean(
    transport: str, rssi: float, relay: float | None = None, seeds: int = 6
) -> float:
    link = make_link(transport)
    conditions = LinkConditions(rssi_dbm=rssi, window=6, relay_rssi_dbm=relay)
    runs = [
        link.transfer(PAYLOAD, conditions, np.random.default_rng([s, 77])) for s in range(seeds)
    ]
    return sum(r.duration_s for r in runs) / seeds


@pytest.mark.parametrize("transport", ["ble", "wifi", "espnow"])
def test_monotone_in_rssi(transport: str) -> None:
    rssi = np.linspace(-112.0, 0.0, 300)
    times = link_times_s(transport, PAYLOAD, rssi)
    assert (times[1:] <= times[:-1]).all()  # a stronger signal is never slower
    assert np.isfinite(times[-1]) and times[-1] > 0


@pytest.mark.parametrize(("transport", "rssi"), [("ble", -70.0), ("ble", -87.0), ("espnow", -93.0)])
def test_matches_the_link_model(transport: str, rssi: float) -> None:
    """On and between grid points the estimate is the link model's mean (other seeds)."""
    assert link_time_s(transport, PAYLOAD, rssi) == pytest.approx(
        _simulated_mean(transport, rssi), rel=0.05
    )


def test_scalar_and_vector_agree() -> None:
    values = np.array([[-60.0, -75.5], [math.nan, -90.0]])
    table = link_times_s("ble", PAYLOAD, values)
    assert table.shape == (2, 2)
    for idx in np.ndindex(2, 2):
        assert link_time_s("ble", PAYLOAD, float(values[idx])) == table[idx]


def test_unusable_links_cost_infinity() -> None:
    assert math.isinf(link_time_s("ble", PAYLOAD, -105.0))  # the BLE model holds no connection
    assert math.isinf(link_time_s("espnow", PAYLOAD, math.nan))  # no link in the matrix
    assert math.isinf(link_time_s("wifi", PAYLOAD, GRID_DBM[0] - 5))  # below the grid
    # Paper mode loses the whole tensor on a weak ESP-NOW link: it never arrives.
    assert math.isinf(link_time_s("espnow", PAYLOAD, -104.0, mode="paper"))
    assert math.isfinite(link_time_s("espnow", PAYLOAD, -60.0, mode="paper"))


def test_wifi_relay() -> None:
    """Two equal hops are the table itself; unequal hops stay close to the model."""
    direct = link_time_s("wifi", PAYLOAD, -70.0)
    relayed = link_time_s("wifi", PAYLOAD, -70.0, relay_rssi_dbm=-70.0)
    assert relayed > direct  # every frame crosses the air twice
    assert relayed == pytest.approx(_simulated_mean("wifi", -70.0, -70.0), rel=0.05)
    mixed = link_time_s("wifi", PAYLOAD, -60.0, relay_rssi_dbm=-88.0)
    assert mixed == pytest.approx(_simulated_mean("wifi", -60.0, -88.0), rel=0.15)


def test_windows_and_profiles_are_separate_tables() -> None:
    one = link_time_s("espnow", PAYLOAD, -65.0, window=1)
    six = link_time_s("espnow", PAYLOAD, -65.0, window=6)
    assert one > six  # waiting for an acknowledgment after every frame is slower
    ble = link_time_s("ble", PAYLOAD, -65.0)
    assert link_time_s("ble", PAYLOAD, -65.0, profile="bluedroid-2m") < ble


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"transport": "lora"}, "unknown transport"),
        ({"payload_bytes": 0}, "payload_bytes"),
        ({"rssi_dbm": -140.0}, "-130..20"),
        ({"window": 0}, "window"),
        ({"window": 40}, "reliable mode takes windows"),
        ({"mode": "lossy"}, "unknown mode"),
        ({"profile": "nope"}, "nope"),
        ({"relay_rssi_dbm": -60.0}, "wifi only"),
    ],
)
def test_bad_input(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"transport": "ble", "payload_bytes": PAYLOAD, "rssi_dbm": -60.0}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        link_time_s(**args)  # type: ignore[arg-type]


def test_mode_enum_accepted() -> None:
    assert link_time_s("ble", PAYLOAD, -60.0, mode=Mode.PAPER) > 0
