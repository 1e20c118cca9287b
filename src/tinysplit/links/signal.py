"""Signal strength and packet errors: log-distance path loss and a BER model per modulation.

Path loss: ``PL(d) = PL(d0) + 10 n log10(d / d0) + X`` with ``X ~ N(0, sigma)`` dB per link (fixed
for a run), ``d0 = 1 m``; RSSI = TX power - PL. Packet errors: the bit error rate falls with SNR
like non-coherent detection, ``BER = 0.5 exp(-k * snr)``, with ``snr`` in linear units relative to
the receiver's sensitivity and ``k`` fixed so that the datasheet sensitivity gives the datasheet's
PER for its reference packet (BLE: 30.8 % on 37 B; Wi-Fi: 8 % on 1024 B for 11b, 10 % on 1000 B
for 11g/n). ``PER(L) = 1 - (1 - BER)^(8 L)``.

Indoors the received power also fades from packet to packet. :func:`faded_packet_error_rate`
averages the PER over Rician fading (K factor in dB; ``-inf`` is Rayleigh), which turns the
steep waterfall of the conducted test into the gentle decline seen on real links. The frame-level
models (ESP-NOW, Wi-Fi) share :func:`faded_per`, a cached form keyed by the datasheet PER anchor,
and clamp attempt-failure probabilities to :data:`MAX_FAILURE`. Constants and sources:
``links/data/esp32s3.toml``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from tinysplit.errors import ConfigError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class PathLoss:
    """Log-distance path loss at 2.4 GHz.

    Attributes:
        loss_at_1m_db: path loss at the 1 m reference distance, dB.
        exponent: path-loss exponent n.
        shadowing_sigma_db: standard deviation of the per-link log-normal shadowing, dB.
    """

    loss_at_1m_db: float
    exponent: float
    shadowing_sigma_db: float

    def __post_init__(self) -> None:
        if not 1.0 <= self.exponent <= 6.0:
            raise ConfigError(f"path-loss exponent must be within 1..6, got {self.exponent}")
        if self.shadowing_sigma_db < 0:
            raise ConfigError(f"shadowing sigma must be >= 0 dB, got {self.shadowing_sigma_db}")

    def loss_db(self, distance_m: npt.ArrayLike) -> FloatArray:
        """Mean path loss in dB at ``distance_m`` metres (distances below 0.1 m are clamped)."""
        d = np.maximum(np.asarray(distance_m, dtype=np.float64), 0.1)
        return np.asarray(self.loss_at_1m_db + 10.0 * self.exponent * np.log10(d), np.float64)

    def rssi_matrix(
        self, positions_m: Sequence[Sequence[float]], tx_power_dbm: float, rng: np.random.Generator
    ) -> FloatArray:
        """Symmetric RSSI matrix (dBm) of boards at ``positions_m`` (x, y[, z] metres).

        The diagonal is NaN. Each pair draws one shadowing value from ``rng``.

        Raises:
            ConfigError: fewer than two boards, mixed dimensions or two boards at one spot.
        """
        pos = np.asarray(positions_m, dtype=np.float64)
        if pos.ndim != 2 or len(pos) < 2 or pos.shape[1] not in (2, 3):
            raise ConfigError("positions must be a list of at least two [x, y] or [x, y, z] points")
        if not np.isfinite(pos).all():
            raise ConfigError("positions must be finite numbers (metres)")
        dist = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
        n = len(pos)
        iu = np.triu_indices(n, 1)
        if (dist[iu] == 0).any():
            i, j = (int(v[0]) for v in np.nonzero(np.triu(dist == 0, 1)))
            raise ConfigError(f"boards {i + 1} and {j + 1} are at the same position")
        shadow = rng.normal(0.0, self.shadowing_sigma_db, len(iu[0]))
        rssi = np.full((n, n), np.nan)
        rssi[iu] = tx_power_dbm - self.loss_db(dist[iu]) + shadow
        rssi.T[iu] = rssi[iu]
        return rssi


def error_constant(per_at_sensitivity: float, reference_bytes: int) -> float:
    """``k`` of ``BER = 0.5 exp(-k snr)`` such that the reference packet has the given PER at
    sensitivity (``snr = 1`` there)."""
    if not 0.0 < per_at_sensitivity < 1.0 or reference_bytes < 1:
        raise ConfigError("PER at sensitivity must be in (0, 1) and the reference packet >= 1 B")
    ber = 1.0 - (1.0 - per_at_sensitivity) ** (1.0 / (8 * reference_bytes))
    return math.log(0.5 / ber)


def bit_error_rate(rssi_dbm: float, sensitivity_dbm: float, k: float) -> float:
    """BER at ``rssi_dbm`` for a receiver with ``sensitivity_dbm`` and error constant ``k``."""
    snr = 10.0 ** ((rssi_dbm - sensitivity_dbm) / 10.0)
    return 0.5 * math.exp(-k * snr)


#: Number of fixed fading draws used to average the PER (deterministic quadrature).
FADING_DRAWS = 4096


@lru_cache(maxsize=64)
def _fading_gains(rician_k_db: float) -> FloatArray:
    """Fixed unit-mean power gains of a Rician channel (a seeded, reproducible sample)."""
    k = 0.0 if math.isinf(rician_k_db) and rician_k_db < 0 else 10.0 ** (rician_k_db / 10.0)
    rng = np.random.default_rng(20240806)
    scatter = (
        rng.standard_normal(FADING_DRAWS) + 1j * rng.standard_normal(FADING_DRAWS)
    ) / math.sqrt(2)
    gains = np.abs(math.sqrt(k / (k + 1.0)) + math.sqrt(1.0 / (k + 1.0)) * scatter) ** 2
    gains.setflags(write=False)
    return gains


def faded_packet_error_rate(
    frame_bytes: int, rssi_dbm: float, sensitivity_dbm: float, k: float, rician_k_db: float
) -> float:
    """Mean PER of a ``frame_bytes`` frame over Rician fading with mean power ``rssi_dbm``.

    Args:
        frame_bytes: bytes on air per frame (all of them can be hit).
        rssi_dbm: mean received power, dBm.
        sensitivity_dbm: receiver sensitivity of the modulation, dBm.
        k: error constant from :func:`error_constant`.
        rician_k_db: ratio of direct to scattered power in dB; ``float("-inf")`` for Rayleigh,
            large values approach no fading.
    """
    snr = 10.0 ** ((rssi_dbm - sensitivity_dbm) / 10.0) * _fading_gains(rician_k_db)
    ber = 0.5 * np.exp(-k * snr)
    return float(np.mean(-np.expm1(8 * frame_bytes * np.log1p(-ber))))


#: Attempt-failure probabilities are clamped below 1 so that a dead link gives huge, finite times.
MAX_FAILURE = 1.0 - 1e-9


@lru_cache(maxsize=4096)
def faded_per(
    frame_bytes: int, rssi_dbm: float, sens_dbm: float, per: float, ref: int, kf: float
) -> float:
    """Cached :func:`faded_packet_error_rate` with the error constant of (``per``, ``ref``).

    Args:
        frame_bytes: bytes on air per frame (all of them can be hit).
        rssi_dbm: mean received power, dBm.
        sens_dbm: receiver sensitivity of the modulation, dBm.
        per: datasheet PER at ``sens_dbm`` (0..1) of the ``ref`` bytes reference packet.
        ref: reference packet size of the datasheet PER, bytes.
        kf: Rician K factor, dB (``float("-inf")`` for Rayleigh).

    Returns:
        The mean PER over fading, 0..1.

    Raises:
        ConfigError: ``per`` outside (0, 1) or ``ref`` below 1 B (from :func:`error_constant`).
    """
    k = error_constant(per, ref)
    return faded_packet_error_rate(frame_bytes, rssi_dbm, sens_dbm, k, kf)


def calibrated_rssi_matrix(
    positions_m: Sequence[Sequence[float]], transport: str, rng: np.random.Generator
) -> FloatArray:
    """RSSI matrix (dBm) of boards at ``positions_m`` with the packaged path-loss constants.

    Uses the ``[signal]`` table of ``links/data/esp32s3.toml`` (path loss at 1 m, exponent,
    shadowing) and the transport's TX power; one shadowing draw per pair from ``rng``. The
    simulator seeds ``rng`` with ``[seed, 999]``; callers that want the simulator's matrix do
    the same.

    Raises:
        ConfigError: unknown transport, or positions :meth:`PathLoss.rssi_matrix` rejects.
    """
    from tinysplit.links.calibration import section

    signal = section("signal")
    path = PathLoss(
        loss_at_1m_db=float(signal["loss_at_1m_db"]),
        exponent=float(signal["exponent"]),
        shadowing_sigma_db=float(signal["shadowing_sigma_db"]),
    )
    powers = signal["tx_power_dbm"]
    if transport not in powers:
        raise ConfigError(f"unknown transport {transport!r} (valid: {', '.join(powers)})")
    return path.rssi_matrix(positions_m, float(powers[transport]), rng)
