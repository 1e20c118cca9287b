"""BLE calibration profiles: ``[ble.profiles.<name>]`` over ``[ble.defaults]`` in
``links/data/esp32s3.toml`` (``[ble]``), validated into a frozen :class:`BleProfile`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from tinysplit.errors import ConfigError
from tinysplit.links.base import Mode
from tinysplit.links.ble_timing import Interference
from tinysplit.links.calibration import profile_names, transport_table

HOSTS = ("nimble", "bluedroid")
_INT_FIELDS = {
    "att_mtu",
    "value_bytes",
    "ll_payload_bytes",
    "tx_pool_blocks",
    "tx_pool_block_bytes",
    "controller_tx_values",
    "setup_events",
    "goodput_window",
}
_PAIR_FIELDS = {"goodput_kbps", "interference_dbm"}
_STR_FIELDS = {"name", "description", "host", "phy", "goodput_mode", "goodput_source"}


@dataclass(frozen=True, slots=True, kw_only=True)
class BleProfile:
    """One calibrated BLE configuration (``[ble.profiles.<name>]`` over ``[ble.defaults]``).

    Attributes:
        name: profile name.
        description: one line on what the profile reproduces.
        host: host stack, ``nimble`` or ``bluedroid``.
        phy: PHY id of a ``[ble.phy.<id>]`` table.
        att_mtu: negotiated ATT MTU, bytes.
        value_bytes: ATT value per write (the application frame), bytes; at most ``att_mtu - 3``.
        ll_payload_bytes: LL payload per PDU, bytes (27 without DLE, up to 251).
        conn_interval_ms: connection interval, ms (7.5..4000 in 1.25 ms steps).
        max_event_ms: longest connection event, ms; 0 lets an event fill its interval.
        tx_pool_blocks: sender host buffer pool: NimBLE msys_1 blocks, or Bluedroid's cached ATT
            packets when ``tx_pool_block_bytes`` is 0.
        tx_pool_block_bytes: bytes per NimBLE msys_1 block; 0 counts the pool in ATT values.
        controller_tx_values: ATT values the controller queues beyond the host pool.
        app_write_ms: sender application time per write call, ms.
        app_write_cv: coefficient of variation of that time (gamma distributed; 0: fixed).
        app_wake_ms: latency, uniform in ``0..app_wake_ms``, from a radio event (response, ACK,
            freed buffer) to the application acting on it, ms.
        response_ms: receiver's time from a frame at its controller to the response / ACK handed
            back to it, ms.
        paper_timeout_ms: paper mode: how long the sender waits for a response that never
            comes before it gives the tensor up, ms.
        supervision_timeout_ms: connection supervision timeout, ms.
        tx_power_dbm: transmit power, dBm (for path-loss models; the link itself takes RSSI).
        interference_duty: share of exchanges overlapping an in-band interferer (0: none).
        interference_dbm: range ``(lo, hi)`` of the interferer's power at the receiver, dBm.
        adv_interval_ms: advertising interval before a connection, ms.
        setup_events: connection events spent on procedures after the connection request.
        goodput_kbps: sourced bulk goodput range ``(lo, hi)``, kbit/s.
        goodput_window: window of that goodput measurement.
        goodput_mode: protocol mode of that measurement (``paper`` or ``reliable``).
        goodput_source: where the goodput comes from.
    """

    name: str
    description: str
    host: str
    phy: str
    att_mtu: int
    value_bytes: int
    ll_payload_bytes: int
    conn_interval_ms: float
    max_event_ms: float
    tx_pool_blocks: int
    tx_pool_block_bytes: int
    controller_tx_values: int
    app_write_ms: float
    app_write_cv: float
    app_wake_ms: float
    response_ms: float
    paper_timeout_ms: float
    supervision_timeout_ms: float
    tx_power_dbm: float
    interference_duty: float
    interference_dbm: tuple[float, float]
    adv_interval_ms: float
    setup_events: int
    goodput_kbps: tuple[float, float]
    goodput_window: int
    goodput_mode: str
    goodput_source: str

    def __post_init__(self) -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"ble profile {self.name!r}: {msg}")

        if self.host not in HOSTS:
            raise bad(f"host must be one of {', '.join(HOSTS)}, got {self.host!r}")
        if not 23 <= self.att_mtu <= 517:
            raise bad(f"att_mtu must be within 23..517, got {self.att_mtu}")
        if not 16 < self.value_bytes <= min(512, self.att_mtu - 3):
            raise bad(
                f"value_bytes must be within 17..min(512, att_mtu - 3), got {self.value_bytes}"
            )
        if not 27 <= self.ll_payload_bytes <= 251:
            raise bad(f"ll_payload_bytes must be within 27..251, got {self.ll_payload_bytes}")
        steps = self.conn_interval_ms / 1.25
        if not 7.5 <= self.conn_interval_ms <= 4000.0 or abs(steps - round(steps)) > 1e-9:
            raise bad(
                f"conn_interval_ms must be 7.5..4000 in 1.25 ms steps, got {self.conn_interval_ms}"
            )
        if not 0.0 <= self.max_event_ms <= self.conn_interval_ms:
            raise bad("max_event_ms must be within 0..conn_interval_ms")
        if self.tx_pool_blocks < 1 or self.tx_pool_block_bytes < 0 or self.controller_tx_values < 0:
            raise bad("tx_pool_blocks must be >= 1, block bytes and controller values >= 0")
        if 0 < self.tx_pool_block_bytes <= 64:
            raise bad(f"tx_pool_block_bytes must be 0 or > 64, got {self.tx_pool_block_bytes}")
        for name in ("app_write_ms", "app_write_cv", "app_wake_ms", "response_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise bad(f"{name} must be a finite number >= 0, got {value}")
        if not 100.0 <= self.supervision_timeout_ms <= 32000.0:
            raise bad("supervision_timeout_ms must be within 100..32000 [spec]")
        if self.paper_timeout_ms <= 0 or self.adv_interval_ms <= 0 or self.setup_events < 0:
            raise bad("paper_timeout_ms and adv_interval_ms must be > 0, setup_events >= 0")
        if not -24.0 <= self.tx_power_dbm <= 21.0:
            raise bad(f"tx_power_dbm must be within -24..21, got {self.tx_power_dbm}")
        Interference(
            duty=self.interference_duty,
            lo_dbm=self.interference_dbm[0],
            hi_dbm=self.interference_dbm[1],
        )
        lo, hi = self.goodput_kbps
        if not 0 < lo <= hi:
            raise bad(f"goodput_kbps must be [lo, hi] with 0 < lo <= hi, got {self.goodput_kbps}")
        if self.goodput_window < 1 or self.goodput_mode not in {m.value for m in Mode}:
            raise bad("goodput_window must be >= 1 and goodput_mode 'paper' or 'reliable'")

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any]) -> BleProfile:
        """Build a profile from its (defaults-merged) TOML table.

        Raises:
            ConfigError: a missing, unknown or mistyped key, or a value out of range.
        """
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"ble profile {name!r}: unknown keys {', '.join(unknown)}")
        missing = sorted(known - set(table))
        if missing:
            raise ConfigError(f"ble profile {name!r}: missing keys {', '.join(missing)}")
        values: dict[str, Any] = {"name": name}
        for key in known:
            raw = table[key]
            if key in _PAIR_FIELDS:
                if (
                    not isinstance(raw, list | tuple)
                    or len(raw) != 2
                    or not all(_is_number(x) for x in raw)
                ):
                    raise ConfigError(f"ble profile {name!r}: {key} must be [lo, hi]")
                values[key] = (float(raw[0]), float(raw[1]))
            elif key in _STR_FIELDS:
                if not isinstance(raw, str):
                    raise ConfigError(f"ble profile {name!r}: {key} must be a string, got {raw!r}")
                values[key] = raw
            elif key in _INT_FIELDS:
                if isinstance(raw, bool) or not isinstance(raw, int):
                    raise ConfigError(
                        f"ble profile {name!r}: {key} must be an integer, got {raw!r}"
                    )
                values[key] = raw
            else:
                if not _is_number(raw):
                    raise ConfigError(f"ble profile {name!r}: {key} must be a number, got {raw!r}")
                values[key] = float(raw)
        return cls(**values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BleProfile:
        """Inverse of :meth:`to_dict` (a manifest's profile).

        Raises:
            ConfigError: as :meth:`from_table`, or no ``name``.
        """
        if not isinstance(data.get("name"), str):
            raise ConfigError("a ble profile dict needs a string 'name'")
        return cls.from_table(data["name"], {k: v for k, v in data.items() if k != "name"})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for run manifests (pairs as lists)."""
        out = asdict(self)
        for key in _PAIR_FIELDS:
            out[key] = list(out[key])
        return out


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def profile_table(name: str | None) -> tuple[str, dict[str, Any]]:
    """The named profile's table merged over ``[ble.defaults]`` (the default profile for None).

    Raises:
        ConfigError: an unknown profile name (the message lists the valid ones).
    """
    table = transport_table("ble")
    chosen = str(table["default_profile"]) if name is None else name
    if chosen not in table["profiles"]:
        valid = ", ".join(profile_names("ble"))
        raise ConfigError(f"unknown ble profile {chosen!r} (valid: {valid})")
    merged = dict(table.get("defaults", {}))
    merged.update(table["profiles"][chosen])
    return chosen, merged
