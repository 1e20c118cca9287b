"""Hybrid transport: boards light-sleep on BLE and move tensors over Wi-Fi or ESP-NOW while awake.

Every board holds BLE connections to its neighbours in light sleep. To send a tensor, a board
starts its data radio and writes a wake frame (a CTRL PING, ``docs/hybrid.md``) on the BLE
connection at the next connection event; the write is repeated at later events while it fails
(the BLE PHY's faded PER at the link's RSSI). The woken board leaves light sleep, starts its data
radio and, once it can receive, says so on the data radio (ESP-NOW: a CTRL PONG; Wi-Fi: the
station's association and TCP handshake). The tensor then moves over the wrapped data link, and
both radios stay up for ``idle_timeout_ms`` after it before the boards light-sleep again.

:class:`HybridLink` wraps a data :class:`~tinysplit.links.base.LinkModel` (``wifi`` or
``espnow``). Each transfer = wake-up latency + the data transfer. Its radio times include the
whole awake time, listening counted as receive time (``wifi_rx_ma`` is the current of a listening
Wi-Fi radio), so a :class:`~tinysplit.sim.energy.PowerModel` built with ``wake="ble"`` charges
every awake second over the light-sleep current. The model is stateless like every link: every
transfer pays a wake-up, which is what a board does when transfers are further apart than the
idle timeout (the firmware keeps the radio up between transfers closer than that).

Wi-Fi: the two awake boards talk directly (the woken board is the access point of the pair), so
the pipeline's SoftAP relay hop (``relay_rssi_dbm``) is ignored. Constants and sources:
``links/data/esp32s3.toml [hybrid]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tinysplit.errors import ConfigError
from tinysplit.links.base import LinkConditions, LinkModel, TransferResult, Transport
from tinysplit.links.ble import MAX_EXCHANGE_FAILURE, BleLink
from tinysplit.links.ble_timing import exchange_failure_probability, fragments
from tinysplit.links.calibration import section
from tinysplit.protocol.frames import CTRL_TOKEN_BYTES, HEADER_BYTES

__all__ = [
    "WAKES",
    "WAKE_FRAME_BYTES",
    "HybridEspNowLink",
    "HybridLink",
    "HybridProfile",
    "HybridWifiLink",
    "WakeTiming",
    "check_wake",
    "hybrid_link",
    "load_hybrid_profile",
]

#: Wake-up transports a board can sleep on.
WAKES = ("ble",)
#: Data transports a hybrid link can wrap.
DATA_TRANSPORTS = ("wifi", "espnow")
#: The wake frame: a reliable-mode CTRL PING (16 B header + opcode + u32 token).
WAKE_FRAME_BYTES = HEADER_BYTES + CTRL_TOKEN_BYTES


def check_wake(transport: str, wake: str | None) -> None:
    """Validate a (data transport, wake) pair; ``wake=None`` means no hybrid and always passes.

    Raises:
        ConfigError: an unknown wake transport, or a data transport that cannot be woken.
    """
    if wake is None:
        return
    if wake not in WAKES:
        raise ConfigError(f"unknown wake transport {wake!r} (valid: {', '.join(WAKES)})")
    if transport not in DATA_TRANSPORTS:
        raise ConfigError(
            f"wake={wake!r} needs a data transport of {' or '.join(DATA_TRANSPORTS)}, "
            f"got {transport!r}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HybridProfile:
    """Sleep, wake-up and radio start-up constants of the hybrid transport (``[hybrid]``).

    Attributes:
        name: profile name.
        ble_profile: BLE link profile of the wake connections (PHY, PER, setup time).
        sleep_floor_ma: light-sleep current with the BLE controller's sleep clock, mA.
        psram_ma: extra light-sleep current of the PSRAM, mA.
        event_charge_uc: charge of one empty BLE connection event out of light sleep, µC.
        wake_conn_interval_ms: BLE connection interval held while sleeping, ms.
        peripheral_latency: connection events the downstream (peripheral) end may skip.
        host_wake_ms: controller interrupt -> host task running after light sleep, ms.
        wifi_ready_ms: Wi-Fi start + association (static IP) of the woken pair, ms.
        wifi_connect_ms: TCP handshake after association, ms.
        espnow_ready_ms: ESP-NOW radio start + READY frame, ms.
        idle_timeout_ms: data radio kept up after the last frame, ms.
    """

    name: str
    ble_profile: str | None = None
    sleep_floor_ma: float
    psram_ma: float = 0.0
    event_charge_uc: float
    wake_conn_interval_ms: float
    peripheral_latency: int = 0
    host_wake_ms: float = 0.0
    wifi_ready_ms: float
    wifi_connect_ms: float = 0.0
    espnow_ready_ms: float
    idle_timeout_ms: float

    def __post_init__(self) -> None:
        nonnegative = (
            "sleep_floor_ma",
            "psram_ma",
            "event_charge_uc",
            "host_wake_ms",
            "wifi_ready_ms",
            "wifi_connect_ms",
            "espnow_ready_ms",
            "idle_timeout_ms",
        )
        for name in nonnegative:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ConfigError(f"hybrid profile {self.name!r}: {name} must be >= 0, got {value}")
        if not 7.5 <= self.wake_conn_interval_ms <= 4000.0:
            raise ConfigError(
                f"hybrid profile {self.name!r}: wake_conn_interval_ms must be within 7.5..4000 ms "
                f"(the BLE connection interval range), got {self.wake_conn_interval_ms}"
            )
        latency = self.peripheral_latency
        if isinstance(latency, bool) or not isinstance(latency, int) or not 0 <= latency <= 499:
            raise ConfigError(
                f"hybrid profile {self.name!r}: peripheral_latency must be an integer 0..499, "
                f"got {latency!r}"
            )

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any]) -> HybridProfile:
        """A profile from its TOML table (``description`` is ignored).

        Raises:
            ConfigError: unknown or missing keys, bad values.
        """
        fields = {f.name for f in dataclasses.fields(cls)} - {"name"}
        values = {k: v for k, v in table.items() if k != "description"}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ConfigError(f"hybrid profile {name!r}: unknown keys {', '.join(unknown)}")
        try:
            return cls(name=name, **values)
        except TypeError as exc:  # a required key is missing
            raise ConfigError(f"hybrid profile {name!r}: {exc}") from None

    @property
    def events_per_s(self) -> float:
        """BLE connection events a sleeping board attends per second (see the TOML comment)."""
        return (1.0 + 1.0 / (self.peripheral_latency + 1)) / (self.wake_conn_interval_ms / 1e3)

    @property
    def sleep_ma(self) -> float:
        """Mean current of a board asleep with its wake connections held, mA."""
        return self.sleep_floor_ma + self.psram_ma + self.event_charge_uc * self.events_per_s / 1e3

    def ready_s(self, transport: str) -> float:
        """Data radio start-up of the woken pair until the tensor can flow, s."""
        if transport == "wifi":
            return (self.wifi_ready_ms + self.wifi_connect_ms) / 1e3
        if transport == "espnow":
            return self.espnow_ready_ms / 1e3
        raise ConfigError(f"no hybrid data transport {transport!r} (valid: wifi, espnow)")


def load_hybrid_profile(name: str | None = None) -> HybridProfile:
    """A named profile of ``esp32s3.toml [hybrid]`` (the default one for None).

    Raises:
        ConfigError: unknown profile (the message lists the valid names) or bad values.
    """
    table = section("hybrid")
    chosen = str(table["default_profile"]) if name is None else name
    profiles: Mapping[str, Any] = table["profiles"]
    if chosen not in profiles:
        raise ConfigError(f"unknown hybrid profile {chosen!r} (valid: {', '.join(profiles)})")
    return HybridProfile.from_table(chosen, profiles[chosen])


@dataclass(frozen=True, slots=True, kw_only=True)
class WakeTiming:
    """One wake-up, seconds from the sender's decision to send (its data radio starts then).

    Attributes:
        wake_writes: BLE write attempts until the wake frame got through (>= 1).
        receiver_wake_s: the woken board's host runs and starts its data radio.
        ready_s: both data radios up and the receiver ready: the tensor starts to flow.
    """

    wake_writes: int
    receiver_wake_s: float
    ready_s: float


class HybridLink(LinkModel):
    """A data link (Wi-Fi or ESP-NOW) whose boards sleep between transfers and wake on BLE.

    Build one with :func:`hybrid_link`; the subclass fixes :attr:`transport` to the data link's.

    Attributes:
        data: the wrapped data link model.
        profile: sleep and wake-up constants.
        wake_link: the BLE link model of the wake connections.
    """

    def __init__(
        self, data: LinkModel, profile: HybridProfile, *, wake_link: BleLink | None = None
    ) -> None:
        """Wrap ``data``.

        Raises:
            ConfigError: a data link of another transport than this class's, or an unknown
                BLE profile.
        """
        if data.transport is not self.transport:
            raise ConfigError(
                f"{type(self).__name__} wraps a {self.transport.value} link, "
                f"got {data.transport.value}"
            )
        self.data = data
        self.profile = profile
        if wake_link is None:
            wake_link = BleLink.from_profile(profile.ble_profile)
        self.wake_link = wake_link

    @property
    def frame_bytes(self) -> int:
        """The data link's largest frame, bytes."""
        return self.data.frame_bytes

    def setup_s(self, conditions: LinkConditions) -> float:
        """The BLE wake connection's setup (once, at boot); the data link starts per transfer."""
        return self.wake_link.setup_s(conditions)

    def _wake_pdus(self) -> tuple[int, ...]:
        """LL payload sizes of the wake write (the PING with its ATT and L2CAP headers)."""
        ble = self.wake_link
        return fragments(WAKE_FRAME_BYTES, ble.profile.ll_payload_bytes, ble.spec)

    def wake_failure(self, rssi_dbm: float) -> float:
        """Probability that one wake write fails (the PING PDU or the peer's empty answer).

        Raises:
            ConfigError: no BLE connection survives at ``rssi_dbm``.
        """
        ble = self.wake_link
        ok = 1.0
        for size in self._wake_pdus():
            ok *= 1.0 - exchange_failure_probability(
                ble.phy_timing, size, 0, rssi_dbm, ble.spec, ble.interference
            )
        fail = 1.0 - ok
        if fail > MAX_EXCHANGE_FAILURE:
            raise ConfigError(
                f"hybrid wake-up: no BLE connection ({ble.profile.name}) survives at "
                f"{rssi_dbm} dBm ({fail:.2%} of exchanges fail)"
            )
        return fail

    def wake(self, conditions: LinkConditions, rng: np.random.Generator) -> WakeTiming:
        """Draw one wake-up: the next anchor (uniform within an interval), failed writes repeated
        one interval later, the receiver's host wake-up, then the data radios' start-up.

        Raises:
            ConfigError: no BLE connection survives at the link's RSSI.
        """
        p = self.profile
        interval_s = p.wake_conn_interval_ms / 1e3
        writes = int(rng.geometric(1.0 - self.wake_failure(conditions.rssi_dbm)))
        anchor_s = float(rng.uniform(0.0, interval_s)) + (writes - 1) * interval_s
        ble = self.wake_link
        air_s = sum(ble.phy_timing.exchange_us(n, ble.spec) for n in self._wake_pdus()) / 1e6
        receiver_wake_s = anchor_s + air_s + p.host_wake_ms / 1e3
        ready_s = receiver_wake_s + p.ready_s(self.transport.value)
        return WakeTiming(wake_writes=writes, receiver_wake_s=receiver_wake_s, ready_s=ready_s)

    def transfer(
        self, payload_bytes: int, conditions: LinkConditions, rng: np.random.Generator
    ) -> TransferResult:
        """Wake the receiver, then move the tensor over the data link.

        ``duration_s`` = wake-up + data transfer. Radio times: the data link's airtimes plus
        every other second a board's data radio is up (waiting for the peer, between frames,
        the idle timeout after the tensor) as receive (listening) time; no relay time.
        """
        wake = self.wake(conditions, rng)
        direct = dataclasses.replace(conditions, relay_rssi_dbm=None)
        data = self.data.transfer(payload_bytes, direct, rng)
        tail_s = self.profile.idle_timeout_ms / 1e3
        sender_up_s = wake.ready_s + data.duration_s + tail_s
        receiver_up_s = wake.ready_s - wake.receiver_wake_s + data.duration_s + tail_s
        sender_listen = max(0.0, sender_up_s - data.sender_tx_s - data.sender_rx_s)
        receiver_listen = max(0.0, receiver_up_s - data.receiver_tx_s - data.receiver_rx_s)
        return dataclasses.replace(
            data,
            duration_s=wake.ready_s + data.duration_s,
            sender_rx_s=data.sender_rx_s + sender_listen,
            receiver_rx_s=data.receiver_rx_s + receiver_listen,
            relay_tx_s=0.0,
            relay_rx_s=0.0,
        )


class HybridWifiLink(HybridLink):
    """Hybrid link moving tensors over Wi-Fi (TCP between the woken pair)."""

    transport: ClassVar[Transport] = Transport.WIFI


class HybridEspNowLink(HybridLink):
    """Hybrid link moving tensors over ESP-NOW."""

    transport: ClassVar[Transport] = Transport.ESPNOW


def hybrid_link(
    data: LinkModel, wake: str | None = "ble", *, profile: str | HybridProfile | None = None
) -> LinkModel:
    """``data`` wrapped for boards that sleep and wake on ``wake`` (``data`` itself for None).

    A link that is already hybrid is returned unchanged, so wrapping twice is harmless.

    Args:
        data: the data link model (``make_link("wifi" | "espnow", profile)``).
        wake: ``"ble"``, or None for no hybrid.
        profile: a hybrid profile or its name (``[hybrid]``'s default for None).

    Raises:
        ConfigError: an unknown wake transport or profile, or a data link that cannot be woken.
    """
    check_wake(data.transport.value, wake)
    if wake is None or isinstance(data, HybridLink):
        return data
    chosen = profile if isinstance(profile, HybridProfile) else load_hybrid_profile(profile)
    cls: type[HybridLink] = HybridWifiLink if data.transport is Transport.WIFI else HybridEspNowLink
    return cls(data, chosen)
