"""BLE link model: windowed GATT writes between two ESP32-S3 boards, frame by frame.

What one transfer simulates (details in :mod:`tinysplit.links.ble_engine`):

* The sender's application writes one ATT value (a *frame*, :attr:`BleLink.frame_bytes`) per
  call, taking ``app_write_ms`` each, into the host stack's buffer pool (NimBLE msys mbufs or
  Bluedroid's L2CAP cache, plus a few values in the controller). In ``paper`` mode it writes
  ``window`` frames without looking, then waits for the receiver's response; a write that finds
  the pool full is dropped silently and the tensor fails. In ``reliable`` mode it writes only
  into free buffers, the receiver acknowledges every ``window``-th frame and the sender keeps at
  most ``2 * window`` frames unacknowledged.
* The controller drains the pool in connection events, one every ``conn_interval_ms``, each
  lasting at most ``max_event_ms``. An event is a train of exchanges (data PDU, T_IFS, the peer's
  empty PDU, T_IFS); it ends when the budget runs out, the queue empties, or two consecutive
  exchanges fail their CRC. Failed exchanges are repeated (``link_retries``): they cost air time
  and events but lose nothing. Only a run of failures longer than the supervision timeout drops
  the connection; ``paper`` mode then fails, ``reliable`` mode reconnects and resends what was in
  flight (``retransmissions``).
* Exchange failures come from the RSSI through
  :func:`~tinysplit.links.signal.faded_packet_error_rate` with the PHY's sensitivity, plus an
  optional in-band interference term (:class:`~tinysplit.links.ble_timing.Interference`, used by
  the ``paper`` profile only). Draws are made per PDU from one uniform each, so for a given seed
  a weaker RSSI never gives fewer errors.

Profiles live in ``links/data/esp32s3.toml`` (``[ble]``); :meth:`BleLink.from_profile` builds one.
"""

from __future__ import annotations

from itertools import accumulate
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from tinysplit.errors import ConfigError
from tinysplit.links.base import LinkConditions, LinkModel, Mode, TransferResult, Transport
from tinysplit.links.ble_engine import Plan, per_pdu, simulate
from tinysplit.links.ble_profile import BleProfile, profile_table
from tinysplit.links.ble_timing import (
    ATT_WRITE_RSP_BYTES,
    BleSpec,
    Interference,
    PhyTiming,
    exchange_failure_probability,
    fragments,
    ll_ceiling_kbps,
    load_phys,
    load_spec,
)
from tinysplit.links.calibration import transport_table
from tinysplit.protocol.frames import (
    ACK_BITMAP_BYTES,
    HEADER_BYTES,
    TENSOR_CRC_BYTES,
    data_payload_bytes,
    frames_for_tensor,
)

if TYPE_CHECKING:
    from tinysplit.links.adaptive import AdaptiveWindow

#: Transfer plans kept per link (a plan of the paper's largest tensor holds ~0.5 MB of arrays).
_PLAN_CACHE = 16
#: Exchange failure probability above which no connection survives (``_check_connectable``).
MAX_EXCHANGE_FAILURE = 0.999


class BleLink(LinkModel):
    """BLE GATT link between two ESP32-S3 boards (see the module docstring for the model).

    Attributes:
        profile: the calibration profile.
        spec: link-layer constants.
        phy_timing: air-time constants and sensitivity of the profile's PHY.
        interference: the profile's in-band interference (usually none).
    """

    transport: ClassVar[Transport] = Transport.BLE

    def __init__(self, profile: BleProfile, *, spec: BleSpec | None = None) -> None:
        """Build the link of ``profile``.

        Raises:
            ConfigError: an unknown PHY, or a connection event too short for one exchange.
        """
        self.profile = profile
        self.spec = load_spec() if spec is None else spec
        phys = load_phys()
        if profile.phy not in phys:
            valid = ", ".join(phys)
            raise ConfigError(
                f"ble profile {profile.name!r}: unknown phy {profile.phy!r} (valid: {valid})"
            )
        self.phy_timing: PhyTiming = phys[profile.phy]
        self.interference = Interference(
            duty=profile.interference_duty,
            lo_dbm=profile.interference_dbm[0],
            hi_dbm=profile.interference_dbm[1],
        )
        host = transport_table("ble").get("host", {})
        self._mbuf_overhead = (
            int(host.get("mbuf_header_bytes", 16)),
            int(host.get("mbuf_pkthdr_bytes", 8)),
        )
        self._full_plan = self._value_timing(profile.value_bytes)
        self._plans: dict[tuple[int, LinkConditions], Plan] = {}
        budget_us = self.event_budget_us
        longest = max(self._full_plan[0])
        if longest > budget_us:
            raise ConfigError(
                f"ble profile {profile.name!r}: a connection event ({budget_us / 1e3:.3f} ms) is "
                f"shorter than one exchange ({longest / 1e3:.3f} ms)"
            )

    @classmethod
    def from_profile(cls, name: str | None = None) -> BleLink:
        """The link of a named profile from ``esp32s3.toml [ble]`` (the default for None).

        Raises:
            ConfigError: unknown profile (the message lists the valid names) or bad values.
        """
        chosen, table = profile_table(name)
        return cls(BleProfile.from_table(chosen, table))

    @property
    def frame_bytes(self) -> int:
        """ATT value per write, bytes (512 for the paper)."""
        return self.profile.value_bytes

    @property
    def event_budget_us(self) -> float:
        """Air time a connection event may use, µs: ``max_event_ms`` (or the interval) less a
        T_IFS before the next anchor."""
        p = self.profile
        length_ms = p.max_event_ms if p.max_event_ms > 0 else p.conn_interval_ms
        return min(length_ms * 1e3, p.conn_interval_ms * 1e3 - self.spec.t_ifs_us)

    @property
    def tx_queue_values(self) -> int:
        """ATT values of ``frame_bytes`` the sender's stack holds: host pool + controller queue.

        NimBLE chains msys blocks of ``block - 16`` B for value + ATT + L2CAP + HCI headers +
        the 8 B packet header: 12 x 256 B hold 4 values of 512 B (radios-ref §1.3).
        """
        p = self.profile
        if p.tx_pool_block_bytes == 0:
            host_values = p.tx_pool_blocks
        else:
            header, pkthdr = self._mbuf_overhead
            need = (
                p.value_bytes
                + self.spec.value_overhead_bytes
                + self.spec.hci_acl_header_bytes
                + pkthdr
            )
            per_value = -(-need // (p.tx_pool_block_bytes - header))
            host_values = p.tx_pool_blocks // per_value
        return max(1, host_values + p.controller_tx_values)

    def ll_ceiling_kbps(self) -> float:
        """The profile's LL goodput ceiling with full PDUs and unlimited events, kbit/s."""
        return ll_ceiling_kbps(self.phy_timing, self.profile.ll_payload_bytes, self.spec)

    def _value_timing(self, value_bytes: int) -> tuple[tuple[float, ...], tuple[int, ...]]:
        """Exchange times (µs) and LL payload sizes of the PDUs of one value."""
        sizes = fragments(value_bytes, self.profile.ll_payload_bytes, self.spec)
        cycles = tuple(self.phy_timing.exchange_us(s, self.spec) for s in sizes)
        return cycles, sizes

    def setup_s(self, conditions: LinkConditions) -> float:
        """Mean time from advertising to a connection ready for data, s.

        Half an advertising interval until the central hears the peripheral, one interval to the
        first anchor, then ``setup_events`` events of procedures; every exchange is repeated
        until it succeeds at the link's RSSI.

        Raises:
            ConfigError: an RSSI at which no connection survives.
        """
        p = self.profile
        fail = exchange_failure_probability(
            self.phy_timing, 0, 0, conditions.rssi_dbm, self.spec, self.interference
        )
        self._check_connectable(conditions.rssi_dbm, fail)
        events_ms = (1 + p.setup_events) * p.conn_interval_ms / (1.0 - fail)
        return (p.adv_interval_ms / 2 + events_ms) / 1e3

    def _check_connectable(self, rssi_dbm: float, failure: float) -> None:
        """Reject an RSSI at which exchanges fail more than :data:`MAX_EXCHANGE_FAILURE` of the
        time: no BLE connection survives there, and every simulated time would be absurd.

        Raises:
            ConfigError: the link is unusable at ``rssi_dbm``.
        """
        if failure > MAX_EXCHANGE_FAILURE:
            phy = self.phy_timing
            raise ConfigError(
                f"BLE ({self.profile.name}, {phy.name} PHY, sensitivity {phy.sensitivity_dbm} dBm) "
                f"cannot hold a connection at {rssi_dbm} dBm: {failure:.2%} of exchanges fail"
            )

    def frame_plan(self, payload_bytes: int, mode: Mode) -> tuple[int, int]:
        """Frames of a tensor and the ATT value size of its last frame, bytes.

        Raises:
            ConfigError: a payload < 1 B.
        """
        if payload_bytes < 1:
            raise ConfigError(f"payload must be >= 1 B, got {payload_bytes}")
        frames = frames_for_tensor(payload_bytes, self.frame_bytes, mode.value)
        per_frame = data_payload_bytes(self.frame_bytes, mode.value)
        extra = TENSOR_CRC_BYTES if mode is Mode.RELIABLE else 0
        last = payload_bytes + extra - (frames - 1) * per_frame
        return frames, last + self.frame_bytes - per_frame

    def transfer(
        self, payload_bytes: int, conditions: LinkConditions, rng: np.random.Generator
    ) -> TransferResult:
        """Simulate one tensor of ``payload_bytes`` bytes (see the module docstring).

        Raises:
            ConfigError: a payload < 1 B, or an RSSI at which no connection survives (full-size
                exchanges failing more than 99.9 % of the time; about -102 dBm on the 1M PHY).
        """
        return simulate(self._cached_plan(payload_bytes, conditions), rng)

    def transfer_adaptive(
        self,
        payload_bytes: int,
        conditions: LinkConditions,
        rng: np.random.Generator,
        controller: AdaptiveWindow,
    ) -> TransferResult:
        """One reliable transfer whose in-flight window ``controller`` adapts on every ACK.

        ``conditions.window`` is the receiver's ACK cadence (:mod:`tinysplit.links.adaptive`).

        Raises:
            ConfigError: as :meth:`transfer`, or paper mode (its window cannot adapt).
        """
        if conditions.mode is not Mode.RELIABLE:
            raise ConfigError("the window adapts in reliable mode only")
        return simulate(self._cached_plan(payload_bytes, conditions), rng, controller)

    def _cached_plan(self, payload_bytes: int, conditions: LinkConditions) -> Plan:
        key = (payload_bytes, conditions)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(payload_bytes, conditions)
            if len(self._plans) >= _PLAN_CACHE:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = plan
        return plan

    def _plan(self, payload_bytes: int, conditions: LinkConditions) -> Plan:
        """Everything about one transfer that does not depend on the random draws."""
        frames, last_bytes = self.frame_plan(payload_bytes, conditions.mode)
        rssi = conditions.rssi_dbm
        phy, spec, env = self.phy_timing, self.spec, self.interference
        full_cycles, full_sizes = self._full_plan
        last_cycles, last_sizes = self._value_timing(last_bytes)
        full_fail = tuple(
            exchange_failure_probability(phy, s, 0, rssi, spec, env) for s in full_sizes
        )
        self._check_connectable(rssi, max(full_fail))
        last_fail = tuple(
            exchange_failure_probability(phy, s, 0, rssi, spec, env) for s in last_sizes
        )
        full_tx = tuple(phy.pdu_us(s, spec) for s in full_sizes)
        last_tx = tuple(phy.pdu_us(s, spec) for s in last_sizes)
        full_bytes = tuple(phy.pdu_air_bytes(s, spec) for s in full_sizes)
        last_bytes_air = tuple(phy.pdu_air_bytes(s, spec) for s in last_sizes)
        # The receiver's answer to a window: an ATT write response (paper), or an ACK frame
        # (header + bitmap) as an ATT value (reliable); plus the L2CAP header.
        if conditions.mode is Mode.PAPER:
            answer = ATT_WRITE_RSP_BYTES + spec.l2cap_header_bytes
        else:
            answer = HEADER_BYTES + ACK_BITMAP_BYTES + spec.value_overhead_bytes
        p = self.profile
        return Plan(
            frames=frames,
            window=conditions.window,
            paper=conditions.mode is Mode.PAPER,
            full_cycles=full_cycles,
            full_fail=full_fail,
            full_tx=full_tx,
            full_bytes=full_bytes,
            last_cycles=last_cycles,
            last_fail=last_fail,
            last_tx=last_tx,
            last_bytes=last_bytes_air,
            empty_us=phy.pdu_us(0, spec),
            empty_bytes=phy.pdu_air_bytes(0, spec),
            answer_extra_us=phy.pdu_us(answer, spec) - phy.pdu_us(0, spec),
            answer_extra_bytes=answer,
            t_ifs_us=spec.t_ifs_us,
            interval_us=p.conn_interval_ms * 1e3,
            budget_us=self.event_budget_us,
            pool_values=self.tx_queue_values,
            write_us=p.app_write_ms * 1e3,
            write_cv=p.app_write_cv,
            wake_us=p.app_wake_ms * 1e3,
            response_us=p.response_ms * 1e3,
            paper_timeout_us=p.paper_timeout_ms * 1e3,
            supervision_us=p.supervision_timeout_ms * 1e3,
            reconnect_us=self.setup_s(conditions) * 1e6,
            pdu_fail=per_pdu(frames, full_fail, last_fail),
            cycles=per_pdu(frames, full_cycles, last_cycles),
            pdu_tx=per_pdu(frames, full_tx, last_tx),
            pdu_bytes=per_pdu(
                frames, tuple(map(float, full_bytes)), tuple(map(float, last_bytes_air))
            ),
            value_first_pdu=np.r_[
                np.arange(frames) * len(full_sizes),
                (frames - 1) * len(full_sizes) + len(last_sizes),
            ],
            full_line=[0.0, *accumulate(full_cycles)],
            last_line=[0.0, *accumulate(last_cycles)],
        )
