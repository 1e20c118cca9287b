"""The air side of the Wi-Fi link model: 802.11n HT20 PHY/MAC timing, rate choice, MAC retries.

:class:`WifiPhy` holds the 2.4 GHz HT20 constants and PPDU durations. :class:`WifiAir` is the
802.11 part of one link: each hop picks the fastest HT20 MCS whose datasheet sensitivity plus
``rate_margin_db`` the hop's RSSI clears (:meth:`WifiAir.mcs`), and gets a cached :class:`Hop` of
attempt-failure probabilities (Rician-faded PER of the MPDU or of its ACK / BlockAck, see
:func:`~tinysplit.links.signal.faded_per`) and airtime tables indexed by the number of MPDUs in an
A-MPDU. It also draws channel accesses (AIFS + uniform backoff, other networks' traffic stretching
an exchange) and plays the MAC retry rounds with a doubling contention window. The TCP and
medium-sharing logic that uses these lives in :mod:`tinysplit.links.wifi`. Constants and sources:
``links/data/esp32s3.toml`` (``[wifi.phy]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinysplit.errors import ConfigError
from tinysplit.links.signal import MAX_FAILURE, faded_per

#: Hops whose tables a link caches (one per distinct RSSI); more are computed but not kept.
MAX_CACHED_HOPS = 1024


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class WifiPhy:
    """802.11n HT20 PHY/MAC timing and frame sizes (2.4 GHz). Times in us, sizes in bytes."""

    slot_us: float
    sifs_us: float
    aifsn: int
    cw_min: int
    cw_max: int
    ht_preamble_us: float
    legacy_preamble_us: float
    symbol_us: float
    signal_extension_us: float
    mcs_bits_per_symbol: tuple[int, ...]
    mcs_sensitivity_dbm: tuple[float, ...]
    per_at_sensitivity: float
    per_reference_bytes: int
    control_rates_mbps: tuple[float, ...]
    control_sensitivity_dbm: tuple[float, ...]
    control_per_reference_bytes: int
    mpdu_overhead_bytes: int  # around a TCP segment's payload: MAC, CCMP, LLC/SNAP, IP/TCP, FCS
    ack_bytes: int
    block_ack_bytes: int
    ampdu_delimiter_bytes: int
    max_attempts: int

    def __post_init__(self) -> None:
        mcs = len(self.mcs_bits_per_symbol)
        _check(mcs >= 1 and len(self.mcs_sensitivity_dbm) == mcs, "one sensitivity per MCS needed")
        _check(
            len(self.control_rates_mbps) == len(self.control_sensitivity_dbm) >= 1,
            "one sensitivity per control rate needed",
        )
        _check(1 <= self.cw_min <= self.cw_max and self.aifsn >= 1, "bad contention parameters")
        _check(1 <= self.max_attempts <= 30, "max_attempts must be within 1..30")
        _check(0 < self.per_at_sensitivity < 1, "per_at_sensitivity must be in (0, 1)")

    def ht_ppdu_s(self, psdu_bytes: int, mcs: int) -> float:
        """HT-mixed PPDU time of ``psdu_bytes`` at ``mcs``, seconds."""
        symbols = math.ceil((22 + 8 * psdu_bytes) / self.mcs_bits_per_symbol[mcs])
        return (self.ht_preamble_us + self.symbol_us * symbols + self.signal_extension_us) * 1e-6

    def control_ppdu_s(self, frame_bytes: int, rate_mbps: float) -> float:
        """Non-HT OFDM PPDU time of a control frame at ``rate_mbps``, seconds."""
        symbols = math.ceil((22 + 8 * frame_bytes) / (rate_mbps * 4.0))
        return (self.legacy_preamble_us + 4.0 * symbols + self.signal_extension_us) * 1e-6


@dataclass(frozen=True, slots=True)
class Hop:
    """One hop's rate, failure probabilities and airtime tables (index: MPDUs per PPDU).

    Attributes:
        mcs: HT20 MCS index of the data frames.
        p_fail: attempt failure probability of a full segment / a TCP ACK (or its MAC response).
        psdu: PSDU bytes of 0..``ampdu_max_mpdus`` segments / TCP ACKs in one PPDU.
        ppdu_s: PPDU seconds of the same, segments / TCP ACKs.
        resp_s: seconds of the response: none, an ACK (one MPDU) or a BlockAck.
        resp_bytes: bytes on air of the same response.
        retx_s: one mean exchange of a full segment, seconds (a TCP retransmission after an RTO).
    """

    mcs: int
    p_fail: tuple[float, float]
    psdu: tuple[tuple[int, ...], tuple[int, ...]]
    ppdu_s: tuple[tuple[float, ...], tuple[float, ...]]
    resp_s: tuple[float, ...]
    resp_bytes: tuple[int, ...]
    retx_s: float


class WifiAir:
    """Rate choice, airtime tables and MAC contention of one Wi-Fi link (module docstring).

    Attributes:
        phy: HT20 PHY/MAC constants.
        cw: contention window of each MAC attempt (CW doubling up to ``cw_max``), slots.
        aifs_s: AIFS (SIFS + AIFSN slots), seconds.
        mean_access_s: mean first-attempt channel access (AIFS + CWmin / 2 slots), seconds.
    """

    def __init__(
        self,
        phy: WifiPhy,
        *,
        mss_bytes: int,
        ampdu_max_mpdus: int,
        rate_margin_db: float,
        rician_k_db: float,
        channel_busy_fraction: float,
    ) -> None:
        """Set up the air of a link.

        Args:
            phy: HT20 PHY/MAC constants.
            mss_bytes: TCP payload of a full segment, bytes.
            ampdu_max_mpdus: largest A-MPDU (1 disables aggregation).
            rate_margin_db: margin over the MCS sensitivity the rate choice keeps, dB.
            rician_k_db: fading K factor, dB.
            channel_busy_fraction: share of airtime held by other networks, 0..0.95.
        """
        self.phy = phy
        self.mss_bytes = mss_bytes
        self.ampdu_max_mpdus = ampdu_max_mpdus
        self.rate_margin_db = rate_margin_db
        self.rician_k_db = rician_k_db
        self.channel_busy_fraction = channel_busy_fraction
        self.cw = [
            float(min(phy.cw_max, (phy.cw_min + 1) * 2**i - 1)) for i in range(phy.max_attempts)
        ]
        self.aifs_s = (phy.sifs_us + phy.aifsn * phy.slot_us) * 1e-6
        self.mean_access_s = self.aifs_s + phy.cw_min / 2 * phy.slot_us * 1e-6
        self._hops: dict[float, Hop] = {}

    def mcs(self, rssi_dbm: float) -> int:
        """HT20 MCS the rate control uses on a hop with ``rssi_dbm`` (0 below every threshold)."""
        margin = self.rate_margin_db
        sens = self.phy.mcs_sensitivity_dbm
        return max([0] + [m for m, s in enumerate(sens) if rssi_dbm >= s + margin])

    def hop(self, rssi_dbm: float) -> Hop:
        """The (cached) rate choice and airtime tables of a hop with ``rssi_dbm`` dBm."""
        hop = self._hops.get(rssi_dbm)
        if hop is not None:
            return hop
        phy, kf, amax = self.phy, self.rician_k_db, self.ampdu_max_mpdus
        m = self.mcs(rssi_dbm)
        rate = phy.mcs_bits_per_symbol[m] / phy.symbol_us
        c = max([0] + [i for i, r in enumerate(phy.control_rates_mbps) if r <= rate])
        ctrl_rate, ctrl_sens = phy.control_rates_mbps[c], phy.control_sensitivity_dbm[c]
        per0, ref, sens = (
            phy.per_at_sensitivity,
            phy.per_reference_bytes,
            phy.mcs_sensitivity_dbm[m],
        )
        cref, ovh = phy.control_per_reference_bytes, phy.mpdu_overhead_bytes
        p_ba = faded_per(phy.block_ack_bytes, rssi_dbm, ctrl_sens, per0, cref, kf)
        sizes = (self.mss_bytes + ovh, ovh)  # a full segment, a TCP ACK
        p_fail = tuple(
            min(MAX_FAILURE, 1 - (1 - faded_per(b, rssi_dbm, sens, per0, ref, kf)) * (1 - p_ba))
            for b in sizes
        )
        pad = phy.ampdu_delimiter_bytes + 3
        psdu = tuple((0, b, *(k * ((b + pad) // 4 * 4) for k in range(2, amax + 1))) for b in sizes)
        ack_s = phy.control_ppdu_s(phy.ack_bytes, ctrl_rate)
        ba_s = phy.control_ppdu_s(phy.block_ack_bytes, ctrl_rate)
        hop = Hop(
            mcs=m,
            p_fail=(p_fail[0], p_fail[1]),
            psdu=(psdu[0], psdu[1]),
            ppdu_s=(
                tuple(phy.ht_ppdu_s(b, m) for b in psdu[0]),
                tuple(phy.ht_ppdu_s(b, m) for b in psdu[1]),
            ),
            resp_s=(0.0, ack_s, *(ba_s,) * (amax - 1)),
            resp_bytes=(0, phy.ack_bytes, *(phy.block_ack_bytes,) * (amax - 1)),
            retx_s=self.mean_access_s + phy.ht_ppdu_s(sizes[0], m) + phy.sifs_us * 1e-6 + ack_s,
        )
        if len(self._hops) < MAX_CACHED_HOPS:
            self._hops[rssi_dbm] = hop
        return hop

    def draws(self, rng: np.random.Generator, size: int) -> tuple[list[float], list[float]]:
        """``size`` first-attempt channel accesses (AIFS + uniform backoff of 0..CWmin slots, s)
        and as many factors by which other networks' traffic stretches an exchange (none if idle).
        """
        slots = np.floor(rng.random(size) * (self.cw[0] + 1.0))
        access: list[float] = (self.aifs_s + slots * (self.phy.slot_us * 1e-6)).tolist()
        busy = self.channel_busy_fraction
        if not busy:
            return access, []
        stretch: list[float] = (1.0 + busy / (1.0 - busy) * rng.standard_exponential(size)).tolist()
        return access, stretch

    def retries(
        self, hop: Hop, mpdus: list[int], atts: list[int], rng: np.random.Generator
    ) -> tuple[float, float, float, int, int]:
        """Rounds after the first for MPDUs whose first attempt failed (CW doubling per round).

        Args:
            hop: the hop the MPDUs cross.
            mpdus: MPDU sizes of the batch, bytes.
            atts: MAC attempts each MPDU needs (above ``max_attempts``: lost).
            rng: random generator for the backoffs and the busy-channel stretch.

        Returns:
            (seconds, PPDU seconds, response seconds, bytes on air, MAC retries).
        """
        phy, busy = self.phy, self.channel_busy_fraction
        limit, delim = phy.max_attempts, phy.ampdu_delimiter_bytes
        t = ppdu_s = resp_s = 0.0
        nbytes = 0
        for rnd in range(1, limit):
            live = [m for m, a in zip(mpdus, atts, strict=True) if a > rnd]
            if not live:
                break
            k = min(len(live), 2)  # the response: an ACK, or a BlockAck for an A-MPDU
            psdu = live[0] if k == 1 else sum((m + delim + 3) // 4 * 4 for m in live)
            resp, rb = hop.resp_s[k], hop.resp_bytes[k]
            ppdu = phy.ht_ppdu_s(psdu, hop.mcs)
            backoff = math.floor(rng.random() * (self.cw[rnd] + 1.0)) * phy.slot_us * 1e-6
            exchange = self.aifs_s + backoff + ppdu + phy.sifs_us * 1e-6 + resp
            if busy:
                exchange *= 1.0 + busy / (1.0 - busy) * rng.standard_exponential()
            t += exchange
            ppdu_s += ppdu
            resp_s += resp
            nbytes += psdu + rb
        return t, ppdu_s, resp_s, nbytes, sum(min(a, limit) for a in atts) - len(atts)
