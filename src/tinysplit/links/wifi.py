"""Wi-Fi SoftAP + TCP link model: lwIP TCP over 802.11n HT20, frame by frame.

One board runs the SoftAP, the others are stations. When neither end is the AP
(``conditions.relay_rssi_dbm`` set) every frame, data and TCP ACK alike, crosses the air twice: the
AP stores each one and forwards it after ``relay_forward_s``; its radio time is reported as
``relay_tx_s`` / ``relay_rx_s``. Each hop picks the fastest HT20 MCS whose datasheet sensitivity
plus ``rate_margin_db`` the hop's RSSI clears; that rate choice, the airtime tables, the channel
access draws and the MAC retry rounds are in :mod:`tinysplit.links.wifi_air`.

The medium is one shared server: a transmission (an A-MPDU of up to ``ampdu_max_mpdus`` frames that
are queued when it starts) waits for the medium, then takes ``AIFS + backoff + PPDU + SIFS + ACK or
BlockAck``; MPDUs that fail (Rician-faded PER of the MPDU or of its acknowledgment) are sent again
with a doubled contention window, up to ``max_attempts``. A segment lost after that is repaired by
TCP after ``rto_s``. Competing transmitters are served in the order their frames become ready.

TCP follows lwIP: segments of ``mss_bytes`` (TCP_NODELAY, the application writes MSS-sized tinysplit
frames, so ``mode`` only sets their header size), at most ``min(cwnd, snd_buf, wnd)`` bytes
unacknowledged, slow start from lwIP's initial cwnd, the receiver acknowledging every second segment
(or from the delayed-ACK timer), per-segment CPU ``tx_cpu_s`` / ``rx_cpu_s`` and stack latencies
``tx_latency_s`` (ACK in -> next segment out) and ``rx_latency_s`` (segment in -> ACK out).
Random draws (MAC attempts, backoffs) are made with numpy up front; the event recursion runs over
plain floats. Constants and sources: ``links/data/esp32s3.toml`` (``[wifi]``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from tinysplit.errors import ConfigError
from tinysplit.links.base import LinkConditions, LinkModel, Mode, TransferResult, Transport
from tinysplit.links.calibration import profile_table, transport_table
from tinysplit.links.calibration import rician_k_db as calibrated_rician_k_db
from tinysplit.links.wifi_air import WifiAir, WifiPhy
from tinysplit.protocol.frames import (
    HEADER_BYTES,
    PAPER_TIMER_ID_BYTES,
    STREAM_PAPER_PREFIX_BYTES,
    TENSOR_CRC_BYTES,
    data_payload_bytes,
    frames_for_tensor,
)

__all__ = ["WifiLink", "WifiPhy", "WifiProfile"]

INF = math.inf
_S, _R, _A = 0, 1, 2  # sender, receiver, access point (relay): indices of the radio-time lists


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class WifiProfile:
    """A calibrated SoftAP + lwIP TCP configuration (sources in ``esp32s3.toml [wifi]``).

    Attributes:
        name: profile name.
        phy: shared HT20 PHY/MAC constants.
        mss_bytes, snd_buf_bytes, wnd_bytes: lwIP TCP MSS, send buffer and receive window, bytes.
        ack_every_segments: the receiver acknowledges every this many segments.
        delayed_ack_s: lwIP's delayed-ACK timer period, seconds.
        rto_s: retransmission timeout for a segment lost after all MAC attempts, seconds.
        ampdu_max_mpdus: largest A-MPDU (1 disables aggregation).
        tx_cpu_s, rx_cpu_s: per-segment stack CPU at sender / receiver, seconds.
        tx_latency_s, rx_latency_s: ACK -> next segment and segment -> ACK stack latency, seconds.
        relay_forward_s: SoftAP store-and-forward time per frame, seconds.
        rate_margin_db: margin over the MCS sensitivity the rate choice keeps, dB.
        channel_busy_fraction: share of airtime held by other networks, 0..0.95.
        setup_s: association (+ DHCP) time before the first transfer, seconds.
        goodput_kbps, goodput_window, goodput_mode, goodput_source: the calibration target.
    """

    name: str
    phy: WifiPhy
    mss_bytes: int
    snd_buf_bytes: int
    wnd_bytes: int
    ack_every_segments: int
    delayed_ack_s: float
    rto_s: float
    ampdu_max_mpdus: int
    tx_cpu_s: float
    rx_cpu_s: float
    tx_latency_s: float
    rx_latency_s: float
    relay_forward_s: float
    rate_margin_db: float
    channel_busy_fraction: float = 0.0
    setup_s: float = 0.0
    goodput_kbps: tuple[float, float] = (0.0, 0.0)
    goodput_window: int = 1
    goodput_mode: Mode = Mode.RELIABLE
    goodput_source: str = field(default="")

    def __post_init__(self) -> None:
        n = self.name
        _check(536 <= self.mss_bytes <= 1460, f"{n}: mss_bytes must be within 536..1460 (lwIP)")
        _check(self.mss_bytes % 2 == 0, f"{n}: mss_bytes must be even (whole int16 values)")
        _check(self.snd_buf_bytes >= self.mss_bytes, f"{n}: snd_buf_bytes must be >= mss_bytes")
        _check(self.mss_bytes <= self.wnd_bytes <= 65535, f"{n}: wnd_bytes within mss..65535")
        _check(self.ack_every_segments >= 1, f"{n}: ack_every_segments must be >= 1")
        _check(1 <= self.ampdu_max_mpdus <= 64, f"{n}: ampdu_max_mpdus must be within 1..64")
        for f in ("delayed_ack_s", "rto_s", "tx_cpu_s", "rx_cpu_s", "relay_forward_s", "setup_s"):
            _check(getattr(self, f) >= 0, f"{n}: {f} must be >= 0 s")
        _check(min(self.tx_latency_s, self.rx_latency_s) >= 0, f"{n}: latencies must be >= 0 s")
        _check(0 <= self.channel_busy_fraction <= 0.95, f"{n}: busy fraction within 0..0.95")
        lo, hi = self.goodput_kbps
        _check(0 <= lo <= hi, f"{n}: goodput_kbps must be [lo, hi] with 0 <= lo <= hi")

    @property
    def initial_cwnd_bytes(self) -> int:
        """lwIP's LWIP_TCP_CALC_INITIAL_CWND: min(4 MSS, max(2 MSS, 4380)) bytes."""
        return min(4 * self.mss_bytes, max(2 * self.mss_bytes, 4380))

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any]) -> WifiProfile:
        """Build from a profile table whose ``phy`` entry is the PHY table.

        Raises:
            ConfigError: a missing, unknown or invalid key.
        """
        try:
            phy_table: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in dict(table["phy"]).items()
            }
            rest = {k: v for k, v in table.items() if k != "phy"}
            lo, hi = rest.pop("goodput_kbps", (0.0, 0.0))
            mode = Mode(rest.pop("goodput_mode", "reliable"))
            return cls(
                name=name,
                phy=WifiPhy(**phy_table),
                goodput_kbps=(float(lo), float(hi)),
                goodput_mode=mode,
                **rest,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bad wifi profile {name!r}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (round-trips through :meth:`from_table`)."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "name"}
        out["phy"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.phy).items()
        }
        out["goodput_kbps"] = list(self.goodput_kbps)
        out["goodput_mode"] = str(self.goodput_mode)
        return out


class WifiLink(LinkModel):
    """Wi-Fi SoftAP + lwIP TCP between ESP32-S3 boards (see the module docstring)."""

    transport: ClassVar[Transport] = Transport.WIFI

    def __init__(self, profile: WifiProfile, *, rician_k_db: float | None = None) -> None:
        """Build the link.

        Args:
            profile: calibrated profile.
            rician_k_db: fading K factor, dB; the calibration's ``signal.rician_k_db`` when None.
        """
        self.profile = profile
        self.rician_k_db = calibrated_rician_k_db() if rician_k_db is None else rician_k_db
        self._air = WifiAir(
            profile.phy,
            mss_bytes=profile.mss_bytes,
            ampdu_max_mpdus=profile.ampdu_max_mpdus,
            rate_margin_db=profile.rate_margin_db,
            rician_k_db=self.rician_k_db,
            channel_busy_fraction=profile.channel_busy_fraction,
        )

    @classmethod
    def from_profile(cls, name: str | None = None) -> WifiLink:
        """The link with a named profile of ``esp32s3.toml [wifi]`` (the default when None).

        Raises:
            ConfigError: unknown profile (the message lists the valid ones) or bad data.
        """
        raw = dict(profile_table("wifi", name))
        table = transport_table("wifi")
        raw["phy"] = table["phy"]
        resolved = name if name is not None else str(table["default_profile"])
        return cls(WifiProfile.from_table(resolved, raw))

    @property
    def frame_bytes(self) -> int:
        """Largest application frame: one MSS (each send() fills one segment)."""
        return self.profile.mss_bytes

    def setup_s(self, conditions: LinkConditions) -> float:
        """Association (+ DHCP unless static IP) before the first transfer, seconds.

        Two stations associate with the AP in parallel, so a relayed link takes the same time.
        """
        return self.profile.setup_s

    def mcs(self, rssi_dbm: float) -> int:
        """HT20 MCS the rate control uses on a hop with ``rssi_dbm`` (0 below every threshold)."""
        return self._air.mcs(rssi_dbm)

    def transfer(
        self, payload_bytes: int, conditions: LinkConditions, rng: np.random.Generator
    ) -> TransferResult:
        """Simulate one tensor of ``payload_bytes`` bytes over a TCP stream (module docstring).

        Raises:
            ConfigError: a negative size.
        """
        if payload_bytes < 0:
            raise ConfigError(f"payload_bytes must be >= 0, got {payload_bytes}")
        prof, phy, air = self.profile, self.profile.phy, self._air
        mode, mss = str(conditions.mode), prof.mss_bytes
        reliable = conditions.mode is Mode.RELIABLE
        # Each frame fills one segment; a paper frame's length prefix comes out of it.
        frame = mss if reliable else mss - STREAM_PAPER_PREFIX_BYTES
        n = frames_for_tensor(payload_bytes, frame, mode)
        per_frame = data_payload_bytes(frame, mode)
        ovh = phy.mpdu_overhead_bytes
        header = mss - frame + (HEADER_BYTES if reliable else PAPER_TIMER_ID_BYTES) + ovh
        stream = payload_bytes + (TENSOR_CRC_BYTES if reliable else 0)
        full, last = header + per_frame, header + max(0, stream - (n - 1) * per_frame)
        relay = conditions.relay_rssi_dbm is not None
        hops = [air.hop(conditions.rssi_dbm)]
        if conditions.relay_rssi_dbm is not None:
            hops.append(air.hop(conditions.relay_rssi_dbm))
        # Transmission kinds g: 0 data S->(A|R), 1 data A->R, 2 ACK R->(A|S), 3 ACK A->S.
        kind_hop = [hops[0], hops[-1], hops[-1], hops[0]]
        kind_nodes = [(_S, _A if relay else _R), (_A, _R), (_R, _A if relay else _S), (_A, _S)]
        psdu_tab = [h.psdu[g > 1] for g, h in enumerate(kind_hop)]
        ppdu_tab = [h.ppdu_s[g > 1] for g, h in enumerate(kind_hop)]
        resp_tab, rbytes_tab = [h.resp_s for h in kind_hop], [h.resp_bytes for h in kind_hop]
        amax, pad = prof.ampdu_max_mpdus, phy.ampdu_delimiter_bytes + 3
        last_pad = (last + pad) // 4 * 4 - (full + pad) // 4 * 4  # the shorter last segment
        # Random draws up front: MAC attempts per frame and kind, first-round channel accesses.
        probs = [h.p_fail[g > 1] if relay or g % 2 == 0 else 0.0 for g, h in enumerate(kind_hop)]
        att = [
            rng.geometric(1.0 - p, n + 2).tolist() if p > 1e-12 else [1] * (n + 2) for p in probs
        ]
        busy, draws = prof.channel_busy_fraction, 2 * (n + 8) * len(hops)
        access, stretch = air.draws(rng, draws)
        limit, sifs, aifs = phy.max_attempts, phy.sifs_us * 1e-6, air.aifs_s
        ppdu_sum, resp_sum = [0.0] * 4, [0.0] * 4  # per kind: PPDU and response seconds
        air_bytes = retries = pi = 0
        med = 0.0  # the medium is free from here

        # TCP state: the sender's window, its stack (cpu), the receiver's in-order delivery.
        wmax = max(1, min(prof.snd_buf_bytes, prof.wnd_bytes) // mss)
        cwnd = prof.initial_cwnd_bytes
        win = max(1, min(wmax, cwnd // mss))  # segments the sender may have unacknowledged
        allowed_end = min(n, win)
        allowed_at = [0.0] * n
        nxt, acked, cpu, head = 0, 0, 0.0, -1.0
        tx_cpu, tx_lat = prof.tx_cpu_s, prof.tx_latency_s
        rx_cpu, rx_lat = prof.rx_cpu_s, prof.rx_latency_s
        every, fwd = prof.ack_every_segments, prof.relay_forward_s
        rto = prof.rto_s + sum(h.retx_s for h in hops) + fwd * relay
        arrive = [INF] * n
        dn, rxf, unacked, done_t, lost = 0, 0.0, 0, 0.0, 0
        # FIFO queues 1..3 of ready times and items: the AP's segments to forward (item: segment),
        # the receiver's TCP ACKs and the AP's ACKs to forward (item: last segment covered).
        qt: list[deque[float]] = [deque(), deque(), deque(), deque()]
        qi: list[deque[int]] = [deque(), deque(), deque(), deque()]
        fwd_t, ack_t, fack_t = qt[1], qt[2], qt[3]
        used, n_access = [0, 0, 0, 0], len(access)

        while True:
            t, g = INF, -1
            if nxt < allowed_end:
                if head < 0:
                    a = allowed_at[nxt]
                    head = (cpu if cpu > a else a) + tx_cpu
                t, g = head, 0
            if fwd_t and fwd_t[0] < t:
                t, g = fwd_t[0], 1
            if ack_t and ack_t[0] <= t:
                t, g = ack_t[0], 2
            if fack_t and fack_t[0] <= t:
                t, g = fack_t[0], 3
            if g < 0:
                if dn >= n:
                    break
                # Stalled on an odd segment: lwIP's fast timer sends the delayed ACK.
                assert unacked, "nothing to send, deliver or acknowledge"
                ack_t.append(rxf + rng.random() * prof.delayed_ack_s)
                qi[2].append(dn - 1)
                unacked = 0
                continue
            start = t if t > med else med
            cutoff = start + aifs
            # The batch: frames of this queue that are ready when the medium is won.
            if g == 0:
                items, r_prev, k = [nxt], t, nxt + 1
                while k < allowed_end and k - nxt < amax:
                    a = allowed_at[k]
                    rk = (r_prev if r_prev > a else a) + tx_cpu
                    if rk > cutoff:
                        break
                    items.append(k)
                    r_prev, k = rk, k + 1
                cpu, nxt, head = r_prev, k, -1.0
            else:
                times, queued = qt[g], qi[g]
                times.popleft()
                items = [queued.popleft()]
                while times and times[0] <= cutoff and len(items) < amax:
                    times.popleft()
                    items.append(queued.popleft())
            nb = len(items)
            if g > 1:  # TCP ACKs draw their attempts in sending order
                u = used[g]
                atts, used[g] = att[g][u : u + nb], u + nb
            elif nb == 1:
                atts = [att[g][items[0]]]
            else:
                atts = [att[g][j] for j in items]
            # Transmit: the first round inline, MAC retries (rare) in a helper.
            if pi >= n_access:
                more = air.draws(rng, n_access)
                access += more[0]
                stretch += more[1]
                n_access = len(access)
            if g < 2 and items[-1] == n - 1:  # the tensor's last, shorter segment
                psdu = last if nb == 1 else psdu_tab[g][nb] + last_pad
                ppdu = phy.ht_ppdu_s(psdu, kind_hop[g].mcs)
            else:
                psdu, ppdu = psdu_tab[g][nb], ppdu_tab[g][nb]
            resp = resp_tab[g][nb]
            exchange = access[pi] + ppdu + sifs + resp
            end = start + (exchange * stretch[pi] if busy else exchange)
            pi += 1
            ppdu_sum[g] += ppdu
            resp_sum[g] += resp
            air_bytes += psdu + rbytes_tab[g][nb]
            if (max(atts) if nb > 1 else atts[0]) > 1:
                sizes = [last if j == n - 1 else full for j in items] if g < 2 else [ovh] * nb
                extra = air.retries(kind_hop[g], sizes, atts, rng)
                end += extra[0]
                ppdu_sum[g] += extra[1]
                resp_sum[g] += extra[2]
                air_bytes += extra[3]
                retries += extra[4]
            med = end
            # Hand the batch to the next node.
            if g == 2 and relay:
                qt[3].extend([end + fwd] * nb)
                qi[3].extend(items)
                continue
            if g >= 2:
                for c in items:  # a TCP ACK lost after every MAC attempt is let through
                    if c < acked:
                        continue
                    inc, acked = (c + 1 - acked) * mss, c + 1
                    if win < wmax:  # slow start, lwIP's byte counting (<= 2 MSS per ACK)
                        cwnd += inc if inc < 2 * mss else 2 * mss
                        win = min(wmax, cwnd // mss)
                    new_end = acked + win
                    if new_end > n:
                        new_end = n
                    if new_end > allowed_end:
                        allowed_at[allowed_end:new_end] = [end + tx_lat] * (new_end - allowed_end)
                        allowed_end, head = new_end, -1.0
                continue
            for j, a in zip(items, atts):  # noqa: B905 (equal lengths; hot loop)
                if a > limit:  # lost after every MAC attempt: TCP resends it after the RTO
                    lost += 1
                    arrive[j] = end + rto
                elif g == 0 and relay:
                    fwd_t.append(end + fwd)
                    qi[1].append(j)
                else:
                    arrive[j] = end
            # The receiver's stack takes segments in order and acknowledges every second one.
            while dn < n and arrive[dn] < INF:
                a = arrive[dn]
                rxf = (a if a > rxf else rxf) + rx_cpu
                unacked += 1
                if unacked >= every or dn == n - 1:
                    ack_t.append(rxf + rx_lat)
                    qi[2].append(dn)
                    unacked = 0
                dn += 1
                if dn == n:
                    done_t = rxf

        radio_tx, radio_rx = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
        zero = [0.0] * (4 - len(hops))  # RTO retransmissions cross the data hops once more
        retx = [h.ppdu_s[0][1] * lost for h in hops] + zero
        acks = [h.resp_s[1] * lost for h in hops] + zero
        for g, (src, dst) in enumerate(kind_nodes):
            radio_tx[src] += ppdu_sum[g] + retx[g]
            radio_rx[dst] += ppdu_sum[g] + retx[g]
            radio_tx[dst] += resp_sum[g] + acks[g]
            radio_rx[src] += resp_sum[g] + acks[g]
        return TransferResult(
            duration_s=done_t,
            delivered=True,
            app_frames=n,
            retransmissions=lost,
            drops=lost,
            link_retries=retries,
            bytes_on_air=air_bytes + lost * len(hops) * (full + phy.ack_bytes),
            sender_tx_s=radio_tx[_S],
            sender_rx_s=radio_rx[_S],
            receiver_tx_s=radio_tx[_R],
            receiver_rx_s=radio_rx[_R],
            relay_tx_s=radio_tx[_A],
            relay_rx_s=radio_rx[_A],
        )
