"""Current draw and energy per board, from datasheet currents at 3.3 V (``links/data``).

Energy is additive over overlapping activities: a board always draws the transport's idle
current (``idle``: the CPU in WAITI with BLE sleeping between connection events, or a Wi-Fi radio
listening with power save off), plus the extra current of inference over an idle CPU while it
computes, plus the extra current of transmitting or receiving over idle while its radio does.
A board that computes while it sends (pipelining) pays both increments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tinysplit.errors import ConfigError
from tinysplit.links.calibration import section

#: Energy components, in the order reports show them.
STATES = ("idle", "inference", "radio_tx", "radio_rx")


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerModel:
    """Currents of one board for one transport, in mA, and the supply voltage in V."""

    supply_v: float
    idle_ma: float
    inference_ma: float
    cpu_idle_ma: float
    tx_ma: float
    rx_ma: float

    def __post_init__(self) -> None:
        if self.supply_v <= 0 or min(self.idle_ma, self.tx_ma, self.rx_ma) < 0:
            raise ConfigError("power model: supply and currents must be positive")

    @classmethod
    def for_transport(cls, transport: str, *, dual_core: bool = False) -> PowerModel:
        """The datasheet model of a board running ``transport`` (see ``esp32s3.toml [power]``)."""
        p = section("power")
        radio = {
            "ble": (p["ble_tx_ma"], p["ble_rx_ma"], p["ble_idle_ma"]),
            "wifi": (p["wifi_tx_11n_ma"], p["wifi_rx_ma"], p["wifi_idle_ma"]),
            "espnow": (p["wifi_tx_11b_ma"], p["wifi_rx_ma"], p["wifi_idle_ma"]),
        }
        if transport not in radio:
            raise ConfigError(f"unknown transport {transport!r} (valid: ble, wifi, espnow)")
        tx, rx, idle = radio[transport]
        key = "cpu_inference_dual_core_ma" if dual_core else "cpu_inference_single_core_ma"
        return cls(
            supply_v=float(p["supply_v"]),
            idle_ma=float(idle),
            inference_ma=float(p[key]),
            cpu_idle_ma=float(p["cpu_idle_ma"]),
            tx_ma=float(tx),
            rx_ma=float(rx),
        )

    def energy_j(self, *, duration_s: float, busy_s: Mapping[str, float]) -> dict[str, float]:
        """Energy in joules by component for a board observed for ``duration_s`` seconds.

        Args:
            duration_s: the whole observed time.
            busy_s: seconds spent in ``inference``, ``radio_tx`` and ``radio_rx``.
        """
        extra_ma = {
            "inference": self.inference_ma - self.cpu_idle_ma,
            "radio_tx": max(self.tx_ma - self.idle_ma, 0.0),
            "radio_rx": max(self.rx_ma - self.idle_ma, 0.0),
        }
        volts_per_ma = self.supply_v / 1000.0
        energy = {"idle": self.idle_ma * volts_per_ma * duration_s}
        for state, ma in extra_ma.items():
            energy[state] = ma * volts_per_ma * busy_s.get(state, 0.0)
        return energy
