"""BLE link-layer timing: PHY air times, fragmentation of ATT values and the LL ceiling.

One *exchange* (or cycle) of a connection event is a data PDU from the central, ``T_IFS``, the
peripheral's answer (an empty PDU unless it has data) and ``T_IFS`` again. An ATT value (a write
without response or a notification) plus its 3 B ATT and 4 B L2CAP headers is cut into LL PDUs
of at most the negotiated LL payload (27 B without data-length extension, 251 B with it). The
air time of a PDU on an uncoded PHY is ``fixed_us + (header + payload + CRC) * us_per_byte``
with the preamble and access address in ``fixed_us``; the coded PHY sends the access address and
coding indicator at S8 whatever the payload coding, which also lands in ``fixed_us``.

With unlimited exchanges per event and no errors this gives the ceilings of radios-ref §1.2
(791 / 1402 / 237 kbps for 1M+DLE, 2M+DLE and 1M without DLE); :func:`ll_ceiling_kbps`
reproduces them. All constants come from ``links/data/esp32s3.toml`` (``[ble]``) (``[ble.spec]`` and
``[ble.phy.*]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from tinysplit.errors import ConfigError
from tinysplit.links.calibration import rician_k_db, transport_table
from tinysplit.links.signal import error_constant, faded_packet_error_rate

#: ATT opcode (1 B) of a write response: the paper's per-window response.
ATT_WRITE_RSP_BYTES = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class BleSpec:
    """Link-layer constants of the Bluetooth Core specification (``[ble.spec]``).

    Attributes:
        t_ifs_us: inter-frame space between the PDUs of an exchange, µs.
        pdu_header_bytes: LL data PDU header, bytes.
        crc_bytes: LL CRC, bytes.
        l2cap_header_bytes: basic L2CAP header (length + channel id), bytes.
        att_header_bytes: ATT opcode + handle of a write command / notification, bytes.
        hci_acl_header_bytes: HCI ACL header the host prepends in its buffers, bytes.
        access_address_bytes: LL access address, bytes.
        per_reference_bytes: bits that can be hit in the receiver-sensitivity test packet
            (access address to CRC), in bytes.
        per_at_sensitivity: PER of that packet at the datasheet sensitivity.
        conn_interval_step_ms: granularity of the connection interval, ms.
        min_conn_interval_ms: smallest connection interval, ms.
        max_conn_interval_ms: largest connection interval, ms.
        max_ll_payload_bytes: largest LL payload with data-length extension, bytes.
        min_ll_payload_bytes: LL payload without data-length extension, bytes.
    """

    t_ifs_us: float
    pdu_header_bytes: int
    crc_bytes: int
    l2cap_header_bytes: int
    att_header_bytes: int
    hci_acl_header_bytes: int
    access_address_bytes: int
    per_reference_bytes: int
    per_at_sensitivity: float
    conn_interval_step_ms: float
    min_conn_interval_ms: float
    max_conn_interval_ms: float
    max_ll_payload_bytes: int
    min_ll_payload_bytes: int

    def __post_init__(self) -> None:
        if self.t_ifs_us <= 0 or self.conn_interval_step_ms <= 0:
            raise ConfigError("ble.spec: T_IFS and the interval step must be > 0")
        if not 0 < self.min_ll_payload_bytes <= self.max_ll_payload_bytes:
            raise ConfigError("ble.spec: need 0 < min_ll_payload_bytes <= max_ll_payload_bytes")
        if not 0 < self.min_conn_interval_ms <= self.max_conn_interval_ms:
            raise ConfigError("ble.spec: need 0 < min_conn_interval_ms <= max_conn_interval_ms")

    @property
    def pdu_overhead_bytes(self) -> int:
        """Bytes of a data PDU besides its payload that are sent at the payload's rate."""
        return self.pdu_header_bytes + self.crc_bytes

    @property
    def value_overhead_bytes(self) -> int:
        """ATT + L2CAP header bytes carried with every ATT value."""
        return self.att_header_bytes + self.l2cap_header_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class PhyTiming:
    """Air-time constants and receiver sensitivity of one BLE PHY (``[ble.phy.<name>]``).

    Attributes:
        name: PHY id (``1m``, ``2m``, ``coded-s2``, ``coded-s8``).
        us_per_byte: air time of one PDU header / payload / CRC byte, µs.
        fixed_us: air time independent of the PDU length (preamble, access address, coded-PHY
            coding indicator and terminators), µs.
        preamble_bytes: preamble length, bytes (counted in ``bytes_on_air``).
        sensitivity_dbm: receiver sensitivity at 30.8 % PER on the 37 B test packet, dBm.
        c_over_i_db: co-channel carrier-to-interference ratio at the same PER, dB.
    """

    name: str
    us_per_byte: float
    fixed_us: float
    preamble_bytes: int
    sensitivity_dbm: float
    c_over_i_db: float

    def __post_init__(self) -> None:
        if self.us_per_byte <= 0 or self.fixed_us < 0:
            raise ConfigError(f"ble.phy.{self.name}: us_per_byte must be > 0, fixed_us >= 0")
        if not -130.0 <= self.sensitivity_dbm <= 0.0:
            raise ConfigError(f"ble.phy.{self.name}: sensitivity must be within -130..0 dBm")

    def pdu_us(self, payload_bytes: int, spec: BleSpec) -> float:
        """Air time of one data PDU carrying ``payload_bytes`` (0: an empty PDU), µs."""
        return self.fixed_us + (payload_bytes + spec.pdu_overhead_bytes) * self.us_per_byte

    def pdu_air_bytes(self, payload_bytes: int, spec: BleSpec) -> int:
        """Bytes on air of one PDU: preamble, access address, header, payload and CRC."""
        return self.preamble_bytes + self.pdu_error_bytes(payload_bytes, spec)

    @staticmethod
    def pdu_error_bytes(payload_bytes: int, spec: BleSpec) -> int:
        """Bytes of one PDU that a bit error spoils: access address to CRC (the preamble only
        trains the receiver). The sensitivity test packet counts 37 + 9 = 46 of them."""
        return spec.access_address_bytes + spec.pdu_overhead_bytes + payload_bytes

    def exchange_us(self, payload_bytes: int, spec: BleSpec, answer_bytes: int = 0) -> float:
        """One exchange: data PDU, T_IFS, the peer's PDU (``answer_bytes`` payload), T_IFS, µs."""
        return (
            self.pdu_us(payload_bytes, spec) + self.pdu_us(answer_bytes, spec) + 2 * spec.t_ifs_us
        )


def fragments(value_bytes: int, ll_payload_bytes: int, spec: BleSpec) -> tuple[int, ...]:
    """LL payload sizes of one ATT value of ``value_bytes`` (ATT + L2CAP headers added).

    Raises:
        ConfigError: a value < 1 B or an LL payload < 1 B.
    """
    if value_bytes < 1 or ll_payload_bytes < 1:
        raise ConfigError("an ATT value and the LL payload must be >= 1 B")
    total = value_bytes + spec.value_overhead_bytes
    full, rest = divmod(total, ll_payload_bytes)
    return (ll_payload_bytes,) * full + ((rest,) if rest else ())


def ll_ceiling_kbps(phy: PhyTiming, ll_payload_bytes: int, spec: BleSpec) -> float:
    """Goodput ceiling of back-to-back full PDUs, no errors, unlimited events, kbit/s.

    Each PDU carries ``ll_payload_bytes - 7`` B of ATT value (radios-ref §1.2 convention: one
    value per PDU, 3 B ATT and 4 B L2CAP headers).
    """
    value_per_pdu = ll_payload_bytes - spec.value_overhead_bytes
    if value_per_pdu <= 0:
        raise ConfigError(f"an LL payload of {ll_payload_bytes} B carries no ATT value")
    return value_per_pdu * 8 / phy.exchange_us(ll_payload_bytes, spec) * 1e3


def load_spec() -> BleSpec:
    """The ``[ble.spec]`` table as a :class:`BleSpec`.

    Raises:
        ConfigError: a missing or malformed table.
    """
    return _spec_from(transport_table("ble").get("spec"))


def load_phys() -> dict[str, PhyTiming]:
    """All ``[ble.phy.<name>]`` tables by name.

    Raises:
        ConfigError: a missing or malformed table.
    """
    table = transport_table("ble").get("phy")
    if not isinstance(table, Mapping) or not table:
        raise ConfigError("calibration data has no [ble.phy.*] tables")
    phys: dict[str, PhyTiming] = {}
    for name, raw in table.items():
        if not isinstance(raw, Mapping):
            raise ConfigError(f"ble.phy.{name} must be a table")
        try:
            phys[name] = PhyTiming(
                name=name,
                us_per_byte=float(raw["us_per_byte"]),
                fixed_us=float(raw["fixed_us"]),
                preamble_bytes=int(raw["preamble_bytes"]),
                sensitivity_dbm=float(raw["sensitivity_dbm"]),
                c_over_i_db=float(raw["c_over_i_db"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"ble.phy.{name}: missing or bad value ({exc})") from None
    return phys


def _spec_from(raw: Any) -> BleSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError("calibration data has no [ble.spec] table")
    ints = {
        "pdu_header_bytes",
        "crc_bytes",
        "l2cap_header_bytes",
        "att_header_bytes",
        "hci_acl_header_bytes",
        "access_address_bytes",
        "per_reference_bytes",
        "max_ll_payload_bytes",
        "min_ll_payload_bytes",
    }
    values: dict[str, Any] = {}
    for name in BleSpec.__dataclass_fields__:
        if name not in raw:
            raise ConfigError(f"ble.spec: missing {name}")
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"ble.spec.{name} must be a number, got {value!r}")
        values[name] = int(value) if name in ints else float(value)
    return BleSpec(**values)


#: Interferer levels averaged over within an ``interference_dbm`` range.
INTERFERENCE_LEVELS = 9


@dataclass(frozen=True, slots=True, kw_only=True)
class Interference:
    """In-band interference of the environment (2.4 GHz Wi-Fi and other BLE links).

    A fraction ``duty`` of the exchanges overlaps an interferer whose power at the receiver is
    uniform in ``lo_dbm..hi_dbm``; during it a PDU is received like a PDU near sensitivity with
    the interferer + the PHY's co-channel C/I in place of the sensitivity (the datasheet gives
    both at the same 30.8 % PER). ``duty = 0`` switches it off.
    """

    duty: float = 0.0
    lo_dbm: float = -95.0
    hi_dbm: float = -95.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.duty < 1.0:
            raise ConfigError(f"interference duty must be within 0..1, got {self.duty}")
        if not -130.0 <= self.lo_dbm <= self.hi_dbm <= 0.0:
            raise ConfigError("interference range must satisfy -130 <= lo <= hi <= 0 dBm")


NO_INTERFERENCE = Interference()


@lru_cache(maxsize=4096)
def exchange_failure_probability(
    phy: PhyTiming,
    payload_bytes: int,
    answer_bytes: int,
    rssi_dbm: float,
    spec: BleSpec,
    interference: Interference = NO_INTERFERENCE,
) -> float:
    """Probability that an exchange fails: a CRC error on the data PDU or on the answer.

    Both PDUs see the same mean RSSI (symmetric link) and independent Rician fading with the
    ``rician_k_db`` of ``[signal]``; the PER of each follows :func:`faded_packet_error_rate`
    with the PHY's sensitivity anchored at the spec's test packet, and, for the ``duty`` of the
    exchanges that overlap an interferer, also with the interferer + C/I as the floor. Cached: a
    simulated link keeps its RSSI, so each (PHY, size, RSSI) is evaluated once.
    """
    k = error_constant(spec.per_at_sensitivity, spec.per_reference_bytes)
    k_db = rician_k_db()
    sizes = (phy.pdu_error_bytes(payload_bytes, spec), phy.pdu_error_bytes(answer_bytes, spec))

    def ok(floor_dbm: float) -> float:
        p = [faded_packet_error_rate(n, rssi_dbm, floor_dbm, k, k_db) for n in sizes]
        return (1.0 - p[0]) * (1.0 - p[1])

    clean = ok(phy.sensitivity_dbm)
    if interference.duty == 0.0:
        return 1.0 - clean
    levels = np.linspace(interference.lo_dbm, interference.hi_dbm, INTERFERENCE_LEVELS)
    floors = np.maximum(phy.sensitivity_dbm, levels + phy.c_over_i_db)
    interfered = float(np.mean([ok(float(f)) for f in floors]))
    return 1.0 - ((1.0 - interference.duty) * clean + interference.duty * interfered)
