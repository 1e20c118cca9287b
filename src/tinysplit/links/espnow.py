"""ESP-NOW link model: one unicast vendor action frame in flight, clocked by the send callback.

Per data frame the sender's stack spends ``stack_overhead_s`` (send callback -> application ->
next ``esp_now_send``), then the MAC makes up to ``1 + mac_retry_limit`` attempts, each
``DIFS + backoff + data + SIFS + ACK`` (a failed attempt waits the ACK timeout, taken as long as
the ACK). The backoff is drawn per attempt, uniform on ``0..CW`` slots with CW doubling per retry.
When every attempt fails the send callback reports FAIL: in ``paper`` mode that fails the tensor
at once; in ``reliable`` mode the application sends the frame again (selective repeat). After every
``window`` data frames (and after the last) the receiver answers with an application frame and the
sender waits for it (paper: "a response every n-th frame"; reliable: a selective-repeat ACK
bitmap). Attempts fail with the Rician-faded PER of the data frame or of its MAC ACK
(:func:`tinysplit.links.signal.faded_packet_error_rate`). Other networks on the channel
(``channel_busy_fraction``) defer every access by an exponential wait.

Everything inside one transfer is drawn at once with numpy: attempts per send from the truncated
geometric law, application-level resends from the geometric law, backoffs as one matrix.
Constants and their sources: ``links/data/esp32s3.toml`` (``[espnow]``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from tinysplit.errors import ConfigError
from tinysplit.links.base import LinkConditions, LinkModel, Mode, TransferResult, Transport
from tinysplit.links.calibration import profile_table, transport_table
from tinysplit.links.calibration import rician_k_db as calibrated_rician_k_db
from tinysplit.links.signal import MAX_FAILURE, faded_per
from tinysplit.protocol.frames import (
    ACK_BITMAP_BYTES,
    HEADER_BYTES,
    PAPER_TIMER_ID_BYTES,
    TENSOR_CRC_BYTES,
    data_payload_bytes,
    frames_for_tensor,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class EspNowPhy:
    """One PHY rate an ESP-NOW peer can use. Times in microseconds, rates in Mbit/s.

    Attributes:
        name: PHY entry name (``dsss-1m``, ``ofdm-54m``).
        modulation: ``dsss`` (802.11b) or ``ofdm`` (802.11g).
        rate_mbps, ack_rate_mbps: data and MAC-ACK rates.
        preamble_us, signal_extension_us, slot_us, sifs_us, difs_us: PHY/MAC timing.
        cw_min, cw_max: contention window bounds, slots.
        sensitivity_dbm, ack_sensitivity_dbm: datasheet sensitivity at the data / ACK rate.
        per_at_sensitivity, per_reference_bytes: the PER the sensitivity is quoted at, and on what.
    """

    name: str
    modulation: str
    rate_mbps: float
    preamble_us: float
    signal_extension_us: float
    slot_us: float
    sifs_us: float
    difs_us: float
    cw_min: int
    cw_max: int
    ack_rate_mbps: float
    sensitivity_dbm: float
    ack_sensitivity_dbm: float
    per_at_sensitivity: float
    per_reference_bytes: int

    def __post_init__(self) -> None:
        _check(
            self.modulation in ("dsss", "ofdm"), f"PHY {self.name}: modulation must be dsss or ofdm"
        )
        _check(self.rate_mbps > 0 and self.ack_rate_mbps > 0, f"PHY {self.name}: rates must be > 0")
        times = (
            self.preamble_us,
            self.signal_extension_us,
            self.slot_us,
            self.sifs_us,
            self.difs_us,
        )
        _check(min(times) >= 0, f"PHY {self.name}: times must be >= 0 us")
        _check(1 <= self.cw_min <= self.cw_max, f"PHY {self.name}: need 1 <= cw_min <= cw_max")
        _check(0 < self.per_at_sensitivity < 1, f"PHY {self.name}: PER at sensitivity in (0, 1)")
        _check(self.per_reference_bytes >= 1, f"PHY {self.name}: per_reference_bytes >= 1")

    def ppdu_s(self, frame_bytes: int, rate_mbps: float) -> float:
        """On-air time of a ``frame_bytes`` MPDU at ``rate_mbps`` (preamble included), seconds."""
        if self.modulation == "dsss":
            return (self.preamble_us + 8.0 * frame_bytes / rate_mbps) * 1e-6
        bits_per_symbol = rate_mbps * 4.0  # 4 us OFDM symbols
        symbols = math.ceil((16 + 8 * frame_bytes + 6) / bits_per_symbol)
        return (self.preamble_us + 4.0 * symbols + self.signal_extension_us) * 1e-6


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameLayout:
    """Bytes of an ESP-NOW vendor action frame around its payload (esp_now.rst)."""

    mac_header_bytes: int
    action_fixed_bytes: int
    ie_header_bytes: int
    ie_body_max_bytes: int
    fcs_bytes: int
    mac_ack_bytes: int

    def __post_init__(self) -> None:
        _check(min(asdict(self).values()) >= 0, "ESP-NOW frame layout sizes must be >= 0")
        _check(self.ie_body_max_bytes >= 1, "ie_body_max_bytes must be >= 1")

    def air_bytes(self, payload_bytes: int) -> int:
        """MPDU bytes of a frame carrying ``payload_bytes`` (one vendor IE per 250 B)."""
        ies = max(1, -(-payload_bytes // self.ie_body_max_bytes))
        fixed = self.mac_header_bytes + self.action_fixed_bytes + self.fcs_bytes
        return fixed + ies * self.ie_header_bytes + payload_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class EspNowProfile:
    """A calibrated ESP-NOW configuration (see ``esp32s3.toml [espnow]`` for sources).

    Attributes:
        name: profile name.
        phy: PHY rate the peer is set to.
        frame: frame layout.
        payload_max_bytes: largest ESP-NOW payload (250 v1.0, 1470 v2.0).
        mac_retry_limit: MAC retries after the first attempt.
        stack_overhead_s: callback -> next send turnaround per frame, seconds.
        channel_busy_fraction: share of airtime held by other networks, 0..0.95.
        setup_s: link setup time, seconds.
        goodput_kbps: sourced bulk goodput range (kbit/s) for the calibration check.
        goodput_window, goodput_mode, goodput_source: how that goodput is measured, and where from.
    """

    name: str
    phy: EspNowPhy
    frame: FrameLayout
    payload_max_bytes: int
    mac_retry_limit: int
    stack_overhead_s: float
    channel_busy_fraction: float = 0.0
    setup_s: float = 0.0
    goodput_kbps: tuple[float, float] = (0.0, 0.0)
    goodput_window: int = 1
    goodput_mode: Mode = Mode.PAPER
    goodput_source: str = field(default="")

    def __post_init__(self) -> None:
        _check(20 <= self.payload_max_bytes <= 1490, f"{self.name}: payload_max_bytes in 20..1490")
        _check(0 <= self.mac_retry_limit <= 30, f"{self.name}: mac_retry_limit in 0..30")
        _check(self.stack_overhead_s >= 0 and self.setup_s >= 0, f"{self.name}: times >= 0 s")
        _check(0 <= self.channel_busy_fraction <= 0.95, f"{self.name}: busy fraction in 0..0.95")
        lo, hi = self.goodput_kbps
        _check(0 <= lo <= hi, f"{self.name}: goodput_kbps must be [lo, hi] with 0 <= lo <= hi")
        _check(self.goodput_window >= 1, f"{self.name}: goodput_window >= 1")

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any]) -> EspNowProfile:
        """Build from a profile table whose ``phy`` and ``frame`` entries are tables.

        Raises:
            ConfigError: a missing, unknown or invalid key.
        """
        try:
            phy = EspNowPhy(**dict(table["phy"]))
            frame = FrameLayout(**dict(table["frame"]))
            rest = {k: v for k, v in table.items() if k not in ("phy", "frame")}
            lo, hi = rest.pop("goodput_kbps", (0.0, 0.0))
            mode = Mode(rest.pop("goodput_mode", "paper"))
            return cls(
                name=name,
                phy=phy,
                frame=frame,
                goodput_kbps=(float(lo), float(hi)),
                goodput_mode=mode,
                **rest,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bad espnow profile {name!r}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (round-trips through :meth:`from_table`)."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "name"}
        out["phy"] = asdict(self.phy)
        out["frame"] = asdict(self.frame)
        out["goodput_kbps"] = list(self.goodput_kbps)
        out["goodput_mode"] = str(self.goodput_mode)
        return out


@dataclass(frozen=True, slots=True)
class _Series:
    """Vectorised sends of one kind of frame (data or answers): totals per frame."""

    time_s: FloatArray  # stack turnarounds + every exchange of every send, seconds
    attempts: IntArray  # MAC attempts over all sends
    sends: IntArray  # application-level sends (1 + resends after a FAIL callback)
    lost: npt.NDArray[np.bool_]  # the (only) send failed and the frame was not sent again
    data_loss_share: FloatArray  # share of failed attempts that lost the data (not the ACK)


class EspNowLink(LinkModel):
    """ESP-NOW between two ESP32-S3 boards (see the module docstring for the model)."""

    transport: ClassVar[Transport] = Transport.ESPNOW

    def __init__(self, profile: EspNowProfile, *, rician_k_db: float | None = None) -> None:
        """Build the link.

        Args:
            profile: calibrated profile.
            rician_k_db: fading K factor, dB; the calibration's ``signal.rician_k_db`` when None.
        """
        self.profile = profile
        self.rician_k_db = calibrated_rician_k_db() if rician_k_db is None else rician_k_db
        phy = profile.phy
        self._attempt_limit = 1 + profile.mac_retry_limit
        cws = [min(phy.cw_max, (phy.cw_min + 1) * 2**i - 1) for i in range(self._attempt_limit)]
        self._cw = np.asarray(cws, dtype=np.float64)
        self._ack_s = phy.ppdu_s(profile.frame.mac_ack_bytes, phy.ack_rate_mbps)

    @classmethod
    def from_profile(cls, name: str | None = None) -> EspNowLink:
        """The link with a named profile of ``esp32s3.toml [espnow]`` (the default when None).

        Raises:
            ConfigError: unknown profile (the message lists the valid ones) or bad data.
        """
        raw = dict(profile_table("espnow", name))
        table = transport_table("espnow")
        phys: Mapping[str, Any] = table["phys"]
        phy_name = str(raw.get("phy"))
        if phy_name not in phys:
            raise ConfigError(f"espnow profile PHY {phy_name!r} unknown (valid: {', '.join(phys)})")
        raw["phy"] = {"name": phy_name, **phys[phy_name]}
        raw["frame"] = table["frame"]
        resolved = name if name is not None else str(table["default_profile"])
        return cls(EspNowProfile.from_table(resolved, raw))

    @property
    def frame_bytes(self) -> int:
        """Largest application frame: the ESP-NOW payload limit."""
        return self.profile.payload_max_bytes

    def setup_s(self, conditions: LinkConditions) -> float:
        """ESP-NOW is connectionless: the profile's (zero) setup time."""
        return self.profile.setup_s

    def exchange_s(self, payload_bytes: int) -> float:
        """Mean time of one successful unicast exchange (DIFS, mean backoff, data, SIFS, ACK), s.

        250 B at 1 Mbps gives the 3.21 ms of radios-ref §2.3.
        """
        phy = self.profile.phy
        data = phy.ppdu_s(self.profile.frame.air_bytes(payload_bytes), phy.rate_mbps)
        contention = (phy.difs_us + phy.cw_min / 2 * phy.slot_us) * 1e-6
        return contention + data + phy.sifs_us * 1e-6 + self._ack_s

    def _failure(self, air_bytes: int, rssi_dbm: float) -> tuple[float, float]:
        """(P[attempt fails], P[the data frame itself was lost]) at ``rssi_dbm``."""
        phy, kf = self.profile.phy, self.rician_k_db
        ref, per0 = phy.per_reference_bytes, phy.per_at_sensitivity
        p_data = faded_per(air_bytes, rssi_dbm, phy.sensitivity_dbm, per0, ref, kf)
        ack = self.profile.frame.mac_ack_bytes
        p_ack = faded_per(ack, rssi_dbm, phy.ack_sensitivity_dbm, per0, ref, kf)
        return min(MAX_FAILURE, 1.0 - (1.0 - p_data) * (1.0 - p_ack)), p_data

    def _series(
        self,
        n: int,
        full_air: int,
        last_air: int,
        rssi_dbm: float,
        rng: np.random.Generator,
        *,
        resend: bool,
    ) -> _Series:
        """Draw every send of ``n`` frames (all ``full_air`` MPDU bytes but the last).

        With ``resend`` the application sends a frame again after each FAIL callback; without,
        a failed send is final (``lost``) and costs all its attempts.
        """
        phy, limit = self.profile.phy, self._attempt_limit
        p_full, d_full = self._failure(full_air, rssi_dbm)
        p_last, d_last = self._failure(last_air, rssi_dbm)
        p = np.full(n, p_full)
        p[-1] = p_last
        p_send = p**limit  # every attempt of one send fails: the callback says FAIL
        ones = np.ones(n, dtype=np.int64)
        if not p_send.any():
            sends, lost = ones, np.zeros(n, dtype=bool)
        elif resend:
            sends, lost = rng.geometric(1.0 - p_send), np.zeros(n, dtype=bool)
        else:
            sends, lost = ones, rng.random(n) < p_send
        # Attempts of the successful send: truncated geometric on 1..limit, by inversion.
        u = rng.random(n)
        if p.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                tail = np.floor(np.log1p(-u * (1.0 - p_send)) / np.log(p))
            last = np.where(p > 0, np.clip(np.nan_to_num(tail, nan=0.0) + 1, 1, limit), 1)
            last = last.astype(np.int64)
        else:
            last = np.ones(n, dtype=np.int64)
        last[lost] = limit
        attempts = (sends - 1) * limit + last
        # Backoff slots: exact draws for the successful send, a normal sum for failed sends.
        back = np.floor(rng.random(n) * (self._cw[0] + 1.0))
        retried = np.flatnonzero(last > 1)
        if retried.size:
            stage = np.arange(1, limit)
            draws = np.floor(rng.random((retried.size, limit - 1)) * (self._cw[1:] + 1.0))
            back[retried] += np.where(stage < last[retried, None], draws, 0.0).sum(axis=1)
        failed = sends - 1
        if failed.any():
            mean = self._cw.sum() / 2.0
            var = (((self._cw + 1.0) ** 2 - 1.0) / 12.0).sum()
            extra = rng.normal(failed * mean, np.sqrt(failed * var))
            back += np.where(failed > 0, np.maximum(extra, 0.0), 0.0)
        data_s = np.full(n, phy.ppdu_s(full_air, phy.rate_mbps))
        data_s[-1] = phy.ppdu_s(last_air, phy.rate_mbps)
        fixed = (phy.difs_us + phy.sifs_us) * 1e-6 + self._ack_s
        air_s = attempts * (fixed + data_s) + back * (phy.slot_us * 1e-6)
        busy = self.profile.channel_busy_fraction
        if busy > 0:
            # Other networks defer every access: exponential waits, mean busy/(1-busy) x own time.
            air_s = air_s * (1.0 + busy / (1.0 - busy) * rng.gamma(attempts, 1.0) / attempts)
        share = np.full(n, d_full / p_full if p_full > 0 else 0.0)
        share[-1] = d_last / p_last if p_last > 0 else 0.0
        return _Series(
            time_s=air_s + sends * self.profile.stack_overhead_s,
            attempts=attempts,
            sends=sends,
            lost=lost,
            data_loss_share=share,
        )

    def transfer(
        self, payload_bytes: int, conditions: LinkConditions, rng: np.random.Generator
    ) -> TransferResult:
        """Simulate one tensor of ``payload_bytes`` bytes (see the module docstring).

        Raises:
            ConfigError: a negative size.
        """
        if payload_bytes < 0:
            raise ConfigError(f"payload_bytes must be >= 0, got {payload_bytes}")
        prof, phy, mode = self.profile, self.profile.phy, conditions.mode
        reliable = mode is Mode.RELIABLE
        header = HEADER_BYTES if reliable else PAPER_TIMER_ID_BYTES
        per_frame = data_payload_bytes(prof.payload_max_bytes, str(mode))
        n = frames_for_tensor(payload_bytes, prof.payload_max_bytes, str(mode))
        stream = payload_bytes + (TENSOR_CRC_BYTES if reliable else 0)
        full_air = prof.frame.air_bytes(header + per_frame)
        last_air = prof.frame.air_bytes(header + max(0, stream - (n - 1) * per_frame))
        window = conditions.window
        n_resp = -(-n // window)
        answer = HEADER_BYTES + ACK_BITMAP_BYTES if reliable else PAPER_TIMER_ID_BYTES
        resp_air = prof.frame.air_bytes(answer)

        rssi = conditions.rssi_dbm
        data = self._series(n, full_air, last_air, rssi, rng, resend=reliable)
        resp = self._series(n_resp, resp_air, resp_air, rssi, rng, resend=reliable)
        # Answer r follows data frame ends[r]; the next data frame waits for it.
        ends = np.minimum(np.arange(1, n_resp + 1) * window, n) - 1
        n_data, n_ans, delivered = n, n_resp, True
        if not reliable:
            bad_data = np.flatnonzero(data.lost)
            bad_resp = np.flatnonzero(resp.lost)
            first_data = int(bad_data[0]) if bad_data.size else n
            first_resp = int(bad_resp[0]) if bad_resp.size else n_resp
            if first_resp < n_resp and int(ends[first_resp]) < first_data:
                n_data, n_ans, delivered = int(ends[first_resp]) + 1, first_resp + 1, False
            elif first_data < n:
                n_ans = int(np.searchsorted(ends, first_data))
                n_data, delivered = first_data + 1, False
        # The first send starts at t = 0, without a turnaround before it.
        duration = float(data.time_s[:n_data].sum()) - prof.stack_overhead_s
        if delivered:
            # Until the last data frame's last byte: its SIFS + MAC ACK and the final answer follow.
            duration += float(resp.time_s[: int(np.searchsorted(ends, n - 1))].sum())
            duration -= phy.sifs_us * 1e-6 + self._ack_s
        else:
            duration += float(resp.time_s[:n_ans].sum())

        counts = []
        for series, k in ((data, n_data), (resp, n_ans)):
            att, snd = series.attempts[:k], series.sends[:k]
            # The peer acknowledges every attempt whose data arrived.
            failed = att - 1 + series.lost[:k]
            counts.append((att, snd, float((att - failed * series.data_loss_share[:k]).sum())))
        (d_att, d_snd, d_acks), (r_att, r_snd, r_acks) = counts
        full_s = phy.ppdu_s(full_air, phy.rate_mbps)
        data_tx = float(d_att.sum()) * full_s
        resp_tx = float(r_att.sum()) * phy.ppdu_s(resp_air, phy.rate_mbps)
        air_bytes = int(d_att.sum()) * full_air + int(r_att.sum()) * resp_air
        if n_data == n:  # the last, shorter frame was sent
            data_tx += int(d_att[-1]) * (phy.ppdu_s(last_air, phy.rate_mbps) - full_s)
            air_bytes += int(d_att[-1]) * (last_air - full_air)
        air_bytes += round((d_acks + r_acks) * prof.frame.mac_ack_bytes)
        lost_sends = int((d_snd - 1).sum() + (r_snd - 1).sum())
        return TransferResult(
            duration_s=duration,
            delivered=delivered,
            app_frames=int(d_snd.sum()),
            retransmissions=int((d_snd - 1).sum()),
            drops=lost_sends if delivered else 1,
            link_retries=int((d_att - d_snd).sum() + (r_att - r_snd).sum()),
            bytes_on_air=air_bytes,
            sender_tx_s=data_tx + r_acks * self._ack_s,
            sender_rx_s=resp_tx + d_acks * self._ack_s,
            receiver_tx_s=resp_tx + d_acks * self._ack_s,
            receiver_rx_s=data_tx + r_acks * self._ack_s,
        )
