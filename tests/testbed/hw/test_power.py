"""Power meters: energy split by state, the scribe's INA samples, the PPK2 behind its extra."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import pytest

from tests.testbed.hw.conftest import FakeBoard
from tinysplit.errors import ConfigError, MissingExtraError
from tinysplit.testbed.hw.console import Console
from tinysplit.testbed.hw.inventory import PowerSpec
from tinysplit.testbed.hw.power import (
    NoPowerMeter,
    PowerTrace,
    Ppk2Meter,
    ScribeInaMeter,
    energy_by_state,
    make_power_meter,
    ppk2_trace,
)
from tinysplit.testbed.hw.serial_port import open_serial


def constant(current_a: float, volts: float = 3.3, until_s: float = 10.0) -> PowerTrace:
    return PowerTrace(
        t_s=np.array([0.0, until_s]), current_a=np.array([current_a, current_a]), supply_v=volts
    )


def test_constant_power_splits_by_the_marked_intervals() -> None:
    energy = energy_by_state(
        constant(0.1),
        duration_s=4.0,
        intervals={"inference": [(0.5, 1.5)], "radio_tx": [(2.0, 2.5)], "radio_rx": [(3.0, 3.25)]},
    )
    watts = 0.1 * 3.3
    assert energy["inference"] == pytest.approx(watts * 1.0)
    assert energy["radio_tx"] == pytest.approx(watts * 0.5)
    assert energy["radio_rx"] == pytest.approx(watts * 0.25)
    assert energy["idle"] == pytest.approx(watts * 2.25)
    assert sum(energy.values()) == pytest.approx(watts * 4.0)


def test_overlapping_states_count_once_in_states_order() -> None:
    # Computing while the radio sends counts as inference; the rest of the send as radio_tx.
    energy = energy_by_state(
        constant(1.0, volts=1.0),
        duration_s=3.0,
        intervals={"inference": [(0.0, 1.0)], "radio_tx": [(0.5, 2.0)], "radio_rx": [(1.5, 2.5)]},
    )
    assert energy == pytest.approx(
        {"idle": 0.5, "inference": 1.0, "radio_tx": 1.0, "radio_rx": 0.5}
    )


def test_linear_current_is_integrated_exactly_and_held_outside_the_samples() -> None:
    # 0 A at t=1 rising to 2 A at t=3 (1 V); held at 0 A before and 2 A after.
    trace = PowerTrace(t_s=np.array([1.0, 3.0]), current_a=np.array([0.0, 2.0]), supply_v=1.0)
    energy = energy_by_state(trace, duration_s=4.0, intervals={"inference": [(2.0, 3.0)]})
    assert energy["inference"] == pytest.approx(1.5)  # mean 1.5 A over 1 s
    assert energy["idle"] == pytest.approx(0.5 + 2.0)  # rise from 1 to 2 s, then 2 A for 1 s


def test_measured_bus_voltage_per_sample() -> None:
    trace = PowerTrace(
        t_s=np.array([0.0, 1.0]), current_a=np.array([1.0, 1.0]), supply_v=np.array([3.0, 3.0])
    )
    assert sum(energy_by_state(trace, duration_s=1.0, intervals={}).values()) == pytest.approx(3.0)


def test_bad_traces_are_config_errors() -> None:
    empty = PowerTrace(t_s=np.array([]), current_a=np.array([]), supply_v=3.3)
    with pytest.raises(ConfigError, match="no samples"):
        energy_by_state(empty, duration_s=1.0, intervals={})
    with pytest.raises(ConfigError, match="one length"):
        PowerTrace(t_s=np.array([0.0]), current_a=np.array([1.0, 2.0]), supply_v=3.3)


def test_no_meter_gives_no_traces() -> None:
    meter = make_power_meter(PowerSpec(meter="none"), None)
    assert isinstance(meter, NoPowerMeter)
    meter.start()
    assert meter.stop() == {}


def test_meters_need_what_they_read() -> None:
    with pytest.raises(ConfigError, match="add \\[scribe\\]"):
        make_power_meter(PowerSpec(meter="scribe-ina"), None)
    with pytest.raises(ConfigError, match="needs the PPK2's port"):
        make_power_meter(PowerSpec(meter="ppk2"), None)


def test_scribe_ina_samples_from_the_scribe_console(fake_board: Callable[..., FakeBoard]) -> None:
    scribe = fake_board()
    console = Console(
        open_serial(port=scribe.port, serial_number=None, label="scribe"),
        label="scribe",
        port=scribe.port,
    )
    try:
        scribe.event("power", dev=1, t_ns=0, bus_mv=3300, current_ua=50000, power_uw=165000)
        synced(scribe, console)
        meter = make_power_meter(PowerSpec(meter="scribe-ina"), console)
        assert isinstance(meter, ScribeInaMeter)
        meter.start()  # samples of an earlier run are dropped
        scribe.event("power", dev=2, t_ns=20_000_000, bus_mv=3000, current_ua=200000, power_uw=1)
        scribe.event("power", dev=2, t_ns=10_000_000, bus_mv=3000, current_ua=100000, power_uw=1)
        scribe.event("power", dev=1, t_ns=10_000_000, bus_mv=3300, current_ua=40000, power_uw=1)
        scribe.event("power", dev=1, t_ns="garbage", bus_mv=3300, current_ua=1, power_uw=1)
        scribe.event("mark", line=1, mark="rx_start", t_ns=5)
        synced(scribe, console)
        traces = meter.stop()
    finally:
        console.close()
    assert sorted(traces) == [1, 2]
    np.testing.assert_allclose(traces[2].t_s, [0.01, 0.02])  # sorted by time
    np.testing.assert_allclose(traces[2].current_a, [0.1, 0.2])
    np.testing.assert_allclose(traces[2].power_w, [0.3, 0.6])
    np.testing.assert_allclose(traces[1].current_a, [0.04])
    assert [e.name for e in console.pop_events()] == ["mark"]  # other events stay queued


def synced(board: FakeBoard, console: Console) -> None:
    """Wait until the console has queued every line the board sent so far."""
    board.event("sync")
    console.wait_event("sync", timeout_s=5.0)


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_ppk2_without_its_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ppk2_api", None)  # import fails, installed or not
    monkeypatch.setitem(sys.modules, "ppk2_api.ppk2_api", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'tinysplit\[ppk2\]'"):
        make_power_meter(PowerSpec(meter="ppk2", port="/dev/ttyACM9"), None)


class FakePpk2:
    """What ``PPK2_API`` does for the meter: two reads of samples in microamperes."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.reads = [b"ab", b"", b"c"]

    def get_modifiers(self) -> None:
        self.calls.append("get_modifiers")

    def use_source_meter(self) -> None:
        self.calls.append("use_source_meter")

    def set_source_voltage(self, mV: int) -> None:
        self.calls.append(f"set_source_voltage {mV}")

    def toggle_DUT_power(self, state: str) -> None:
        self.calls.append(f"toggle_DUT_power {state}")

    def start_measuring(self) -> None:
        self.calls.append("start_measuring")

    def stop_measuring(self) -> None:
        self.calls.append("stop_measuring")

    def get_data(self) -> bytes:
        return self.reads.pop(0) if self.reads else b""

    def get_samples(self, buf: bytes) -> tuple[list[float], list[int]]:
        return [1000.0 * len(buf)] * len(buf), []  # one sample per byte, in uA


def test_ppk2_samples_become_a_trace_at_100_khz() -> None:
    api = FakePpk2()
    meter = Ppk2Meter("/dev/ttyACM9", supply_v=3.0, board=2, api=api, poll_s=0.001)
    meter.start()
    wait_for(lambda: not api.reads)
    traces = meter.stop()
    assert api.calls == [
        "get_modifiers",
        "use_source_meter",
        "set_source_voltage 3000",
        "toggle_DUT_power ON",
        "start_measuring",
        "stop_measuring",
    ]
    trace = traces[2]
    np.testing.assert_allclose(trace.t_s, [0.0, 1e-5, 2e-5])
    np.testing.assert_allclose(trace.current_a, [2e-3, 2e-3, 1e-3])
    assert trace.supply_v == 3.0


def test_ppk2_trace_conversion_and_limits() -> None:
    trace = ppk2_trace([10.0, 20.0], supply_v=1.8, rate_hz=1000.0)
    np.testing.assert_allclose(trace.t_s, [0.0, 0.001])
    np.testing.assert_allclose(trace.current_a, [1e-5, 2e-5])
    with pytest.raises(ConfigError, match=r"0\.8\.\.5 V"):
        Ppk2Meter("/dev/ttyACM9", supply_v=5.5, api=FakePpk2())
